"""Tests for nodebench.harness: time of known workloads, peak memory of known allocations, NFE against
analytic counts, per-phase resets, and a CUDA smoke test."""

from __future__ import annotations

import functools
import multiprocessing
import statistics
import subprocess
import sys
import time
import warnings

import pytest
import torch
from torch import nn
from torchdiffeq import odeint

from nodebench.harness import (CountingField, PeakMemory, StepCountingField, StepMeter, Stopwatch, count_nfe,
                               environment, measure)
from nodebench.methods import get_method
from nodebench.tasks.base import Problem

F64 = torch.float64


# --------------------------------------------------------------------------------------------- time


class FakeClock:
    """Stand-ins for ``time.perf_counter`` and ``time.process_time`` that move only when the work moves them,
    so what the harness reports can be checked exactly, whatever else the machine is doing."""

    def __init__(self):
        self.now, self.cpu = 1000.0, 50.0

    def perf_counter(self):
        return self.now

    def process_time(self):
        return self.cpu

    def advance(self, wall_s: float, cpu_s: float = 0.0) -> None:
        self.now += wall_s
        self.cpu += cpu_s


@pytest.fixture
def clock(monkeypatch):
    """The harness's clock replaced by a :class:`FakeClock` (only nodebench.harness.timing sees it)."""
    import nodebench.harness.timing as timing

    fake = FakeClock()
    monkeypatch.setattr(timing, "time", fake)
    return fake


def test_each_timed_call_is_timed_from_its_start_to_its_end_and_the_median_reported(clock):
    durations = iter([0.05, 0.07, 0.03, 0.09, 0.04])
    m = measure(lambda: clock.advance(next(durations)), warmup=0, repeats=5)
    assert m.times_s == pytest.approx([0.05, 0.07, 0.03, 0.09, 0.04], abs=1e-12)
    assert m.wall_s == pytest.approx(0.05, abs=1e-12) and m.warmup_s == 0


def test_sleep_is_timed_on_the_wall_clock():
    """The real clock (on a busy machine a sleep may overrun, so only bounds that hold under any load): a timed
    sleep never reads shorter than the sleep (a CPU-time clock reads about 0), nor longer than the whole call."""
    started = time.perf_counter()
    m = measure(lambda: time.sleep(0.05), warmup=0, repeats=3)
    outside = time.perf_counter() - started
    assert len(m.times_s) == 3 and m.wall_s == statistics.median(m.times_s)
    assert min(m.times_s) >= 0.05 and sum(m.times_s) <= outside


def test_matmul_loop_agrees_with_a_bare_perf_counter_loop(single_thread):
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(192, 192, generator=gen), torch.randn(192, 192, generator=gen)

    def work():  # about 20 ms on one core: long enough for percent-level timing
        for _ in range(200):
            a @ b

    def bare():
        t0 = time.perf_counter()
        work()
        return time.perf_counter() - t0

    work()
    # On a shared 2-core machine a call's speed depends on who else holds the core right then. Pairing
    # each harness call with a bare call taken just before it exposes both to the same conditions, and
    # the median of the paired ratios is then a fair comparison. If the first round was disturbed, two
    # more are pooled with it (a larger sample, not more chances at the same size).
    ratios, references = [], []
    for round_ in range(3):
        for _ in range(9):
            references.append(bare())
            ratios.append(measure(work, warmup=0, repeats=1).wall_s / references[-1])
        if round_ == 0 and abs(statistics.median(ratios) - 1) < 0.04:
            break
    assert min(references) > 5e-3, "the workload is too small to time meaningfully"
    ok = abs(statistics.median(ratios) - 1) < 0.04
    q1, _, q3 = statistics.quantiles(references, n=4)
    r1, _, r3 = statistics.quantiles(ratios, n=4)
    if not ok and ((q3 - q1) / statistics.median(references) > 0.15 or r3 - r1 > 0.15):
        # the bare loop alone, or the pairs' ratios, vary by more than 15 % (the cores busy with other work: a CI
        # run beside two reproductions read ratios 0.55-1.40, the bare loop's quartiles within 15 %): percent-level
        # timing cannot be checked here, and a wider tolerance would make the test meaningless
        pytest.skip(f"machine too noisy: bare loop times {sorted(references)}, ratios {sorted(ratios)}")
    assert ok, f"harness / perf_counter ratios: {sorted(ratios)}"


