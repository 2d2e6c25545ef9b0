"""The memory SNODE's dense matrices take, estimated and checked before any is built.

Paper: Quaglino et al., SNODE (ICLR 2020, arXiv 1906.07038), §4 and §3; nodebench's reconstruction is in
``nodebench/papers/snode/README.md`` (equations (M5)–(M7) there). Every quantity SNODE needs is a product of a
dense matrix and the free coefficients (:mod:`nodebench.snode.elements`), P = 1 + E·p of them per state
dimension:

* the continuity map G (M5): E × (p + 1) × P, float64;
* the observation map (T × P) and the node maps of states and slopes (2 × (E·Q) × P), in the data's dtype;
* the least-squares fit (M6), while it runs: the observation map again in float64, stacked on the ridge's
  P × P rows, and the solver's working copy of that stack.

With the default E ≈ (T − 1)/p all of them grow with the square of the number of observation times T, and the
node maps with Q too: a trajectory of 10⁴ observations needs about 1 GB per matrix. :func:`check_memory`
refuses a fit whose matrices would not fit in the memory available on the device (:func:`device_memory`)
before the first is allocated.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

FLOAT64 = 8  # bytes of the basis's float64 entries


class SnodeMemoryError(MemoryError):
    """SNODE's matrices would not fit in the device's memory (a MemoryError: the harness records the case as
    ``oom`` with this one-line reason)."""


def matrix_bytes(n_times: int, n_series: int, degree: int, elements: int, nodes_per_element: int,
                 itemsize: int) -> dict[str, int]:
    """Bytes of SNODE's dense matrices at the peak of its set-up, for T = ``n_times`` observation times of
    ``n_series`` = N·D scalar series in a dtype of ``itemsize`` bytes, E elements of degree p and Q nodes each
    (see the module docstring): the ``continuity map``, ``node maps`` and ``observation map`` held while
    training, and the temporaries of the set-up: the larger of the least-squares fit's (data included) and
    of a node map's float64 construction, named after the one it is."""
    n_free = 1 + elements * degree
    n_nodes = elements * nodes_per_element
    fit = FLOAT64 * ((3 * n_times + 2 * n_free) * n_free + 3 * (n_times + n_free) * n_series)
    # a node map is built in float64, then copied to the data's dtype (no copy where that is float64)
    build = FLOAT64 * n_nodes * n_free if itemsize != FLOAT64 else 0
    return {
        "continuity map": FLOAT64 * elements * (degree + 1) * n_free,
        "node maps": 2 * itemsize * n_nodes * n_free,
        "observation map": itemsize * n_times * n_free,
        "temporaries of the fit" if fit >= build else "temporaries of the node maps": max(fit, build),
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
                 itemsize: int, device: torch.device) -> int:
    """The estimated bytes of SNODE's matrices (:func:`matrix_bytes`, summed); :class:`SnodeMemoryError` with
    the estimate, its largest part and what to lower where it exceeds :func:`device_memory` (one line, short
    enough for a record's failure reason)."""
    parts = matrix_bytes(n_times, n_series, degree, elements, nodes_per_element, itemsize)
    total = sum(parts.values())
    available, what = device_memory(device)
    if total > available:
        name, size = max(parts.items(), key=lambda item: item[1])
        raise SnodeMemoryError(
            f"SNODE's matrices need ~{total / 2**30:.3g} GiB, over the {available / 2**30:.3g} GiB of {what} "
            f"(largest: {name}, {size / 2**30:.3g} GiB); lower snode_nodes (Q = {nodes_per_element}), snode_elements "
            f"(E = {elements}) or snode_degree (p = {degree}), or T = {n_times} observation times: they grow as "
            f"(E·Q + T)·(1 + E·p)")
    return total
