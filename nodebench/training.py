"""The measured training loop shared by every task and method.

One iteration of a solver-based method is: forward (the task's loss through the method's solve), backward,
optimiser step (:class:`GradientStep`). One iteration of SNODE is a coordinate-descent round
(:class:`~nodebench.snode.coordinate_descent.CoordinateDescent`): its coefficient block is measured as
the forward phase, its weight block as the backward phase. For every iteration the harness records, with
the device synchronised before the step and at its end:

- the step's wall time (and CUDA-event time), its process CPU time, the forward part's wall time (its
  CUDA-event time on CUDA, where the step synchronises once, at its end);
- peak memory of the forward phase (CPU; read when forward ends) and of the whole step, both above the
  memory held before the step (one reset per step; CPU: the resident-set mark, CUDA: allocated bytes);
- the memory held when each step begins, whose growth from the first timed step to the last is a leak check
  (``mem_growth_bytes``: the same step repeated should hold the same memory);
- NFE forward and backward, attempted and accepted solver steps, from :class:`CountingField` (a
  fixed-step solver accepts every step it makes; torchsde's solvers report their steps through the
  Brownian motion, :class:`~nodebench.sde.StepReportingBrownian`);
- the loss, and the task loss without a regulariser's penalty λ·R (``task_loss``, the loss itself when no
  regulariser is active), so that qualities are compared at matched accuracy, not at matched penalised loss.

Warm-up iterations run forward, backward and an optimiser step that is then undone (parameters copied
back, Adam's moments and step count zeroed in place), so the optimiser's state is allocated before the
first timed step while parameters and optimiser state stay as they were; the problem's attributes (batch cursor
and order, counters), the random generators and the model's buffers are set back too, so the timed iterations
see the batches they would without warm-up; their time is reported apart.
After the timed steps, untimed passes of their own measure the allocated-bytes peak
(:class:`~nodebench.harness.memory.AllocatedPeak`) of the forward alone, of forward + backward up to the
end of ``loss.backward()`` and of the optimiser step (``alloc_peak_*``; SNODE: its coefficient block and its
whole iteration, :class:`SpectralStep`), then
set back everything they touched (parameters, optimiser state, the model's buffers, random generators,
the problem's batch order), so the evaluation that follows is the same as without them (after, not
before, the timed steps: the profiler's pass leaves the CPU allocator holding pages that later
allocations reuse, hiding their growth from the resident-set meter). Evaluation runs
after training, untimed, and so does the optional per-iteration monitor (``monitor_every``): a
method-independent training quality, e.g. the simulation MSE on the training trajectories, that
time-to-target figures are read from.
Training stops after ``iters`` iterations or once the summed step time passes ``budget_s``. A non-finite
loss, a non-finite metric, or a solve (training or evaluation) that exceeds its step limit or whose step
size underflows stops it with status ``diverged``, in warm-up too; so does an evaluation that runs longer than
:func:`evaluation_limit_s` (the stiff dynamics of a diverged model can otherwise keep its evaluation
solving for minutes before the step limit), or a memory pass (the first solves with the last update's
parameters) that makes more than :data:`MEMORY_PASS_FACTOR` × the evaluations of the costliest timed step (at
least :data:`MEMORY_PASS_MIN_NFE`; the CPU's pass records every allocation, so its memory grows with them).
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from nodebench.harness import StepCountingField, StepMeter, count_nfe
from nodebench.harness.memory import AllocatedPeak
from nodebench.methods import Method
from nodebench.regularizers import RegularizedSolve, Regularizer
from nodebench.snode.coordinate_descent import CoordinateDescent
from nodebench.snode.options import SnodeOptions
from nodebench.tasks import Problem
from nodebench.undo import restored


class Diverged(RuntimeError):
    """Training produced a non-finite loss or metric."""


@dataclass
class TrainResult:
    """Per-iteration curves and summary figures of one training run.

    Attributes:
        rows: one tuple per timed iteration, its values in :data:`CURVE_COLUMNS` order (one list append a
            step: every object the harness touches between two steps costs time, see :func:`train`).
        warmup_s: wall time of the warm-up iterations (0 without any).
        peak_mem_forward_bytes, peak_mem_bytes: the largest peak a timed step's forward part, and a whole
            step, added [bytes]; None where none was read (not measured, never 0): before the first timed
            step, and for the forward part on CUDA until the untimed forward pass gives it.
        mem_growth_bytes: memory held at the start of the last timed step minus at the first (the measuring
            guide's leak check: the same step repeated, what it holds watched) [bytes]; None under two steps.
    """

    rows: list[tuple] = field(default_factory=list)
    warmup_s: float = 0.0
    peak_mem_forward_bytes: int | None = None
    peak_mem_bytes: int | None = None
    peak_reserved_bytes: int | None = None
    alloc_peak_forward_bytes: int | None = None
    alloc_peak_bytes: int | None = None
    alloc_peak_optimizer_bytes: int | None = None
    mem_growth_bytes: int | None = None
    mem_source: str = ""
    event_s: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    tables: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def curves(self) -> dict[str, list]:
        """The per-iteration values by column (:data:`CURVE_COLUMNS`)."""
        columns = zip(*self.rows) if self.rows else ([] for _ in CURVE_COLUMNS)
        return {name: list(values) for name, values in zip(CURVE_COLUMNS, columns)}

    @property
    def iters(self) -> int:
        return len(self.rows)

    def summary(self) -> dict[str, object]:
        c = self.curves
        steps = c["time_s"]
        return {
            "iters": self.iters,
            "train_wall_s": sum(steps),
            "time_per_iter_s": statistics.median(steps) if steps else math.nan,
            "forward_time_per_iter_s": statistics.median(c["forward_s"]) if steps else math.nan,
            "train_event_s": self.event_s,
            "warmup_s": self.warmup_s,
            "peak_mem_forward_bytes": self.peak_mem_forward_bytes,
            "peak_mem_bytes": self.peak_mem_bytes,
            "peak_reserved_bytes": self.peak_reserved_bytes,
            "alloc_peak_forward_bytes": self.alloc_peak_forward_bytes,
            "alloc_peak_bytes": self.alloc_peak_bytes,
            "alloc_peak_optimizer_bytes": self.alloc_peak_optimizer_bytes,
            "mem_growth_bytes": self.mem_growth_bytes,
            "mem_source": self.mem_source,
            "nfe_forward": sum(c["nfe_forward"]),
            "nfe_backward": sum(c["nfe_backward"]),
            "nfe_forward_per_iter": statistics.fmean(c["nfe_forward"]) if steps else math.nan,
            "nfe_backward_per_iter": statistics.fmean(c["nfe_backward"]) if steps else math.nan,
            "steps_forward": sum(c["steps_forward"]),
            "steps_backward": sum(c["steps_backward"]),
            "accepted_forward": sum(c["accepted_forward"]),
            "accepted_backward": sum(c["accepted_backward"]),
            "final_loss": c["loss"][-1] if steps else math.nan,
            "final_task_loss": c["task_loss"][-1] if steps else math.nan,
        }


CURVE_COLUMNS = ("iteration", "elapsed_s", "time_s", "cpu_s", "forward_s", "loss", "task_loss", "regularizer",
                 "monitor", "nfe_forward", "nfe_backward", "steps_forward", "steps_backward", "accepted_forward",
                 "accepted_backward")


class GradientStep:
    """One iteration of a solver-based method: the task loss through ``solve``, backward, an Adam step.

    Warm-up passes run forward, backward and an undone optimiser step (:meth:`_undone_step`), leaving
    parameters and optimiser state as they were.
    """

    def __init__(self, problem: Problem, solve, params: list[torch.Tensor]):
        self.problem, self.solve, self.params = problem, solve, params
        self.optimizer = torch.optim.Adam(params, lr=problem.lr, weight_decay=problem.weight_decay)

    @property
    def regularizer_value(self) -> float:
        """R of the last regularised solve (NaN without a regulariser)."""
        return getattr(self.solve, "value", math.nan)

    def warmup(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        _loss(self.problem, self.solve).backward()
        self._undone_step()  # the gradients stay allocated, as after a timed step

    def measure_memory(self, device: torch.device) -> tuple[int, int, int]:
        """Allocated-bytes peaks of the forward alone, of forward + backward (up to the end of
        ``loss.backward()``) and of the optimiser step, each above what was held when it began, from untimed
        passes that leave parameters and optimiser state as they were (their random draws and the problem's
        batch order are the caller's to set back). Forward + backward starts without gradients, so its peak
        includes their bytes; the gradients stay allocated after it, as after a timed step. Before each pass a
        regularised solve drops its last penalty, which holds that pass's autograd graph: freed within the next
        pass, it would count against that pass (TayNODE's R_K through backprop read forward + backward at a
        sixth to a quarter of the forward alone)."""
        self.optimizer.zero_grad(set_to_none=True)
        _drop_penalty(self.solve)
        with AllocatedPeak(device) as forward:
            _loss(self.problem, self.solve)
        _drop_penalty(self.solve)
        with AllocatedPeak(device) as both:
            _loss(self.problem, self.solve).backward()
        if not self.optimizer.state:  # no warm-up: a first step allocates Adam's state, not what a step adds
            self._undone_step()
        optimizer = AllocatedPeak(device)
        self._undone_step(optimizer)
        return forward.bytes, both.bytes, optimizer.bytes

    def _undone_step(self, meter=contextlib.nullcontext()) -> None:
        """``optimizer.step()`` (within ``meter``), then undone (:func:`nodebench.undo.restored`): the
        parameters and Adam's state as they were, a first step's lazily created state zeroed in place (a
        fresh Adam's state with its tensors already allocated), so the first timed step does not allocate
        them (warm-up absorbs lazy initialisation)."""
        with restored(self.params, [self.optimizer]), meter:
            self.optimizer.step()

    def step(self, boundary: Callable[[], None]) -> torch.Tensor:
        """Forward, ``boundary()``, backward, optimiser step; returns the loss."""
        loss = _loss(self.problem, self.solve)
        boundary()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss

    def metrics(self) -> dict[str, float]:
        return {}


class SpectralStep(CoordinateDescent):
    """One iteration of SNODE (:class:`~nodebench.snode.coordinate_descent.CoordinateDescent`), with the
    harness's warm-up and memory passes. Its optimiser steps belong to its blocks, so it has no optimiser
    phase of its own (``alloc_peak_optimizer_bytes`` is None)."""

    def warmup(self) -> None:
        """The coordinate descent's warm-up, then an undone Adam step on θ that allocates the weight
        optimiser's state (the coefficient optimiser is built with z in the first timed iteration's setup,
        which SNODE's training time includes on purpose)."""
        super().warmup()
        for param in self.params:
            param.grad = torch.zeros_like(param)
        with restored(self.params, [self.weight_optimizer]):
            self.weight_optimizer.step()

    def measure_memory(self, device: torch.device) -> tuple[int | None, int | None, None]:
        """Allocated-bytes peaks of the coefficient block (SNODE's forward phase) and of a whole iteration,
        each above what was held when it began, from untimed passes that leave the training state as it was
        (:meth:`~nodebench.snode.coordinate_descent.CoordinateDescent.kept`); Nones before any iteration."""
        if self.objective is None:
            return None, None, None
        peaks = []
        for iteration in (self.coefficient_block, lambda: self.step(lambda: None)):
            # each pass starts without gradients: on the CPU the profiler does not see the free of a
            # gradient allocated before it started, and would count the replaced one's bytes as still held
            for tensor in (self.z, *self.params):
                tensor.grad = None
            with self.kept(), AllocatedPeak(device) as peak:
                iteration()
            peaks.append(peak.bytes)
        return peaks[0], peaks[1], None


def train(problem: Problem, method: Method, *, device: torch.device, iters: int | None = None,
          budget_s: float | None = None, warmup: int = 1, solver_options: dict | None = None,
          on_iteration: Callable[[int, float], None] | None = None,
          regularizer: Regularizer | None = None, spectral: SnodeOptions | None = None,
          monitor_every: int | None = None, before_step: Callable[[], None] | None = None) -> TrainResult:
    """Train ``problem`` with ``method`` and measure every iteration.

    Args:
        problem: a freshly built task problem.
        method: the gradient strategy.
        device: where the problem lives.
        iters: iteration limit; ``budget_s``: limit on summed step time. At least one must be given.
        warmup: untimed forward+backward passes, each with an optimiser step that is undone.
        solver_options: ``rtol``, ``atol``, ``step_size``... passed to :meth:`Method.make_solve`.
        on_iteration: called with ``(iteration, loss)`` after each timed iteration (progress reporting).
        regularizer: a running-cost regulariser (:mod:`nodebench.regularizers`); the loss is the task's plus
            its penalty, the curves' ``task_loss`` column the task's alone, and their ``regularizer`` column R
            (mean over the batch of r(t1); NaN where the forward pass never evaluates it: ``adjoint_only``
            under an adjoint method).
        spectral: SNODE's settings, for the ``snode`` method (default :class:`SnodeOptions`).
        monitor_every: every this many iterations (and after the first), record the problem's
            method-independent training quality :meth:`Problem.monitor` in the curves' ``monitor``
            column, untimed (NaN elsewhere); time to a target is read from it.
        before_step: called before each timed iteration, outside its clocks (an A/B pair's lockstep
            barrier, :mod:`nodebench.runner.lockstep`).

    Raises:
        Diverged: on a non-finite loss or metric or a solver's failure. It, and any other error of a training
            step or of the evaluation, carries the partial result as ``err.result``.
    """
    if iters is None and budget_s is None:
        raise ValueError("give iters or budget_s")
    counter = count_nfe(problem.field, adaptive=method.adaptive)
    problem.field = counter
    params = [p for p in problem.model.parameters() if p.requires_grad]
    solve = method.make_solve(params, **(solver_options or {}))
    if method.spectral:
        stepper = SpectralStep(problem, params, spectral or SnodeOptions())
    else:
        stepper = GradientStep(problem, solve if regularizer is None else regularizer.wrap(solve), params)
    meter = StepMeter(device)
    result = TrainResult(mem_source=meter.source)  # its peaks stay None (not measured) until a step reads them

    # the warm-up leaves no trace in the training: the problem's batch cursor and order, iteration counters (a
    # KL schedule), random generators and the model's buffers are set back, as the memory passes' are; without
    # warm-up iterations nothing is timed and warmup_s stays 0
    if warmup:
        try:
            with _set_back(problem, solve if method.spectral else stepper.solve, device):
                meter.start()
                for _ in range(warmup):
                    stepper.warmup()
                result.warmup_s = meter.stop().wall_s
        except Exception as err:  # a solver's failure is divergence, as in a timed step
            raise _diverged(err, result, "warm-up") from None

    elapsed, event_total = 0.0, 0.0
    iteration = 0
    held_first = None  # memory held when the first timed step began
    nfe, steps = counter.nfe, counter.steps  # zeroed in place by every reset
    accepted = counter.accepted if method.adaptive else steps  # on a fixed grid every attempted step is accepted
    regularized = regularizer is not None and not method.spectral  # SNODE's steps take no regulariser

    def boundary() -> None:
        meter.lap()
        counter.phase = "backward"

    # Between two steps the harness runs cold: a step evicts the caches, and every object touched next
    # costs several times its warm price (benchmarks/between_steps.py times the parts). So the loop touches
    # few: one tuple appended per step, counts read from dicts zeroed in place.
    while (iters is None or iteration < iters) and (budget_s is None or elapsed < budget_s):
        if before_step is not None:
            before_step()
        counter.reset()
        counter.phase = "forward"
        meter.start()
        try:
            loss = stepper.step(boundary)
        except Exception as err:  # a solver's failure is divergence; any error keeps the training done so far
            raise _diverged(err, result, f"iteration {iteration + 1}") from None
        step = meter.stop()
        iteration += 1
        elapsed += step.wall_s
        loss_value = float(loss.detach())
        task_loss = float(stepper.solve.task_loss) if regularized else loss_value  # the loss without λ·R
        counts = (nfe["forward"], nfe["backward"], steps["forward"], steps["backward"], accepted["forward"],
                  accepted["backward"])  # before the monitor, whose evaluations are not training's
        result.rows.append((iteration, elapsed, step.wall_s, step.cpu_s, step.forward_s, loss_value, task_loss,
                            stepper.regularizer_value if regularized else math.nan,
                            _monitor(problem, iteration, monitor_every) if monitor_every else math.nan, *counts))
        forward_peak = step.forward_peak_bytes
        if forward_peak is not None and (result.peak_mem_forward_bytes is None
                                         or forward_peak > result.peak_mem_forward_bytes):
            result.peak_mem_forward_bytes = forward_peak
        if result.peak_mem_bytes is None or step.peak_bytes > result.peak_mem_bytes:
            result.peak_mem_bytes = step.peak_bytes
        if step.reserved_bytes is not None:
            result.peak_reserved_bytes = max(result.peak_reserved_bytes or 0, step.reserved_bytes)
        if step.held_bytes is not None:
            if held_first is None:
                held_first = step.held_bytes
            else:
                result.mem_growth_bytes = step.held_bytes - held_first
        if step.event_s is not None:
            event_total += step.event_s
            result.event_s = event_total
        if not math.isfinite(loss_value):
            err = Diverged(f"loss became {loss_value} at iteration {iteration}")
            err.result = result
            raise err
        if on_iteration is not None:
            on_iteration(iteration, loss_value)

    # after the timed steps: the profiler's pass leaves the CPU allocator holding pages that later
    # allocations reuse, which would hide the timed steps' growth from the resident-set meter. Its solves are the
    # first with the last update's parameters: capped (in evaluations, which the CPU profiler's memory grows with)
    # and classified as the evaluation's are, keeping the curves
    curves = result.curves
    costliest = max(map(sum, zip(curves["nfe_forward"], curves["nfe_backward"])), default=0)
    cap = max(MEMORY_PASS_MIN_NFE, MEMORY_PASS_FACTOR * costliest)
    over = (f"the untimed memory pass's limit of {cap} evaluations (the larger of {MEMORY_PASS_MIN_NFE} and "
            f"{MEMORY_PASS_FACTOR} × the most a timed step made): the dynamics after the last update are too stiff")
    try:
        with _set_back(problem, solve if method.spectral else stepper.solve, device), \
                _limited(counter, lambda: nfe["forward"] + nfe["backward"] > cap, over):
            result.alloc_peak_forward_bytes, result.alloc_peak_bytes, result.alloc_peak_optimizer_bytes = \
                stepper.measure_memory(device)
    except Exception as err:
        raise _diverged(err, result, f"memory pass after {iteration} iterations") from None
    if device.type == "cuda":  # the timed steps read no forward peak on CUDA (StepMeter)
        result.peak_mem_forward_bytes = result.alloc_peak_forward_bytes
    problem.model.eval()
    counter.phase = "forward"
    limit = evaluation_limit_s(elapsed + result.warmup_s)
    over = (f"the evaluation's {limit:g} s limit (the larger of {EVALUATION_MIN_S:g} s and {EVALUATION_FACTOR:g} × "
            "the training time): the learned dynamics are too stiff, or the test set is large for so short a training "
            "(train longer, or evaluate fewer examples: --hparam n_test=N where the task has it)")
    deadline = time.monotonic() + limit
    try:
        with _limited(counter, lambda: time.monotonic() > deadline, over):
            result.metrics = problem.evaluate(solve) | stepper.metrics()
    except Exception as err:
        raise _diverged(err, result, f"evaluation after {iteration} iterations") from None
    result.tables = dict(problem.tables)
    bad = [k for k, v in result.metrics.items() if not math.isfinite(v)]
    if bad:
        err = Diverged(f"non-finite test metric(s) {', '.join(bad)} after {iteration} iterations")
        err.result = result
        raise err
    return result


#: torchdiffeq's assertion messages when the dynamics have become too stiff to solve (the GQ adjoint's lean
#: dopri5, :mod:`nodebench.gq.dopri5`, raises a RuntimeError with the same "underflow in dt").
SOLVER_FAILURES = ("max_num_steps", "underflow in dt")
#: the evaluation may take at least this long, and at least EVALUATION_FACTOR × the training time.
EVALUATION_MIN_S, EVALUATION_FACTOR = 60.0, 10.0
#: the untimed memory passes (about twice a step's evaluations) may make at least MEMORY_PASS_MIN_NFE evaluations,
#: and at least MEMORY_PASS_FACTOR × the most a timed step made (forward and backward).
MEMORY_PASS_MIN_NFE, MEMORY_PASS_FACTOR = 2000, 10


def evaluation_limit_s(training_s: float) -> float:
    """Wall-clock limit of the evaluation after ``training_s`` seconds of training (warm-up included)."""
    return max(EVALUATION_MIN_S, EVALUATION_FACTOR * training_s)


class _OverTime(RuntimeError):
    """Raised inside a solve past its limit: the learned dynamics are too stiff to solve, or an evaluation is long
    for so short a training (a large test set after a few iterations)."""


class _Limited(nn.Module):
    """``field`` that raises :class:`_OverTime` ("the solve ran past ``limit``") once ``passed()`` is true; its
    other attributes (a tuple state's ``state_field``...) are the field's."""

    def __init__(self, field: nn.Module, passed: Callable[[], bool], limit: str):
        super().__init__()
        self.field, self.passed, self.limit = field, passed, limit

    def forward(self, t, y):
        if self.passed():
            raise _OverTime(f"the solve ran past {self.limit}")
        return self.field(t, y)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["field"], name)


@contextlib.contextmanager
def _limited(counter: StepCountingField, passed: Callable[[], bool], limit: str):
    """Within the block, every evaluation of the field ``counter`` counts (through the counter, or uncounted as a
    regulariser's derivatives are) first asks ``passed()`` whether the limit that ``limit`` describes has passed.
    The counts start from zero."""
    field = counter.field
    counter.field = _Limited(field, passed, limit)
    counter.reset()  # which also makes the counter call the new field
    try:
        yield
    finally:
        counter.field = field
        counter.reset()


def _diverged(err: Exception, result: TrainResult, when: str) -> Exception:
    """:class:`Diverged` for an evaluation over its time limit or a solver's step-limit or step-underflow
    failure (:data:`SOLVER_FAILURES`, an AssertionError or a RuntimeError); ``err`` itself for any other error
    (an out-of-memory error stays one). Either carries the training done so far as ``.result``, so that a
    failed case's row keeps its iterations and curves."""
    if isinstance(err, _OverTime):
        err = Diverged(f"{when}: {err}")
    elif isinstance(err, (AssertionError, RuntimeError)) and any(m in str(err) for m in SOLVER_FAILURES):
        err = Diverged(f"{when}: the solver failed, the learned dynamics are too stiff ({err})")
    err.result = result
    return err


@contextlib.contextmanager
def _set_back(problem: Problem, solve, device: torch.device):
    """On leaving the block, the global random generators (CPU, and ``device`` on CUDA), every
    ``torch.Generator`` held by ``problem`` or ``solve`` (in their attributes, or their attributes', a few
    levels deep), the buffers of ``problem.model`` (BatchNorm's running statistics) and the attributes of
    ``problem`` (a batch cursor and order) are as they were on entering it."""
    generators = [(generator, generator.get_state()) for generator in _generators([problem, solve])]
    buffers = [(buffer, buffer.clone()) for buffer in problem.model.buffers()]
    attributes = dict(vars(problem))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        yield
    for generator, state in generators:
        generator.set_state(state)
    with torch.no_grad():
        for buffer, value in buffers:
            buffer.copy_(value)
    vars(problem).update(attributes)


def _generators(objects: list, depth: int = 4) -> list[torch.Generator]:
    """The ``torch.Generator`` objects among ``objects``, their attributes and containers' items, ``depth`` deep."""
    found, seen = [], set()
    for _ in range(depth):
        inner = []
        for obj in objects:
            if id(obj) in seen or isinstance(obj, (torch.Tensor, str, bytes, int, float)):
                continue
            seen.add(id(obj))
            if isinstance(obj, torch.Generator):
                found.append(obj)
            elif isinstance(obj, dict):
                inner += obj.values()
            elif isinstance(obj, (list, tuple)):
                inner += obj
            elif hasattr(obj, "__dict__"):
                inner += vars(obj).values()
        objects = inner
    return found


def _monitor(problem: Problem, iteration: int, every: int) -> float:
    """``problem.monitor()`` on the first and every ``every``-th iteration (``every`` ≥ 1), NaN otherwise."""
    if iteration != 1 and iteration % every:
        return math.nan
    with torch.no_grad():
        return problem.monitor()


def _drop_penalty(solve) -> None:
    """A regularised solve's :meth:`~nodebench.regularizers.RegularizedSolve.reset`: its penalty, and with it the
    last pass's autograd graph, released."""
    if isinstance(solve, RegularizedSolve):
        solve.reset()


def _loss(problem: Problem, solve) -> torch.Tensor:
    """The task loss through ``solve``, plus a regularised solve's penalty (the task loss alone is then kept
    in ``solve.task_loss``)."""
    if isinstance(solve, RegularizedSolve):
        solve.reset()
        return solve.regularized(problem.loss(solve))
    return problem.loss(solve)