def test_warmup_calls_are_excluded_from_timed_calls(clock):
    calls = []

    def first_call_slow():
        calls.append(None)
        clock.advance(0.25 if len(calls) == 1 else 0.01)

    m = measure(first_call_slow, warmup=1, repeats=3)
    assert len(calls) == 4
    assert m.times_s == pytest.approx([0.01] * 3, abs=1e-12)
    assert m.warmup_s == pytest.approx(0.25, abs=1e-12)

    calls.clear()
    m = measure(first_call_slow, warmup=0, repeats=3)  # the same function, first call timed this time
    assert m.times_s == pytest.approx([0.25, 0.01, 0.01], abs=1e-12)
    assert m.warmup_s == 0  # no warm-up call: nothing timed, not a clock's jitter

    calls.clear()
    m = measure(first_call_slow, warmup=2, repeats=1)
    assert m.warmup_s == pytest.approx(0.26, abs=1e-12) and m.times_s == pytest.approx([0.01], abs=1e-12)


def test_measure_rejects_bad_counts():
    with pytest.raises(ValueError):
        measure(lambda: None, repeats=0)
    with pytest.raises(ValueError):
        measure(lambda: None, warmup=-1)


def test_stopwatch_lap_and_stop_on_cpu(clock):
    watch = Stopwatch("cpu")
    watch.start()
    clock.advance(0.02, cpu_s=0.015)
    watch.lap()
    clock.advance(0.03, cpu_s=0.01)
    wall, event = watch.stop()
    assert event is None
    assert (watch.lap_s, wall, watch.cpu_s) == pytest.approx((0.02, 0.05, 0.025), abs=1e-12)
    watch.start()  # a new region, without a lap
    clock.advance(0.01)
    assert watch.stop()[0] == pytest.approx(0.01, abs=1e-12) and watch.lap_s == 0


# ------------------------------------------------------------------------------------------- memory


def _cpu_meter_or_skip() -> PeakMemory:
    meter = PeakMemory("cpu")
    if meter.source != "vmhwm":
        pytest.skip(f"per-phase CPU peaks need a resettable VmHWM; this system gives {meter.source}")
    return meter


#: The resident-set tests by name, for :func:`_run_fresh` in the child interpreter.
_FRESH: dict = {}


def in_fresh_process(test):
    """Run ``test`` in a new interpreter (multiprocessing, spawn), as the runner runs every case. A resident-set
    reading depends on what the process's allocator holds: after in-process trainings (whose untimed
    allocated-peak pass runs the profiler) glibc serves a 200 MB allocation from pages it kept, and the mark
    does not move; a case's worker, a fresh process whose timed steps come before that pass, never sees it."""
    _FRESH[test.__name__] = test

    @functools.wraps(test)
    def run():
        _cpu_meter_or_skip()
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            pool.apply(_run_fresh, (test.__name__,))
    return run


def _run_fresh(name: str) -> None:
    _FRESH[name]()


