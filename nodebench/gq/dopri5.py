"""A lean Dormand–Prince 5(4) solver for the GQ adjoint's small states (Dormand & Prince 1980; step-size
selection and control as in Hairer, Nørsett & Wanner, "Solving ODEs I", §II.4 — torchdiffeq 0.2.5's
``dopri5`` algorithm, tableau and dense output, step for step).

Why not ``torchdiffeq.odeint``: the GQ adjoint's states are tiny (the paper's regime: a few floats of
state, many parameters), and there torchdiffeq's per-step bookkeeping dominates a solve — it keeps the
time, step size and error ratio as 0-d tensors so that nothing synchronises with a GPU, which costs
about a hundred small tensor operations (dtype moves, ``abs``, ``reshape``, wrappers) per step. Here the
step control runs on Python floats (one ``.item()`` per step), the stages are one ``addmv`` each over a
(7, n) stage matrix, and the dense output at an output time is one ``addmv`` with interpolation weights
from the powers of the step fraction. Only plain ``dopri5`` is covered (no ``options``); anything else goes to
torchdiffeq.

On a GPU the ``.item()`` of each step (and three for the initial step size) are the only synchronisations:
the times the field is called with and the dense output's powers are filled on the device from Python
floats (``torch.scalar_tensor``, ``torch.full``), never copied from the host, since a copy from pageable host
memory synchronises the stream as a host read does.

The error norm is the RMS norm, or with ``blocks = b`` the maximum of the RMS norms of b equal blocks of
the state, or with ``blocks = (n_1, …)`` that of blocks of those sizes: torchdiffeq's mixed norm of a tuple
state such as the adjoint's (z, a) or a user's (x, v).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
from torchdiffeq._impl.dopri5 import _DORMAND_PRINCE_SHAMPINE_TABLEAU as _TABLEAU
from torchdiffeq._impl.dopri5 import DPS_C_MID

_ORDER = 5
_SAFETY, _IFACTOR, _DFACTOR = 0.9, 10.0, 0.2
_ALPHA = [float(a) for a in _TABLEAU.alpha]
_C_SOL = _TABLEAU.c_sol.numpy()
_MID = DPS_C_MID.numpy()
_UNIT0, _UNIT6 = np.eye(7)[0], np.eye(7)[6]
# Dense output: with S = Σ c_sol_j k_j, M = Σ mid_j k_j, torchdiffeq's quartic through y0, y1 = y0 + h S,
# y_mid = y0 + h M, f0 = k_0 and f1 = k_6 is y(x) = y0 + h Σ_j w_j(x) k_j with w(x) = Σ_p x^p W[p−1].
_W = torch.from_numpy(np.stack([_UNIT0,
                                _UNIT6 - 4 * _UNIT0 - 5 * _C_SOL + 16 * _MID,
                                5 * _UNIT0 - 3 * _UNIT6 + 14 * _C_SOL - 32 * _MID,
                                2 * _UNIT6 - 2 * _UNIT0 - 8 * _C_SOL + 16 * _MID]))

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class _Tableau:
    """The tableau's rows as tensors of one dtype and device."""

    def __init__(self, dtype: torch.dtype, device: torch.device):
        self.beta = [b.to(dtype=dtype, device=device) for b in _TABLEAU.beta]
        self.c_error = _TABLEAU.c_error.to(dtype=dtype, device=device)
        self.dense_t = _W.T.to(device=device)  # (7, 4), float64: the stage weights w(x) = dense_t @ [x, …, x⁴]


@functools.cache
def _tableau(dtype: torch.dtype, device: torch.device) -> _Tableau:
    return _Tableau(dtype, device)


Blocks = int | tuple[int, ...]
"""b equal blocks of the state, or blocks of the sizes given (module docstring)."""


def _rms(x: torch.Tensor, blocks: Blocks) -> torch.Tensor:
    if isinstance(blocks, int):
        return x.reshape(blocks, -1).square().mean(1).sqrt().max()
    return torch.stack([part.square().mean() for part in x.split(blocks)]).max().sqrt()


