"""System-identification stand-ins for SNODE's experiments (Quaglino et al., ICLR 2020, §5).

The paper's vehicle and multi-agent equations, parameters, horizons and data sizes are not given in
usable detail in the paper's text (§5), so both systems here are **nodebench stand-ins, not the paper's systems**; every
result table says so. Both are fully observed (SNODE's setting), simulated with dopri5 (rtol 1e-9,
atol 1e-11) and observed every ``dt`` on [0, ``horizon``]; training observations carry Gaussian noise of
standard deviation ``noise``, test trajectories are clean. A regime is a choice of hyper-parameters: the
paper packages' *high-data* regime uses many trajectories, the *low-data* regime few. The ``n_train``
training and ``n_test`` test trajectories are drawn in one batch from one generator, so the test set
changes with ``n_train``: the two regimes of a system are tested on different trajectories.

**vehicle**: a planar dynamic bicycle, 6 states s = (p_x, p_y, ψ, v_x, v_y, r) (position, heading, body
velocities, yaw rate) and 2 inputs u = (δ, a) (steering angle, throttle acceleration), in scaled units:

    ṗ_x = v_x cos ψ − v_y sin ψ          v̇_x = a − k_d v_x + v_y r − F_f sin δ / m
    ṗ_y = v_x sin ψ + v_y cos ψ          v̇_y = (F_f cos δ + F_r)/m − v_x r
    ψ̇  = r                               ṙ  = (l_f F_f cos δ − l_r F_r)/I_z

with saturating tyre forces F = c·tanh(α) at slip angles α_f = δ − atan2(v_y + l_f r, v_x) and
α_r = −atan2(v_y − l_r r, v_x), and m = 1, I_z = 1.2, l_f = 1.0, l_r = 1.2, c_f = c_r = 4, k_d = 0.15
(the mean throttle keeps v_x near 2).
Each trajectory starts at the origin with heading ψ₀ ~ U(−π, π), v_x ~ U(1.5, 3), v_y = r = 0; its inputs
are δ(t) = 0.3 sin(ω₁t + φ₁) + 0.1 sin(ω₂t + φ₂), a(t) = 0.3 + 0.5 sin(ω₃t + φ₃) with ω ~ U(0.5, 2),
φ ~ U(0, 2π), sampled at the observation times and interpolated piecewise linearly (for the ground
truth and the model alike).

**multi_agent**: ``agents`` point agents in the plane (4·agents states: positions then velocities) with
a tether to the origin, damping and a pairwise attraction, linear (k_a) plus a short-range pull (k_r) that
is strongest at distance √ε:

    ṗ_i = v_i,   v̇_i = −k_t p_i + (1/A) Σ_j [k_a (p_j − p_i) + k_r (p_j − p_i)/(‖p_j − p_i‖² + ε)] − c v_i

with k_t = 0.5, k_a = 1, k_r = 0.5, ε = 0.1, c = 0.3, A agents; p(0) ~ N(0, I), v(0) ~ N(0, 0.25 I).

The model is an :class:`~nodebench.tasks.trajectory.MLPField` f(x, u) with one hidden tanh layer.
"""

from __future__ import annotations

import abc
import math

import torch
from torchdiffeq import odeint

from nodebench.config import Param
from nodebench.errors import UserError
from nodebench.methods import MAX_FIXED_STEPS
from nodebench.tasks.base import Task, data_seed, dtype_from_name
from nodebench.tasks.trajectory import MLPField, PiecewiseLinearControls, TrajectoryProblem

TRUTH_SOLVER = dict(method="dopri5", rtol=1e-9, atol=1e-11)
VEHICLE = dict(m=1.0, inertia=1.2, l_f=1.0, l_r=1.2, c_f=4.0, c_r=4.0, drag=0.15)
SWARM = dict(tether=0.5, attraction=1.0, pull=0.5, eps=0.1, damping=0.3)  # pull: k_r, the short-range term


