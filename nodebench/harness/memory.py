"""Peak memory of a phase, above what was held when the phase began.

CUDA: ``torch.cuda.reset_peak_memory_stats`` then ``max_memory_allocated`` (tensor memory) and
``max_memory_reserved`` (the caching allocator's peak), both relative to their values at the reset.

CPU: the kernel's resident-set high-water mark. On Linux the mark (VmHWM) is reset by writing ``5`` to
``/proc/self/clear_refs``, so each phase gets its own peak; it is then read through ``ru_maxrss``, which
follows the reset (see :class:`_ProcStatus`). Where the reset is not possible the meter uses plain
``ru_maxrss``, which never goes down: a per-phase figure only in a fresh process, which is why the
runner gives every case its own process. ``tracemalloc`` is not used: it does not see tensors.

The resident set of a small CPU phase moves by megabytes between identical runs (pages the allocator
keeps, returns or reuses; 0.4–5.7 MiB for the same small case). :class:`TensorPeak` instead counts the
bytes of tensor storage a phase allocates, from the allocation and free events of torch's profiler (every
c10 allocation with its size, on any device): it does not depend on which pages the kernel maps, so
identical runs give identical figures (``benchmarks/memory_spread.py``). The profiler is started with its
memory events only: its operator and autograd-node events (``RecordScope.FUNCTION``, ``BACKWARD_FUNCTION``) are
not recorded, as no reading uses them, which does not change the allocation events. Each event still costs the
profiler about 1.6 KB when it stops (about 4.4 KB with every operator recorded: the untimed pass of 84,087
allocation events of ``cubic_spiral`` with the adjoint, 3 iterations, peaked 150 MB above its start instead of
440 MB, in 0.94 s instead of 2.16 s). That start goes through torch 2.13's private profiler API; a torch whose
API differs gets the public profiler, with every operator recorded and the same figure. It slows the phase
down, so it is for untimed measurements, beside the timed meter. Its start and stop write kineto's trace-point
lines (``USDT:... profiler_start``, ``profiler_stop``) to file descriptor 2, whatever the log level set in
Python; :func:`_without_trace_point_lines` keeps them out of case logs and the terminal.

The resident-set mark also misses what a phase allocates in pages the allocator kept from an earlier
phase: a step that allocates 400 MiB of tensors can read 0 when the previous step left those pages
mapped. :class:`AllocatedPeak` is the allocated-bytes peak of a phase on any device ("report allocated
peak memory per phase"): the CUDA allocator's ``max_memory_allocated`` on CUDA, :class:`TensorPeak` on the
CPU; the training loop reads it in an untimed pass of its own ("measure memory in loops separate from the
latency loop").
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import math
import os
import re
import resource
import sys
import tempfile

import torch


class _ProcStatus:
    """Resets the resident-set high-water mark and reads it, through descriptors kept open.

    After ``clear_refs`` the kernel's mark equals the current resident set, and ``getrusage``'s
    ``ru_maxrss`` follows it (about 1 µs a reading, against tens of µs for ``/proc/self/status`` in a
    large process), so the ``getrusage`` right after a reset also gives the resident set: the baseline of
    the new phase, with no read of ``/proc/self/statm`` (about 20 µs a step inside a training loop,
    measured by a throw-away probe alternating the two versions step by step, Euler steps of 6 ms).

    But ``ru_maxrss`` is the larger of that mark and one no reset clears: the mark a process inherits
    from the process that started it (taken at ``exec``; a worker started by a sweep that has imported
    torch inherits hundreds of MB) and, on some kernels, the marks of exited threads. While that stale
    mark S is above the resident set, ``ru_maxrss`` reads S. So the reader keeps an upper bound on S:
    infinite at first, S itself once a ``statm`` read shows ``ru_maxrss`` above the resident set, the
    resident set once it shows them equal. A reading after a reset that is above the bound is the
    resident set; any other reset reads ``statm`` too, and when S is above the resident set the phase's
    mark comes from VmHWM in the status file instead. Every :data:`VERIFY_EVERY`-th reset reads ``statm``
    regardless, in case S has grown (a thread's exit, on kernels that record it).
    """

    VERIFY_EVERY = 32

    def __init__(self):
        self._status = os.open("/proc/self/status", os.O_RDONLY)
        self._statm = os.open("/proc/self/statm", os.O_RDONLY)
        self.clear_refs = os.open("/proc/self/clear_refs", os.O_WRONLY)
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._resets = 0
        self._stale_bound = math.inf  # an upper bound on the mark no reset clears
        self.use_rusage = False  # whether ru_maxrss is this phase's mark (else VmHWM is)
        self.reset_hwm()
        self.hwm_bytes()

    def reset_hwm(self) -> tuple[int, float]:
        """Reset the mark; return the resident set in bytes (the baseline of the new phase) and the
        process's CPU time in seconds, from the same ``getrusage`` call (see the class docstring)."""
        os.write(self.clear_refs, b"5")
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return self.baseline(usage.ru_maxrss * 1024), usage.ru_utime + usage.ru_stime

    def baseline(self, mark: int) -> int:
        """The resident set in bytes right after a reset whose ``getrusage`` read ``ru_maxrss`` = ``mark``
        bytes: ``mark`` itself where it is above the stale bound, else read from ``statm``."""
        self._resets += 1
        if mark > self._stale_bound and self._resets % self.VERIFY_EVERY:
            self.use_rusage = True
            return mark
        rss = int(os.pread(self._statm, 256, 0).split()[1]) * self._page
        slack = self._page * 16  # the resident set may move between the two readings
        self.use_rusage = mark <= rss + slack
        self._stale_bound = min(self._stale_bound, rss + slack) if self.use_rusage else mark
        return rss

    def hwm_bytes(self) -> tuple[int, float]:
        """The mark in bytes and the process's CPU time in seconds, from one ``getrusage`` call (and a read
        of the status file where ``ru_maxrss`` holds a stale mark)."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return (usage.ru_maxrss * 1024 if self.use_rusage else self.vmhwm()), usage.ru_utime + usage.ru_stime

    def vmhwm(self) -> int:
        """The mark in bytes from the status file (VmHWM), which no stale mark affects."""
        text = os.pread(self._status, 16384, 0)
        start = text.index(b"VmHWM:") + len(b"VmHWM:")
        return int(text[start:text.index(b"kB", start)]) * 1024


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


@functools.lru_cache(maxsize=1)
def _proc_status() -> _ProcStatus | None:
    """The process's one reader (its descriptors stay open for the life of the process), or None."""
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
            self._base = self._proc.reset_hwm()[0]
        else:
            self._base = _max_rss()

    def peak_bytes(self) -> int:
        """Peak bytes added since :meth:`reset` (allocated tensor memory on CUDA, resident set on CPU)."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) - self._base
        # The resident-set mark is read in KiB and the baseline in pages: clamp the rounding below zero.
        if self.source == "vmhwm":
            return max(0, self._proc.hwm_bytes()[0] - self._base)
        return max(0, _max_rss() - self._base)

    @property
    def held_bytes(self) -> int | None:
        """Memory held at the last :meth:`reset` (allocated tensor memory on CUDA, resident set with ``vmhwm``);
        None from ``ru_maxrss``, which reads a mark, not what is held."""
        return None if self.source == "ru_maxrss" else self._base

    def peak_reserved_bytes(self) -> int | None:
        """Peak of the CUDA caching allocator's reserved memory added since the reset; None on CPU. The device is
        synchronised first, as for :meth:`peak_bytes`: work still queued may yet reserve memory."""
        if not self.cuda:
            return None
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_reserved(self.device) - self._base_reserved


#: A line kineto writes at every profiler start and stop (its ``USDT`` log level, above ``ERROR``, so that
#: ``KINETO_LOG_LEVEL`` hides it only with kineto's errors, and only where set before torch's first profile).
_TRACE_POINT_LINE = re.compile(rb"^USDT:[^\n]*\] profiler_(start|stop)\n?", re.MULTILINE)


@contextlib.contextmanager
def _without_trace_point_lines():
    """File descriptor 2 goes to a temporary file for the block; then all it received but kineto's trace-point
    lines (:data:`_TRACE_POINT_LINE`) is written to the restored descriptor, in order, whether the block raised
    or not: kineto's warnings and errors, and what another thread wrote meanwhile, are delayed, not lost."""
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a closed stderr): nothing to keep the lines from
        yield
        return
    try:
        with tempfile.TemporaryFile() as caught:
            _flush_stderr()
            os.dup2(caught.fileno(), 2)
            try:
                yield
            finally:
                _flush_stderr()
                os.dup2(saved, 2)
                caught.seek(0)
                kept = _TRACE_POINT_LINE.sub(b"", caught.read())
                if kept:
                    os.write(2, kept)
    finally:
        os.close(saved)


