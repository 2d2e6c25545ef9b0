"""Wall-clock timing that is correct on CUDA.

The clock is ``time.perf_counter``. On CUDA the device is synchronised before the clock starts and
before it stops (once inside the region: "synchronise once per step"), and a pair of CUDA events, recorded
on the current stream of the region's own device (``cuda:N`` included), brackets the same region, so both
the synchronised host wall time (which includes Python and launch overhead) and the device time on the
stream are reported. A lap inside the region records a third event instead of synchronising; its time is
read after the stop.
The process's CPU time over the region (``time.process_time``, all its threads) is kept as well: on a
shared CPU it excludes the time spent waiting for a core, so it is the quieter figure to gate CPU code on.
"""

from __future__ import annotations

import time

import torch


class Stopwatch:
    """Times one region: ``start()``, the work, then ``stop()`` which returns ``(wall_s, event_s)``.

    ``event_s`` is the CUDA-event time in seconds on CUDA and ``None`` on CPU. After ``stop()``,
    :attr:`cpu_s` is the process's CPU time over the region, in seconds, and :attr:`lap_s` the time from
    the start to the last :meth:`lap` (wall time on CPU, CUDA-event time on CUDA; 0 without a lap).
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self._t0 = self._cpu0 = 0.0
        self.cpu_s = self.lap_s = 0.0
        self._lapped = False  # whether the region has a lap (an event to read on CUDA)
        if self.cuda:
            self._events = tuple(torch.cuda.Event(enable_timing=True) for _ in range(3))  # start, stop, lap

    def start(self) -> None:
        self._lapped, self.lap_s = False, 0.0
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self._stream = torch.cuda.current_stream(self.device)
            self._events[0].record(self._stream)
        self._cpu0 = time.process_time()
        self._t0 = time.perf_counter()

    def lap(self) -> None:
        """Mark the end of a first part of the region, without synchronising (read :attr:`lap_s` after
        :meth:`stop`)."""
        self._lapped = True
        if self.cuda:
            self._events[2].record(self._stream)
        else:
            self.lap_s = time.perf_counter() - self._t0

    def stop(self) -> tuple[float, float | None]:
        if not self.cuda:
            wall = time.perf_counter() - self._t0
            self.cpu_s = time.process_time() - self._cpu0
            return wall, None
        start, end, lap = self._events
        end.record(self._stream)
        torch.cuda.synchronize(self.device)
        wall = time.perf_counter() - self._t0
        self.cpu_s = time.process_time() - self._cpu0
        self.lap_s = start.elapsed_time(lap) / 1000.0 if self._lapped else 0.0
        return wall, start.elapsed_time(end) / 1000.0
