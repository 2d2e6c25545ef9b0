"""CNF log-determinants and their gradients against closed forms, for both trace estimators.

For the time-dependent linear field f(t, z) = cos(ω t) (A z + c) the flow map and Liouville's formula give

    z(T) = expm(A ΔG) (x + A⁻¹c) − A⁻¹c,   log|det ∂z(T)/∂x| = tr(A) ΔG,   ΔG = sin(ω T)/ω,

and Hutchinson's integrand with the solve's fixed probe ε is cos(ω t) εᵀAε, so its log-determinant estimate is
εᵀAε ΔG exactly. The gradients of a loss of (z(T), log-det) with respect to A, c, ω, the data x and the end
time T (``train_t1``) are checked against autograd through these formulas, for backprop through dopri5, the
torchdiffeq adjoint and the GQ adjoint. Before, the trace estimators were checked by value only (brute-force
Jacobians, a Monte-Carlo mean) and their gradients only method against method (tests/test_cnf.py).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from nodebench.cnf import CNF
from nodebench.methods import get_method

F64 = torch.float64
TIGHT = dict(rtol=1e-10, atol=1e-12)


class Forced(nn.Module):
    def __init__(self):
        super().__init__()
        self.A = nn.Parameter(torch.tensor([[-0.4, 0.9, 0.1], [-0.7, -0.2, 0.3], [0.2, -0.1, 0.5]], dtype=F64))
        self.c = nn.Parameter(torch.tensor([0.3, -0.6, 0.8], dtype=F64))
        self.omega = nn.Parameter(torch.tensor(1.3, dtype=F64))

    def forward(self, t, z):
        return torch.cos(self.omega * t) * (z @ self.A.T + self.c)


X = torch.tensor([[1.0, -0.5, 0.3], [0.2, 0.4, -1.0], [-0.7, 0.1, 0.6], [0.5, 0.5, -0.2]], dtype=F64)
COEF = torch.tensor([0.3, -1.2, 0.7, 2.0], dtype=F64)  # per-sample weights of the log-determinant in the loss


def loss_of(z, logdet):
    return (z ** 2).sum() + (z[:, 0] * z[:, 2]).sum() + (COEF * logdet).sum()


def probe(noise: str, seed: int) -> torch.Tensor:
    """The probe CNF._draw_noise draws first from a generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    if noise == "gaussian":
        return torch.randn(X.shape, generator=gen, dtype=F64)
    return torch.randint(0, 2, X.shape, generator=gen).to(F64) * 2 - 1


def closed_form(field, x, t1, eps):
    shift = torch.linalg.solve(field.A, field.c)
    g = torch.sin(field.omega * t1) / field.omega
    z = (x + shift) @ torch.linalg.matrix_exp(field.A * g).T - shift
    trace = torch.trace(field.A).expand(x.shape[0]) if eps is None else torch.einsum("bi,ij,bj->b", eps, field.A, eps)
    return z, trace * g


def solve_with(name, **tolerances):
    if name == "direct":
        return None  # the CNF's default: torchdiffeq dopri5, backprop
    options = tolerances or TIGHT

    def solve(func, y0, t):
        return get_method(name).make_solve(list(func.parameters()), **options)(func, y0, t)
    return solve


@pytest.mark.parametrize("trace, noise", [("exact", "gaussian"), ("hutchinson", "gaussian"),
                                          ("hutchinson", "rademacher")])
