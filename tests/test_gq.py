"""Tests for nodebench.gq: the Gauss–Legendre quadrature adjoint against closed-form solutions and tight
direct backprop (constant, linear, sine, and the 2-D cubic of the official gradient tests), for both
node-VJP variants, including gradients with respect to the output times."""

from __future__ import annotations

import math
import runpy
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torchdiffeq import odeint

from benchmark_scripts import assert_refused_in_one_line, run_script

from nodebench.gq import gauss_legendre, node_count, odeint_adjoint_gq
from nodebench.gq import quadrature as quadrature_module
from nodebench.harness import count_nfe
from nodebench.methods import get_method

F64 = torch.float64
QUADRATURES = ["sequential", "batched"]
TIGHT = dict(rtol=1e-10, atol=1e-12)


class Constant(nn.Module):
    """dy/dt = a + (y − (a t + b))⁵ (torchdiffeq's ConstantODE): y = a t + b when y(0) = b. In general
    e = y − (a t + b) solves e' = e⁵, so e(t) = e₀ (1 − 4 e₀⁴ (t − t₀))^(−1/4)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.2, dtype=F64))
        self.b = nn.Parameter(torch.tensor(3.0, dtype=F64))

    def forward(self, t, y):
        return self.a + (y - (self.a * t + self.b)) ** 5

    def exact(self, t, y0):
        e0 = y0 - (self.a * t[0] + self.b)
        ts = t.reshape(-1, *([1] * y0.dim()))
        return self.a * ts + self.b + e0 * (1 - 4 * e0 ** 4 * (ts - t[0])) ** -0.25


class Linear(nn.Module):
    """dy/dt = A y: y(t) = expm(A t) y0."""

    def __init__(self, dim=3, dtype=F64):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.A = nn.Parameter(0.3 * torch.randn(dim, dim, generator=g, dtype=dtype) - 0.2 * torch.eye(dim, dtype=dtype))

    def forward(self, t, y):
        return y @ self.A.T

    def exact(self, t, y0):
        return torch.stack([y0 @ torch.linalg.matrix_exp(self.A * (ti - t[0])).T for ti in t])


class Oscillator(nn.Module):
    """x'' = −ω² x as [x, v]' = [v, −ω² x]: x = x0 cos ωt + (v0/ω) sin ωt (the sine problem)."""

    def __init__(self):
        super().__init__()
        self.omega = nn.Parameter(torch.tensor(1.3, dtype=F64))

    def forward(self, t, y):
        return torch.stack([y[..., 1], -self.omega ** 2 * y[..., 0]], dim=-1)

    def exact(self, t, y0):
        w, x0, v0 = self.omega, y0[..., 0], y0[..., 1]
        ts = (t - t[0]).reshape(-1, *([1] * x0.dim()))
        x = x0 * torch.cos(w * ts) + v0 / w * torch.sin(w * ts)
        v = -x0 * w * torch.sin(w * ts) + v0 * torch.cos(w * ts)
        return torch.stack([x, v], dim=-1)


class Cubic(nn.Module):
    """dz/dt = (z³) A with A = [[−0.1, 2], [−2, −0.1]], the official code's gradient test."""

    def __init__(self):
        super().__init__()
        self.A = nn.Parameter(torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=F64))

    def forward(self, t, z):
        return (z ** 3) @ self.A


def gradients(field, y0, t, solve, weights):
    """∇ of L = Σ_i wᵢ · Σ ys[i]² with respect to (y0, t, *params), from ``solve(field, y0, t)``."""
    params = list(field.parameters())
    y0 = y0.detach().clone().requires_grad_(True)
    t = t.detach().clone().requires_grad_(True)
    ys = solve(field, y0, t)
    loss = sum(w * (y ** 2).sum() for w, y in zip(weights, ys))
    return torch.autograd.grad(loss, [y0, t, *params])


def gq(quadrature, gtol=0.2, **tols):
    return lambda f, y0, t: odeint_adjoint_gq(f, y0, t, gtol=gtol, quadrature=quadrature, **(tols or TIGHT))