def _flush_stderr() -> None:
    """Python's buffered stderr written out, so that what it holds lands before descriptor 2 is switched."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        sys.stderr.flush()


class TensorPeak:
    """Peak bytes of tensor storage allocated within a ``with`` block above what was held when it began,
    on ``device`` (``cpu``, ``cuda``...), counted from the profiler's allocation events; ``bytes`` after
    the block (see the module docstring)."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.bytes: int | None = None
        self._public = None  # the public profiler, where this torch's private API differs from 2.13's

    def __enter__(self) -> "TensorPeak":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        try:
            with _without_trace_point_lines():
                self._start_allocations_only()
        except (ImportError, AttributeError, TypeError):  # another torch: the public profiler, the same events
            self._public = torch.autograd.profiler.profile(profile_memory=True, use_device=(
                "cuda" if self.device.type == "cuda" else None))
            with _without_trace_point_lines():
                self._public.__enter__()
        return self

    def _start_allocations_only(self) -> None:
        """Start what ``torch.autograd.profiler.profile(profile_memory=True)`` starts, with only the user's
        ``record_function`` scopes recorded (an empty set would record every scope), through torch 2.13's private
        API: see the module docstring."""
        from torch._C._autograd import _enable_profiler, _prepare_profiler
        from torch._C._profiler import ProfilerActivity, ProfilerConfig, ProfilerState, RecordScope, _ExperimentalConfig

        config = ProfilerConfig(ProfilerState.KINETO, False, True, False, False, False,  # shapes, memory, stack,
                                _ExperimentalConfig())  # flops, modules
        activities = {ProfilerActivity.CPU} | ({ProfilerActivity.CUDA} if self.device.type == "cuda" else set())
        _prepare_profiler(config, activities)
        _enable_profiler(config, activities, {RecordScope.USER_SCOPE})

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        with _without_trace_point_lines():
            if self._public is not None:
                self._public.__exit__(*exc)
                results = self._public.kineto_results
            else:
                from torch._C._autograd import _disable_profiler
                results = _disable_profiler()
        if exc[0] is not None:  # the block failed: no figure, and no parse of its (possibly millions of) events
            return
        events = sorted(_allocations(results.experimental_event_tree()), key=lambda node: node.start_time_ns)
        sizes = [node.extra_fields.alloc_size for node in events if self._on_device(node.extra_fields.device)]
        self.bytes = max(0, max(itertools.accumulate(sizes), default=0))

    def _on_device(self, device: torch.device) -> bool:
        return device.type == self.device.type and (self.device.index is None or device.index == self.device.index)


