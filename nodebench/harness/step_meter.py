"""One training step's readings with the fewest system calls: the meter behind every timed step.

A step is measured from :meth:`StepMeter.start` to :meth:`StepMeter.stop`, with one :meth:`StepMeter.lap`
where its forward part ends. The readings are those of :class:`~nodebench.harness.timing.Stopwatch`
(synchronised wall time, CUDA-event time, the process's CPU time) and of
:class:`~nodebench.harness.memory.PeakMemory` (peak memory above the memory held at the start, for the
whole step and, on the CPU, for its forward part).

On the CPU both come from the same kernel readings: each boundary makes one ``getrusage`` call, whose
``ru_utime + ru_stime`` is the process's CPU time and whose ``ru_maxrss`` is the resident-set mark that
the start resets (``clear_refs``); right after the reset that mark is also the resident set, the step's
baseline (:meth:`~nodebench.harness.memory._ProcStatus.baseline` says when it is not and reads
``/proc/self/statm`` instead). A step then costs four system calls: the reset and one ``getrusage`` at
the start, one ``getrusage`` at the lap and one at the stop. The wall clock is ``time.perf_counter``
(no system call).

Everything the harness does between two steps runs cold: a step evicts the caches, and the first
system call or Python frame after it costs several times its price in a tight loop. Measured with
``benchmarks/between_steps.py`` (cubic spiral, Euler, 7 ms steps): the meter's stop, one ``getrusage``
and a few Python operations, took 28 µs there, while a ``getrusage`` takes 0.9 µs in a tight loop. So
the CPU path is inlined here rather than composed from :class:`~nodebench.harness.timing.Stopwatch` and
:class:`~nodebench.harness.memory.PeakMemory`. On CUDA the meter is those two primitives together, whose
device synchronisations dominate. Inside a CUDA step's clock there is one synchronisation, at its end
("synchronise once per step"): the lap records a CUDA event on the case's device's stream and reads no
memory (memory is measured outside the latency loop), so a CUDA step's forward time is the events' device
time and its forward peak is not read (``None``); the memory is reset and read outside the clock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from resource import RUSAGE_SELF, getrusage
from time import perf_counter

import torch

from nodebench.harness.memory import PeakMemory, _proc_status
from nodebench.harness.timing import Stopwatch


@dataclass
class StepReading:
    """What :meth:`StepMeter.stop` returns for one step.

    Attributes:
        wall_s: wall time (synchronised on CUDA); event_s: CUDA-event time, None on CPU;
        cpu_s: the process's CPU time, all its threads; peak_bytes: peak memory added by the step;
        reserved_bytes: the same for CUDA's reserved memory, None on CPU; forward_s: time from the start
        to the lap (wall time on CPU, CUDA-event time on CUDA); forward_peak_bytes: peak memory added up
        to the lap, None where not read (CUDA); held_bytes: memory held when the step began (CUDA: allocated
        bytes; CPU: resident set; None where only a mark is read, :attr:`PeakMemory.held_bytes`).
    """

    wall_s: float
    event_s: float | None
    cpu_s: float
    peak_bytes: int
    reserved_bytes: int | None
    forward_s: float = 0.0
    forward_peak_bytes: int | None = None
    held_bytes: int | None = None


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
        self._t0 = self._cpu0 = self._lap_s = 0.0
        self._base = self._lap_peak = 0

    def start(self) -> None:
        proc = self._proc
        if proc is None:
            self._memory.reset()
            self._clock.start()
            return
        os.write(proc.clear_refs, b"5")  # the reset; then one reading gives the baseline and the CPU time
        usage = getrusage(RUSAGE_SELF)
        self._cpu0 = usage.ru_utime + usage.ru_stime
        self._base = proc.baseline(usage.ru_maxrss * 1024)
        self._t0 = perf_counter()

    def lap(self) -> None:
        """Mark the end of the step's forward part; its readings come with :meth:`stop`'s."""
        if self._proc is None:
            self._clock.lap()
            if not self._memory.cuda:  # a CPU without a resettable mark
                self._lap_peak = self._memory.peak_bytes()
            return
        self._lap_s = perf_counter() - self._t0
        mark = getrusage(RUSAGE_SELF).ru_maxrss * 1024 if self._proc.use_rusage else self._proc.vmhwm()
        self._lap_peak = max(0, mark - self._base)

    def stop(self) -> StepReading:
        if self._proc is None:
            wall, event = self._clock.stop()
            memory = self._memory
            return StepReading(wall, event, self._clock.cpu_s, memory.peak_bytes(), memory.peak_reserved_bytes(),
                               self._clock.lap_s, None if memory.cuda else self._lap_peak, memory.held_bytes)
        wall = perf_counter() - self._t0
        usage = getrusage(RUSAGE_SELF)
        mark = usage.ru_maxrss * 1024 if self._proc.use_rusage else self._proc.vmhwm()
        return StepReading(wall, None, usage.ru_utime + usage.ru_stime - self._cpu0, max(0, mark - self._base), None,
                           self._lap_s, self._lap_peak, self._base)