@pytest.mark.parametrize("name", ["direct", "adjoint", "gq"])
def test_cnf_log_determinant_and_gradients_match_the_closed_form(name, trace, noise):
    field = Forced()
    cnf = CNF(field, t1=0.9, trace=trace, noise=noise, train_t1=True, seed=7, solve=solve_with(name), **TIGHT).to(F64)
    x = X.clone().requires_grad_(True)
    z, logdet = cnf(x)
    eps = None if trace == "exact" else probe(noise, 7)
    z_want, logdet_want = closed_form(field, x, cnf.t1, eps)
    torch.testing.assert_close(z, z_want, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(logdet, logdet_want, rtol=1e-9, atol=1e-10)
    inputs = [x, field.A, field.c, field.omega, cnf.sqrt_t1]
    got = torch.autograd.grad(loss_of(z, logdet), inputs)
    want = torch.autograd.grad(loss_of(z_want, logdet_want), inputs)
    errors = {}
    for label, g, w in zip(("x", "A", "c", "omega", "sqrt_t1"), got, want, strict=True):
        scale = float(w.abs().max())
        assert scale > 1e-2, label
        error = float((g - w).abs().max()) / scale
        errors[label] = error
    # measured: ≤ 6e-10 everywhere except backprop's end-time gradient, the derivative of dopri5's dense
    # output (≤ 2.8e-8, as in tests/test_gradients_time_dependent.py); the adjoints' is f(T)·a(T)
    limit = {"sqrt_t1": 3e-7} if name == "direct" else {}
    assert all(e < limit.get(label, 1e-8) for label, e in errors.items()), (name, trace, noise, errors)


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
@pytest.mark.parametrize("name", ["direct", "adjoint", "gq"])
def test_float32_log_determinant_gradients_match_the_float64_closed_form(name, trace):
    """The density tasks' training dtype: field, data and solve in float32 (rtol 1e-6), the closed form in float64
    on the same parameters and probe."""
    field = Forced()
    cnf = CNF(field, t1=0.9, trace=trace, train_t1=True, seed=7, solve=solve_with(name, rtol=1e-6, atol=1e-7),
              rtol=1e-6, atol=1e-7).float()
    x = X.float().requires_grad_(True)
    z, logdet = cnf(x)
    assert z.dtype == logdet.dtype == torch.float32
    inputs = [x, field.A, field.c, field.omega, cnf.sqrt_t1]
    got = torch.autograd.grad(loss_of(z.double(), logdet.double()), inputs)
    exact_inputs = [v.detach().double().requires_grad_(True) for v in inputs]
    exact_field = SimpleNamespace(A=exact_inputs[1], c=exact_inputs[2], omega=exact_inputs[3])
    eps = None if trace == "exact" else probe("gaussian", 7).float().double()
    want = torch.autograd.grad(loss_of(*closed_form(exact_field, exact_inputs[0], exact_inputs[4] ** 2, eps)),
                               exact_inputs)
    for label, g, w in zip(("x", "A", "c", "omega", "sqrt_t1"), got, want, strict=True):
        assert g.dtype == torch.float32, label
        error = float((g.double() - w).abs().max()) / float(w.abs().max())
        assert error < 1e-4, (name, trace, label, error)  # measured ≤ 4.9e-6, backprop's end time's ≤ 3.2e-5


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
@pytest.mark.parametrize("name", ["direct", "adjoint", "gq"])
def test_inverse_gradients_match_the_closed_form(name, trace):
    """The inverse solves from T back to 0 (decreasing times, a tuple state): x = expm(−A ΔG)(z + A⁻¹c) − A⁻¹c and
    log|det ∂x/∂z| = −tr(A) ΔG (−εᵀAε ΔG for Hutchinson's probe); the gradients with respect to z, A, c, ω and
    the end time match autograd through these (before, the inverse was checked by value only)."""
    field = Forced()
    cnf = CNF(field, t1=0.9, trace=trace, train_t1=True, seed=7, solve=solve_with(name), **TIGHT).to(F64)
    z = X.clone().requires_grad_(True)
    x, logdet = cnf.inverse(z)
    shift = torch.linalg.solve(field.A, field.c)
    g = torch.sin(field.omega * cnf.t1) / field.omega
    x_want = (z + shift) @ torch.linalg.matrix_exp(-field.A * g).T - shift
    eps = probe("gaussian", 7)
    trace_want = torch.trace(field.A).expand(len(X)) if trace == "exact" else torch.einsum("bi,ij,bj->b", eps,
                                                                                             field.A, eps)
    logdet_want = -trace_want * g
    torch.testing.assert_close(x, x_want, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(logdet, logdet_want, rtol=1e-9, atol=1e-10)
    inputs = [z, field.A, field.c, field.omega, cnf.sqrt_t1]
    got = torch.autograd.grad(loss_of(x, logdet), inputs)
    want = torch.autograd.grad(loss_of(x_want, logdet_want), inputs)
    for label, gr, w in zip(("z", "A", "c", "omega", "sqrt_t1"), got, want, strict=True):
        scale = float(w.abs().max())
        assert scale > 1e-2, label
        error = float((gr - w).abs().max()) / scale
        # measured: ≤ 1.3e-10, backprop's end-time gradient (dopri5's dense output, as above) ≤ 3.5e-9
        assert error < 1e-8, (name, trace, label, error)


def test_inverse_log_determinant_is_minus_the_closed_form():
    field = Forced()
    cnf = CNF(field, t1=0.9, **TIGHT).to(F64)
    z, _ = closed_form(field, X, torch.tensor(0.9, dtype=F64), None)
    x_back, logdet_inverse = cnf.inverse(z.detach())
    torch.testing.assert_close(x_back, X, rtol=1e-9, atol=1e-10)
    want = -float(torch.trace(field.A.detach())) * math.sin(1.3 * 0.9) / 1.3
    torch.testing.assert_close(logdet_inverse, torch.full((4,), want, dtype=F64), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_linear_flow_log_density_is_the_gaussian_it_maps_to_the_base(trace):
    """f(z) = A z carries x = z(0) to z(T) = e^{AT} x, so under a standard normal base x ~ N(0, Σ) with
    Σ = e^{−AT} e^{−AᵀT}: the flow's log p(x) (data → base, log p(z(T)) + ∫ tr ∂f/∂z dt) is that Gaussian's.
    Hutchinson's estimate is exact here on average only; for one probe it is εᵀAε·T in place of tr(A)·T."""
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow

    class Linear(nn.Module):
        def __init__(self):
            super().__init__()
            self.A = nn.Parameter(torch.tensor([[-0.3, 0.8, 0.0], [-0.5, 0.4, 0.2], [0.1, 0.0, -0.6]], dtype=F64))

        def forward(self, t, z):
            return z @ self.A.T

    field, t1 = Linear(), 0.7
    flow = Flow(CNF(field, t1=t1, trace=trace, seed=3, **TIGHT), StandardNormal([3]).to(F64))
    back = torch.linalg.matrix_exp(-field.A.detach() * t1)
    gaussian = torch.distributions.MultivariateNormal(torch.zeros(3, dtype=F64), back @ back.T)
    want = gaussian.log_prob(X)
    if trace == "hutchinson":
        eps = probe("gaussian", 3)
        want = want + (torch.einsum("bi,ij,bj->b", eps, field.A.detach(), eps) - torch.trace(field.A.detach())) * t1
    with torch.no_grad():
        torch.testing.assert_close(flow.log_prob(X), want, rtol=1e-9, atol=1e-10)


def test_disc_opt_gradient_is_backprop_through_hand_written_classic_rk4():
    """Disc-Opt (``rk4``) differentiates the discrete CNF exactly: its loss and gradient are those of classic RK4
    written out stage by stage on the augmented state (z, Δ), to round-off, whatever the step."""
    from nodebench.cnf import AugmentedDynamics, ConcatSquashMLP

    torch.manual_seed(0)
    dynamics = ConcatSquashMLP(3, (8, 8), "tanh").to(F64)
    cnf = CNF(dynamics, t1=0.5, solve=get_method("rk4").make_solve(step_size=0.125))

    def loss(z, logdet):
        return (0.5 * (z ** 2).sum(1) - logdet).mean()
    params = list(dynamics.parameters())
    got = torch.autograd.grad(loss(*cnf(X)), params)
    field, h = AugmentedDynamics(dynamics), 0.125
    y, t = (X, torch.zeros(4, dtype=F64)), torch.tensor(0.0, dtype=F64)

    def add(y, k, c):
        return tuple(a + c * b for a, b in zip(y, k))
    for _ in range(4):
        k1 = field(t, y)
        k2 = field(t + h / 2, add(y, k1, h / 2))
        k3 = field(t + h / 2, add(y, k2, h / 2))
        k4 = field(t + h, add(y, k3, h))
        y = tuple(a + h / 6 * (b1 + 2 * b2 + 2 * b3 + b4) for a, b1, b2, b3, b4 in zip(y, k1, k2, k3, k4))
        t = t + h
    want = torch.autograd.grad(loss(*y), params)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-14)