def _allocate(n_bytes: int):
    def fn():
        x = torch.empty(n_bytes // 4, dtype=torch.float32)
        x.fill_(1.0)  # touch every page, so it is resident
        del x
    return fn


@in_fresh_process
def test_cpu_peak_of_a_known_allocation_within_5_percent():
    _cpu_meter_or_skip()
    m = measure(_allocate(200_000_000), repeats=2)
    assert m.mem_source == "vmhwm"
    assert m.peak_reserved_bytes is None and m.event_times_s == []
    assert abs(m.peak_mem_bytes - 200e6) <= 0.05 * 200e6, m.peak_mem_bytes


@in_fresh_process
def test_cpu_peak_is_reset_between_measurements():
    _cpu_meter_or_skip()
    big = measure(_allocate(200_000_000), repeats=1)
    small = measure(_allocate(50_000_000), repeats=1)
    nothing = measure(lambda: torch.ones(10), repeats=1)
    assert abs(big.peak_mem_bytes - 200e6) <= 0.05 * 200e6
    assert abs(small.peak_mem_bytes - 50e6) <= 0.05 * 50e6, small.peak_mem_bytes
    assert nothing.peak_mem_bytes < 5e6, nothing.peak_mem_bytes


@in_fresh_process
def test_peak_memory_meter_phases():
    meter = _cpu_meter_or_skip()
    meter.reset()
    held = torch.ones(25_000_000)  # 100 MB, kept alive across the reading
    assert abs(meter.peak_bytes() - 100e6) <= 0.05 * 100e6
    meter.reset()  # new phase: what is already held does not count
    assert meter.peak_bytes() < 5e6
    del held
    meter.reset()
    _allocate(150_000_000)()
    assert abs(meter.peak_bytes() - 150e6) <= 0.05 * 150e6
    meter.reset()  # the same meter, a new phase: the freed 150 MB peak is gone
    assert meter.peak_bytes() < 5e6


def test_allocated_peak_sees_allocations_in_pages_the_allocator_kept():
    from nodebench.harness.memory import AllocatedPeak

    meter = _cpu_meter_or_skip()
    _allocate(100_000_000)()  # the pages may stay mapped, and then a resident-set mark cannot see a reuse
    meter.reset()
    with AllocatedPeak("cpu") as allocated:
        _allocate(100_000_000)()
        held = torch.ones(1_000_000)  # 4 MB still held at the end does not lower the peak
    assert abs(allocated.bytes - 100e6) <= 0.01 * 100e6, allocated.bytes
    del held


def test_allocated_peak_does_not_depend_on_when_the_cyclic_collector_runs():
    """Tensors held only by reference cycles (Taylor mode's series) freed by an automatic collection within the block,
    whose moment any Python object allocated before decides, moved an unchanged case from 1.71 to 0.65 MB."""
    import gc

    from nodebench.harness.memory import AllocatedPeak

    def peak(threshold: int) -> int:
        thresholds = gc.get_threshold()
        gc.set_threshold(threshold)  # 1: collect at almost every allocation of a container
        try:
            with AllocatedPeak("cpu") as allocated:
                for _ in range(4):
                    node = {"tensor": torch.ones(2**16)}  # 256 KiB that only the cycle holds once node is gone
                    node["self"] = node
                    del node
                    [{} for _ in range(10)]
        finally:
            gc.set_threshold(*thresholds)
        return allocated.bytes

    assert gc.isenabled()
    assert peak(1) == peak(10**6) == 4 * 2**18
    assert gc.isenabled()  # collection resumes after the block


class _BackwardAllocates(torch.autograd.Function):
    """The identity, whose backward allocates ``n_bytes`` (every page touched) and frees them."""

    @staticmethod
    def forward(ctx, x, n_bytes):
        ctx.n_bytes = n_bytes
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        _allocate(ctx.n_bytes)()
        return grad, None


class _Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(-0.5, dtype=F64))

    def forward(self, t, z):
        return self.a * z


class _PhaseProblem(Problem):
    """dz/dt = a z, whose loss allocates ``forward_bytes`` (freed before it returns) and whose backward
    ``backward_bytes``."""

    def __init__(self, forward_bytes: int, backward_bytes: int):
        self.model = self.field = _Scale()
        self.lr, self.forward_bytes, self.backward_bytes = 0.01, forward_bytes, backward_bytes

    def loss(self, solve):
        _allocate(self.forward_bytes)()
        z = solve(self.field, torch.ones(4, dtype=F64), torch.linspace(0, 1, 3, dtype=F64))[-1]
        return _BackwardAllocates.apply(z, self.backward_bytes).pow(2).mean()

    def evaluate(self, solve):
        return {"mse": 0.0}


@in_fresh_process
def test_in_training_a_phase_sees_its_own_allocation_only():
    """100 MB allocated in the forward phase only, then in the backward phase only: the forward figures see the
    first and not the second; the whole step's see both (resident set within 5 MB, tensor bytes within 1 MB)."""
    from nodebench.training import train

    for forward, backward in ((100_000_000, 0), (0, 100_000_000)):
        s = train(_PhaseProblem(forward, backward), get_method("euler"), device=torch.device("cpu"), iters=3,
                  warmup=1).summary()
        assert s["mem_source"] == "vmhwm"
        assert abs(s["peak_mem_forward_bytes"] - forward) <= 5e6 and abs(s["peak_mem_bytes"] - 1e8) <= 5e6, s
        assert abs(s["alloc_peak_forward_bytes"] - forward) <= 1e6 and abs(s["alloc_peak_bytes"] - 1e8) <= 1e6, s


