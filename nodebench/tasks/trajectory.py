"""System identification from trajectories: the shared problem behind trajectory tasks.

The model is an ODE ``dx/dt = f(x, u(t))`` started at each trajectory's first observation. The loss is
the mean squared error between the solve at the observation times and the observations. ``test_mse`` is
the same error on held-out trajectories, simulated from their initial conditions with a tight reference
solver (dopri5, rtol 1e-7, atol 1e-9, at most 100 000 steps: a learned model too stiff for that is
reported as diverged) whatever method trained the model, so that methods are compared on the learned
dynamics, not on their training discretisation. The training monitor (:meth:`TrajectoryProblem.monitor`)
is the same simulation MSE on the training trajectories, with at most 20 000 steps (inf beyond).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torchdiffeq import odeint

from nodebench.tasks.base import Problem

REFERENCE_SOLVER = dict(method="dopri5", rtol=1e-7, atol=1e-9, options={"max_num_steps": 100_000})
MONITOR_SOLVER = REFERENCE_SOLVER | {"options": {"max_num_steps": 20_000}}


class MLPField(nn.Module):
    """``f(x, u) = W₂ tanh(W₁ [g(x), u] + b₁) + b₂``, autonomous apart from the controls.

    Args:
        state_dim, control_dim, hidden: layer sizes.
        cube_input: feed ``x³`` instead of ``x`` (the cubic-spiral model of Chen et al. 2018).
    """

    def __init__(self, state_dim: int, hidden: int, control_dim: int = 0, cube_input: bool = False):
        super().__init__()
        self.cube_input = cube_input
        self.net = nn.Sequential(nn.Linear(state_dim + control_dim, hidden), nn.Tanh(),
                                 nn.Linear(hidden, state_dim))
        self.controls: Callable[[torch.Tensor], torch.Tensor] | None = None

    def forward(self, t, x):
        h = x ** 3 if self.cube_input else x
        if self.controls is not None:
            h = torch.cat([h, self.controls(t)], dim=-1)
        return self.net(h)


class PiecewiseLinearControls:
    """u(t) for a batch of trajectories, linearly interpolated between samples ``u[:, k]`` at ``t[k]``
    (held constant outside [t[0], t[-1]]).

    Called with a scalar time it returns (N, M), as a solver's field needs; with a vector of times (Q,)
    it returns (N, Q, M), as SNODE's batched node evaluation needs.
    """

    def __init__(self, t: torch.Tensor, u: torch.Tensor):
        self.t, self.u = t, u

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=self.t.dtype, device=self.t.device)
        times = t.clamp(self.t[0], self.t[-1]).reshape(-1)
        k = torch.searchsorted(self.t, times.detach(), right=True).clamp(1, len(self.t) - 1)
        w = ((times - self.t[k - 1]) / (self.t[k] - self.t[k - 1]))[:, None].to(self.u.dtype)
        values = (1 - w) * self.u[:, k - 1] + w * self.u[:, k]
        return values[:, 0] if t.dim() == 0 else values


class TrajectoryProblem(Problem):
    """Fit ``field`` to trajectories ``y`` of shape (N, T, D) observed at times ``t``.

    Args:
        field: an :class:`MLPField` (controls are set per batch when ``u`` is given).
        t: observation times (T,).
        y_train, y_test: trajectories (N, T, D).
        u_train, u_test: optional controls (N, T, M).
        batch_size: trajectories per iteration (``None``: all).
        seed: seeds the local generator that draws mini-batches.
        lr: Adam learning rate.
        extra_eval: optional ``(name, t, y)`` tuples evaluated like ``test_mse`` (e.g. extrapolation).
    """

    def __init__(self, field: MLPField, t, y_train, y_test, u_train=None, u_test=None, *, batch_size=None,
                 seed: int = 0, lr: float = 1e-2, extra_eval=()):
        self.model = field
        self.field = field
        self._net = field
        self.t, self.y_train, self.y_test = t, y_train, y_test
        self.u_train, self.u_test = u_train, u_test
        self.batch_size = batch_size
        self.lr = lr
        self.extra_eval = extra_eval
        self._generator = torch.Generator().manual_seed(seed)

    def use_controls(self, t: torch.Tensor, u: torch.Tensor | None) -> None:
        """Make the field see controls ``u`` (N, T, M) sampled at ``t``, interpolated piecewise linearly."""
        if u is not None:
            self._net.controls = PiecewiseLinearControls(t, u)

    def _simulate(self, solve, t, y, u) -> torch.Tensor:
        self.use_controls(t, u)
        pred = solve(self.field, y[:, 0], t)  # (T, N, D)
        return pred.transpose(0, 1)

    def monitor(self) -> float:
        """Simulation MSE on the training trajectories (every method measured alike; inf when the learned
        dynamics need more than 20 000 dopri5 steps)."""
        def solve(func, y0, t):
            return odeint(func, y0, t, **MONITOR_SOLVER)

        try:
            return float(torch.mean((self._simulate(solve, self.t, self.y_train, self.u_train) - self.y_train) ** 2).detach())
        except AssertionError:
            return math.inf

    def loss(self, solve) -> torch.Tensor:
        y, u = self.y_train, self.u_train
        n = y.shape[0]
        if self.batch_size is not None and self.batch_size < n:
            idx = torch.randperm(n, generator=self._generator)[: self.batch_size].to(y.device)
            y = y[idx]
            u = None if u is None else u[idx]
        return torch.mean((self._simulate(solve, self.t, y, u) - y) ** 2)

    @torch.no_grad()
    def evaluate(self, solve) -> dict[str, float]:
        def reference(func, y0, t):
            return odeint(func, y0, t, **REFERENCE_SOLVER)

        metrics = {
            "train_mse": float(torch.mean((self._simulate(reference, self.t, self.y_train, self.u_train)
                                           - self.y_train) ** 2)),
            "test_mse": float(torch.mean((self._simulate(reference, self.t, self.y_test, self.u_test)
                                          - self.y_test) ** 2)),
        }
        for name, t, y in self.extra_eval:
            metrics[name] = float(torch.mean((self._simulate(reference, t, y, None) - y) ** 2))
        return metrics
