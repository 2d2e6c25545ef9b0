"""Density estimation with continuous normalizing flows (CNFs), trained through the harness.

The CNF experiments of Onken & Ruthotto (arXiv 2005.13420, §5), which reuse FFJORD (Grathwohl et al.
2019, arXiv 1810.01367): a :class:`~nodebench.cnf.CNF` with a :class:`~nodebench.cnf.ConcatSquashMLP`
field maps data ``x`` to ``z = z(T)`` under a standard normal base, and the loss of one iteration is the
mean negative log-likelihood (nats) of a mini-batch.

**What the solves evaluate.** A CNF integrates the augmented state ``(z, Δ)``. The problem builds one
:class:`~nodebench.cnf.AugmentedDynamics` and stores it as :attr:`DensityProblem.field`; the CNF's
``augment`` hook sets that solve's Hutchinson probe on it (drawn once per solve, never per evaluation)
and returns whatever is stored in ``problem.field`` at the time, which is the harness's counting wrapper
during training. So NFE counts are evaluations of the augmented field; one evaluation costs one pass of
the network plus the trace (``D`` vector-Jacobian products for the exact trace, one for Hutchinson).

**Trace.** Training uses ``trace`` (FFJORD: Hutchinson with Gaussian probes; exact for the 2-D toys, as
in FFJORD's toy script). Evaluation always uses the exact trace.

**Metrics** (:meth:`DensityProblem.evaluate`):

- ``test_nll``: NLL of the test split (first ``eval_size`` rows) with a reference solver, dopri5 at
  ``rtol = atol = eval_tol``, whatever method trained the model;
- ``test_nll_train_solver``: the same with the training method's own solve (no re-discretisation);
- ``inverse_error``: on the first test batch, ``x̂ = f⁻¹(f(x))`` with the training solve both ways,
  mean per-sample ``‖x̂ᵢ − xᵢ‖₂`` (OT-Flow's corrected definition, EmoryMLIP/OT-Flow ``45be1c7``);
- ``inverse_error_frob``: ``‖X̂ − X‖_F / n`` on the same batch (the DOvsOD repository's formula,
  about ``√n`` times smaller);
- ``inverse_error_reference`` / ``inverse_error_frob_reference``: the same with the reference solver;
- ``t1``: the end time ``T`` after training (it moves only when ``train_t1``);
- ``reference_nfe``: evaluations of the augmented field per reference forward solve of the first test
  batch, a measure of how stiff the learned dynamics are;
- ``test_nfe``: evaluations of a dopri5 forward solve of the first test batch at ``rtol = atol = nfe_tol``
  with the training trace estimator, i.e. 2 + 6 × attempted steps: Kelly et al.'s test-time NFE
  protocol (TayNODE FFJORD scripts), set ``nfe_tol`` to the training tolerance.

The table ``rediscretisation`` gets, for every method, one row per test step size ``h`` in
``test_step_sizes`` with the model solved by classic RK4 at step ``h`` (``solver = "rk4_classic"``), and
one row with ``step_size = NaN`` and ``solver = "reference"``; each row holds ``test_nll``,
``inverse_error``, ``inverse_error_frob`` and ``nfe_per_solve``. Onken & Ruthotto evaluate their
Disc-Opt models with RK4 at a finer ``test_step_size`` than the training step; the rows give that
curve for any trained model. For 2-D data the table ``density_grid`` holds the learned log-density
(reference solver, exact trace) on a ``density_grid`` × ``density_grid`` grid covering the test data.

**Recommended solver options** (they are case hyper-parameters passed by the harness, not task ones):

- Opt-Disc (``adjoint``, ``seminorm``): FFJORD's tabular ``atol = 1e-8``, ``rtol = 1e-6`` (dopri5, and
  the same for the adjoint); FFJORD's toy script uses ``atol = rtol = 1e-5``. In float32 tolerances below
  ~1e-7 are spent on round-off; run such cases in float64 (``dtype``) or loosen them on CPU.
- Disc-Opt (``rk4``, classic RK4; ``rk4_38`` is the 3/8 rule the released CNF code actually ran):
  ``step_size = 0.25`` for the tabular sets (the released MINIBOONE command; test step 0.1) and
  ``step_size = 0.05`` for the 2-D toys (the released ``8gaussians`` command).

**Departures from FFJORD / the DOvsOD code**, all hyper-parameters: ``train_t1`` defaults to False
(FFJORD trains ``T = s²``; with a fixed-step solver a trainable ``T`` changes the step size during
training); no batch normalisation, one CNF block, no regularisation, no early stopping (the
harness runs a fixed number of iterations or a time budget); toy batch 512 instead of 100.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from nflows.distributions.normal import StandardNormal
from nflows.flows.base import Flow
from torch import nn
from torchdiffeq import odeint

from nodebench import solvers
from nodebench.cnf import ACTIVATIONS, CNF, NOISES, TRACES, AugmentedDynamics, ConcatSquashMLP
from nodebench.datasets import (MAF_NAMES, SKLEARN_NAMES, TOY_NAMES, Splits, file_splits, load_density,
                                 read_npy_file)
from nodebench.datasets.splits import Standardization
from nodebench.config import Param
from nodebench.datasets.catalog import provenance
from nodebench.errors import UserError
from nodebench.harness.nfe import CallCounter
from nodebench.methods import check_step_size
from nodebench.tasks.base import Problem, Task, dtype_from_name, positive_hparam

REFERENCE_METHOD = "dopri5"
REDISCRETISATION_SOLVER = solvers.CLASSIC_RK4
DEFAULT_TEST_STEP_SIZES = (0.25, 0.1, 0.05, 0.025)

COMMON_DEFAULTS: dict[str, Any] = {
    "hidden_dims": None,  # None: hdim_factor·D repeated nhidden times (FFJORD's tabular rule)
    "hdim_factor": 20,
    "nhidden": 2,
    "activation": "softplus",
    "t1": 1.0,
    "train_t1": False,
    "trace": "hutchinson",  # "exact", "hutchinson" or "auto" (exact when D <= 2)
    "noise": "gaussian",
    "batch_size": 1000,
    "lr": 1e-3,
    "weight_decay": 1e-6,
    "dtype": "float32",
    "eval_tol": 1e-5,
    "nfe_tol": 1e-5,
    "eval_size": 1000,
    "test_batch_size": 1000,
    "test_step_sizes": list(DEFAULT_TEST_STEP_SIZES),
    "density_grid": 64,  # 2-D data only: log-density on a grid of this many points per side (0: none)
}

TOY_DEFAULTS: dict[str, Any] = COMMON_DEFAULTS | {
    "hidden_dims": [64, 64, 64],
    "activation": "tanh",
    "t1": 0.5,
    "trace": "exact",
    "batch_size": 512,
    "weight_decay": 1e-5,
    "n_train": 20000,
    "n_val": 2000,
    "n_test": 2000,
}

SKLEARN_DEFAULTS: dict[str, Any] = COMMON_DEFAULTS | {"hdim_factor": 10, "batch_size": 256}

FILE_DEFAULTS: dict[str, Any] = COMMON_DEFAULTS | {"hdim_factor": 10, "trace": "auto", "batch_size": 256,
                                                   "standardize": True}


def inverse_errors(x: torch.Tensor, x_hat: torch.Tensor) -> tuple[float, float]:
    """``(mean_i ‖x̂ᵢ − xᵢ‖₂, ‖X̂ − X‖_F / n)``: OT-Flow's corrected and the DOvsOD repo's definitions."""
    diff = (x_hat - x).double()
    n = x.shape[0]
    return float(diff.norm(dim=1).mean()), float(diff.norm() / n)


def _counting_solve(method: str, counts: list[int], **kwargs) -> Callable:
    def solve(func, y0, t):
        counted = CallCounter(func)
        out = odeint(counted, y0, t, method=method, **kwargs)
        counts.append(counted.nfe)
        return out
    return solve


class DensityProblem(Problem):
    """A CNF density model fitted to ``data`` (tensors already on the device, in the model's dtype).

    Args:
        data: train/val/test splits as tensors of shape ``(N_i, D)``.
        dynamics: the vector field ``f(t, z)``.
        t1, train_t1, trace, noise: passed to :class:`~nodebench.cnf.CNF`.
        batch_size: training mini-batch size (capped by the training-set size); batches are consecutive
            slices of a per-epoch permutation drawn from a generator seeded by ``seed``.
        lr, weight_decay: Adam settings used by the harness.
        seed: seeds the batch order and the Hutchinson probes.
        eval_tol: reference-solver tolerance (``rtol = atol``).
        nfe_tol: tolerance of the ``test_nfe`` solve.
        eval_size: test rows used by :meth:`evaluate`.
        test_batch_size: evaluation batch size; the inverse error uses the first test batch.
        test_step_sizes: classic-RK4 step sizes of the ``rediscretisation`` table.
        density_grid: for 2-D data, points per side of the ``density_grid`` table (0: no table).
        standardization: when the task z-scored the data, the map back to the user's units: every reported NLL
            gets its ``nll_offset`` ``Σ log σ_j`` added and the ``density_grid`` table's points and log-density
            are in those units; the training loss does not include it.
    """

    def __init__(self, data: Splits, dynamics: nn.Module, *, t1: float, train_t1: bool, trace: str, noise: str,
                 batch_size: int, lr: float, weight_decay: float, seed: int, eval_tol: float, eval_size: int,
                 test_batch_size: int, test_step_sizes: Sequence[float], density_grid: int = 0,
                 standardization: Standardization | None = None, nfe_tol: float = 1e-5):
        self.data = data
        self.dim = data.train.shape[1]
        self.augmented = AugmentedDynamics(dynamics)
        self.field = self.augmented
        self.cnf = CNF(dynamics, t1=t1, trace=trace, noise=noise, train_t1=train_t1, seed=seed + 1,
                       augment=self._augment)
        base = StandardNormal([self.dim]).to(device=data.train.device, dtype=data.train.dtype)
        self.flow = Flow(self.cnf, base)
        self.model = self.flow
        self.train_trace = trace
        self.lr, self.weight_decay = lr, weight_decay
        self.batch_size = max(1, min(int(batch_size), data.train.shape[0]))
        self.eval_tol = float(eval_tol)
        self.nfe_tol = float(nfe_tol)
        self.eval_size = max(1, int(eval_size))
        self.test_batch_size = max(1, int(test_batch_size))
        self.test_step_sizes = [float(h) for h in test_step_sizes]
        if any(not h > 0 for h in self.test_step_sizes):
            raise UserError(f"test_step_sizes must be positive, got {list(test_step_sizes)}")
        self.standardization = standardization
        self.nll_offset = 0.0 if standardization is None else standardization.nll_offset
        self.density_grid = int(density_grid) if self.dim == 2 else 0
        self.tables = {}
        self._generator = torch.Generator().manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.long)
        self._cursor = 0

    # -- the field every solve evaluates ---------------------------------------------------------------
    def _augment(self, noise: torch.Tensor | None) -> nn.Module:
        """CNF hook, once per solve: attach this solve's probe, return the field the harness may have wrapped.

        The probe stays attached until the next solve starts, so an adjoint backward pass that follows its
        forward solve (the harness's order) sees the same probe.
        """
        self.augmented.noise = noise
        return self.field

    # -- training --------------------------------------------------------------------------------------
    def _next_batch(self) -> torch.Tensor:
        n = self.data.train.shape[0]
        if self._cursor + self.batch_size > len(self._order):
            self._order = torch.randperm(n, generator=self._generator)
            self._cursor = 0
        idx = self._order[self._cursor : self._cursor + self.batch_size]
        self._cursor += self.batch_size
        return self.data.train[idx.to(self.data.train.device)]

    def _nll(self, x: torch.Tensor) -> torch.Tensor:
        return -self.flow.log_prob(x).mean()

    def loss(self, solve: Callable) -> torch.Tensor:
        """Mean NLL (nats) of the next mini-batch, solved with ``solve``, training trace estimator."""
        self.cnf.solve = solve
        self.cnf.trace = self.train_trace
        return self._nll(self._next_batch())

    def loss_fixed(self, solve: Callable) -> torch.Tensor:
        """A deterministic loss for gradient checks: the first training batch, the probe generator re-seeded."""
        self.cnf.solve = solve
        self.cnf.trace = self.train_trace
        self.cnf.generator.manual_seed(0)
        return self._nll(self.data.train[: self.batch_size])

    # -- evaluation ------------------------------------------------------------------------------------
    def _test_batches(self) -> list[torch.Tensor]:
        test = self.data.test[: self.eval_size]
        return list(torch.split(test, self.test_batch_size))

    def _test_nll(self, solve: Callable, batches: list[torch.Tensor]) -> float:
        self.cnf.solve = solve
        total = 0.0
        for x in batches:
            total += float(-self.flow.log_prob(x).double().sum())
        return total / sum(len(x) for x in batches) + self.nll_offset

    def _inverse_errors(self, solve: Callable, x: torch.Tensor) -> tuple[float, float]:
        self.cnf.solve = solve
        z, _ = self.cnf(x)
        x_hat, _ = self.cnf.inverse(z)
        return inverse_errors(x, x_hat)

    def _density_grid(self, solve: Callable) -> list[dict]:
        """Learned log-density on a square grid covering the test data, with ``solve`` and the exact trace, both
        in the user's units (the grid is square in the model's standardized space)."""
        test = self.data.test
        lo, hi = float(test.min()) - 0.5, float(test.max()) + 0.5
        axis = torch.linspace(lo, hi, self.density_grid, dtype=test.dtype, device=test.device)
        xx, yy = torch.meshgrid(axis, axis, indexing="xy")
        points = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
        self.cnf.solve = solve
        logp = torch.cat([self.flow.log_prob(x) for x in torch.split(points, self.test_batch_size)])
        coordinates = points.double().cpu().numpy()
        if self.standardization is not None:
            coordinates = self.standardization.to_data(coordinates)
        return [{"x": float(a), "y": float(b), "log_prob": float(v) - self.nll_offset}
                for (a, b), v in zip(coordinates.tolist(), logp.tolist())]

    @torch.no_grad()
    def evaluate(self, solve: Callable) -> dict[str, float]:
        """Test metrics with the exact trace; fills the ``rediscretisation`` table (see module docstring)."""
        batches = self._test_batches()
        first = batches[0]
        try:
            counts: list[int] = []
            self.cnf.solve = _counting_solve("dopri5", counts, rtol=self.nfe_tol, atol=self.nfe_tol,
                                             options={"max_num_steps": 100_000})
            self.flow.log_prob(first)
            test_nfe = counts[0]
            self.cnf.trace = "exact"
            counts: list[int] = []
            reference = _counting_solve(REFERENCE_METHOD, counts, rtol=self.eval_tol, atol=self.eval_tol,
                                        options={"max_num_steps": 100_000})
            ref_inv = self._inverse_errors(reference, first)
            reference_nfe = counts[0]  # the forward solve of the first test batch
            metrics = {
                "test_nll": self._test_nll(reference, batches),
                "test_nll_train_solver": self._test_nll(solve, batches),
            }
            metrics["inverse_error"], metrics["inverse_error_frob"] = self._inverse_errors(solve, first)
            metrics["inverse_error_reference"], metrics["inverse_error_frob_reference"] = ref_inv
            metrics["t1"] = float(self.cnf.t1)
            metrics["reference_nfe"] = float(reference_nfe)
            metrics["test_nfe"] = float(test_nfe)
            rows = [{"solver": "reference", "step_size": math.nan, "test_nll": metrics["test_nll"],
                     "inverse_error": ref_inv[0], "inverse_error_frob": ref_inv[1],
                     "nfe_per_solve": float(reference_nfe)}]
            for h in self.test_step_sizes:
                counts = []
                rk4 = _counting_solve(REDISCRETISATION_SOLVER, counts, options={"step_size": h})
                nll = self._test_nll(rk4, batches)
                inv = self._inverse_errors(rk4, first)
                rows.append({"solver": REDISCRETISATION_SOLVER, "step_size": h, "test_nll": nll,
                             "inverse_error": inv[0], "inverse_error_frob": inv[1],
                             "nfe_per_solve": float(counts[0])})
            self.tables = {"rediscretisation": rows}
            if self.density_grid:
                self.tables["density_grid"] = self._density_grid(reference)
        finally:
            self.cnf.solve = solve
            self.cnf.trace = self.train_trace
        return metrics


def _hidden_dims(hp: Mapping[str, Any], dim: int) -> tuple[int, ...]:
    """The hidden widths: ``hidden_dims``, or FFJORD's tabular rule ``hdim_factor``·D repeated ``nhidden``
    times (each checked positive by :meth:`DensityTask.params`)."""
    if hp["hidden_dims"] is not None:
        return tuple(hp["hidden_dims"])
    return (hp["hdim_factor"] * dim,) * hp["nhidden"]


def build_density_problem(splits: Splits, hp: Mapping[str, Any], *, seed: int, device: torch.device,
                          standardization: Standardization | None = None,
                          dynamics: Callable[[int], nn.Module] | None = None,
                          problem_cls: type[DensityProblem] | None = None, **problem_kwargs) -> DensityProblem:
    """Move ``splits`` to ``device`` in ``hp["dtype"]``, initialise the CNF from ``seed``, wrap it in a problem.

    ``dynamics(D)`` builds the field instead of the default :class:`ConcatSquashMLP` (from ``hp``'s
    ``hidden_dims``/``hdim_factor``/``nhidden``/``activation``); ``problem_cls`` (a :class:`DensityProblem`
    subclass) receives ``problem_kwargs`` besides the usual arguments. ``test_step_sizes`` and
    ``density_grid`` default to none when ``hp`` lacks them.
    """
    dtype = dtype_from_name(hp["dtype"])
    move = dict(device=device, dtype=dtype)
    data = Splits(*(torch.as_tensor(np.asarray(part)).to(**move) for part in (splits.train, splits.val, splits.test)))
    dim = data.train.shape[1]
    trace = hp["trace"]
    if trace == "auto":
        trace = "exact" if dim <= 2 else "hutchinson"
    torch.manual_seed(seed)
    if dynamics is None:
        field = ConcatSquashMLP(dim, _hidden_dims(hp, dim), hp["activation"])
    else:
        field = dynamics(dim)
    problem = (problem_cls or DensityProblem)(
        data, field.to(**move), t1=float(hp["t1"]), train_t1=bool(hp["train_t1"]), trace=trace, noise=hp["noise"],
        batch_size=int(hp["batch_size"]), lr=float(hp["lr"]), weight_decay=float(hp["weight_decay"]), seed=seed,
        eval_tol=positive_hparam(hp, "eval_tol"), nfe_tol=positive_hparam(hp, "nfe_tol"),
        eval_size=int(hp["eval_size"]), test_batch_size=int(hp["test_batch_size"]),
        test_step_sizes=hp.get("test_step_sizes", ()), density_grid=hp.get("density_grid", 0),
        standardization=standardization, **problem_kwargs)
    problem.cnf.to(**move)
    return problem


#: The typed rules of the hyper-parameters every CNF task shares (:meth:`nodebench.tasks.base.Task.params`).
CNF_PARAM_RULES = {"activation": Param("activation", "str", choices=tuple(ACTIVATIONS)),
                   "noise": Param("noise", "str", choices=NOISES),
                   "trace": Param("trace", "str", choices=TRACES),
                   "test_step_sizes": Param("test_step_sizes", "floats", positive=True, empty=True)}
#: The most points per side of the ``density_grid`` table: its side² log-density solves (a 1000 × 1000 grid is
#: 10⁶) run after training, so a typo beyond it would fail (memory) only once the case had trained.
MAX_DENSITY_GRID = 1000


class DensityTask(Task):
    """A CNF density-estimation task on one data set (see the module docstring for metrics and defaults).

    Subclasses set :attr:`dataset` (a name :func:`~nodebench.datasets.load_density` accepts) and
    :attr:`defaults`; :meth:`splits` may be overridden.
    """

    paper = "do_vs_od"
    metrics = ("test_nll", "test_nll_train_solver", "inverse_error", "inverse_error_frob",
               "inverse_error_reference", "inverse_error_frob_reference", "t1", "reference_nfe", "test_nfe")
    defaults = COMMON_DEFAULTS
    param_rules = CNF_PARAM_RULES | {"hidden_dims": Param("hidden_dims", "ints", positive=True, optional=True),
                                     "density_grid": Param("density_grid", "int", low=0, high=MAX_DENSITY_GRID),
                                     "trace": Param("trace", "str", choices=(*TRACES, "auto"))}
    dataset: str = ""

    def splits(self, hp: Mapping[str, Any], seed: int) -> Splits:
        return load_density(self.dataset, seed=seed)

    def check_hparams(self, hp):
        for step in hp["test_step_sizes"]:
            check_step_size(step, hp["t1"], f"the time span of task {self.name!r}", name="test_step_sizes entry")
        if hp["density_grid"] == 1:  # a grid of one point draws no density: the plots of the learned 2-D densities
            raise UserError(f"task {self.name}: hyper-parameter density_grid must be 0 (no grid) or an integer from "
                            f"2 to {MAX_DENSITY_GRID}, got 1")

    def time_span(self, hp):
        return hp["t1"]

    def build(self, *, seed, device, hparams):
        hp = self.hparams(hparams)
        splits = self.splits(hp, seed)
        problem = build_density_problem(splits, hp, seed=seed, device=torch.device(device))
        problem.provenance = provenance(self.dataset, *splits.sizes)
        return problem


class ToyDensityTask(DensityTask):
    """A 2-D toy density (FFJORD's toy CNF settings, exact trace)."""

    defaults = TOY_DEFAULTS

    def splits(self, hp, seed):
        sizes = (int(hp["n_train"]), int(hp["n_val"]), int(hp["n_test"]))
        if min(sizes) < 1:
            raise UserError(f"n_train, n_val and n_test must be positive, got {sizes}")
        return load_density(self.dataset, seed=seed, toy_sizes=sizes)


class SklearnDensityTask(DensityTask):
    """A data set bundled with scikit-learn (dequantised, z-scored; offline stand-in for the MAF sets)."""

    defaults = SKLEARN_DEFAULTS


def _make_task(base: type[DensityTask], name: str, dataset: str, description: str) -> type[DensityTask]:
    return type(f"Cnf_{name}", (base,), {"name": name, "dataset": dataset, "description": description,
                                         "__doc__": description, "__module__": __name__})


TOY_TASKS = [_make_task(ToyDensityTask, f"cnf_toy_{toy}", toy,
                        f"CNF on the 2-D toy {toy!r}: concatsquash 64-64-64 tanh, T=0.5, exact trace "
                        "(FFJORD toy; Onken & Ruthotto §5)")
             for toy in TOY_NAMES]
MAF_TASKS = [_make_task(DensityTask, f"cnf_{maf}", maf,
                        f"CNF on MAF {maf.upper()}: concatsquash 2×(20·D) softplus, T=1, Hutchinson, batch 1000 "
                        "(FFJORD tabular; Onken & Ruthotto §5); needs the data files")
             for maf in MAF_NAMES]
SKLEARN_TASKS = [_make_task(SklearnDensityTask, f"cnf_sklearn_{name.removeprefix('sklearn:')}", name,
                            f"CNF on scikit-learn's bundled {name.removeprefix('sklearn:')!r} features "
                            "(offline tabular stand-in): concatsquash 2×(10·D) softplus, T=1, Hutchinson")
                 for name in SKLEARN_NAMES]
DENSITY_TASKS: list[type[DensityTask]] = [*TOY_TASKS, *MAF_TASKS, *SKLEARN_TASKS]


class DensityFile(DensityTask):
    """Bring your own density data: ``--task density:PATH.npy`` with a finite real ``(N, D)`` array, N ≥ 10, no
    constant column, finite still as the model sees it (standardized, cast to ``dtype``).

    Rows are split 80/10/10 by a seeded permutation. With ``standardize`` (default) every column is z-scored
    with train+validation statistics for training, and the reported NLLs add back ``Σ log σ_j``, so they are
    in the units of the file. The trace is exact for D ≤ 2 and Hutchinson otherwise (``trace="auto"``).
    """

    defaults = FILE_DEFAULTS
    description = "your own data: density:PATH.npy with an N×D float array (CNF, concatsquash 2×(10·D))"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = f"density:{path}"
        self.dataset = str(path)
        if not self.path.exists():
            raise UserError(self._not_found())
        self.data = read_npy_file(self.path)  # validate now, so a bad file fails before any case runs

    def _not_found(self) -> str:
        """Why ``density:NAME`` found no file, and how to run a named data set (a task of its own)."""
        task = {cls.dataset.lower(): cls.name for cls in DENSITY_TASKS}.get(self.dataset.lower())
        named = (f"the named data set {self.dataset!r} runs as --task {task}" if task else
                 "named data sets run as tasks of their own (cnf_toy_moons, cnf_power, ...: see `nodebench list`)")
        return f"data file not found: {self.dataset}; density:PATH takes an existing N×D .npy file, and {named}"

    def check_hparams(self, hp):
        super().check_hparams(hp)
        self._splits(hp, seed=0)  # the values as the model sees them, checked before any case runs

    def _splits(self, hp, seed: int) -> tuple[Splits, Standardization]:
        return file_splits(self.data, seed=seed, standardize=bool(hp["standardize"]), dtype=hp["dtype"],
                           what=str(self.path))

    def build(self, *, seed, device, hparams):
        hp = self.hparams(hparams)
        splits, back = self._splits(hp, seed)
        problem = build_density_problem(splits, hp, seed=seed, device=torch.device(device), standardization=back)
        problem.provenance = provenance(str(self.path), *splits.sizes)
        return problem


__all__ = ["CNF_PARAM_RULES", "DENSITY_TASKS", "DensityFile", "DensityProblem", "DensityTask", "SklearnDensityTask",
           "ToyDensityTask", "build_density_problem", "inverse_errors"]
