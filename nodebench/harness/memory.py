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

import resource
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _can_reset_hwm() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        _status_kib("VmHWM")
        return True
    except (OSError, KeyError):
        return False


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
            self.source = "vmhwm" if _can_reset_hwm() else "ru_maxrss"
        self._base = 0
        self._base_reserved = 0

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self._base_reserved = torch.cuda.memory_reserved(self.device)
        elif self.source == "vmhwm":
            _CLEAR_REFS.write_text("5")
            self._base = _status_kib("VmRSS") * 1024
        else:
            self._base = self._max_rss()

    def peak_bytes(self) -> int:
        """Peak bytes added since :meth:`reset` (allocated tensor memory on CUDA, resident set on CPU)."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) - self._base
        if self.source == "vmhwm":
            return _status_kib("VmHWM") * 1024 - self._base
        return self._max_rss() - self._base

    def peak_reserved_bytes(self) -> int | None:
        """Peak of the CUDA caching allocator's reserved memory added since the reset; None on CPU."""
        if not self.cuda:
            return None
        return torch.cuda.max_memory_reserved(self.device) - self._base_reserved

    @staticmethod
    def _max_rss() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
