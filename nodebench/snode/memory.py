"""The memory SNODE's matrices take, estimated and checked before any is built.

Paper: Quaglino et al., SNODE (ICLR 2020, arXiv 1906.07038), §4 and §3; nodebench's reconstruction is in
``nodebench/papers/snode/README.md`` (equations (M5)–(M7) there). Every quantity SNODE needs is linear in the
free coefficients, P = 1 + E·p of them per state dimension (:mod:`nodebench.snode.elements`):

* while training, the observation map and the node maps of states and slopes are matrix-free
  (:class:`~nodebench.snode.elements.ElementMap`): a sparse matrix S and its transpose, each time's p + 1 basis
  values in the data's dtype and their int64 columns in each, 2·(T + 2·E·Q)·(p + 1) values and as many indices in
  all; small maps (P ≤ ``DENSE_COLUMNS``) also hold their dense matrices,
  (T + 2·E·Q)·P values, each built in float64 (:meth:`~nodebench.snode.elements.ElementMap.dense`) and then
  copied into the data's dtype;
* the least-squares fit (M6), while it runs, in float64: with ``snode_ridge`` > 0 (the default) element by
  element (:meth:`~nodebench.snode.elements.ElementBasis.fit`), O(T·(p + N·D) + E·p·(p + N·D)); without ridge
  on the dense observation map: the continuity map G (E × (p + 1) × P) and the map (T × P) while it is
  assembled, then the map, the solver's copy of it and LAPACK gelsd's workspace, O(P·(N·D + log P)), which
  outweighs the map at small T (1.8 times it at T = 61, N·D = 12). Off the CPU the dense fit takes the SVD
  pseudo-inverse instead (:func:`~nodebench.snode.legendre.svd_lstsq`): the map, then the SVD's copy of it, U and
  Vᴴ, then U, Vᴴ, Vᴴ scaled and the pseudo-inverse (2·T·P + 2·P², about twice the CPU solve's temporaries), and
  the SVD library's workspace, which the CPU cannot show and is allowed one more T × P matrix.

So with ridge everything grows linearly with the number of observation times T. Without it, and the default
E ≈ (T − 1)/p, the fit grows with T² (a trajectory of 10⁴ observations needs about 2 GB for it).
:func:`check_memory` refuses a case whose matrices would not fit in the memory available on the device
(:func:`device_memory`) before the first is allocated.
"""

from __future__ import annotations

import math
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
                 itemsize: int, *, ridge: float, device_type: str = "cpu") -> dict[str, int]:
    """Bytes of SNODE's matrices at the peak of its set-up, for T = ``n_times`` observation times of
    ``n_series`` = N·D scalar series in a dtype of ``itemsize`` bytes, E elements of degree p, Q nodes each and
    the fit's ``ridge`` (see the module docstring): the matrix-free ``observation map`` and ``node maps`` held
    while training (the sparse S and Sᵀ: p + 1 values and int64 column indices per time each, and their row
    starts; the nodes' times and weights) and the ``least-squares fit``'s float64 temporaries. Without ridge
    the fit (M6) is dense: the larger of its assembly (the continuity map G, its cumulative sum's temporaries,
    the observation map's S and Sᵀ, and M) and its solve (M, the solver's copy, the data three times: as given,
    folded into columns, the solver's copy; and LAPACK gelsd's workspace, :func:`_gelsd_workspace`, larger than
    M at small T), on a device of another ``device_type`` than ``"cpu"`` the SVD pseudo-inverse's (M; the larger
    of the SVD's copy of M, U and Vᴴ and of U, Vᴴ, Vᴴ scaled and the pseudo-inverse; the SVD library's workspace,
    taken as one more T × P; the data three times); with ridge it goes element by element: the data twice (as
    given, folded into columns), each observation's basis values and row [basis | data] twice (built, sorted by
    element), each element's triangle twice (listed, stacked), the triangular solve's right-hand sides and
    solutions, the coefficients per element and z. The fit's part is named ``node maps' construction`` where
    their float64 temporaries, which come and go before it, are larger (counted beside both node maps, though
    the second is built while only the first is held: up to a third over the peak where they dominate)."""
    n_free = 1 + elements * degree
    n_nodes = elements * nodes_per_element
    dense = n_free <= DENSE_COLUMNS  # small maps also hold their (rows × P) matrix, built in float64
    map_entries = 4 * (degree + 1)  # a map's float64 S and Sᵀ per time: values and column indices
    if ridge == 0:
        assembly = (elements * (degree + 4) + n_times) * n_free + map_entries * n_times
        if device_type == "cpu":  # minimum_norm_lstsq: LAPACK gelsd on the CPU, svd_lstsq elsewhere
            solve = 2 * n_times * n_free + _gelsd_workspace(n_times, n_free, n_series)
        else:
            solve = 4 * n_times * n_free + 2 * n_free ** 2
        fit = max(assembly, solve + 3 * n_times * n_series)
    else:
        width = degree + 1 + n_series  # a row [f_e | v_e | y] or a triangle's
        fit = (2 * n_times * (n_series + degree + 1 + width) + 2 * elements * (degree + 1) * width
               + 3 * elements * degree * (n_series + 1) + n_free * n_series)
    build = (map_entries + degree + 5) * n_nodes  # a node map's S, Sᵀ and the sort of S's columns, in float64
    row = 2 * (itemsize + INDEX) * (degree + 1) + INDEX  # S's and Sᵀ's entries, S's row start
    if dense:
        row += itemsize * n_free
        # the largest map's float64 matrix and basis values while its copy in the data's dtype is made
        build = max(build, max(n_times, n_nodes) * (n_free + degree + 1))
    starts = INDEX * elements * (degree + 1)  # Sᵀ's row starts, one per column of S
    return {
        "observation map": row * n_times + starts,
        "node maps": 2 * (row * n_nodes + starts) + 2 * itemsize * n_nodes,  # two maps; the node times, weights
        "least-squares fit" if fit >= build else "node maps' construction": FLOAT64 * max(fit, build),
    }


def _gelsd_workspace(n_rows: int, n_columns: int, n_rhs: int) -> int:
    """Float64 entries of the minimum workspace of LAPACK's dgelsd (the CPU solve of a fit without ridge,
    :func:`~nodebench.snode.legendre.minimum_norm_lstsq`) for an n_rows × n_columns system with n_rhs right-hand
    sides, as its documentation gives it (SMLSIZ = 25, n = min(n_rows, n_columns), NLVL levels of its
    divide and conquer): 12n + 2n·SMLSIZ + 8n·NLVL + n·n_rhs + (SMLSIZ + 1)² doubles, n singular values and
    3n·NLVL + 11n int32 (two to an entry). O(n·(n_rhs + log n)), beside the T·P of the matrix: at T = 61 it
    is 1.8 times the matrix for N·D = 12."""
    n = min(n_rows, n_columns)
    levels = max(0, int(math.log2(n / 26)) + 1)  # Fortran's INT truncates towards zero, as int() does
    return 12 * n + 50 * n + 8 * n * levels + n * n_rhs + 26 ** 2 + n + (3 * n * levels + 11 * n + 1) // 2


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
    parts = matrix_bytes(n_times, n_series, degree, elements, nodes_per_element, itemsize, ridge=ridge,
                         device_type=device.type)
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