class _LeakingProblem(_PhaseProblem):
    """Keeps ``leak_bytes`` of every loss it computes (as a list of results kept across steps would)."""

    def __init__(self, leak_bytes: int):
        super().__init__(0, 0)
        self.leak_bytes, self.kept = leak_bytes, []

    def loss(self, solve):
        self.kept.append(torch.ones(self.leak_bytes // 4))
        return super().loss(solve)


@in_fresh_process
def test_a_leak_shows_as_memory_growth_between_the_first_and_the_last_step():
    """The leak check: 40 MB kept by every step grow the memory held from the first timed step's start to the third's
    by 80 MB (within 5 MB of resident-set noise); without the leak it does not grow."""
    from nodebench.training import train

    for leak in (40_000_000, 0):
        s = train(_LeakingProblem(leak), get_method("euler"), device=torch.device("cpu"), iters=3, warmup=1).summary()
        assert abs(s["mem_growth_bytes"] - 2 * leak) <= 5e6, s["mem_growth_bytes"]
    one = train(_LeakingProblem(0), get_method("euler"), device=torch.device("cpu"), iters=1, warmup=0).summary()
    assert one["mem_growth_bytes"] is None  # one step: nothing to compare, not a reading of 0


def test_cuda_held_memory_is_the_allocated_bytes_at_the_reset(monkeypatch):
    """torch.cuda replaced (no GPU needed): what a CUDA step holds when it begins is the allocator's count, read
    after a synchronisation."""
    log, allocated = [], iter([1000, 5000])
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append("synchronize"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: log.append("reset"))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: (log.append("read"), next(allocated))[1])
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 0)
    meter = PeakMemory("cuda:0")
    for expected in (1000, 5000):
        log.clear()
        meter.reset()
        assert meter.held_bytes == expected and log == ["synchronize", "reset", "read"]


def test_cuda_reserved_peak_is_read_after_a_synchronisation(monkeypatch):
    """torch.cuda replaced (no GPU needed): the reserved peak, read on its own, first waits for the queued work
    (which may still reserve memory), as the allocated peak does."""
    log = []
    for name in ("synchronize", "reset_peak_memory_stats", "memory_allocated", "memory_reserved",
                 "max_memory_allocated", "max_memory_reserved"):
        monkeypatch.setattr(torch.cuda, name, lambda device=None, _name=name: (log.append((_name, str(device))), 0)[1])
    meter = PeakMemory("cuda:1")
    meter.reset()
    log.clear()
    assert meter.peak_reserved_bytes() == 0
    assert log == [("synchronize", "cuda:1"), ("max_memory_reserved", "cuda:1")]


def test_tensor_peak_records_allocations_only_not_every_operator(monkeypatch):
    """The CPU memory pass's profiler keeps its allocation events and no operator or autograd-node event (those
    made it hold about 4.4 KB per allocation instead of 1.6 KB, and run twice as long), with the same figure."""
    from torch._C._profiler import _EventType

    from nodebench.harness.memory import TensorPeak, _allocations

    kept = []
    for module in (torch._C._autograd, torch.autograd.profiler):  # the profiler context imports its own name
        real = module._disable_profiler
        monkeypatch.setattr(module, "_disable_profiler", lambda _real=real: kept.append(_real()) or kept[-1])

    def all_events(nodes):
        for node in nodes:
            yield node
            yield from all_events(node.children)

    weight = torch.ones(256, 256, requires_grad=True)  # 256 KiB, held before the block
    with TensorPeak("cpu") as meter:
        torch.tanh(weight @ weight).sum().backward()  # the product, tanh's output and the gradient: 3 × 256 KiB
    events = list(all_events(kept[-1].experimental_event_tree()))
    assert len(list(_allocations(kept[-1].experimental_event_tree()))) >= 6  # at least 3 allocations, 3 frees
    assert {node.tag for node in events} == {_EventType.Allocation}
    assert 3 * 2**18 <= meter.bytes < 4 * 2**18


