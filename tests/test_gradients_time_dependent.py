"""Every registered ODE training method's gradient on a time-dependent linear ODE with a closed-form solution.

    dz/dt = cos(ω t) · (A z + c),   z(t) = expm(A ΔG(t)) (z0 + A⁻¹c) − A⁻¹c,   ΔG(t) = (sin ωt − sin ωt0)/ω

with parameters of three shapes (the matrix A, the vector c, the scalar ω), a batch of initial states, several
output times starting at t0 ≠ 0 (forward and backward in time), and a loss that weights every output. The
reference gradients are autograd through the closed form (``torch.linalg.matrix_exp``), so they are exact to
round-off. Before, the registered methods' closed-form tests used the autonomous z' = a z with one output time
(tests/test_methods.py; direct, adjoint, seminorm and the fixed-step rules), the GQ tests added linear,
oscillator and ConstantODE fields (tests/test_gq.py), and bosh3 and adaptive_heun had no gradient test at all.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from nodebench.methods import get_method

F64 = torch.float64


class Forced(nn.Module):
    """f(t, z) = cos(ω t) (z Aᵀ + c) on row states z (B, D)."""

    def __init__(self):
        super().__init__()
        self.A = nn.Parameter(torch.tensor([[-0.4, 0.9, 0.1], [-0.7, -0.2, 0.3], [0.2, -0.1, -0.5]], dtype=F64))
        self.c = nn.Parameter(torch.tensor([0.3, -0.6, 0.8], dtype=F64))
        self.omega = nn.Parameter(torch.tensor(1.7, dtype=F64))

    def forward(self, t, z):
        return torch.cos(self.omega * t) * (z @ self.A.T + self.c)

    def exact(self, y0, t):
        shift = torch.linalg.solve(self.A, self.c)  # A⁻¹c
        g = torch.sin(self.omega * t) / self.omega
        return torch.stack([(y0 + shift) @ torch.linalg.matrix_exp(self.A * (gi - g[0])).T - shift for gi in g])


Y0 = torch.tensor([[1.0, -0.5, 0.3], [0.2, 0.4, -1.0]], dtype=F64)
FORWARD_T = torch.tensor([0.3, 0.8, 1.4, 2.0], dtype=F64)  # t0 ≠ 0, unequal intervals
BACKWARD_T = torch.tensor([2.0, 1.1, 0.5], dtype=F64)
WEIGHTS = [0.5, 1.0, -0.3, 0.7]
TARGET_SEED = 5


def loss_of(ys):
    """Σ_i w_i (Σ ys[i]² + Σ R_i ⊙ ys[i]): every output enters, none symmetrically."""
    gen = torch.Generator().manual_seed(TARGET_SEED)
    return sum(w * ((y ** 2).sum() + (torch.randn(y.shape, generator=gen, dtype=F64).to(y.dtype) * y).sum())
               for w, y in zip(WEIGHTS[:len(ys)], ys, strict=True))


def gradients(solve, t, with_t=True, dtype=F64):
    """(dL/dy0, [dL/dt,] dL/dA, dL/dc, dL/dω) through ``solve(field, y0, t)``, all in ``dtype``."""
    field = Forced().to(dtype)
    y0 = Y0.to(dtype).requires_grad_(True)
    t = t.to(dtype).requires_grad_(with_t)
    inputs = [y0, t] if with_t else [y0]
    return torch.autograd.grad(loss_of(solve(field, y0, t)), inputs + list(field.parameters()))


def exact_gradients(t, with_t=True):
    return gradients(lambda field, y0, s: field.exact(y0, s), t, with_t)


def method_solve(name, **options):
    def solve(field, y0, t):
        return get_method(name).make_solve(list(field.parameters()), **options)(field, y0, t)
    return solve


def assert_all_close(got, want, tol, tol_t, label):
    """max |got − want| ≤ tol · max |want| for each gradient (tol_t for the output times')."""
    names = ["y0", "t", "A", "c", "omega"] if len(got) == 5 else ["y0", "A", "c", "omega"]
    for name, g, w in zip(names, got, want, strict=True):
        scale = float(w.abs().max())
        assert scale > 1e-2, (label, name)  # every reference gradient is non-trivial
        error = float((g - w).abs().max()) / scale
        assert error <= (tol_t if name == "t" else tol), f"{label}, d/d{name}: relative error {error:.2e}"


# (method, solver options, tolerance of the gradients, of the time gradients). Measured maximal relative
# errors (forward, backward in time): direct 5e-10 / 2.9e-8 (t); adjoint, seminorm, gq, gq_batched ≤ 6e-10
# including t; bosh3 (rtol 1e-8) 1.0e-5 / 4.0e-3 (t); adaptive_heun 7.1e-6 / 2.3e-3 (t). Backprop's time gradient is the
# derivative of torchdiffeq's dense-output interpolant: dopri5's is 4th order, bosh3's is fitted through a
# midpoint value y0 + h/2·k2 that is only first-order accurate (torchdiffeq 0.2.5 ``_BS_C_MID``; bosh3's
# output values converge as rtol^0.7 on this problem: 1.8e-7 at rtol 1e-10, where dopri5 gives 2.3e-10), and
# adaptive Heun's is low order too, so their time gradients converge slowly.
ADAPTIVE = [
    ("direct", dict(rtol=1e-10, atol=1e-12), 1e-8, 3e-7),
    ("adjoint", dict(rtol=1e-10, atol=1e-12), 1e-8, 1e-8),
    ("seminorm", dict(rtol=1e-10, atol=1e-12), 1e-8, 1e-8),
    ("gq", dict(rtol=1e-10, atol=1e-12, gtol=0.5), 1e-8, 1e-8),
    ("gq_batched", dict(rtol=1e-10, atol=1e-12, gtol=0.5), 1e-8, 1e-8),
    ("bosh3", dict(rtol=1e-8, atol=1e-10), 1e-4, 1e-2),
    ("adaptive_heun", dict(rtol=1e-5, atol=1e-7), 5e-5, 1e-2),
]


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("name, options, tol, tol_t", ADAPTIVE, ids=[m[0] for m in ADAPTIVE])
def test_adaptive_methods_match_the_closed_form_gradients(name, options, tol, tol_t, direction):
    t = FORWARD_T if direction == "forward" else BACKWARD_T
    want = exact_gradients(t)
    got = gradients(method_solve(name, **options), t)
    assert_all_close(got, want, tol, tol_t, label=f"{name} {direction}")


# float32: the solve at rtol 1e-6 (gq's quadrature at gtol 0.5), against the float64 closed form. Measured maximal
# relative errors (forward, backward in time): ≤ 1.5e-5, the output times' ≤ 3.7e-5 (direct, backward).
FLOAT32 = ["direct", "adjoint", "seminorm", "gq", "gq_batched"]


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("name", FLOAT32)
def test_float32_gradients_match_the_closed_form(name, direction):
    t = FORWARD_T if direction == "forward" else BACKWARD_T
    want = exact_gradients(t)
    options = dict(rtol=1e-6, atol=1e-7, **({"gtol": 0.5} if name.startswith("gq") else {}))
    got = gradients(method_solve(name, **options), t, dtype=torch.float32)
    assert all(g.dtype == torch.float32 for g in got)
    assert_all_close([g.double() for g in got], want, 1e-4, 2e-4, label=f"{name} {direction} float32")


# order p and a bound on the relative gradient error at h = 0.025 (measured forwards: 0.18, 2.2e-4, 8.4e-9, 2.3e-8;
# backwards in time: 3.2e-2, 5.1e-4, 8.3e-9, 1.8e-8)
FIXED = {"euler": (1, 0.3), "midpoint": (2, 1e-3), "rk4": (4, 5e-8), "rk4_38": (4, 1e-7)}


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("name", list(FIXED))
def test_fixed_step_gradients_converge_to_the_closed_form_at_their_order(name, direction):
    """The discrete gradient's error against the closed form falls as h^p when h halves (p the order)."""
    order, bound = FIXED[name]
    t = FORWARD_T if direction == "forward" else BACKWARD_T
    want = exact_gradients(t, with_t=False)
    errors = []
    for h in (0.05, 0.025):
        got = gradients(method_solve(name, step_size=h), t, with_t=False)
        errors.append(max(float((g - w).abs().max() / w.abs().max()) for g, w in zip(got, want, strict=True)))
    assert errors[1] < bound, errors
    assert 0.6 * 2 ** order < errors[0] / errors[1] < 1.6 * 2 ** order, errors


class TimeMLP(nn.Module):
    """A non-linear, time-dependent field: f(t, z) = W2 tanh(W1 [z, sin t] + b1) + b2."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)).to(F64)

    def forward(self, t, z):
        return self.net(torch.cat([z, torch.sin(t).expand(z.shape[0], 1)], dim=-1))


@pytest.mark.parametrize("name, options, tol", [("bosh3", dict(rtol=1e-8, atol=1e-10), 3e-5),
                                                ("adaptive_heun", dict(rtol=1e-5, atol=1e-7), 3e-5)])
def test_low_order_adaptive_methods_match_tight_direct_backprop_on_a_nonlinear_field(name, options, tol):
    """No closed form here: the reference is backprop through dopri5 at rtol 1e-12 (itself checked against the
    closed form above and against finite differences in tests/test_methods.py). Measured relative errors:
    bosh3 4.4e-6, adaptive_heun 4.3e-6."""
    field = TimeMLP()
    gen = torch.Generator().manual_seed(4)
    y0 = torch.randn(3, 2, generator=gen, dtype=F64)
    t = torch.tensor([0.2, 0.6, 1.1, 1.5], dtype=F64)
    target = torch.randn(4, 3, 2, generator=gen, dtype=F64)
    params = list(field.parameters())

    def grads(method, **opts):
        y = y0.clone().requires_grad_(True)
        ys = get_method(method).make_solve(params, **opts)(field, y, t)
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(((ys - target) ** 2).mean(), [y, *params])])

    want = grads("direct", rtol=1e-12, atol=1e-13)
    got = grads(name, **options)
    assert float(want.abs().max()) > 1e-2
    error = float((got - want).abs().max() / want.abs().max())
    assert error < tol, error


@pytest.mark.parametrize("name", list(FIXED))
def test_trained_output_times_raise_no_warning_with_a_step_size(name):
    """The step-size check reads the span once: with t requiring grad, a read not detached made torch warn
    ("Converting a tensor with requires_grad=True to a scalar"), once a process unless warnings are always on."""
    warn_always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            gradients(method_solve(name, step_size=0.1), FORWARD_T)
    finally:
        torch.set_warn_always(warn_always)


@pytest.mark.parametrize("name", list(FIXED))
def test_fixed_step_gradient_is_zero_at_an_output_time_on_the_step_grid(name):
    """Pins torchdiffeq 0.2.5's behaviour, documented in README ("Training methods") and nodebench.methods: with
    ``step_size``, an output time between grid points gets the gradient of the linear interpolation, one exactly on
    a grid point none (``FixedGridODESolver._linear_interp`` returns the step's end value y1 when t == t1), t0's
    taking its share. If this fails, torchdiffeq changed: update those docs."""
    h = 0.025
    grid = torch.arange(0, 80, dtype=F64) * h + FORWARD_T[0]  # torchdiffeq's grid from step_size
    assert bool((grid == FORWARD_T[1]).any()) and not bool((grid == FORWARD_T[2]).any())  # 0.8 on it, 1.4 off it
    exact_t = exact_gradients(FORWARD_T)[1]
    on_grid_t = gradients(method_solve(name, step_size=h), FORWARD_T)[1]
    off_grid_t = gradients(method_solve(name, step_size=h * 0.97), FORWARD_T)[1]  # every output time off the grid
    # measured relative errors of the two checks below: euler 5.0e-2 and 4.3e-2, midpoint, rk4 and rk4_38 ≤ 3.7e-3
    tol = 0.1 if FIXED[name][0] == 1 else 0.01
    assert float(on_grid_t[1]) == 0.0 != float(exact_t[1])
    # t0 takes the gradient t1 lost
    assert float(on_grid_t[0]) == pytest.approx(float(exact_t[0] + exact_t[1]), rel=tol)
    # off the grid every time gradient is the interpolation's
    assert float((off_grid_t - exact_t).abs().max() / exact_t.abs().max()) < tol
