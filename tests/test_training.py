"""Tests for nodebench.training.train on the cubic spiral and on tiny custom problems."""

from __future__ import annotations

import copy
import functools
import math

import numpy as np
import pytest
import torch
from cuda_stand_ins import SilentEvent

from nodebench.methods import get_method
from nodebench.tasks import get_task
from nodebench.tasks.base import Problem
from nodebench.training import CURVE_COLUMNS, Diverged, GradientStep, train

CPU = torch.device("cpu")


# The spiral's ground truth is solved at rtol 1e-10 when the task is built, and the default extrapolation
# to t = 6 dominates evaluation: build each seed once, with a short extrapolation, and hand out copies.
FAST = {"extrap_t_end": 2.0, "extrap_points": 20}


@functools.lru_cache(maxsize=None)
def _spiral_prototype(seed):
    return get_task("cubic_spiral").build(seed=seed, device=CPU, hparams=FAST)


def spiral(seed=0):
    return copy.deepcopy(_spiral_prototype(seed))


def test_spiral_rk4_curves_nfe_and_summary():
    seen = []
    result = train(spiral(), get_method("rk4"), device=CPU, iters=3, warmup=1,
                   on_iteration=lambda i, loss: seen.append((i, loss)))
    c = result.curves
    assert set(c) == set(CURVE_COLUMNS)
    assert all(len(v) == 3 for v in c.values())
    assert c["iteration"] == [1, 2, 3]
    assert seen == list(zip(c["iteration"], c["loss"]))
    # elapsed time is the running sum of the step times and strictly increases
    np.testing.assert_allclose(c["elapsed_s"], np.cumsum(c["time_s"]), rtol=1e-12)
    assert all(b > a for a, b in zip(c["elapsed_s"], c["elapsed_s"][1:]))
    assert all(0 < f < s for f, s in zip(c["forward_s"], c["time_s"]))
    # classic RK4 stepping on the 30 observation times: 29 steps of 4 evaluations, no backward solve
    assert c["nfe_forward"] == [4 * 29] * 3
    assert c["steps_forward"] == [29] * 3
    assert c["accepted_forward"] == [29] * 3  # a fixed-step solver accepts every step
    assert c["nfe_backward"] == [0] * 3 and c["steps_backward"] == [0] * 3
    assert c["loss"][2] < c["loss"][0]  # lr 0.1 makes quick progress on the spiral
    assert result.warmup_s > 0
    s = result.summary()
    assert s["iters"] == 3 and s["nfe_forward"] == 3 * 116 and s["nfe_forward_per_iter"] == 116
    assert s["train_wall_s"] == pytest.approx(c["elapsed_s"][-1])
    assert s["time_per_iter_s"] == sorted(c["time_s"])[1]
    assert s["final_loss"] == c["loss"][-1]
    assert c["task_loss"] == c["loss"] and s["final_task_loss"] == s["final_loss"]  # no regulariser
    assert s["peak_mem_bytes"] >= s["peak_mem_forward_bytes"] >= 0
    assert set(result.metrics) == {"test_mse", "extrap_mse", "train_mse"}
    assert all(math.isfinite(v) and v >= 0 for v in result.metrics.values())


def test_spiral_adjoint_counts_forward_and_backward_solves():
    result = train(spiral(), get_method("adjoint"), device=CPU, iters=1, warmup=0,
                   solver_options={"rtol": 1e-5, "atol": 1e-7})
    c = result.curves
    assert c["nfe_forward"][0] == 2 + 6 * c["steps_forward"][0]
    # the adjoint is solved once per interval between the 30 observation times
    assert c["steps_backward"][0] > 0
    assert c["nfe_backward"][0] == 2 * 29 + 6 * c["steps_backward"][0]
    assert c["accepted_forward"][0] <= c["steps_forward"][0]


def test_the_cpu_memory_pass_writes_nothing_to_stderr(capfd):
    """The CPU memory pass's profiler (kineto) wrote ``USDT:... profiler_start`` and ``profiler_stop`` to file
    descriptor 2 at every phase: into every case log, and onto the terminal of a script calling train."""
    result = train(spiral(), get_method("euler"), device=CPU, iters=1, warmup=0)
    assert result.summary()["peak_mem_bytes"] >= 0
    err = capfd.readouterr().err
    assert "profiler_start" not in err and "profiler_stop" not in err and "USDT" not in err, err