def test_a_torch_whose_private_profiler_api_differs_falls_back_to_the_public_profiler(monkeypatch):
    """The lean allocation profiler is built from torch 2.13's private API; nodebench only requires torch >= 2.13,
    so where that API differs (here its config refuses the arguments) the public profiler gives the same figure
    instead of every case's memory pass failing."""
    from torch._C import _profiler

    from nodebench.harness.memory import TensorPeak

    def changed(*args, **kwargs):
        raise TypeError("ProfilerConfig(): incompatible constructor arguments")

    weight = torch.ones(256, 256, requires_grad=True)
    readings = []
    for patch in (False, True):
        if patch:
            monkeypatch.setattr(_profiler, "ProfilerConfig", changed)
        with TensorPeak("cpu") as meter:
            torch.tanh(weight @ weight).sum().backward()
        readings.append((meter.bytes, meter._public is not None))
    assert readings[0][1] is False and readings[1][1] is True
    assert readings[0][0] == readings[1][0] and 3 * 2**18 <= readings[1][0] < 4 * 2**18


def test_what_else_the_profiler_start_writes_to_stderr_still_shows_and_its_error_is_raised(monkeypatch, capfd):
    """Only kineto's trace-point lines are kept from descriptor 2 around the profiler's start and stop: a warning
    written there meanwhile is shown after, a failing start raises its own error, and descriptor 2 is restored."""
    import os

    from nodebench.harness.memory import TensorPeak

    def failing(*args):
        os.write(2, b"USDT:2026-01-01 00:00:00 1:1 SyncActivityProfilerHandler.cpp:52] profiler_start\n"
                    b"kineto: a real warning\n")
        raise RuntimeError("the profiler could not start")

    monkeypatch.setattr(torch._C._autograd, "_enable_profiler", failing)
    with pytest.raises(RuntimeError, match="the profiler could not start"):
        TensorPeak("cpu").__enter__()
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "kineto: a real warning\nafter\n"


def test_a_failed_block_gives_no_tensor_peak_and_parses_no_events():
    """A block that raises (a memory pass stopped at its cap) has no figure: its events, possibly millions, are
    not parsed (that took longer than the stopped pass itself)."""
    from nodebench.harness.memory import AllocatedPeak, TensorPeak

    for meter in (TensorPeak("cpu"), AllocatedPeak("cpu")):
        with pytest.raises(RuntimeError, match="the solver gave up"):
            with meter:
                torch.ones(250_000).mul_(2)
                raise RuntimeError("the solver gave up")
        assert meter.bytes is None


# ---------------------------------------------------------------------------------------------- NFE


class Decay(nn.Module):
    def forward(self, t, z):
        return -z


class DrivenPendulum(nn.Module):
    """A nonlinear, forced field on which dopri5 rejects steps."""

    def forward(self, t, y):
        return torch.cat([y[..., 1:2], -100 * torch.sin(y[..., 0:1]) + 5 * torch.cos(20 * t) * y[..., 1:2]], -1)


class RejectCounting(CountingField):
    """Also counts rejected steps, from torchdiffeq's own reject callback."""

    def reset(self):
        super().reset()
        self.rejected = 0

    def callback_reject_step(self, t0, y0, dt):
        self.rejected += 1


@pytest.mark.parametrize("tol", [1e-3, 1e-6, 1e-8])
def test_dopri5_nfe_is_two_plus_six_per_attempted_step(tol):
    field = RejectCounting(DrivenPendulum())
    y0 = torch.tensor([1.0, 0.0], dtype=F64)
    odeint(field, y0, torch.tensor([0.0, 2.0], dtype=F64), rtol=tol, atol=tol, method="dopri5")
    attempted, accepted = field.steps["forward"], field.accepted["forward"]
    # f(t0, y0) once, once more to select the first step, then 6 per attempted step (FSAL), rejected
    # steps included (torchdiffeq 0.2.5 rk_common._before_integrate / _adaptive_step).
    assert field.nfe["forward"] == 2 + 6 * attempted
    assert field.rejected > 0, "the field should make dopri5 reject steps"
    assert accepted + field.rejected == attempted
    assert field.nfe["backward"] == 0


