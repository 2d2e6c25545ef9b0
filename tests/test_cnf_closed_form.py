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


def solve_with(name):
    if name == "direct":
        return None  # the CNF's default: torchdiffeq dopri5, backprop

    def solve(func, y0, t):
        return get_method(name).make_solve(list(func.parameters()), **TIGHT)(func, y0, t)
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


def test_inverse_log_determinant_is_minus_the_closed_form():
    field = Forced()
    cnf = CNF(field, t1=0.9, **TIGHT).to(F64)
    z, _ = closed_form(field, X, torch.tensor(0.9, dtype=F64), None)
    x_back, logdet_inverse = cnf.inverse(z.detach())
    torch.testing.assert_close(x_back, X, rtol=1e-9, atol=1e-10)
    want = -float(torch.trace(field.A.detach())) * math.sin(1.3 * 0.9) / 1.3
    torch.testing.assert_close(logdet_inverse, torch.full((4,), want, dtype=F64), rtol=1e-9, atol=1e-10)