def test_warmup_leaves_the_parameters_untouched():
    with_warmup = train(spiral(), get_method("euler"), device=CPU, iters=2, warmup=2)
    without = train(spiral(), get_method("euler"), device=CPU, iters=2, warmup=0)
    assert with_warmup.curves["loss"] == without.curves["loss"]
    assert with_warmup.metrics == without.metrics
    assert with_warmup.warmup_s > 0 and without.warmup_s == 0  # no warm-up iteration: nothing timed


def test_same_seed_same_run_different_seed_different_init():
    a = train(spiral(seed=1), get_method("euler"), device=CPU, iters=1, warmup=0)
    b = train(spiral(seed=1), get_method("euler"), device=CPU, iters=1, warmup=0)
    c = train(spiral(seed=2), get_method("euler"), device=CPU, iters=1, warmup=0)
    assert a.curves["loss"] == b.curves["loss"] != c.curves["loss"]


def test_budget_stops_training():
    budget = 0.15
    result = train(spiral(), get_method("euler"), device=CPU, budget_s=budget, warmup=0)
    elapsed = [0.0] + result.curves["elapsed_s"]  # one slow step on a loaded machine may use the whole budget
    assert elapsed[-1] >= budget > elapsed[-2]  # stops at the first iteration that crosses the budget
    capped = train(spiral(), get_method("euler"), device=CPU, iters=2, budget_s=100.0, warmup=0)
    assert capped.iters == 2


def test_only_the_steps_are_timed_not_warm_up_monitor_memory_passes_or_evaluation(monkeypatch, linear_problem):
    """A clock that moves only when the work moves it: each forward takes 0.25 s, the monitor 10 s, the evaluation
    100 s. The curves hold the steps alone (the loss-against-time curve pauses for the monitor), warm-up apart."""
    import nodebench.harness.step_meter as step_meter
    import nodebench.harness.timing as timing

    class Clock:
        now = 1000.0

        def perf_counter(self):
            return self.now

        def process_time(self):
            return 0.0

    clock = Clock()
    monkeypatch.setattr(step_meter, "perf_counter", clock.perf_counter)
    monkeypatch.setattr(timing, "time", clock)  # where the system gives no resettable VmHWM

    class Clocked(linear_problem):
        def loss(self, solve):
            clock.now += 0.25
            return super().loss(solve)

        def monitor(self):
            clock.now += 10.0
            return 1.0

        def evaluate(self, solve):
            clock.now += 100.0
            return {"test_mse": 0.0}

    result = train(Clocked(lr=0.01), get_method("euler"), device=CPU, iters=3, warmup=2, monitor_every=1)
    c = result.curves
    assert c["time_s"] == c["forward_s"] == [0.25] * 3 and c["elapsed_s"] == [0.25, 0.5, 0.75]
    assert c["monitor"] == [1.0] * 3 and result.warmup_s == 0.5 and result.summary()["train_wall_s"] == 0.75


def test_needs_a_stopping_rule():
    with pytest.raises(ValueError):
        train(spiral(), get_method("euler"), device=CPU)


def test_non_finite_loss_raises_diverged_with_the_partial_result(linear_problem):
    # a = 0 at first; Adam's first step moves a by about lr = 1e4, and RK4 with h = 1/8 then overflows
    problem = linear_problem(lr=1e4, dtype=torch.float32)
    with pytest.raises(Diverged, match="iteration 2") as info:
        train(problem, get_method("rk4"), device=CPU, iters=10, warmup=0)
    partial = info.value.result
    assert partial.iters == 2
    assert math.isfinite(partial.curves["loss"][0])
    assert not math.isfinite(partial.curves["loss"][1])
    assert partial.metrics == {}


def test_a_run_that_fails_before_its_first_timed_step_records_its_peaks_as_unknown_not_zero(linear_problem):
    problem = linear_problem(lr=0.1)
    problem.loss = lambda solve: torch.zeros(()).fill_(math.nan).requires_grad_()  # diverges at iteration 1
    with pytest.raises(Diverged, match="iteration 1") as info:
        train(problem, get_method("euler"), device=CPU, iters=3, warmup=0)
    summary = info.value.result.summary()
    assert summary["iters"] == 1  # the diverging step itself was measured: its peaks are readings
    assert summary["peak_mem_bytes"] is not None and summary["peak_mem_forward_bytes"] is not None

    problem.loss = lambda solve: (_ for _ in ()).throw(RuntimeError("broken loss"))  # no step completes
    with pytest.raises(RuntimeError, match="broken loss") as info:
        train(problem, get_method("euler"), device=CPU, iters=3, warmup=0)
    summary = info.value.result.summary()
    assert summary["iters"] == 0
    assert summary["peak_mem_bytes"] is None and summary["peak_mem_forward_bytes"] is None  # was 0: a fake reading


