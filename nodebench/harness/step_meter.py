"""One training step's readings with the fewest system calls: the meter behind every timed step.

A step is measured from :meth:`StepMeter.start` to :meth:`StepMeter.stop`, with one :meth:`StepMeter.lap`
where its forward part ends. The readings are those of :class:`~nodebench.harness.timing.Stopwatch`
(synchronised wall time, CUDA-event time, the process's CPU time) and of
:class:`~nodebench.harness.memory.PeakMemory` (peak memory above the memory held at the start, for the
whole step and for its forward part).

On the CPU both come from the same kernel readings: each boundary makes one ``getrusage`` call, whose
``ru_utime + ru_stime`` is the process's CPU time and whose ``ru_maxrss`` is the resident-set mark that
the start resets (``clear_refs``). A step then costs five system calls (at the start the reset, a read of
the resident set and one ``getrusage``; one ``getrusage`` at the lap and one at the stop) instead of seven
with the two meters apart. Calls that read process-wide accounting cost more inside a training loop than in
a tight loop: measured side by side in one process on the 2-core CPU (cubic spiral, Euler, 4.5 ms
steps, five extra calls a step), a ``clear_refs`` write, a read of ``/proc/self/statm``, ``getrusage``
and ``time.process_time`` each slowed the step by 4–7 µs, against about 1 µs in a tight loop. The wall
clock is ``time.perf_counter`` (no system call). On CUDA the meter is the two primitives together, whose
device synchronisations dominate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from nodebench.harness.memory import PeakMemory, _proc_status
from nodebench.harness.timing import Stopwatch


@dataclass
class StepReading:
    """What :meth:`StepMeter.stop` returns for one step.

    Attributes:
        wall_s: wall time (synchronised on CUDA); event_s: CUDA-event time, None on CPU;
        cpu_s: the process's CPU time, all its threads; peak_bytes: peak memory added by the step;
        reserved_bytes: the same for CUDA's reserved memory, None on CPU.
    """

    wall_s: float
    event_s: float | None
    cpu_s: float
    peak_bytes: int
    reserved_bytes: int | None


class StepMeter:
    """Time, CPU time and peak memory of a step and of its forward part (module docstring).

    Attributes:
        source: how memory is read (``cuda_allocated``, ``vmhwm`` or ``ru_maxrss``), as
            :attr:`PeakMemory.source`.
    """

    def __init__(self, device: torch.device | str = "cpu"):
        device = torch.device(device)
        self._proc = _proc_status() if device.type == "cpu" else None
        if self._proc is None:  # CUDA, or a system without a resettable mark: the two primitives
            self._clock, self._memory = Stopwatch(device), PeakMemory(device)
            self.source = self._memory.source
        else:
            self.source = "vmhwm"
        self._t0 = self._cpu0 = 0.0
        self._base = 0

    def start(self) -> None:
        if self._proc is None:
            self._memory.reset()
            self._clock.start()
            return
        self._base, self._cpu0 = self._proc.reset_hwm()
        self._t0 = time.perf_counter()

    def lap(self) -> tuple[float, int]:
        """Seconds (synchronised) and peak bytes since :meth:`start`, without stopping."""
        if self._proc is None:
            return self._clock.lap(), self._memory.peak_bytes()
        wall = time.perf_counter() - self._t0
        return wall, max(0, self._proc.hwm_bytes()[0] - self._base)

    def stop(self) -> StepReading:
        if self._proc is None:
            wall, event = self._clock.stop()
            return StepReading(wall, event, self._clock.cpu_s, self._memory.peak_bytes(),
                               self._memory.peak_reserved_bytes())
        wall = time.perf_counter() - self._t0
        hwm, cpu = self._proc.hwm_bytes()
        return StepReading(wall, None, cpu - self._cpu0, max(0, hwm - self._base), None)