def vehicle_dynamics(s: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """ds/dt of the bicycle model (see the module docstring); s (N, 6), u (N, 2)."""
    q = VEHICLE
    _, _, psi, vx, vy, r = s.unbind(-1)
    steer, throttle = u.unbind(-1)
    f_front = q["c_f"] * torch.tanh(steer - torch.atan2(vy + q["l_f"] * r, vx))
    f_rear = q["c_r"] * torch.tanh(-torch.atan2(vy - q["l_r"] * r, vx))
    return torch.stack([
        vx * torch.cos(psi) - vy * torch.sin(psi),
        vx * torch.sin(psi) + vy * torch.cos(psi),
        r,
        throttle - q["drag"] * vx + vy * r - f_front * torch.sin(steer) / q["m"],
        (f_front * torch.cos(steer) + f_rear) / q["m"] - vx * r,
        (q["l_f"] * f_front * torch.cos(steer) - q["l_r"] * f_rear) / q["inertia"],
    ], dim=-1)


def swarm_dynamics(s: torch.Tensor) -> torch.Tensor:
    """ds/dt of the multi-agent system; s (N, 4A) = (positions (A, 2) flattened, velocities (A, 2) flattened)."""
    q = SWARM
    agents = s.shape[-1] // 4
    p = s[..., : 2 * agents].reshape(*s.shape[:-1], agents, 2)
    v = s[..., 2 * agents:].reshape(*s.shape[:-1], agents, 2)
    diff = p[..., None, :, :] - p[..., :, None, :]  # diff[i, j] = p_j − p_i
    dist2 = (diff ** 2).sum(-1, keepdim=True)
    interaction = (q["attraction"] * diff + q["pull"] * diff / (dist2 + q["eps"])).sum(-2) / agents
    acc = -q["tether"] * p + interaction - q["damping"] * v
    return torch.cat([v.flatten(-2), acc.flatten(-2)], dim=-1)


def vehicle_data(n: int, t: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` vehicle trajectories (n, T, 6) and their inputs (n, T, 2), float64."""
    def uniform(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=generator, dtype=torch.float64)

    s0 = torch.zeros(n, 6, dtype=torch.float64)
    s0[:, 2] = uniform(-math.pi, math.pi, n)
    s0[:, 3] = uniform(1.5, 3.0, n)
    omega, phase = uniform(0.5, 2.0, n, 3), uniform(0.0, 2 * math.pi, n, 3)
    wave = torch.sin(omega[:, None, :] * t[None, :, None] + phase[:, None, :])  # (n, T, 3)
    u = torch.stack([0.3 * wave[..., 0] + 0.1 * wave[..., 1], 0.3 + 0.5 * wave[..., 2]], dim=-1)
    controls = PiecewiseLinearControls(t, u)
    ys = odeint(lambda tt, s: vehicle_dynamics(s, controls(tt)), s0, t, **TRUTH_SOLVER)
    return ys.transpose(0, 1), u


def swarm_data(n: int, agents: int, t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``n`` multi-agent trajectories (n, T, 4·agents), float64."""
    p0 = torch.randn(n, 2 * agents, generator=generator, dtype=torch.float64)
    v0 = 0.5 * torch.randn(n, 2 * agents, generator=generator, dtype=torch.float64)
    ys = odeint(lambda _, s: swarm_dynamics(s), torch.cat([p0, v0], dim=-1), t, **TRUTH_SOLVER)
    return ys.transpose(0, 1)


class _IdentificationTask(Task):
    """Shared build: time grid, data draw, noise, the MLP field and the trajectory problem."""

    paper = "snode"
    full_state = True
    metrics = ("test_mse", "train_mse")
    defaults = {"n_train": 32, "n_test": 8, "horizon": 5.0, "dt": 0.1, "noise": 0.01, "hidden": 64, "lr": 0.01,
                "dtype": "float32", "data_seed": None}

    @abc.abstractmethod
    def _draw(self, n: int, t: torch.Tensor, generator: torch.Generator,
              hp) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` clean trajectories (n, T, D) at times ``t`` and their inputs (n, T, M) or None, float64."""

    def check_hparams(self, hp):
        steps = hp["horizon"] / hp["dt"]  # observation intervals of build's grid, checked before it is allocated
        if not 1.5 <= steps <= MAX_FIXED_STEPS:  # round(steps) from 2 to MAX_FIXED_STEPS; 5 / 1e-320 is inf
            raise UserError(f"task {self.name}: horizon / dt = {steps:g} observation intervals; give dt from "
                            f"horizon / {MAX_FIXED_STEPS:,} to horizon / 2 (3 to {MAX_FIXED_STEPS + 1:,} times)")

    def time_span(self, hp):
        return round(hp["horizon"] / hp["dt"]) * hp["dt"]  # the observation grid's end, as in build

    def build(self, *, seed, device, hparams):
        hp = self.hparams(hparams)  # typed and bounded: counts ≥ 1, horizon and dt > 0, noise ≥ 0
        n_train, n_test, noise, dt = hp["n_train"], hp["n_test"], hp["noise"], hp["dt"]
        steps = round(hp["horizon"] / dt)
        t = torch.linspace(0.0, steps * dt, steps + 1, dtype=torch.float64)
        generator = torch.Generator().manual_seed(data_seed(hp, seed))
        y, u = self._draw(n_train + n_test, t, generator, hp)
        y_train = y[:n_train] + noise * torch.randn(y[:n_train].shape, generator=generator, dtype=torch.float64)
        move = dict(device=device, dtype=dtype_from_name(hp["dtype"]))
        torch.manual_seed(seed)
        field = MLPField(y.shape[-1], hp["hidden"], control_dim=0 if u is None else u.shape[-1])
        split = (None, None) if u is None else (u[:n_train].to(**move), u[n_train:].to(**move))
        return TrajectoryProblem(field.to(**move), t.to(**move), y_train.to(**move), y[n_train:].to(**move), *split,
                                 seed=seed, lr=hp["lr"])


class Vehicle(_IdentificationTask):
    """Stand-in for SNODE's vehicle experiment (Quaglino et al., ICLR 2020, §5): a nodebench 6-state
    bicycle model, not the paper's system."""

    name = "vehicle"
    description = ("6-state planar vehicle with steering/throttle inputs, noisy full-state trajectories "
                   "(SNODE stand-in, not the paper's system)")

    def _draw(self, n, t, generator, hp):
        return vehicle_data(n, t, generator)


class MultiAgent(_IdentificationTask):
    """Stand-in for SNODE's multi-agent experiment (Quaglino et al., ICLR 2020, §5): nodebench's interacting
    point agents, not the paper's system."""

    name = "multi_agent"
    description = ("interacting point agents in the plane (4 states per agent), noisy full-state "
                   "trajectories (SNODE stand-in, not the paper's system)")
    defaults = _IdentificationTask.defaults | {"agents": 6}
    param_rules = {"agents": Param("agents", "int", low=2)}

    def _draw(self, n, t, generator, hp):
        return swarm_data(n, hp["agents"], t, generator), None


SYSTEM_TASKS = (Vehicle, MultiAgent)