@pytest.mark.parametrize("method, per_step", [("rk4", 4), ("rk4_38", 4), ("euler", 1), ("midpoint", 2)])
def test_fixed_step_nfe(method, per_step):
    field = count_nfe(Decay(), adaptive=False)
    y0 = torch.ones(1, dtype=F64, requires_grad=True)
    t = torch.linspace(0, 1, 9, dtype=F64)
    solve = get_method(method).make_solve()
    ys = solve(field, y0, t)
    assert field.nfe["forward"] == per_step * 8
    assert field.steps["forward"] == 8
    field.phase = "backward"
    ys[-1].sum().backward()
    assert field.nfe["backward"] == 0  # backprop through the solver's graph evaluates nothing
    assert y0.grad is not None


def test_direct_backprop_adds_no_backward_nfe():
    field = CountingField(Decay())
    y0 = torch.ones(1, dtype=F64, requires_grad=True)
    ys = get_method("direct").make_solve()(field, y0, torch.linspace(0, 1, 9, dtype=F64))
    forward = dict(field.nfe)
    field.phase = "backward"
    ys[-1].sum().backward()
    assert forward["forward"] == 2 + 6 * field.steps["forward"]
    assert field.nfe == {"forward": forward["forward"], "backward": 0}


@pytest.mark.parametrize("method", ["adjoint", "seminorm"])
def test_adjoint_backward_nfe_is_counted_under_backward(method, linear_field):
    field = CountingField(linear_field(-1.0))
    y0 = torch.ones(1, dtype=F64)
    t = torch.linspace(0, 1, 9, dtype=F64)
    solve = get_method(method).make_solve(list(field.parameters()), rtol=1e-6, atol=1e-8)
    ys = solve(field, y0, t)
    forward_nfe = field.nfe["forward"]
    assert forward_nfe == 2 + 6 * field.steps["forward"]
    field.phase = "backward"
    ys[-1].sum().backward()
    assert field.nfe["forward"] == forward_nfe  # nothing of the backward solve leaks into forward
    # odeint_adjoint solves the adjoint once per output interval, each with its own 2-evaluation start
    assert field.steps["backward"] > 0
    assert field.nfe["backward"] == 2 * (len(t) - 1) + 6 * field.steps["backward"]
    assert field.accepted["backward"] <= field.steps["backward"]
    assert field.field.a.grad is not None


def test_measure_reports_nfe_per_timed_call():
    field = count_nfe(Decay(), adaptive=False)
    y0, t = torch.ones(1, dtype=F64), torch.linspace(0, 1, 9, dtype=F64)
    m = measure(lambda: odeint(field, y0, t, method="rk4"), warmup=2, repeats=3, counter=field)
    assert m.nfe == {"forward": 32, "backward": 0}  # warm-up calls not counted, counts per call


def test_counting_field_wraps_once_and_exposes_parameters(linear_field):
    inner = linear_field(0.5)
    counted = count_nfe(inner)
    assert isinstance(counted, CountingField) and counted.field is inner
    assert count_nfe(counted) is counted
    assert [p for p in counted.parameters()] == [inner.a]
    counted(torch.tensor(0.0), torch.ones(1, dtype=F64))
    counted.reset()
    assert counted.nfe == counted.steps == counted.accepted == {"forward": 0, "backward": 0}


def test_a_fixed_grid_counter_rewrapped_for_an_adaptive_solver_counts_accepted_steps():
    """A problem trained first with a fixed-step method keeps its fixed-grid counter as its field: a second
    training with an adaptive method must still count accepted steps (they read 0 with the old counter)."""
    fixed = count_nfe(DrivenPendulum(), adaptive=False)
    assert type(fixed) is StepCountingField and count_nfe(fixed, adaptive=False) is fixed
    counted = count_nfe(fixed, adaptive=True)
    assert isinstance(counted, CountingField) and counted.field is fixed.field
    odeint(counted, torch.tensor([1.0, 0.0], dtype=F64), torch.tensor([0.0, 1.0], dtype=F64), rtol=1e-3,
           atol=1e-3, method="dopri5")
    assert 0 < counted.accepted["forward"] <= counted.steps["forward"]
    assert counted.nfe["forward"] == 2 + 6 * counted.steps["forward"]


def test_counting_field_honours_hooks_on_the_field_added_before_or_between_steps(linear_field):
    inner = linear_field(0.5)
    counted = count_nfe(inner)
    t, y = torch.tensor(0.0), torch.ones(1, dtype=F64)
    seen = []
    handle = inner.register_forward_hook(lambda module, args, out: seen.append(out))
    counted(t, y)
    assert seen == []  # the call path was chosen before the hook existed: the next reset picks it up
    counted.reset()
    out = counted(t, y)
    assert len(seen) == 1 and torch.equal(seen[0], out)
    handle.remove()
    counted.reset()
    assert torch.equal(counted(t, y), out) and len(seen) == 1 and counted.nfe["forward"] == 1