def test_same_problem_with_a_sane_lr_trains(linear_problem):
    problem = linear_problem(lr=0.1, dtype=torch.float32)
    result = train(problem, get_method("rk4"), device=CPU, iters=10, warmup=0)
    assert result.iters == 10 and result.curves["loss"][-1] < result.curves["loss"][0]
    assert result.curves["nfe_forward"] == [4 * 8] * 10


def test_solver_step_underflow_during_training_is_divergence_other_assertions_are_not(linear_problem):
    problem = linear_problem(lr=0.1)
    calls = []
    loss = problem.loss

    def failing_loss(solve):
        calls.append(1)
        if len(calls) == 3:  # warm-up, iteration 1, then the solver gives up in iteration 2 (memory passes come last)
            raise AssertionError("underflow in dt 0.0")
        return loss(solve)
    problem.loss = failing_loss
    with pytest.raises(Diverged, match="iteration 2: the solver failed") as info:
        train(problem, get_method("direct"), device=CPU, iters=5)
    assert info.value.result.iters == 1
    calls.clear()
    problem.loss = lambda solve: (_ for _ in ()).throw(AssertionError("a bug"))
    with pytest.raises(AssertionError, match="a bug"):
        train(problem, get_method("direct"), device=CPU, iters=5)


def test_the_gq_adjoints_step_underflow_is_divergence_not_an_error(linear_problem):
    # a ≈ 1e4 after Adam's first step: the GQ adjoint's lean dopri5 (nodebench.gq.dopri5) raises a RuntimeError
    # "underflow in dt", not torchdiffeq's AssertionError; it is divergence all the same, never an `error` row
    with pytest.raises(Diverged, match="iteration 2: the solver failed.*underflow in dt") as info:
        train(linear_problem(lr=1e4, dtype=torch.float64), get_method("gq"), device=CPU, iters=5, warmup=0)
    assert info.value.result.iters == 1
    problem = linear_problem(lr=0.1)
    problem.loss = lambda solve: (_ for _ in ()).throw(RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):  # any other RuntimeError stays one (an `error` row)
        train(problem, get_method("direct"), device=CPU, iters=5, warmup=0)


def test_a_solver_failure_in_warm_up_is_divergence_as_in_a_timed_step(linear_problem):
    """A model too stiff to solve fails at its first solve, which is warm-up's: the `diverged` row the first timed
    iteration gives without warm-up, not an `error` row (the solver's AssertionError escaped)."""
    for warmup, when in ((0, "iteration 1"), (1, "warm-up")):
        problem = linear_problem(lr=0.1, dtype=torch.float64, a0=1e300)  # dz/dt = 1e300 z: dopri5's dt underflows
        with pytest.raises(Diverged, match=f"^{when}: the solver failed.*underflow in dt") as info:
            train(problem, get_method("direct"), device=CPU, iters=2, warmup=warmup)
        assert info.value.result.iters == 0


def test_a_memory_pass_made_stiff_by_the_last_update_is_capped_and_keeps_the_curves(linear_problem):
    """The untimed memory passes make the first solves with the last update's parameters: dynamics that update made
    too stiff are `diverged` at the pass's cap on evaluations, the timed iterations kept (the pass solved on, its
    profiler's memory growing by hundreds of MB a second, until the case's time limit or the out-of-memory killer
    ended it: a `timeout` or `killed` row without its iterations)."""
    import signal

    def backstop(signum, frame):
        raise TimeoutError("the memory pass was not stopped within 5 s")

    previous = signal.signal(signal.SIGALRM, backstop)
    signal.alarm(5)
    try:
        # a = 2 in the timed step; Adam's first step moves a by lr, to about -1e8: dz/dt = -1e8 z then needs some
        # 1e7 explicit dopri5 steps
        problem = linear_problem(lr=1e8, dtype=torch.float64, a0=2.0)
        with pytest.raises(Diverged, match="^memory pass after 1 iterations: the solve ran past the untimed memory "
                                           r"pass's limit of \d+ evaluations \(") as info:
            train(problem, get_method("direct"), device=CPU, iters=1, warmup=1)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    result = info.value.result
    assert result.iters == 1 and math.isfinite(result.curves["loss"][0]) and result.warmup_s > 0
    assert result.alloc_peak_bytes is None and result.metrics == {}  # not measured (not 0), not evaluated


