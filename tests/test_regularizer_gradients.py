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
(tests/test_regularizers.py), which a cost that does not reach the parameters passes. The gradient with respect to
z0 is checked too, with z0 requiring grad (RNODE's cost raised in an adjoint's forward solve then), on a tensor
state solved forwards and on a CNF's (z, log-det) state solved backwards in time (a CNF's inverse, R = −r(t1)), and
with a field that is a plain function rather than a module.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nodebench.cnf import AugmentedDynamics
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


def closed_form_penalty(field, kind, order, z0, t):
    """λ R over the interval t traverses, either direction (R ≥ 0), from z0 at t[0]."""
    x, w = np.polynomial.legendre.leggauss(40)
    a, b = float(t[0]), float(t[-1])
    lo, hi = min(a, b), max(a, b)
    nodes = torch.tensor((hi - lo) / 2 * x + (lo + hi) / 2, dtype=F64)
    weights = torch.tensor((hi - lo) / 2 * w, dtype=F64)
    A, om = field.A, field.omega
    shift = torch.linalg.solve(A, field.c)
    eps = torch.randn(z0.shape, generator=torch.Generator().manual_seed(SEED), dtype=F64)
    total = 0.0
    for s, weight in zip(nodes, weights, strict=True):
        g, dg, ddg = torch.cos(om * s), -om * torch.sin(om * s), -om ** 2 * torch.cos(om * s)
        state = (z0 + shift) @ torch.linalg.matrix_exp(A * (torch.sin(om * s) - torch.sin(om * a)) / om).T  # w(s)
        p1, p2, p3 = (state @ torch.linalg.matrix_power(A, k).T for k in (1, 2, 3))  # A^k w as rows
        if kind == "rnode":
            cost = 0.5 * (g * p1).pow(2).mean() + (g * eps @ A).pow(2).mean()
        else:
            dk = {1: g * p1, 2: dg * p1 + g ** 2 * p2, 3: ddg * p1 + 3 * g * dg * p2 + g ** 3 * p3}[order]
            cost = dk.pow(2).mean()
        total = total + weight * cost
    return LAM * total


def closed_form_ys(field, z0, t):
    shift = torch.linalg.solve(field.A, field.c)
    g = torch.sin(field.omega * t) / field.omega
    return torch.stack([(z0 + shift) @ torch.linalg.matrix_exp(field.A * (gi - g[0])).T - shift for gi in g])


CASES = [("direct", "forward"), ("adjoint", "forward"), ("adjoint", "adjoint_only"), ("gq", "forward"),
         ("gq", "adjoint_only")]


@pytest.mark.parametrize("state", ["tensor-forward", "cnf-backward"])
@pytest.mark.parametrize("kind, order", [("speed", 2), ("speed", 3), ("rnode", None)], ids=["R2", "R3", "rnode"])
@pytest.mark.parametrize("method, variant", CASES, ids=[f"{m}-{v}" for m, v in CASES])
def test_penalty_gradient_matches_the_closed_form(method, variant, kind, order, state):
    check_gradients(method, variant, kind, order, state, plain_function=False)


FUNCTION_CASES = [("direct", "forward"), ("adjoint", "forward"), ("gq", "adjoint_only")]


@pytest.mark.parametrize("kind, order", [("speed", 2), ("rnode", None)], ids=["R2", "rnode"])
@pytest.mark.parametrize("method, variant", FUNCTION_CASES, ids=[f"{m}-{v}" for m, v in FUNCTION_CASES])
def test_penalty_gradient_of_a_plain_function_field(method, variant, kind, order):
    """A field that is a plain function closing over its parameters, as torchdiffeq accepts (the adjoints given
    them as params): before, torchdiffeq's callback lookup on the regulariser's wrapper raised KeyError 'field'."""
    check_gradients(method, variant, kind, order, "tensor-forward", plain_function=True)


@pytest.mark.parametrize("method", ["adjoint", "gq"])
def test_plain_function_field_without_adjoint_params_is_refused_as_without_a_regulariser(method):
    """An adjoint cannot find a plain function's parameters: it must ask for them (torchdiffeq's ValueError), not
    take the regulariser's wrapper module, which holds none, and return no parameter gradient."""
    module = Forced()
    regularized = Regularizer("speed", lam=LAM).wrap(get_method(method).make_solve(**TIGHT))
    for solve in (get_method(method).make_solve(**TIGHT), regularized):
        with pytest.raises(ValueError, match="adjoint_params"):
            solve(lambda t, z: module(t, z), Z0, T)


def check_gradients(method, variant, kind, order, state, plain_function):
    module = Forced()
    field = (lambda t, z: module(t, z)) if plain_function else module
    params = list(module.parameters())
    reg = Regularizer(kind, order=order or 2, lam=LAM, variant=variant, seed=SEED)
    solve = reg.wrap(get_method(method).make_solve(params, **TIGHT))
    z0 = Z0.clone().requires_grad_(True)
    if state == "tensor-forward":
        t, ys = T, solve(field, z0, T)
    else:  # regularised on f alone (AugmentedDynamics.state_field); the log-det does not enter R
        t = T.flip(0)
        ys, _ = solve(AugmentedDynamics(field), (z0, torch.zeros(len(Z0), dtype=F64)), t)
    got = torch.autograd.grad((ys ** 2).sum() + solve.penalty, [z0, *params])
    penalty = closed_form_penalty(module, kind, order, z0, t)
    want = torch.autograd.grad((closed_form_ys(module, z0, t) ** 2).sum() + penalty, [z0, *params], retain_graph=True)
    if variant == "forward":
        assert float(solve.penalty.detach()) == pytest.approx(float(penalty.detach()), rel=1e-8)
    want_penalty_only = torch.autograd.grad(penalty, [z0, *params])
    for label, g, w, wp in zip(("z0", "A", "c", "omega"), got, want, want_penalty_only, strict=True):
        # the penalty moves the gradient (z0 less: RNODE's Frobenius term does not depend on z on a linear field)
        assert float(wp.abs().max()) > (1e-3 if label == "z0" else 1e-2) * float(w.abs().max()), label
        error = float((g - w).abs().max() / w.abs().max())
        # measured ≤ 5.3e-9 solving forwards; backwards ≤ 1.2e-7 (R3's d/dω, adjoint_only, gq), else ≤ 2.6e-8
        limit = 3e-7 if state == "cnf-backward" else 2e-8
        assert error < limit, f"{method} {variant} {kind}{order or ''} {state}: d/d{label} relative error {error:.2e}"