@torch.no_grad()
def dopri5(func: Field, y0: torch.Tensor, times: list[float], *, rtol: float, atol: float, blocks: Blocks = 1,
           callbacks: dict | None = None) -> tuple[torch.Tensor, int]:
    """Solve dy/dt = func(t, y) from ``times[0]`` and return (y at ``times``, (len(times), n); evaluations).

    Args:
        func: the vector field on a flat state, ``func(t, y)`` with ``t`` a 0-d tensor of y's dtype.
        y0: the flat initial state, (n,).
        times: strictly monotone output times (increasing or decreasing), Python floats.
        rtol, atol: tolerances of the error test ‖err / (atol + rtol · max(|y0|, |y1|))‖ ≤ 1.
        blocks: the blocks of the state the mixed RMS norm takes the maximum over: their number (equal
            blocks) or their sizes.
        callbacks: torchdiffeq's ``callback_step``, ``callback_accept_step`` and ``callback_reject_step``,
            called as torchdiffeq calls them, with (t0, y0, dt) as 0-d float64 tensors.
    """
    dtype, device = y0.dtype, y0.device
    tableau = _tableau(dtype, device)
    callbacks = callbacks or {}
    direction = 1.0 if times[-1] > times[0] else -1.0
    nfe = 0

    def f(t: float, y: torch.Tensor) -> torch.Tensor:
        nonlocal nfe
        nfe += 1
        return func(torch.scalar_tensor(t, dtype=dtype, device=device), y)  # filled on the device, no copy

    def callback(name: str, t: float, y: torch.Tensor, dt: float) -> None:
        if name in callbacks:
            callbacks[name](torch.tensor(t, dtype=torch.float64), y, torch.tensor(dt, dtype=torch.float64))

    out = torch.empty(len(times), y0.numel(), dtype=dtype, device=device)
    out[0] = y0
    t0, y, f0 = times[0], y0, f(times[0], y0)
    h = direction * _initial_step(f, times[0], y0, f0, direction, rtol, atol, blocks)
    stages, index = None, 1  # stages: the last accepted step's (7, n) slopes, from t_prev over ``step``
    t_prev, y_prev, step = t0, y0, h
    while index < len(times):
        # dense output for every output time inside the last accepted step [t_prev, t0]
        while index < len(times) and stages is not None and direction * (times[index] - t0) <= 0:
            x = (times[index] - t_prev) / (t0 - t_prev)
            powers = torch.full((4,), x, dtype=torch.float64, device=device).cumprod_(0)  # x, x², x³, x⁴
            weights = torch.mv(tableau.dense_t, powers).to(dtype)
            torch.addmv(y_prev, stages.T, weights, alpha=step, out=out[index])
            index += 1
        if index == len(times):
            break
        if not math.isfinite(h):
            h = 0.0
        if t0 + h == t0:
            raise RuntimeError(f"underflow in dt {h} at t = {t0} (a non-finite or exploding vector field?)")
        callback("callback_step", t0, y, h)
        t1 = t0 + h
        k = torch.empty(7, y0.numel(), dtype=dtype, device=device)
        k[0] = f0
        for i, (alpha, beta) in enumerate(zip(_ALPHA, tableau.beta)):
            y1 = torch.addmv(y, k[:i + 1].T, beta, alpha=h)
            k[i + 1] = f(t1 if alpha == 1.0 else t0 + alpha * h, y1)
        error = torch.mv(k.T, tableau.c_error).mul_(h)
        scale = torch.maximum(y.abs(), y1.abs()).mul_(rtol).add_(atol)
        ratio = _rms(error.div_(scale), blocks).item()
        if ratio <= 1:
            callback("callback_accept_step", t0, y, h)
            t_prev, y_prev, step, stages = t0, y, h, k
            t0, y, f0 = t1, y1, k[6]
        else:
            callback("callback_reject_step", t0, y, h)
        h *= _step_factor(ratio)
    return out, nfe


def _step_factor(ratio: float) -> float:
    """The next step over this one from the error ratio (torchdiffeq's ``_optimal_step_size``, NaN kept)."""
    if ratio == 0:
        return _IFACTOR
    if math.isnan(ratio):
        return math.nan
    return min(_IFACTOR, max(_SAFETY / ratio ** (1 / _ORDER), 1.0 if ratio < 1 else _DFACTOR))


def _initial_step(f, t0: float, y0: torch.Tensor, f0: torch.Tensor, direction: float, rtol: float, atol: float,
                  blocks: Blocks) -> float:
    """|h| of the first step (Hairer, Nørsett & Wanner §II.4; torchdiffeq's ``_select_initial_step``)."""
    scale = y0.abs().mul_(rtol).add_(atol)
    d0, d1 = _rms(y0 / scale, blocks).item(), _rms(f0 / scale, blocks).item()
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    f1 = f(t0 + direction * h0, y0 + (direction * h0) * f0)
    d2 = _rms((f1 - f0) / scale, blocks).item() / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / _ORDER)
    return min(100 * h0, h1)
