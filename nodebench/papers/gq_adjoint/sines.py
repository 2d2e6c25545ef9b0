"""The sines time-series task of Norcliffe & Deisenroth, "Faster Training of Neural ODEs Using
Gauß–Legendre Quadrature" (TMLR 2023, arXiv 2308.10644), with a second-order neural ODE (SONODE,
Norcliffe et al. 2020).

Follows the official code (``a-norcliffe/torch_gq_adjoint``: ``experiments/sines.py``, data from
``datasets/make_sine_data.py`` and ``datasets/datasets.py``, the model ``mlp_sonode`` in
``models/modules.py``, the time batching in ``models/neural_de.py``); settings are
the official code's. The official plotting scripts behind the paper's figures sweep the width w over
5, 20, 200, 1000, 2000.

**Data.** x(t) = A sin t + B cos t with (B, A) ~ U(−1, 1)², observed on [0, 2π] at ``n_obs`` times
(10 by default; the paper also uses 50); ``n_train`` = 15 training and ``n_test`` = 5 test curves.
Regular times are linspace(0, 2π, ``n_obs``), shared by every curve; with ``irregular`` each curve has
its own times, ``n_obs`` uniform draws on [0, 2π) sorted, the first replaced by 0 (the official
generator's rule).

**Model.** The state is [x, v] started at the true (x(0), v(0)) = (B, A); an MLP over [x, v] (2 hidden
Softplus layers of width w, output 1, no time input) gives the acceleration, and the dynamics are
f([x, v]) = [v, MLP([x, v])] (w² + 5w + 1 parameters). The loss is the MSE of x over every curve and
observation time (t = 0 included, as in the official code). Full batch, Adam lr 1e-3, w = 100.

**Time batching (as the official code).** One forward solve serves the whole batch: it is solved at the
**union of all observation times in the batch** (sorted, unique), and each curve's prediction is read
out at its own times. With irregular times this makes up to ``n_train · (n_obs − 1) + 1`` output times,
and so as many intervals for the adjoint methods (one restart each) and for the GQ quadrature (at least
one node each): that cost is part of what the paper measures.

**Metrics.** ``test_mse`` on the test curves and ``train_mse`` on the training curves, both simulated
with the reference solver of :mod:`nodebench.tasks.trajectory` (dopri5, rtol 1e-7, atol 1e-9) whatever
method trained the model; the official trainer reports validation MSE with the training solver.

**Our choices** (not in the official code):

- Data come from a local ``torch.Generator`` seeded with ``data_seed`` (default: the run's seed), drawn
  in float64 and cast to ``dtype``; the official code draws them once with the global RNG and reuses the
  files for every repeat (set ``data_seed`` to a constant for that). Training curves are drawn before
  test curves, the initial conditions of a split before its times.
- The union of times is computed after the cast to ``dtype``, so rounding can only merge times, never
  produce a non-increasing grid.
- The model uses PyTorch's default initialisation after ``torch.manual_seed(seed)``.
- Solver tolerances are solver options of the experiment (the paper: dopri5, rtol = atol = 1e-3,
  ``gtol`` 0.1), not task hyper-parameters. Fixed-step methods without ``step_size`` step on the union
  grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from nodebench.config import Param
from nodebench.papers.gq_adjoint.anode import reference_solve
from nodebench.tasks.base import Problem, Task, data_seed, dtype_from_name

T_END = 2 * math.pi


class SONODEField(nn.Module):
    """f([x, v]) = [v, a([x, v])] with a = Linear(w→d)(σ(Linear(w→w)(σ(Linear(2d→w)([x, v]))))), σ = Softplus.

    Args:
        width: hidden width w.
        dim: dimension d of x (1 for the sines).
    """

    def __init__(self, width: int, dim: int = 1):
        super().__init__()
        self.dim = dim
        self.net = nn.Sequential(nn.Linear(2 * dim, width), nn.Softplus(), nn.Linear(width, width), nn.Softplus(),
                                 nn.Linear(width, dim))

    def forward(self, t, z):
        return torch.cat([z[..., self.dim:], self.net(z)], dim=-1)


def sine_curves(n: int, n_obs: int, irregular: bool, generator: torch.Generator):
    """``n`` curves x(t) = A sin t + B cos t (float64, CPU).

    Returns:
        ``xv0`` (n, 2) = (B, A), the true (x(0), v(0)); times ``t`` (n, n_obs); values ``x`` (n, n_obs).
    """
    xv0 = 2 * torch.rand(n, 2, generator=generator, dtype=torch.float64) - 1
    if irregular:
        t = (T_END * torch.rand(n, n_obs, generator=generator, dtype=torch.float64)).sort(dim=1).values
        t[:, 0] = 0.0
    else:
        t = torch.linspace(0.0, T_END, n_obs, dtype=torch.float64).expand(n, n_obs).clone()
    b, a = xv0[:, :1], xv0[:, 1:]
    return xv0, t, a * torch.sin(t) + b * torch.cos(t)


class CurveSet:
    """One split: initial states (N, 2), per-curve times and values (N, n_obs), and the union time grid
    ``grid`` (sorted unique times) with ``index`` (N, n_obs) locating each curve's times in it."""

    def __init__(self, xv0: torch.Tensor, t: torch.Tensor, x: torch.Tensor):
        self.xv0, self.t, self.x = xv0, t, x
        self.grid, self.index = torch.unique(t, sorted=True, return_inverse=True)


