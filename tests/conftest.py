"""Shared fixtures for the harness, methods, training, sweep and trajectory-file tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nodebench.papers import load_papers
from nodebench.tasks.base import Problem

load_papers()  # the paper packages register their tasks, analyses and checks


class LinearField(nn.Module):
    """dz/dt = a z with a trainable scalar ``a``: z(T) = z0 exp(a T) in closed form."""

    def __init__(self, a: float = 0.0, dtype=torch.float64):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(float(a), dtype=dtype))

    def forward(self, t, z):
        return self.a * z


class LinearProblem(Problem):
    """Fit ``a`` in dz/dt = a z to z(t) = exp(t) on ``t``; used to provoke divergence with a huge lr."""

    def __init__(self, *, lr: float, dtype=torch.float32, n_points: int = 9, a0: float = 0.0):
        self.field = LinearField(a0, dtype=dtype)
        self.model = self.field
        self.lr = lr
        self.t = torch.linspace(0.0, 1.0, n_points, dtype=dtype)
        self.y = torch.exp(self.t).reshape(-1, 1)
        self.evaluate_result: dict[str, float] | None = None

    def loss(self, solve):
        pred = solve(self.field, torch.ones(1, dtype=self.t.dtype), self.t)
        return torch.mean((pred - self.y) ** 2)

    def evaluate(self, solve):
        if self.evaluate_result is not None:
            return dict(self.evaluate_result)
        return {"test_mse": float(self.loss(solve).detach())}


@pytest.fixture
def linear_field():
    """The :class:`LinearField` class (a fixture so that test modules need not import conftest)."""
    return LinearField


@pytest.fixture
def linear_problem():
    """The :class:`LinearProblem` class."""
    return LinearProblem


@pytest.fixture
def single_thread():
    """Run the test with one torch thread (quieter timings on a shared machine), restoring the count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_trajectories(n: int = 6, n_times: int = 12, controls: bool = True, seed: int = 0):
    """Damped, driven oscillators: t (T,), y (N, T, 2) and u (N, T, 1) (or None)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 2.0, n_times)
    x0 = rng.normal(size=(n, 2))
    u = rng.normal(size=(n, n_times, 1)) if controls else np.zeros((n, n_times, 1))
    y = np.empty((n, n_times, 2))
    y[:, 0] = x0
    dt = t[1] - t[0]
    for k in range(1, n_times):  # a fine explicit Euler simulation is plenty for test data
        x = y[:, k - 1].copy()
        for _ in range(20):
            h = dt / 20
            dx = np.stack([x[:, 1], -x[:, 0] - 0.3 * x[:, 1] + u[:, k - 1, 0]], axis=1)
            x = x + h * dx
        y[:, k] = x
    return t, y, (u if controls else None)


@pytest.fixture
def trajectory_file(tmp_path):
    """Write a trajectories .npz and return its path: ``trajectory_file(name, **arrays)``, or the
    default valid data set with controls when called with no arrays."""

    def write(name: str = "data.npz", **arrays):
        if not arrays:
            t, y, u = make_trajectories()
            arrays = {"t": t, "y": y, "u": u}
        path = tmp_path / name
        np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
        return path

    return write


@pytest.fixture
def trajectories():
    """The :func:`make_trajectories` generator."""
    return make_trajectories
