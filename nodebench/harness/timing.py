"""Wall-clock timing that is correct on CUDA.

The clock is ``time.perf_counter``. On CUDA the device is synchronised before the clock starts and
before it stops, and a pair of CUDA events brackets the same region, so both the synchronised host wall
time (which includes Python and launch overhead) and the device time on the stream are reported.
The process's CPU time over the region (``time.process_time``, all its threads) is kept as well: on a
shared CPU it excludes the time spent waiting for a core, so it is the quieter figure to gate CPU code on.
"""

from __future__ import annotations

import time

import torch


class Stopwatch:
    """Times one region: ``start()``, the work, then ``stop()`` which returns ``(wall_s, event_s)``.

    ``event_s`` is the CUDA-event time in seconds on CUDA and ``None`` on CPU. After ``stop()``,
    :attr:`cpu_s` is the process's CPU time over the region, in seconds.
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self._t0 = self._cpu0 = 0.0
        self.cpu_s = 0.0
        if self.cuda:
            self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self._events[0].record()
        self._cpu0 = time.process_time()
        self._t0 = time.perf_counter()

    def lap(self) -> float:
        """Synchronised seconds since :meth:`start`, without stopping."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - self._t0

    def stop(self) -> tuple[float, float | None]:
        if not self.cuda:
            wall = time.perf_counter() - self._t0
            self.cpu_s = time.process_time() - self._cpu0
            return wall, None
        self._events[1].record()
        torch.cuda.synchronize(self.device)
        wall = time.perf_counter() - self._t0
        self.cpu_s = time.process_time() - self._cpu0
        return wall, self._events[0].elapsed_time(self._events[1]) / 1000.0
