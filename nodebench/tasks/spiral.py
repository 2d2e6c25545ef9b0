"""The cubic spiral of Chen et al. (2018), as used by Onken & Ruthotto (arXiv 2005.13420, time-series experiment).

Ground truth: du/dt = ((u³)ᵀA)ᵀ with A = [[-0.1, 2.0], [-2.0, -0.1]] and u(0) = (2, 0), solved with
dopri5 at rtol 1e-10 / atol 1e-12 and observed, noise-free, at 30 equispaced times on [0, 1.5].
Model: f(u) = Dense(50→2)(tanh(Dense(2→50)(u³))), trained with Adam (lr 0.1 in the paper's Julia code).
Test: ``test_mse`` on the observation times and ``extrap_mse`` on [0, 6] at 120 points, both simulated
with the reference solver. Our loss is the mean, not the paper's sum, of squared errors; Adam is
invariant to that scale.

Time grid. The released Julia Disc-Opt code steps RK4 with h = 1.5/30 = 0.05 and compares its 30 states
(at 0, 0.05, …, 1.45) with data at k·1.5/29: a grid mismatch. nodebench does not replicate it: fixed-step
methods step exactly on the observation times (h = 1.5/29) unless ``step_size`` is set.
"""

from __future__ import annotations

import torch
from torchdiffeq import odeint

from nodebench.config import Param
from nodebench.errors import UserError
from nodebench.tasks.base import Task, dtype_from_name
from nodebench.tasks.trajectory import MLPField, TrajectoryProblem

SPIRAL_A = ((-0.1, 2.0), (-2.0, -0.1))
SPIRAL_U0 = (2.0, 0.0)


def spiral_truth(t: torch.Tensor) -> torch.Tensor:
    """The true spiral observed at times ``t``, shape (1, T, 2)."""
    A = torch.tensor(SPIRAL_A, dtype=torch.float64)
    u0 = torch.tensor([SPIRAL_U0], dtype=torch.float64)
    ys = odeint(lambda _, u: (u ** 3) @ A, u0, t.to(torch.float64), rtol=1e-10, atol=1e-12, method="dopri5")
    return ys.transpose(0, 1)


class CubicSpiral(Task):
    name = "cubic_spiral"
    paper = "do_vs_od"
    full_state = True
    metrics = ("test_mse", "extrap_mse", "train_mse")
    description = "Chen et al.'s cubic spiral, 30 points on [0, 1.5], MLP 2-50-2 on u³ (Onken & Ruthotto, time series)"
    defaults = {"n_points": 30, "t_end": 1.5, "hidden": 50, "lr": 0.1, "dtype": "float64",
                "extrap_t_end": 6.0, "extrap_points": 120}
    param_rules = {"n_points": Param("n_points", "int", low=2), "extrap_points": Param("extrap_points", "int", low=2)}

    def check_hparams(self, hp):
        if hp["extrap_t_end"] < hp["t_end"]:
            raise UserError(f"task {self.name}: extrap_t_end ({hp['extrap_t_end']:g}) must be at least t_end "
                            f"({hp['t_end']:g})")

    def time_span(self, hp):
        return hp["t_end"]

    def build(self, *, seed, device, hparams):
        hp = self.hparams(hparams)
        dtype = dtype_from_name(hp["dtype"])
        t = torch.linspace(0.0, float(hp["t_end"]), int(hp["n_points"]), dtype=torch.float64)
        t_ext = torch.linspace(0.0, float(hp["extrap_t_end"]), int(hp["extrap_points"]), dtype=torch.float64)
        y = spiral_truth(t)
        y_ext = spiral_truth(t_ext)
        torch.manual_seed(seed)
        field = MLPField(2, int(hp["hidden"]), cube_input=True)
        for layer in field.net:
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.xavier_uniform_(layer.weight)
                torch.nn.init.zeros_(layer.bias)
        field = field.to(device=device, dtype=dtype)
        move = dict(device=device, dtype=dtype)
        return TrajectoryProblem(field, t.to(**move), y.to(**move), y.to(**move), lr=float(hp["lr"]), seed=seed,
                                 extra_eval=[("extrap_mse", t_ext.to(**move), y_ext.to(**move))])