def exact(f, y0, t):
    return f.exact(t, y0)


def assert_close(got, want, rtol, atol=0.0):
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=rtol, atol=atol)


T_GRID = torch.tensor([0.0, 0.4, 1.1, 1.5, 2.0], dtype=F64)
WEIGHTS = [0.5, 1.0, -0.3, 0.7, 1.2]  # every output time enters the loss, the first included


@pytest.mark.parametrize("quadrature", QUADRATURES)
@pytest.mark.parametrize("problem, y0", [
    (Constant, torch.full((2, 1), 3.0, dtype=F64)),
    (Linear, torch.tensor([[1.0, -0.5, 0.3], [0.2, 0.4, -1.0]], dtype=F64)),
    (Oscillator, torch.tensor([[1.0, 0.5], [-0.3, 0.8]], dtype=F64)),
], ids=["constant", "linear", "sine"])
def test_gradients_match_the_closed_form_solution(problem, y0, quadrature):
    field = problem()
    want = gradients(field, y0, T_GRID, exact, WEIGHTS)
    got = gradients(field, y0, T_GRID, gq(quadrature), WEIGHTS)
    assert_close(got, want, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("quadrature", QUADRATURES)
def test_cubic_gradients_match_tight_direct_backprop(quadrature):
    """The official gradient test: 10 times on [0, 25]; its tolerances were 3e-4 (y0), 1e-4 (t), 2e-3 (A);
    at tight solver tolerances and 64-node rules we match far closer."""
    field = Cubic()
    y0 = torch.tensor([[2.0, 0.0]], dtype=F64)
    t = torch.linspace(0, 25, 10, dtype=F64)
    weights = [1.0] * 10
    want = gradients(field, y0, t, lambda f, y, s: odeint(f, y, s, **TIGHT), weights)
    got = gradients(field, y0, t, gq(quadrature), weights)
    assert_close(got, want, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("quadrature", QUADRATURES)
def test_float32_gradients(quadrature):
    field = Linear(dtype=torch.float32)
    y0 = torch.tensor([[1.0, -0.5, 0.3]])
    t = T_GRID.float()
    want = gradients(field, y0, t, exact, WEIGHTS)
    got = gradients(field, y0, t, gq(quadrature, rtol=1e-6, atol=1e-7), WEIGHTS)
    assert all(g.dtype == torch.float32 for g in got)
    assert_close(got, want, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("times", ["increasing", "decreasing"])
@pytest.mark.parametrize("quadrature", QUADRATURES)
def test_tuple_states(quadrature, times):
    """A tuple state (x, v) gives the closed-form gradients of the stacked state, the output times' included,
    forwards and backwards in time."""
    osc = Oscillator()

    class TupleField(nn.Module):
        def __init__(self):
            super().__init__()
            self.osc = osc

        def forward(self, t, state):
            x, v = state
            return v, -self.osc.omega ** 2 * x

    t = (T_GRID if times == "increasing" else T_GRID.flip(0)).clone().requires_grad_(True)
    x0 = torch.tensor([1.0, -0.3], dtype=F64, requires_grad=True)
    v0 = torch.tensor([0.5, 0.8], dtype=F64, requires_grad=True)
    xs, vs = odeint_adjoint_gq(TupleField(), (x0, v0), t, quadrature=quadrature, **TIGHT)
    assert xs.shape == vs.shape == (len(T_GRID), 2)
    (xs[-1] ** 2 + vs[2] + 0.5 * xs[1] * vs[1]).sum().backward()
    y0 = torch.stack([x0, v0], dim=-1).detach().requires_grad_(True)
    s = t.detach().clone().requires_grad_(True)
    ref = osc.exact(s, y0)
    loss = (ref[-1, :, 0] ** 2 + ref[2, :, 1] + 0.5 * ref[1, :, 0] * ref[1, :, 1]).sum()
    grads = torch.autograd.grad(loss, [y0, s, osc.omega])
    torch.testing.assert_close(torch.stack([x0.grad, v0.grad], -1), grads[0], rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(t.grad, grads[1], rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(osc.omega.grad, grads[2], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("quadrature", QUADRATURES)
def test_decreasing_times(quadrature):
    field = Linear()
    y0 = torch.tensor([[1.0, -0.5, 0.3]], dtype=F64)
    t = torch.tensor([2.0, 1.2, 0.5], dtype=F64)
    want = gradients(field, y0, t, exact, [1.0, 0.5, 2.0])
    got = gradients(field, y0, t, gq(quadrature), [1.0, 0.5, 2.0])
    assert_close(got, want, rtol=1e-7, atol=1e-9)


def test_plain_callable_with_adjoint_params_and_unused_parameters():
    a = torch.tensor(0.7, dtype=F64, requires_grad=True)
    unused = torch.tensor(1.0, dtype=F64, requires_grad=True)
    y0 = torch.tensor([2.0], dtype=F64)
    ys = odeint_adjoint_gq(lambda t, y: a * y, y0, torch.tensor([0.0, 1.5], dtype=F64), adjoint_params=(a, unused),
                           **TIGHT)
    ys[-1].sum().backward()
    assert float(a.grad) == pytest.approx(2.0 * 1.5 * math.exp(0.7 * 1.5), rel=1e-8)
    assert unused.grad is None or float(unused.grad) == 0.0


def test_a_parameter_listed_twice_in_adjoint_params_gets_its_gradient_once():
    a = torch.tensor(0.7, dtype=F64, requires_grad=True)  # was 2 · 2 e^0.7: each listing added the whole gradient
    odeint_adjoint_gq(lambda t, y: a * y, torch.tensor([2.0], dtype=F64), torch.tensor([0.0, 1.0], dtype=F64),
                      adjoint_params=(a, a), **TIGHT)[-1].sum().backward()
    assert float(a.grad) == pytest.approx(2.0 * math.exp(0.7), rel=1e-8)


class TimeScaled(nn.Module):
    """dy/dt = a cos(t) y, y = y0 exp(a sin t); t enters through a layer of the state's dtype."""

    def __init__(self, dtype):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.7, dtype=dtype))

    def forward(self, t, y):
        return self.a * y * torch.cos(torch.stack([t]) @ torch.ones(1, 1, dtype=y.dtype))


@pytest.mark.parametrize("state, times", [(F64, torch.float32), (torch.float32, F64)])
def test_output_times_of_another_dtype_than_the_state(state, times):
    """torchdiffeq evaluates the field at times of the state's dtype: float64 times for a float32 state
    failed in the backward pass (the nodes went to the field in float64), and float32 times for a float64
    state cost the gradient 1e-7 (nodes placed in float32) where float64 times give 1e-10."""
    field, t = TimeScaled(state), torch.tensor([0.0, 0.3, 1.7], dtype=times)
    y0 = torch.tensor([1.0], dtype=state, requires_grad=True)
    end = float(t[-1])
    t.requires_grad_(True)
    odeint_adjoint_gq(field, y0, t, gtol=0.5, **TIGHT)[-1].sum().backward()
    want = [math.sin(end) * math.exp(0.7 * math.sin(end)), math.exp(0.7 * math.sin(end)),
            0.7 * math.cos(end) * math.exp(0.7 * math.sin(end))]
    rel = 1e-9 if state == F64 else 1e-5
    assert [float(field.a.grad), float(y0.grad)] == pytest.approx(want[:2], rel=rel)
    assert t.grad.dtype == times and float(t.grad[-1]) == pytest.approx(want[2], rel=1e-5)


def test_second_derivatives_raise_instead_of_being_silently_wrong():
    """The backward pass is first-order (as torchdiffeq's odeint_adjoint): differentiating it again, as the
    double-backward trick for a Jacobian-vector product does, gave J e = [1, 0] for [1, e^0.7] before."""
    a = torch.tensor(0.7, dtype=F64, requires_grad=True)
    y0 = torch.tensor([2.0], dtype=F64, requires_grad=True)
    ys = odeint_adjoint_gq(lambda t, y: a * y, y0, torch.tensor([0.0, 1.0], dtype=F64), adjoint_params=(a,))
    cotangent = torch.ones_like(ys, requires_grad=True)
    with pytest.raises(RuntimeError, match="first-order gradients only: its backward pass cannot be differentiated"):
        (vjp,) = torch.autograd.grad(ys, y0, cotangent, create_graph=True)
        vjp.sum().backward()


def test_a_gradient_with_another_term_is_not_differentiated_again_into_a_wrong_hessian():
    """L = y(1) + a³ with y' = a y, y(0) = 1: d²L/da² = e^a + 6a. The ODE's part of dL/da had no graph, so its
    derivative was silently dropped (6a = 4.2 instead of e^a + 6a = 6.2, as torchdiffeq's odeint_adjoint still
    does); now create_graph=True is refused saying why."""
    a = torch.tensor(0.7, dtype=F64, requires_grad=True)
    ys = odeint_adjoint_gq(lambda t, y: a * y, torch.tensor([1.0], dtype=F64), torch.tensor([0.0, 1.0], dtype=F64),
                           adjoint_params=(a,), **TIGHT)
    with pytest.raises(RuntimeError, match="first-order gradients only.*torchdiffeq.odeint for second derivatives"):
        (grad,) = torch.autograd.grad(ys[-1].sum() + a**3, a, create_graph=True)
        torch.autograd.grad(grad, a)


@pytest.mark.parametrize("t0", [0.3, -1.0])
def test_a_single_output_time_returns_y0_with_torchdiffeqs_gradients(t0):
    """torchdiffeq's odeint_adjoint takes t of one time and returns y0 (grad_y0 = the cotangent, zero for t and the
    parameters); a ValueError 'at least two times' before."""
    from torchdiffeq import odeint_adjoint
    got = []
    for solve in (odeint_adjoint_gq, odeint_adjoint):
        field = Cubic()
        y0 = torch.tensor([[1.0, -0.5], [0.3, 0.8]], dtype=F64, requires_grad=True)
        t = torch.tensor([t0], dtype=F64, requires_grad=True)
        ys = solve(field, y0, t)
        assert ys.shape == (1, 2, 2)
        got.append((ys, *torch.autograd.grad(ys.pow(2).sum(), [y0, t, *field.parameters()])))
    for mine, theirs in zip(*got):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)


def test_a_parameter_the_field_does_not_use_gets_a_zero_gradient_from_autograd_grad():
    """torchdiffeq's odeint_adjoint returns zeros; torch.autograd.grad raised 'appears to not have been used in the
    graph' for it before (the backward returned None)."""
    a = torch.tensor(0.7, dtype=F64, requires_grad=True)
    unused = torch.tensor(1.0, dtype=F64, requires_grad=True)
    ys = odeint_adjoint_gq(lambda t, y: a * y, torch.tensor([2.0], dtype=F64), torch.tensor([0.0, 1.5], dtype=F64),
                           adjoint_params=(a, unused), **TIGHT)
    grad_a, grad_unused = torch.autograd.grad(ys[-1].sum(), [a, unused])
    assert float(grad_a) == pytest.approx(2.0 * 1.5 * math.exp(0.7 * 1.5), rel=1e-8)
    assert grad_unused.item() == 0.0


@pytest.mark.parametrize("quadrature", QUADRATURES)
@pytest.mark.parametrize("option", ["jump_t", "step_t"])
@pytest.mark.parametrize("t, want", [
    ((0.0, 1.0), -1.1 * math.exp(-0.77)),  # y(1) = exp(0.3 a − 1.4 a)
    ((1.0, 0.0), 1.1 * math.exp(0.77)),    # y(0) = exp(1.1 a) from y(1) = 1
], ids=["increasing", "decreasing"])
def test_the_quadrature_is_cut_where_the_field_jumps(quadrature, option, t, want):
    """f = a·y before t = 0.3 and −2a·y after, told to torchdiffeq by ``jump_t`` (or ``step_t``): one rule
    across the jump left the gradient 2–6 % off at the default gtol (2.7 % at 64 nodes). The times are a list,
    which torchdiffeq negates for a decreasing solve only as a tensor: GQ's backward solve missed the jump."""
    a = torch.tensor(0.7, dtype=F64, requires_grad=True)
    ys = odeint_adjoint_gq(lambda s, y: torch.where(s < 0.3, a * y, -2 * a * y), torch.tensor([1.0], dtype=F64),
                           torch.tensor(t, dtype=F64), adjoint_params=(a,), quadrature=quadrature,
                           options={option: [0.3]}, **TIGHT)
    ys[-1].sum().backward()
    rel = 1e-8 if option == "jump_t" else 1e-6  # step_t means a kink: the solves cross this jump less exactly
    assert float(a.grad) == pytest.approx(want, rel=rel)


def test_bad_arguments_raise_clear_errors():
    y0, t = torch.ones(1), torch.tensor([0.0, 1.0])
    with pytest.raises(ValueError, match="nn.Module"):
        odeint_adjoint_gq(lambda t, y: y, y0, t)
    with pytest.raises(ValueError, match="quadrature"):
        odeint_adjoint_gq(Constant(), y0, t, quadrature="parallel")
    with pytest.raises(ValueError, match="gtol"):
        odeint_adjoint_gq(Constant(), y0, t, gtol=0)
    with pytest.raises(ValueError, match="1-D"):
        odeint_adjoint_gq(Constant(), y0, torch.tensor(0.0))
    for gtol in (math.inf, math.nan, "0.1", True):  # inf overflowed, a string failed, in the backward pass
        with pytest.raises(ValueError, match="gtol must be a positive finite number"):
            odeint_adjoint_gq(Constant(), y0, t, gtol=gtol)
    with pytest.raises(ValueError, match=r"t must not repeat a time: t\[0\] = t\[1\] = 0"):
        odeint_adjoint_gq(Constant(), y0, torch.tensor([0.0, 0.0, 1.0]))  # failed in the backward pass before


@pytest.mark.parametrize("kind", ["python_branch", "autograd_inside"])
def test_batched_quadrature_falls_back_to_stacked_evaluations_when_vmap_cannot_run_the_field(kind, monkeypatch):
    monkeypatch.setattr(quadrature_module, "VMAP_MIN_PARAMETERS", 0)  # vmap is tried even for a tiny field
    class Branchy(nn.Module):
        """Data-dependent Python control flow, or an inner autograd.grad (as a CNF's divergence)."""

        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.tensor(0.5, dtype=F64))

        def forward(self, t, y):
            if kind == "python_branch":
                return self.a * y if float(t) < 0.5 else -self.a * y
            with torch.enable_grad():
                y_ = y if y.requires_grad else y.detach().requires_grad_(True)
                (g,) = torch.autograd.grad((self.a * y_ ** 2).sum() / 2, y_, create_graph=True)
            return g  # = a·y

    grads = {}
    for quadrature in QUADRATURES:
        field, stats = Branchy(), {}
        ys = odeint_adjoint_gq(field, torch.ones(2, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64),
                               quadrature=quadrature, stats=stats, **TIGHT)
        ys[-1].sum().backward()
        grads[quadrature] = field.a.grad
    assert stats["batching"] == "stacked"
    torch.testing.assert_close(grads["batched"], grads["sequential"], rtol=1e-10, atol=1e-12)


def test_batched_quadrature_uses_vmap_where_it_can(monkeypatch):
    monkeypatch.setattr(quadrature_module, "VMAP_MIN_PARAMETERS", 0)
    stats = {}
    odeint_adjoint_gq(Linear(), torch.ones(3, dtype=F64), T_GRID, quadrature="batched", stats=stats).sum().backward()
    assert stats["batching"] == "vmap"


def test_batched_quadrature_stacks_a_small_field_on_the_cpu_and_vmaps_a_large_one():
    """Below VMAP_MIN_PARAMETERS elements the nodes are stacked (cheaper than vmap's fixed cost); the
    gradients are the sequential ones either way."""
    for dim, mode in ((3, "stacked"), (260, "vmap")):  # 9 and 67 600 parameter elements
        grads = {}
        for quadrature in QUADRATURES:
            field, stats = Linear(dim), {}
            ys = odeint_adjoint_gq(field, torch.ones(dim, dtype=F64) / dim, T_GRID[:3], quadrature=quadrature,
                                   stats=stats, rtol=1e-6, atol=1e-8)
            ys[-1].sum().backward()
            grads[quadrature] = field.A.grad
        assert stats["batching"] == mode
        torch.testing.assert_close(grads["batched"], grads["sequential"], rtol=1e-9, atol=1e-12)


def test_gauss_legendre_rule_is_exact_to_degree_2n_minus_1_and_oriented():
    t0, t1 = torch.tensor(0.3, dtype=F64), torch.tensor(1.7, dtype=F64)
    for n in (1, 3, 8):
        taus, w = gauss_legendre(n, t0, t1)
        for degree in (0, 2 * n - 1):
            exact = (1.7 ** (degree + 1) - 0.3 ** (degree + 1)) / (degree + 1)
            assert float((w * taus ** degree).sum()) == pytest.approx(exact, rel=1e-12)
        backward_taus, backward_w = gauss_legendre(n, t1, t0)
        assert float(backward_w.sum()) == pytest.approx(-1.4)
        assert torch.all(torch.diff(backward_taus) < 0) or n == 1
    assert not np.allclose(float((gauss_legendre(1, t0, t1)[1] * gauss_legendre(1, t0, t1)[0] ** 2).sum()),
                           (1.7 ** 3 - 0.3 ** 3) / 3)  # one node cannot integrate degree 2


def test_node_count_rule():
    assert node_count(0.1, 26, 0.5, 1.0) == 2  # ceil(1.3)
    assert node_count(0.1, 26, 0.01, 1.0) == 1  # at least one node per interval
    assert node_count(0.1, 10_000, 1.0, 1.0) == 64  # capped
    assert node_count(0.1, 10_000, -1.0, -1.0, max_nodes=8) == 8


def test_stats_and_harness_counts_attribute_the_backward_solve():
    field = count_nfe(Linear())
    stats = {}
    field.phase = "forward"
    ys = odeint_adjoint_gq(field, torch.ones(1, 3, dtype=F64), T_GRID, rtol=1e-6, atol=1e-8, gtol=0.1, stats=stats)
    nfe_forward = field.nfe["forward"]
    field.phase = "backward"
    ys.sum().backward()
    assert stats["nfe_forward"] == nfe_forward and stats["intervals"] == len(T_GRID) - 1
    expected = sum(node_count(0.1, nfe_forward, float(b - a), 2.0) for a, b in zip(T_GRID[:-1], T_GRID[1:]))
    assert stats["nodes"] == expected
    assert field.steps["forward"] > 0 and field.steps["backward"] > 0
    assert field.nfe["backward"] > stats["nodes"]  # the [z, a] solve plus one evaluation per node


@pytest.mark.parametrize("name", ["gq", "gq_batched"])
def test_registered_methods_pass_gtol_and_match_the_closed_form(name):
    field = Linear()
    stats_nodes = []
    for gtol in (0.1, 1.0):
        solve = get_method(name).make_solve(list(field.parameters()), gtol=gtol, **TIGHT)
        want = gradients(field, torch.ones(1, 3, dtype=F64), T_GRID, exact, WEIGHTS)
        got = gradients(field, torch.ones(1, 3, dtype=F64), T_GRID, solve, WEIGHTS)
        assert_close(got, want, rtol=1e-7, atol=1e-9)
        stats = {}
        ys = odeint_adjoint_gq(field, torch.ones(1, 3, dtype=F64), T_GRID, gtol=gtol, stats=stats, rtol=1e-4, atol=1e-6)
        ys.sum().backward()
        stats_nodes.append(stats["nodes"])
    assert stats_nodes[1] > stats_nodes[0]  # larger gtol, more nodes


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("quadrature", QUADRATURES)
def test_cuda_matches_cpu(quadrature):
    field = Linear()
    y0 = torch.ones(2, 3, dtype=F64)
    cpu = gradients(field, y0, T_GRID, gq(quadrature), WEIGHTS)
    gpu = gradients(field.cuda(), y0.cuda(), T_GRID.cuda(), gq(quadrature), WEIGHTS)
    assert_close([g.cpu() for g in gpu], cpu, rtol=1e-7, atol=1e-9)


# --- benchmarks/gq_gradient_cost.py: bad arguments ------------------------------------------------------------
@pytest.mark.parametrize("arguments, official_path, message", [
    (["--task", "nope"], None, "unknown task 'nope'; valid: "),
    (["--task", "cubic_spiral"], None, "task 'cubic_spiral' has no hyper-parameter 'width'; valid: "),
    (["--widths", "100", "0"], None, "--widths: expected a positive integer, got '0'"),
    (["--methods", "gq", "foo"], None, "--methods: invalid choice: 'foo'"),
    (["--tol", "nan"], None, "--tol: expected a positive finite number, got 'nan'"),
    (["--device", "meta"], None, "unsupported device 'meta'; valid: cpu, cuda, cuda:N"),
    (["--methods", "official"], None, "method official needs GQ_OFFICIAL_PATH (a checkout of "),
    ([], "missing", "has no torch_gq_adjoint package; point it at a checkout of a-norcliffe/torch_gq_adjoint"),
    ([], "namespace", "its torch_gq_adjoint has no odeint_adjoint_gq; point it at the root of a checkout"),
])
def test_gq_gradient_cost_benchmark_refuses_bad_arguments_in_one_line(tmp_path, capsys, monkeypatch, arguments,
                                                                       official_path, message):
    monkeypatch.delenv("GQ_OFFICIAL_PATH", raising=False)
    if official_path:  # "namespace": a folder torch_gq_adjoint/ without the package's code
        (tmp_path / "official" / ("torch_gq_adjoint" if official_path == "namespace" else "other")).mkdir(parents=True)
        monkeypatch.setenv("GQ_OFFICIAL_PATH", str(tmp_path / "official"))
    try:
        assert_refused_in_one_line("gq_gradient_cost.py", arguments, message, tmp_path, capsys, monkeypatch)
    finally:
        sys.modules.pop("torch_gq_adjoint", None)  # the namespace package the script imported


def test_gq_gradient_cost_benchmark_records_each_method_s_allocated_peak(tmp_path, capsys, monkeypatch):
    """One untimed gradient per method and width: its allocated-bytes peak, where the CPU's resident set of an
    in-process gradient often reads 0; drawn and tabled, and a run recorded before the column still summarised."""
    import pandas as pd

    monkeypatch.delenv("GQ_OFFICIAL_PATH", raising=False)
    out = tmp_path / "out"
    run_script("gq_gradient_cost.py", ["--widths", "5", "40", "--methods", "gq", "adjoint", "direct", "--rounds", "2",
                                       "--out", str(out)], monkeypatch)
    samples = pd.read_parquet(out / "samples.parquet")
    per_case = samples.groupby(["width", "method"])["alloc_peak_bytes"]
    assert (per_case.nunique() == 1).all() and (per_case.first() > 0).all()
    # the adjoint's backward solve carries parameter-sized adjoints through every step; GQ's holds one sum
    assert per_case.first()[(40, "adjoint")] > per_case.first()[(40, "gq")]
    assert "| allocated [MiB] |" in (out / "summary.md").read_text()
    assert (out / "allocated_vs_width.png").is_file()
    module = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "gq_gradient_cost.py"))
    args = SimpleNamespace(task="g1d", tol=1e-3, gtol=0.1, device="cpu", rounds=2)
    old = module["summary"](samples.drop(columns="alloc_peak_bytes"), {}, args)
    assert "| 40 | gq | " in old and all(line.split("|")[5].strip() == "–" for line in old.splitlines()
                                          if line.startswith("| 40 | "))