class AllocatedPeak:
    """Peak bytes of tensor storage allocated within a ``with`` block above what was held when it began, on
    ``device``; ``bytes`` after the block. On CUDA the caching allocator's counts (reset, then
    ``max_memory_allocated`` minus the ``memory_allocated`` at the start, the device synchronised at both
    ends); elsewhere :class:`TensorPeak`, which slows the block down: untimed use only.

    Python's cyclic garbage collector runs once before the block and not within it: a tensor that only a
    reference cycle holds (Taylor mode's series, :mod:`nodebench.taylor`) counts as allocated until the block
    ends. Where an automatic collection would fall depends on every Python object allocated before it, unrelated
    code included: with it, taynode's smoke ``digits_order`` bosh3 R_2 case read 1.71 MB, then 0.65 MB once the
    CPU profiler recorded fewer operators, its training unchanged."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.bytes: int | None = None
        self._tensors = None if self.device.type == "cuda" else TensorPeak(self.device)
        self._base = 0

    def __enter__(self) -> "AllocatedPeak":
        gc.collect()
        self._collecting = gc.isenabled()
        gc.disable()
        try:
            if self._tensors is not None:
                self._tensors.__enter__()
                return self
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        except BaseException:
            self._resume_collection()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._tensors is not None:
                self._tensors.__exit__(*exc)
                self.bytes = self._tensors.bytes
                return
            torch.cuda.synchronize(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device) - self._base
        finally:
            self._resume_collection()

    def _resume_collection(self) -> None:
        if self._collecting:
            gc.enable()


def _allocations(nodes):
    """Every allocation and free event in the profiler's event tree (negative ``alloc_size``: a free)."""
    from torch._C._profiler import _EventType

    for node in nodes:
        if node.tag == _EventType.Allocation:
            yield node
        yield from _allocations(node.children)
