"""Gradients of the running-cost regularisers (TayNODE's R_K, RNODE) against closed forms.

On dz/dt = g(t)(A z + c), g = cos(ω t), with w = z + A⁻¹c = expm(A ΔG(t)) w0:

    z'   = g A w,
    z''  = g' A w + g² A² w,
    z''' = g'' A w + 3 g g' A² w + g³ A³ w,

so R_K = ∫_{t0}^{t1} mean_batch mean_dims (d^K z/dt^K)² dt has a closed form up to a 1-D integral, done here
by a 40-node Gauss–Legendre rule (exact to round-off for this analytic integrand). RNODE's cost is
½ mean(f²) + mean((εᵀ ∂f/∂z)²) with εᵀ ∂f/∂z = g(t) εᵀA. The parameter gradients of task loss + λ·R through
each method and variant are checked against autograd through these formulas. Before, the penalty's value
was checked against a closed form (autonomous field) and its gradient only variant against variant
(tests/test_regularizers.py), which a cost that does not reach the parameters passes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nodebench.methods import get_method
from nodebench.regularizers import Regularizer

F64 = torch.float64
TIGHT = dict(rtol=1e-10, atol=1e-12)
Z0 = torch.tensor([[1.0, 0.5], [-0.2, 0.8], [0.6, -0.4]], dtype=F64)
T = torch.tensor([0.2, 0.7, 1.2], dtype=F64)  # t0 ≠ 0; R integrates over [t0, t_end]
LAM = 0.7
SEED = 3


class Forced(nn.Module):
    def __init__(self):
        super().__init__()
        self.A = nn.Parameter(torch.tensor([[-0.3, 1.0], [-1.0, -0.2]], dtype=F64))
        self.c = nn.Parameter(torch.tensor([0.4, -0.3], dtype=F64))
        self.omega = nn.Parameter(torch.tensor(1.5, dtype=F64))

    def forward(self, t, z):
        return torch.cos(self.omega * t) * (z @ self.A.T + self.c)


def closed_form_penalty(field, kind, order):
    x, w = np.polynomial.legendre.leggauss(40)
    a, b = float(T[0]), float(T[-1])
    nodes = torch.tensor((b - a) / 2 * x + (a + b) / 2, dtype=F64)
    weights = torch.tensor((b - a) / 2 * w, dtype=F64)
    A, om = field.A, field.omega
    shift = torch.linalg.solve(A, field.c)
    eps = torch.randn(Z0.shape, generator=torch.Generator().manual_seed(SEED), dtype=F64)
    total = 0.0
    for t, weight in zip(nodes, weights, strict=True):
        g, dg, ddg = torch.cos(om * t), -om * torch.sin(om * t), -om ** 2 * torch.cos(om * t)
        state = (Z0 + shift) @ torch.linalg.matrix_exp(A * (torch.sin(om * t) - torch.sin(om * a)) / om).T  # w(t)
        p1, p2, p3 = (state @ torch.linalg.matrix_power(A, k).T for k in (1, 2, 3))  # A^k w as rows
        if kind == "rnode":
            cost = 0.5 * (g * p1).pow(2).mean() + (g * eps @ A).pow(2).mean()
        else:
            dk = {1: g * p1, 2: dg * p1 + g ** 2 * p2, 3: ddg * p1 + 3 * g * dg * p2 + g ** 3 * p3}[order]
            cost = dk.pow(2).mean()
        total = total + weight * cost
    return LAM * total


def closed_form_ys(field):
    shift = torch.linalg.solve(field.A, field.c)
    g = torch.sin(field.omega * T) / field.omega
    return torch.stack([(Z0 + shift) @ torch.linalg.matrix_exp(field.A * (gi - g[0])).T - shift for gi in g])


CASES = [("direct", "forward"), ("adjoint", "forward"), ("adjoint", "adjoint_only"), ("gq", "adjoint_only")]


@pytest.mark.parametrize("kind, order", [("speed", 2), ("speed", 3), ("rnode", None)], ids=["R2", "R3", "rnode"])
@pytest.mark.parametrize("method, variant", CASES, ids=[f"{m}-{v}" for m, v in CASES])
def test_penalty_gradient_matches_the_closed_form(method, variant, kind, order):
    field = Forced()
    params = list(field.parameters())
    reg = Regularizer(kind, order=order or 2, lam=LAM, variant=variant, seed=SEED)
    solve = reg.wrap(get_method(method).make_solve(params, **TIGHT))
    ys = solve(field, Z0, T)
    got = torch.autograd.grad((ys ** 2).sum() + solve.penalty, params)
    penalty = closed_form_penalty(field, kind, order)
    want = torch.autograd.grad((closed_form_ys(field) ** 2).sum() + penalty, params, retain_graph=True)
    if variant == "forward":
        assert float(solve.penalty.detach()) == pytest.approx(float(penalty.detach()), rel=1e-8)
    want_penalty_only = torch.autograd.grad(penalty, params)
    for label, g, w, wp in zip(("A", "c", "omega"), got, want, want_penalty_only, strict=True):
        assert float(wp.abs().max()) > 1e-2 * float(w.abs().max()), label  # the penalty moves the gradient
        error = float((g - w).abs().max() / w.abs().max())
        # measured ≤ 5.3e-9
        assert error < 1e-7, f"{method} {variant} {kind}{order or ''}: d/d{label} relative error {error:.2e}"
