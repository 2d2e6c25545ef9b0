"""Peak memory of a phase, above what was held when the phase began.

CUDA: ``torch.cuda.reset_peak_memory_stats`` then ``max_memory_allocated`` (tensor memory) and
``max_memory_reserved`` (the caching allocator's peak), both relative to their values at the reset.

CPU: the kernel's resident-set high-water mark. On Linux the mark (VmHWM) is reset by writing ``5`` to
``/proc/self/clear_refs``, so each phase gets its own peak. Where that is not possible the meter falls
back to ``ru_maxrss``, which never goes down: it is only a per-phase figure in a fresh process, which is
why the runner gives every case its own process. ``tracemalloc`` is not used: it does not see tensors.
See shared/MEASURING.md §3.
"""

from __future__ import annotations

import os
import resource

import torch


class _ProcStatus:
    """Reads VmRSS/VmHWM and resets VmHWM through file descriptors kept open (about 10 µs a reading)."""

    def __init__(self):
        self._status = os.open("/proc/self/status", os.O_RDONLY)
        self._clear_refs = os.open("/proc/self/clear_refs", os.O_WRONLY)
        self.reset_hwm()
        self.kib(b"VmHWM:")

    def kib(self, field: bytes) -> int:
        text = os.pread(self._status, 16384, 0)
        start = text.index(field) + len(field)
        return int(text[start:text.index(b"kB", start)])

    def reset_hwm(self) -> None:
        os.write(self._clear_refs, b"5")


def _proc_status() -> _ProcStatus | None:
    try:
        return _ProcStatus()
    except (OSError, ValueError):
        return None


class PeakMemory:
    """Measures the peak memory added by a phase on one device.

    Call :meth:`reset` when the phase begins and :meth:`peak_bytes` at any point after it: the answer is
    the highest memory use since the reset minus the use at the reset.

    Attributes:
        source: how the peak is read: ``cuda_allocated``, ``vmhwm`` or ``ru_maxrss``.
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            self.source = "cuda_allocated"
        else:
            self._proc = _proc_status()
            self.source = "vmhwm" if self._proc is not None else "ru_maxrss"
        self._base = 0
        self._base_reserved = 0

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self._base_reserved = torch.cuda.memory_reserved(self.device)
        elif self.source == "vmhwm":
            self._proc.reset_hwm()
            self._base = self._proc.kib(b"VmRSS:") * 1024
        else:
            self._base = self._max_rss()

    def peak_bytes(self) -> int:
        """Peak bytes added since :meth:`reset` (allocated tensor memory on CUDA, resident set on CPU)."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) - self._base
        if self.source == "vmhwm":
            return self._proc.kib(b"VmHWM:") * 1024 - self._base
        return self._max_rss() - self._base

    def peak_reserved_bytes(self) -> int | None:
        """Peak of the CUDA caching allocator's reserved memory added since the reset; None on CPU."""
        if not self.cuda:
            return None
        return torch.cuda.max_memory_reserved(self.device) - self._base_reserved

    @staticmethod
    def _max_rss() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