class SinesProblem(Problem):
    """Fit a SONODE to sine curves, one union-of-times solve per (full) batch.

    Args:
        field: a :class:`SONODEField`.
        train, test: the splits.
        lr: Adam learning rate.
    """

    def __init__(self, field: SONODEField, train: CurveSet, test: CurveSet, *, lr: float):
        self.model = field
        self.field = field
        self.train, self.test = train, test
        self.lr = lr

    def predict(self, solve: Callable, curves: CurveSet) -> torch.Tensor:
        """x at each curve's own times, (N, n_obs), from one solve at the union grid of ``curves``."""
        zs = solve(self.field, curves.xv0, curves.grid)  # (len(grid), N, 2)
        return zs[..., 0].transpose(0, 1).gather(1, curves.index)

    def loss(self, solve: Callable) -> torch.Tensor:
        return torch.mean((self.predict(solve, self.train) - self.train.x) ** 2)

    @torch.no_grad()
    def evaluate(self, solve: Callable) -> dict[str, float]:
        return {"test_mse": float(torch.mean((self.predict(reference_solve, self.test) - self.test.x) ** 2)),
                "train_mse": float(torch.mean((self.predict(reference_solve, self.train) - self.train.x) ** 2))}


class Sines(Task):
    """The sines task of Norcliffe & Deisenroth (TMLR 2023; official ``experiments/sines.py``): a SONODE fitted
    to sine curves, with :class:`SinesProblem` (see the module docstring)."""

    name = "sines"
    paper = "gq_adjoint"
    metrics = ("test_mse", "train_mse")
    description = ("x = A sin t + B cos t on [0, 2π], 15 curves, SONODE with a Softplus MLP of width w "
                   "(Norcliffe & Deisenroth 2023, official code)")
    defaults: ClassVar[dict[str, Any]] = {"width": 100, "n_train": 15, "n_test": 5, "n_obs": 10, "irregular": False,
                                          "lr": 1e-3, "dtype": "float32", "data_seed": None}
    param_rules = {"n_obs": Param("n_obs", "int", low=2)}

    def time_span(self, hp):
        return T_END

    def build(self, *, seed, device, hparams):
        hp = self.hparams(hparams)  # typed and bounded: counts ≥ 1, n_obs ≥ 2, irregular a bool
        generator = torch.Generator().manual_seed(data_seed(hp, seed))
        move = {"device": torch.device(device), "dtype": dtype_from_name(hp["dtype"])}
        splits = [CurveSet(*(a.to(**move) for a in sine_curves(n, hp["n_obs"], hp["irregular"], generator)))
                  for n in (hp["n_train"], hp["n_test"])]
        torch.manual_seed(seed)
        field = SONODEField(hp["width"]).to(**move)
        return SinesProblem(field, *splits, lr=float(hp["lr"]))