def test_non_finite_metric_raises_diverged_after_training(linear_problem):
    problem = linear_problem(lr=0.1)
    problem.evaluate_result = {"test_mse": float("nan")}
    with pytest.raises(Diverged, match="test_mse") as info:
        train(problem, get_method("euler"), device=CPU, iters=3, warmup=0)
    assert info.value.result.iters == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_train_on_cuda_smoke():
    cuda = torch.device("cuda")
    problem = get_task("cubic_spiral").build(seed=0, device=cuda, hparams=FAST)
    result = train(problem, get_method("rk4"), device=cuda, iters=2, warmup=1)
    assert result.iters == 2
    assert result.mem_source == "cuda_allocated"
    assert result.event_s is not None and result.event_s > 0
    assert result.peak_mem_bytes > 0 and result.peak_reserved_bytes is not None
    assert result.curves["nfe_forward"] == [116, 116]
    assert math.isfinite(result.metrics["test_mse"])


def test_a_diverged_cuda_run_records_its_forward_peak_as_unknown_not_zero(monkeypatch, linear_problem):
    """torch.cuda replaced by stand-ins (no GPU needed; the tensors stay on the CPU). A CUDA step reads no
    forward peak, so a run that diverges before the untimed memory passes has none: None, not 0 bytes."""
    allocated = {"now": 1000, "max": 5000}

    monkeypatch.setattr(torch.cuda, "Event", SilentEvent)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: None)
    for name, value in (("synchronize", None), ("reset_peak_memory_stats", None), ("memory_reserved", 0),
                        ("max_memory_reserved", 0), ("memory_allocated", allocated["now"]),
                        ("max_memory_allocated", allocated["max"])):
        monkeypatch.setattr(torch.cuda, name, lambda device=None, _value=value: _value)
    problem = linear_problem(lr=1e4, dtype=torch.float32)  # diverges at iteration 2 (see above)
    with pytest.raises(Diverged, match="iteration 2") as info:
        train(problem, get_method("rk4"), device=torch.device("cuda"), iters=10, warmup=0)
    summary = info.value.result.summary()
    assert summary["mem_source"] == "cuda_allocated"
    assert summary["peak_mem_bytes"] == 4000  # the allocator's peak above what the step started with
    assert summary["peak_mem_forward_bytes"] is None and summary["alloc_peak_forward_bytes"] is None
    assert summary["train_event_s"] == pytest.approx(0.002)  # two steps of 1 ms on the device's events


class _MlpField(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.BatchNorm1d(32), torch.nn.Tanh(),
                                       torch.nn.Linear(32, 2))

    def forward(self, t, y):
        return self.net(y)


class _DrawingProblem(Problem):
    """Mini-batches from its own generator, noise from the global one, a loss that depends on a batch counter,
    BatchNorm's running statistics: an untimed pass that drew from any of them, updated the statistics or left
    a step applied would change what comes after it (the evaluation reads all of them)."""

    def __init__(self):
        torch.manual_seed(0)
        self.model = self.field = _MlpField()
        self.lr = 0.05
        self.t = torch.linspace(0.0, 1.0, 6)
        self.y = torch.randn(64, 2)
        self._generator = torch.Generator().manual_seed(1)
        self._batches = 0

    def loss(self, solve):
        self._batches += 1
        y0 = self.y[torch.randperm(64, generator=self._generator)[:16]] + 0.1 * torch.randn(16, 2)
        return torch.mean((solve(self.field, y0, self.t)[-1] - 0.01 * self._batches * y0) ** 2)

    def evaluate(self, solve):
        with torch.no_grad():
            return {"test_mse": float(self.loss(solve))}


def _final(problem, **kwargs):
    result = train(problem, get_method("euler"), device=CPU, iters=3, **kwargs)
    return result, [value.clone() for value in problem.model.state_dict().values()]  # buffers too


def test_memory_passes_and_undone_warmup_steps_leave_training_and_evaluation_bit_identical(monkeypatch):
    result, params = _final(_DrawingProblem(), warmup=2)
    assert result.alloc_peak_bytes > 0
    with monkeypatch.context() as m:  # the loop as it was: warm-up without optimiser steps, no memory passes
        m.setattr(GradientStep, "_undone_step", lambda self, meter=None: None)
        m.setattr(GradientStep, "measure_memory", lambda self, device: (None, None, None))
        plain, plain_params = _final(_DrawingProblem(), warmup=2)
    assert plain.alloc_peak_bytes is None
    assert result.curves["loss"] == plain.curves["loss"]
    assert result.metrics == plain.metrics  # the passes run between the timed steps and the evaluation
    assert all(torch.equal(a, b) for a, b in zip(params, plain_params))