@in_fresh_process
def test_step_meter_readings_on_cpu():
    _cpu_meter_or_skip()
    meter = StepMeter("cpu")
    meter.start()
    held = torch.ones(25_000_000)  # 100 MB, alive across both readings
    meter.lap()
    busy_until = time.process_time() + 0.05
    while time.process_time() < busy_until:  # CPU work, not a sleep: it shows in the CPU time
        pass
    reading = meter.stop()
    forward_s, forward_peak = reading.forward_s, reading.forward_peak_bytes
    assert abs(forward_peak - 100e6) <= 0.05 * 100e6 and abs(reading.peak_bytes - 100e6) <= 0.05 * 100e6
    assert 0 < forward_s < reading.wall_s and reading.wall_s >= 0.05
    assert 0.045 <= reading.cpu_s <= reading.wall_s * torch.get_num_threads() + 0.01  # all threads' CPU time
    assert reading.event_s is None and reading.reserved_bytes is None
    del held
    meter.start()  # a new step: what was freed or held before does not count
    assert meter.stop().peak_bytes < 5e6


def test_environment_metadata():
    env = environment("cpu")
    assert env["version_torch"] == torch.__version__
    assert env["num_threads"] == torch.get_num_threads()
    assert env["gpu_model"] is None
    for key in ("git_sha", "cpu_model", "started_at", "version_torchdiffeq"):
        assert env[key], key


# --------------------------------------------------------------------------------------------- CUDA


def test_cuda_step_meter_synchronises_once_inside_the_clock_on_the_case_device_stream(monkeypatch):
    """torch.cuda replaced by recorders (no GPU needed): the calls between the clock's two readings."""
    import nodebench.harness.timing as timing

    log = []
    streams = {}

    class Stream:
        def __init__(self, device):
            self.device = device

    def current_stream(device=None):
        return streams.setdefault(str(device), Stream(str(device)))

    class Event:
        def __init__(self, enable_timing=False):
            self.stream = None

        def record(self, stream=None):
            self.stream = stream
            log.append(("record", stream.device if stream is not None else "current device"))

        def elapsed_time(self, other):
            return 2.0 if other is not None else 0.0

    def recorder(name, value=0):
        return lambda device=None: (log.append((name, str(device))), value)[1]

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "current_stream", current_stream)
    for name in ("synchronize", "reset_peak_memory_stats", "memory_allocated", "memory_reserved",
                 "max_memory_allocated", "max_memory_reserved"):
        monkeypatch.setattr(torch.cuda, name, recorder(name))
    real_clock = time.perf_counter
    monkeypatch.setattr(timing.time, "perf_counter", lambda: (log.append(("clock", "")), real_clock())[1])

    meter = StepMeter("cuda:1")
    for _ in range(2):
        log.clear()
        meter.start()
        log.append(("forward", ""))
        meter.lap()
        log.append(("backward", ""))
        reading = meter.stop()
        clocks = [i for i, call in enumerate(log) if call[0] == "clock"]
        inside = log[clocks[0] + 1:clocks[-1]]  # from the clock's start to its stop
        assert [call for call in inside if call[0] == "synchronize"] == [("synchronize", "cuda:1")]
        assert inside[-1] == ("synchronize", "cuda:1")  # the one synchronisation ends the step
        assert not [call for call in inside if "memory" in call[0]]  # memory is read outside the clock
        assert ("record", "cuda:1") in inside and ("record", "current device") not in log
        assert [call for call in log if call[0] == "record"] == [("record", "cuda:1")] * 3  # start, lap, stop
        assert reading.event_s == reading.forward_s == 0.002 and reading.forward_peak_bytes is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_measure_reports_event_times_and_reserved_peak():
    a = torch.randn(2048, 2048, device="cuda")

    def work():
        b = a @ a  # 16 MB result, allocated inside the call
        return b.sum()

    m = measure(work, device="cuda", warmup=1, repeats=3)
    assert m.mem_source == "cuda_allocated" and m.device.startswith("cuda")
    assert len(m.event_times_s) == 3 and all(e > 0 for e in m.event_times_s)
    assert all(e <= w * 1.05 + 1e-4 for e, w in zip(m.event_times_s, m.times_s))  # device time ≤ wall
    assert m.peak_mem_bytes >= 2048 * 2048 * 4
    assert m.peak_reserved_bytes is not None and m.peak_reserved_bytes >= 0


