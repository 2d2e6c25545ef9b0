"""The memory SNODE's matrices take, estimated and checked before any is built.

Paper: Quaglino et al., SNODE (ICLR 2020, arXiv 1906.07038), §4 and §3; nodebench's reconstruction is in
``nodebench/papers/snode/README.md`` (equations (M5)–(M7) there). Every quantity SNODE needs is linear in the
free coefficients, P = 1 + E·p of them per state dimension (:mod:`nodebench.snode.elements`):

* while training, the observation map and the node maps of states and slopes are matrix-free
  (:class:`~nodebench.snode.elements.ElementMap`): each time's p + 1 basis values and its element, in the data's
  dtype, (T + 2·E·Q)·(p + 1) values in all; small maps (P ≤ ``DENSE_COLUMNS``) also hold their dense matrices,
  (T + 2·E·Q)·P values, each built in float64 (:meth:`~nodebench.snode.elements.ElementMap.dense`) and then
  copied into the data's dtype;
* the least-squares fit (M6), while it runs, in float64: with ``snode_ridge`` > 0 (the default) element by
  element (:meth:`~nodebench.snode.elements.ElementBasis.fit`), O(T·(p + N·D) + E·p·(p + N·D)); without ridge
  on the dense observation map: the continuity map G (E × (p + 1) × P) and the map (T × P) while it is
  assembled, then the map and the solver's copy of it.

So with ridge everything grows linearly with the number of observation times T. Without it, and the default
E ≈ (T − 1)/p, the fit grows with T² (a trajectory of 10⁴ observations needs about 2 GB for it).
:func:`check_memory` refuses a case whose matrices would not fit in the memory available on the device
(:func:`device_memory`) before the first is allocated.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from nodebench.snode.elements import DENSE_COLUMNS

FLOAT64 = 8  # bytes of the basis's float64 entries
INDEX = 8  # bytes of an int64 element index


class SnodeMemoryError(MemoryError):
    """SNODE's matrices would not fit in the device's memory (a MemoryError: the harness records the case as
    ``oom`` with this one-line reason)."""


def matrix_bytes(n_times: int, n_series: int, degree: int, elements: int, nodes_per_element: int,
                 itemsize: int, *, ridge: float) -> dict[str, int]:
    """Bytes of SNODE's matrices at the peak of its set-up, for T = ``n_times`` observation times of
    ``n_series`` = N·D scalar series in a dtype of ``itemsize`` bytes, E elements of degree p, Q nodes each and
    the fit's ``ridge`` (see the module docstring): the matrix-free ``observation map`` and ``node maps`` held
    while training (basis values and int64 element indices) and the ``least-squares fit``'s float64
    temporaries. Without ridge the fit is dense: the larger of its assembly (the continuity map and the
    observation map) and its solve (that map, the solver's copy and the data); with ridge it goes element by
    element: the data twice (as given, folded into columns), each observation's basis values and row
    [basis | data] twice (built, sorted by element), each element's triangle twice (listed, stacked), the
    triangular solve's right-hand sides and solutions, the coefficients per element and z. The fit's part is
    named ``node maps' construction`` where their float64 temporaries, which come and go before it, are larger."""
    n_free = 1 + elements * degree
    n_nodes = elements * nodes_per_element
    dense = n_free <= DENSE_COLUMNS  # small maps also hold their (rows × P) matrix, built in float64
    if ridge == 0:
        assembly = (elements * (degree + 4) + n_times) * n_free  # G, its cumulative sum's (E, P) temporaries, M
        fit = max(assembly, 2 * n_times * n_free + 3 * n_times * n_series)
    else:
        width = degree + 1 + n_series  # a row [f_e | v_e | y] or a triangle's
        fit = (2 * n_times * (n_series + degree + 1 + width) + 2 * elements * (degree + 1) * width
               + 3 * elements * degree * (n_series + 1) + n_free * n_series)
    build = (3 * degree + 2) * n_nodes  # a node map's float64 basis values and their columns
    row = itemsize * (degree + 1) + INDEX
    if dense:
        row += itemsize * n_free
        # the largest map's float64 matrix and basis values while its copy in the data's dtype is made
        build = max(build, max(n_times, n_nodes) * (n_free + degree + 1))
    return {
        "observation map": row * n_times,
        "node maps": 2 * row * n_nodes,
        "least-squares fit" if fit >= build else "node maps' construction": FLOAT64 * max(fit, build),
    }


def device_memory(device: torch.device) -> tuple[int, str]:
    """The memory this process can still allocate on ``device`` when the case starts, in bytes, and what it
    is: on CUDA the device's free memory plus what torch's caching allocator holds unused; on the CPU the
    kernel's estimate of available memory (``MemAvailable``, else the physical memory), or the room left under
    the process's control-group limit (a container's, a SLURM job's) where that is less. Not the total: other
    processes' memory is not there to take, and the kernel kills a process that takes more."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return free + cached, f"free memory on {device}"
    available = _meminfo_available()
    room = _cgroup_room()
    if room is not None and room < available:
        return room, "room left in its cgroup"
    return available, "available memory"


def _meminfo_available(meminfo: Path = Path("/proc/meminfo")) -> int:
    """``MemAvailable`` of ``meminfo`` in bytes; the physical memory where it cannot be read (not Linux)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


#: (limit, usage) files of the memory controller: cgroup v2, v1
_CGROUP_FILES = {"": ("memory.max", "memory.current"), "memory": ("memory.limit_in_bytes", "memory.usage_in_bytes")}


def _cgroup_room(root: Path = Path("/sys/fs/cgroup"), groups: Path = Path("/proc/self/cgroup")) -> int | None:
    """Bytes left under the memory limit of this process's control group (limit − usage, v2 ``memory.max`` and
    ``memory.current``, v1 ``memory.limit_in_bytes`` and ``memory.usage_in_bytes``, under ``root``, of the
    groups listed in ``groups``; a group not mounted there is read at ``root``, as a container sees its own),
    or None where there is no limit or it cannot be read."""
    try:
        lines = groups.read_text().splitlines()
    except OSError:
        return None
    rooms = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        controller = "" if controllers == "" else "memory" if "memory" in controllers.split(",") else None
        if controller is None:
            continue
        limit_file, usage_file = _CGROUP_FILES[controller]
        base = root / controller if controller else root
        for folder in (base / path.lstrip("/"), base):
            try:
                limit, usage = ((folder / name).read_text().strip() for name in (limit_file, usage_file))
            except OSError:
                continue
            if limit.isdigit() and usage.isdigit():
                rooms.append(max(0, int(limit) - int(usage)))
            break
    return min(rooms, default=None)


def check_memory(n_times: int, n_series: int, degree: int, elements: int, nodes_per_element: int,
                 itemsize: int, device: torch.device, *, ridge: float) -> int:
    """The estimated bytes of SNODE's matrices (:func:`matrix_bytes`, summed); :class:`SnodeMemoryError` with
    the estimate, its largest part and the options that shrink that part where it exceeds :func:`device_memory`
    (one line, short enough for a record's failure reason)."""
    parts = matrix_bytes(n_times, n_series, degree, elements, nodes_per_element, itemsize, ridge=ridge)
    total = sum(parts.values())
    available, what = device_memory(device)
    if total > available:
        name, size = max(parts.items(), key=lambda item: item[1])
        advice = f"lower snode_elements (E = {elements}), snode_degree (p = {degree}) or T = {n_times} observation " \
                 "times"
        if name.startswith("node maps"):
            advice = f"lower snode_nodes (Q = {nodes_per_element}) or snode_elements (E = {elements})"
        elif name == "least-squares fit" and ridge == 0:
            advice = f"set snode_ridge > 0 (the fit is dense without it), or {advice}"
        raise SnodeMemoryError(f"SNODE's matrices need ~{total / 2**30:.3g} GiB, over the {available / 2**30:.3g} GiB "
                               f"of {what} (largest: {name}, {size / 2**30:.3g} GiB); {advice}")
    return total