def test_warmup_leaves_no_trace_in_a_mini_batch_training():
    """Warm-up passes draw mini-batches, noise and a batch counter and update BatchNorm's statistics: all set
    back, so the timed iterations see what they would without warm-up (they saw the batches after it)."""
    warm, warm_params = _final(_DrawingProblem(), warmup=2)
    cold, cold_params = _final(_DrawingProblem(), warmup=0)
    assert warm.warmup_s > 0
    assert warm.curves["loss"] == cold.curves["loss"]
    assert warm.metrics == cold.metrics
    assert all(torch.equal(a, b) for a, b in zip(warm_params, cold_params))


def test_the_optimiser_state_exists_before_the_first_timed_step(monkeypatch):
    seen = []
    step = GradientStep.step

    def spy(self, boundary):
        seen.append(sorted(len(state) for state in self.optimizer.state.values()))
        return step(self, boundary)

    monkeypatch.setattr(GradientStep, "step", spy)
    problem = _DrawingProblem()
    _final(problem, warmup=1)
    n_params = len([p for p in problem.model.parameters() if p.requires_grad])
    assert seen == [[3] * n_params] * 3  # Adam's step, exp_avg and exp_avg_sq for every parameter, already at step 1


def test_allocated_peaks_per_phase_do_not_depend_on_pages_kept_from_an_earlier_run():
    first = train(spiral(), get_method("euler"), device=CPU, iters=2, warmup=1).summary()
    second = train(spiral(), get_method("euler"), device=CPU, iters=2, warmup=1).summary()
    keys = ("alloc_peak_forward_bytes", "alloc_peak_bytes", "alloc_peak_optimizer_bytes")
    assert [first[k] for k in keys] == [second[k] for k in keys]  # the same work, the same bytes
    # backprop through Euler keeps the forward's graph until backward, which adds the gradients' bytes
    assert first["alloc_peak_bytes"] > first["alloc_peak_forward_bytes"] > 0
    assert first["alloc_peak_optimizer_bytes"] > 0


def test_a_regularised_forward_plus_backward_allocates_at_least_its_forward():
    from nodebench.regularizers import Regularizer

    # R_K's penalty holds the autograd graph of the pass that made it; were it freed within the next pass, forward +
    # backward (the same forward, then a backward adding the gradients) would read below the forward alone
    result = train(spiral(), get_method("euler"), device=CPU, iters=1, warmup=0,
                   regularizer=Regularizer("speed", order=2, lam=0.1)).summary()
    assert result["alloc_peak_bytes"] > result["alloc_peak_forward_bytes"] > 0


def test_the_first_timed_step_allocates_what_the_later_ones_do(monkeypatch):
    from nodebench.harness.memory import TensorPeak

    peaks = []
    step = GradientStep.step

    def measured(self, boundary):
        with TensorPeak("cpu") as peak:
            loss = step(self, boundary)
        peaks.append(peak.bytes)
        return loss

    def profiled_warmup(self):  # the profiler reports a free only of blocks allocated while it was recording
        with TensorPeak("cpu"):
            warmup(self)

    warmup = GradientStep.warmup
    monkeypatch.setattr(GradientStep, "step", measured)
    monkeypatch.setattr(GradientStep, "warmup", profiled_warmup)
    _final(_DrawingProblem(), warmup=1)
    assert peaks[0] == peaks[1] == peaks[2] > 0  # no lazy optimiser state, no gradients missing at the start


def test_restored_puts_back_parameters_and_existing_optimiser_state_and_zeroes_new_state_in_place():
    from nodebench.undo import restored

    a, b = torch.nn.Parameter(torch.tensor([1.0, -2.0])), torch.nn.Parameter(torch.tensor([3.0]))
    optimizer = torch.optim.Adam([a, b], lr=0.1)
    a.grad = torch.tensor([0.5, 0.5])
    optimizer.step()  # state for a only: b has no gradient yet
    before = {k: v.clone() for k, v in optimizer.state[a].items()}
    held, a_before = optimizer.state[a]["exp_avg"], a.detach().clone()
    b.grad = torch.tensor([1.0])
    with restored([a, b], [optimizer]):
        optimizer.step()
        assert not torch.equal(a.detach(), a_before) and not torch.equal(b.detach(), torch.tensor([3.0]))
    assert torch.equal(a.detach(), a_before) and torch.equal(b.detach(), torch.tensor([3.0]))
    assert all(torch.equal(optimizer.state[a][k], v) for k, v in before.items())  # trained state put back
    assert optimizer.state[a]["exp_avg"] is held  # in place: no new tensors
    assert all(float(v.abs().sum()) == 0 for v in optimizer.state[b].values())  # created in the block: zeroed