def test_fixed_grid_counter_counts_steps_without_making_torchdiffeq_warn_each_solve():
    """Offering a fixed-grid solver the accept callback makes torchdiffeq warn on every solve (a cost per
    training step even when the warning is filtered out); the fixed-grid counter offers only step counts."""
    fixed, adaptive = count_nfe(Decay(), adaptive=False), count_nfe(Decay())
    assert type(fixed) is StepCountingField and isinstance(adaptive, CountingField)
    y0, t = torch.ones(1, dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        odeint(fixed, y0, t, method="rk4", options={"step_size": 0.25})
    assert not [w for w in caught if "does not support callbacks" in str(w.message)]
    assert fixed.steps["forward"] == 4 and fixed.nfe["forward"] == 16
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        odeint(adaptive, y0, t, method="rk4", options={"step_size": 0.25})
    assert [w for w in caught if "does not support callbacks" in str(w.message)]  # what the fixed counter avoids


USER_WARNINGS_SCRIPT = """
import warnings, torch, torchdiffeq
before = list(warnings.filters)
import nodebench
from nodebench.harness import count_nfe
nodebench.list_papers()
print(list(warnings.filters) == before)
class Decay(torch.nn.Module):
    def forward(self, t, y):
        return -y
field = count_nfe(Decay())  # a user's own mistake: an accept callback for rk4
with warnings.catch_warnings(record=True) as caught:
    torchdiffeq.odeint(field, torch.ones(1, dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64),
                       method="rk4", options={"step_size": 0.5})
print(any("does not support callbacks" in str(w.message) for w in caught))
"""


def test_importing_nodebench_leaves_the_users_warning_filters_alone():
    """nodebench.harness added a process-wide filter at import that hid torchdiffeq's callback warning from
    the user's own solves too; each solver now gets a counter whose callbacks it supports instead."""
    done = subprocess.run([sys.executable, "-c", USER_WARNINGS_SCRIPT], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


STALE_MARK_SCRIPT = """
import torch
from nodebench.harness.memory import _ProcStatus

reader = _ProcStatus()
assert not reader.use_rusage, "the mark inherited from the launcher (400 MB) should be seen as stale"

def phase_peak_mb():  # a phase that allocates and holds 100 MB
    base, _ = reader.reset_hwm()
    held = torch.ones(25_000_000)
    return (reader.hwm_bytes()[0] - base) / 1e6

peaks = [phase_peak_mb()]  # below the stale mark: the status file
big = torch.ones(150_000_000)  # 600 MB held: the resident set is now above the stale mark
peaks += [phase_peak_mb() for _ in range(3)]
assert reader.use_rusage, "above the stale mark, ru_maxrss is the resident set again"
del big  # back below the stale mark
peaks += [phase_peak_mb() for _ in range(3)]
assert not reader.use_rusage
print(" ".join(f"{p:.1f}" for p in peaks))
"""

#: Holds 400 MB, frees it, then runs the script: the script's process inherits a 400 MB mark at exec.
LAUNCHER = ("import subprocess, sys; held = bytearray(b'1') * 400_000_000; del held; "
            "sys.exit(subprocess.call([sys.executable, sys.argv[1]]))")


def test_a_stale_inherited_mark_is_recognised_and_read_around(tmp_path):
    """getrusage's ru_maxrss keeps the mark a process inherits from the one that started it, which no
    reset clears; a phase's peak must still read right below it, above it, and below it again."""
    _cpu_meter_or_skip()
    script = tmp_path / "stale_mark.py"
    script.write_text(STALE_MARK_SCRIPT)
    done = subprocess.run([sys.executable, "-c", LAUNCHER, str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    peaks = [float(x) for x in done.stdout.split()]
    assert len(peaks) == 7 and all(abs(p - 100) <= 5 for p in peaks), peaks
