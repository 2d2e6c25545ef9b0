"""Tests for nodebench.methods: gradients against closed forms and finite differences, the two RK4 rules,
options and the registry."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from nodebench.errors import UserError
from nodebench.methods import METHODS, get_method

F64 = torch.float64
A, Z0, T = 0.8, 1.3, 1.0

# Stability polynomials R(x) of the fixed-step rules on dz/dt = a z (x = a h) and their derivatives.
STABILITY = {
    "euler": (lambda x: 1 + x, lambda x: 1.0, 1),
    "midpoint": (lambda x: 1 + x + x**2 / 2, lambda x: 1 + x, 2),
    "rk4": (lambda x: 1 + x + x**2 / 2 + x**3 / 6 + x**4 / 24, lambda x: 1 + x + x**2 / 2 + x**3 / 6, 4),
    "rk4_38": (lambda x: 1 + x + x**2 / 2 + x**3 / 6 + x**4 / 24, lambda x: 1 + x + x**2 / 2 + x**3 / 6, 4),
}


def linear_gradients(method: str, n_steps: int = 8, **options):
    """(dL/da, dL/dz0) for L = z(T) on dz/dt = a z, stepping on t = linspace(0, T, n_steps + 1)."""
    a = torch.tensor(A, dtype=F64, requires_grad=True)

    class Field(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(a)

        def forward(self, t, z):
            return self.a * z

    field = Field()
    z0 = torch.tensor([Z0], dtype=F64, requires_grad=True)
    solve = get_method(method).make_solve(list(field.parameters()), **options)
    z = solve(field, z0, torch.linspace(0, T, n_steps + 1, dtype=F64))
    z[-1].sum().backward()
    return float(field.a.grad), float(z0.grad)


@pytest.mark.parametrize("method", ["direct", "adjoint", "seminorm"])
def test_adaptive_gradient_matches_closed_form(method):
    grad_a, grad_z0 = linear_gradients(method, rtol=1e-10, atol=1e-12)
    assert grad_a == pytest.approx(Z0 * T * math.exp(A * T), rel=1e-7)
    assert grad_z0 == pytest.approx(math.exp(A * T), rel=1e-7)


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4", "rk4_38"])
def test_fixed_step_gradient_is_exact_for_the_discretisation_and_converges_at_its_order(method):
    R, dR, order = STABILITY[method]
    exact = Z0 * T * math.exp(A * T)
    errors = []
    for n in (8, 16):
        h = T / n
        grad_a, grad_z0 = linear_gradients(method, n_steps=n)
        # backprop through the solver is the exact derivative of the discrete solution z0 R(ah)^n
        assert grad_a == pytest.approx(Z0 * n * R(A * h) ** (n - 1) * dR(A * h) * h, rel=1e-12)
        assert grad_z0 == pytest.approx(R(A * h) ** n, rel=1e-12)
        errors.append(abs(grad_a - exact))
        assert errors[-1] <= 2.0 * h**order * exact  # O(h^p) against the closed form
    assert 0.7 * 2**order <= errors[0] / errors[1] <= 1.4 * 2**order, errors


def test_step_size_option_refines_the_fixed_grid():
    on_grid = linear_gradients("rk4", n_steps=8)
    # only the end points as output times, the step size set to T/8: the same 8 steps
    a = torch.tensor(A, dtype=F64)
    z = get_method("rk4").make_solve(step_size=T / 8)(lambda t, z: a * z, torch.tensor([Z0], dtype=F64),
                                                      torch.tensor([0.0, T], dtype=F64))
    R = STABILITY["rk4"][0]
    assert float(z[-1]) == pytest.approx(Z0 * R(A * T / 8) ** 8, rel=1e-13)
    assert on_grid[1] == pytest.approx(R(A * T / 8) ** 8, rel=1e-12)


def test_rk4_is_classic_and_rk4_38_is_the_three_eighths_rule():
    def f(t, y):  # nonlinear and time-dependent: the two rules differ here
        return t + y**2

    t0, h, y0 = 0.2, 0.3, 0.5
    k1 = f(t0, y0)
    k2 = f(t0 + h / 2, y0 + h / 2 * k1)
    k3 = f(t0 + h / 2, y0 + h / 2 * k2)
    k4 = f(t0 + h, y0 + h * k3)
    classic = y0 + h * (k1 + 2 * k2 + 2 * k3 + k4) / 6
    q1 = f(t0, y0)
    q2 = f(t0 + h / 3, y0 + h * q1 / 3)
    q3 = f(t0 + 2 * h / 3, y0 + h * (-q1 / 3 + q2))
    q4 = f(t0 + h, y0 + h * (q1 - q2 + q3))
    three_eighths = y0 + h * (q1 + 3 * q2 + 3 * q3 + q4) / 8
    assert abs(classic - three_eighths) > 1e-6  # the check below can tell them apart

    t = torch.tensor([t0, t0 + h], dtype=F64)
    y = torch.tensor([y0], dtype=F64)
    got_classic = float(get_method("rk4").make_solve()(f, y, t)[-1])
    got_38 = float(get_method("rk4_38").make_solve()(f, y, t)[-1])
    assert got_classic == pytest.approx(classic, abs=1e-14)
    assert got_38 == pytest.approx(three_eighths, abs=1e-14)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)).to(F64)

    def forward(self, t, y):
        return self.net(y)


def _mlp_loss_setup():
    field = MLP()
    gen = torch.Generator().manual_seed(4)
    y0 = torch.randn(3, 2, generator=gen, dtype=F64)
    t = torch.linspace(0, 1, 4, dtype=F64)
    target = torch.randn(4, 3, 2, generator=gen, dtype=F64)
    return field, y0, t, target


def _finite_difference(loss_fn, params, eps):
    """Central differences of ``loss_fn()`` with respect to every entry of ``params``."""
    grads = []
    with torch.no_grad():
        for p in params:
            g = torch.zeros_like(p)
            flat, gflat = p.view(-1), g.view(-1)
            for i in range(flat.numel()):
                old = float(flat[i])
                flat[i] = old + eps
                up = loss_fn()
                flat[i] = old - eps
                down = loss_fn()
                flat[i] = old
                gflat[i] = (up - down) / (2 * eps)
            grads.append(g)
    return torch.cat([g.reshape(-1) for g in grads])


def _method_gradient(method, field, y0, t, target, **options):
    params = list(field.parameters())
    for p in params:
        p.grad = None
    ys = get_method(method).make_solve(params, **options)(field, y0, t)
    torch.mean((ys - target) ** 2).backward()
    return torch.cat([p.grad.reshape(-1) for p in params])


def test_adaptive_gradients_agree_with_finite_differences_on_an_mlp():
    field, y0, t, target = _mlp_loss_setup()
    tight = dict(rtol=1e-10, atol=1e-12)

    def loss():
        return float(torch.mean((odeint(field, y0, t, method="dopri5", rtol=1e-12, atol=1e-13) - target) ** 2))

    fd = _finite_difference(loss, list(field.parameters()), eps=1e-5)
    assert fd.abs().max() > 1e-2  # a non-trivial gradient
    grads = {m: _method_gradient(m, field, y0, t, target, **tight) for m in ("direct", "adjoint", "seminorm")}
    for method, grad in grads.items():
        torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-7, msg=lambda s: f"{method}: {s}")
    torch.testing.assert_close(grads["adjoint"], grads["direct"], rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(grads["seminorm"], grads["direct"], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4", "rk4_38"])
def test_fixed_step_gradients_agree_with_finite_differences_of_the_discrete_loss(method):
    field, y0, t, target = _mlp_loss_setup()
    solve = get_method(method).make_solve(step_size=0.125)

    def loss():
        return float(torch.mean((solve(field, y0, t) - target) ** 2))

    fd = _finite_difference(loss, list(field.parameters()), eps=1e-6)
    grad = _method_gradient(method, field, y0, t, target, step_size=0.125)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-9)


def test_unknown_method_and_option_are_user_errors():
    with pytest.raises(UserError, match="unknown method 'rk5'.*direct"):
        get_method("rk5")
    with pytest.raises(UserError, match="tolerance"):
        get_method("direct").make_solve(tolerance=1e-3)


def test_registry_families():
    assert set(METHODS) == {"direct", "adjoint", "seminorm", "gq", "gq_batched", "bosh3", "adaptive_heun", "rk4",
                            "rk4_38", "euler", "midpoint", "sde_direct", "sde_adjoint", "snode"}
    assert {m.name for m in METHODS.values() if m.family == "OD"} == {"adjoint", "seminorm", "gq", "gq_batched",
                                                                       "sde_adjoint"}
    assert {m.name for m in METHODS.values() if m.adaptive} == {"direct", "adjoint", "seminorm", "gq", "gq_batched",
                                                                 "bosh3", "adaptive_heun"}
    assert {m.name for m in METHODS.values() if m.sde} == {"sde_direct", "sde_adjoint"}
    assert {m.name for m in METHODS.values() if m.family == "SP"} == {"snode"}



@pytest.mark.parametrize("method, norm", [("adjoint", None), ("seminorm", "seminorm")])
def test_adjoint_methods_pass_their_options_to_odeint_adjoint(method, norm, monkeypatch):
    # Seminorm and the plain adjoint give the same gradients up to the tolerance and need not differ
    # in NFE on a small problem, so check the wiring: the adjoint options and the adjoint parameters.
    import nodebench.methods as methods

    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return odeint_adjoint(*args, **kwargs)

    monkeypatch.setattr(methods, "odeint_adjoint", spy)
    field, y0, t, target = _mlp_loss_setup()
    params = list(field.parameters())
    get_method(method).make_solve(params, rtol=1e-4, atol=1e-6, adjoint_rtol=1e-3)(field, y0, t)
    assert seen["adjoint_options"].get("norm") == norm
    assert seen["method"] == "dopri5" and seen["rtol"] == 1e-4 and seen["atol"] == 1e-6
    assert seen["adjoint_rtol"] == 1e-3 and seen["adjoint_atol"] == 1e-6  # atol defaults to the forward one
    assert list(seen["adjoint_params"]) == params
