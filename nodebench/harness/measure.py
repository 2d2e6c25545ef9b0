"""``measure``: the single timing-and-memory primitive everything else in nodebench builds on."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable

import torch

from nodebench.harness.memory import PeakMemory
from nodebench.harness.nfe import CountingField
from nodebench.harness.timing import Stopwatch


@dataclass
class Measurement:
    """What :func:`measure` observed.

    Attributes:
        wall_s: median synchronised wall time of one timed call, in seconds.
        times_s: wall time of every timed call (warm-up calls excluded).
        event_times_s: CUDA-event time of every timed call; empty on CPU.
        peak_mem_bytes: highest memory added above what was held before a call, over the timed calls
            (allocated tensor memory on CUDA; resident set on CPU).
        peak_reserved_bytes: the same for the CUDA caching allocator's reserved memory; None on CPU.
        mem_source: how memory was read (``cuda_allocated``, ``vmhwm`` or ``ru_maxrss``).
        warmup_s: total time of the warm-up calls (0 without any).
        nfe: function evaluations per timed call, by phase, when a counting field was given.
    """

    wall_s: float
    times_s: list[float]
    event_times_s: list[float]
    peak_mem_bytes: int
    peak_reserved_bytes: int | None
    mem_source: str
    warmup_s: float
    device: str
    nfe: dict[str, float] = field(default_factory=dict)


def measure(
    fn: Callable[[], object],
    *,
    device: torch.device | str = "cpu",
    warmup: int = 1,
    repeats: int = 1,
    counter: CountingField | None = None,
) -> Measurement:
    """Time ``fn()`` and measure the peak memory it adds.

    ``fn`` is called ``warmup`` times untimed, then ``repeats`` times, each call timed on its own with
    the device synchronised before and after (CUDA events as well on CUDA) and with the memory peak
    reset before it.

    Args:
        fn: the work, a callable with no arguments.
        device: where the work runs; decides how to synchronise and how to read memory.
        warmup: untimed calls first (allocator growth, lazy initialisation, first-call costs).
        repeats: timed calls; ``wall_s`` is their median.
        counter: a :class:`CountingField` used by ``fn``; its per-call NFE is reported.

    Example:
        >>> m = measure(lambda: torch.randn(256, 256) @ torch.randn(256, 256), repeats=5)
        >>> m.wall_s > 0
        True
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    clock = Stopwatch(device)
    memory = PeakMemory(device)
    warmup_s = 0.0  # no warm-up call, nothing timed
    if warmup:
        clock.start()
        for _ in range(warmup):
            fn()
        warmup_s = clock.stop()[0]
    if counter is not None:
        counter.reset()
    times, events, peak, peak_reserved = [], [], 0, None
    for _ in range(repeats):
        memory.reset()
        clock.start()
        fn()
        wall, event = clock.stop()
        times.append(wall)
        if event is not None:
            events.append(event)
        peak = max(peak, memory.peak_bytes())
        reserved = memory.peak_reserved_bytes()
        if reserved is not None:
            peak_reserved = max(peak_reserved or 0, reserved)
    nfe = {} if counter is None else {k: v / repeats for k, v in counter.nfe.items()}
    return Measurement(
        wall_s=statistics.median(times),
        times_s=times,
        event_times_s=events,
        peak_mem_bytes=peak,
        peak_reserved_bytes=peak_reserved,
        mem_source=memory.source,
        warmup_s=warmup_s,
        device=str(torch.device(device)),
        nfe=nfe,
    )
