"""Taylor mode to order 9 against known series, the gradients of d^K z/dt^K against closed forms, and the
operations with a Taylor rule that no other test runs, against nested ``torch.func.jvp``. In float64 (and float32
for the gradients with respect to time, state and parameter).

tests/test_taylor.py checks the elementary rules to order 6 (sympy) and 4–5 (nested jvp), and gradients
against finite differences and method against method; the Cauchy sums of tanh, σ, softplus and x·x only
reach their longer forms beyond that, and the gradients with respect to t and z had no closed form.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nodebench.taylor import jet, ode_derivatives

F64 = torch.float64
ORDER = 9
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def falling(a: float, k: int) -> float:
    """a (a − 1) ⋯ (a − k + 1)."""
    return math.prod(a - i for i in range(k))


# f, primal points x, and the exact k-th derivative f^(k)(x), k = 1..9, from textbook series
TANH_AT_0 = [1, 0, -2, 0, 16, 0, -272, 0, 7936]  # tanh s = s − s³/3 + 2s⁵/15 − 17s⁷/315 + 62s⁹/2835
SIGMOID_AT_0 = [d / 2 ** (k + 1) for k, d in enumerate(TANH_AT_0, start=1)]  # σ(s) = ½ + ½ tanh(s/2)
KNOWN = {
    "exp": (torch.exp, [-0.7, 0.0, 0.4, 1.3], lambda x, k: math.exp(x)),
    "sin": (torch.sin, [-0.7, 0.0, 0.4, 1.3], lambda x, k: math.sin(x + k * math.pi / 2)),
    "cos": (torch.cos, [-0.7, 0.0, 0.4, 1.3], lambda x, k: math.cos(x + k * math.pi / 2)),
    "log": (torch.log, [0.3, 1.0, 2.5], lambda x, k: (-1) ** (k + 1) * math.factorial(k - 1) / x ** k),
    "tanh": (torch.tanh, [0.0], lambda x, k: TANH_AT_0[k - 1]),
    "tanh_odd": (lambda x: -torch.tanh(-x), [0.0], lambda x, k: TANH_AT_0[k - 1]),
    "sigmoid": (torch.sigmoid, [0.0], lambda x, k: SIGMOID_AT_0[k - 1]),
    "softplus": (F.softplus, [0.0], lambda x, k: 0.5 if k == 1 else SIGMOID_AT_0[k - 2]),  # softplus' = σ
    "softplus_beta": (lambda x: F.softplus(x, beta=2.0), [0.0],  # softplus_β(x) = softplus(βx)/β
                      lambda x, k: 2.0 ** (k - 1) * (0.5 if k == 1 else SIGMOID_AT_0[k - 2])),
    "square_by_mul": (lambda x: x * x * x * x, [-0.8, 0.5, 1.5], lambda x, k: falling(4, k) * x ** (4 - k)),
    "pow_2.5": (lambda x: x ** 2.5, [0.4, 1.0, 2.2], lambda x, k: falling(2.5, k) * x ** (2.5 - k)),
    "sqrt": (torch.sqrt, [0.4, 1.0, 2.2], lambda x, k: falling(0.5, k) * x ** (0.5 - k)),
    "rsqrt": (torch.rsqrt, [0.4, 1.0, 2.2], lambda x, k: falling(-0.5, k) * x ** (-0.5 - k)),
    "reciprocal": (torch.reciprocal, [0.4, -1.0, 2.2], lambda x, k: falling(-1, k) * x ** (-1 - k)),
    "div_series": (lambda x: 1.0 / (2.0 - x), [0.5, -1.0], lambda x, k: math.factorial(k) / (2.0 - x) ** (k + 1)),
    "exp_of_2x": (lambda x: torch.exp(2 * x), [0.1, -0.4], lambda x, k: 2 ** k * math.exp(2 * x)),
}


@pytest.mark.parametrize("name", list(KNOWN))
def test_jet_matches_known_series_to_order_nine(name):
    fn, points, derivative = KNOWN[name]
    x = torch.tensor(points, dtype=F64)
    primal, derivatives = jet(fn, (x,), ([torch.ones_like(x)] + [torch.zeros_like(x)] * (ORDER - 1),))
    torch.testing.assert_close(primal, fn(x), rtol=1e-15, atol=1e-15)
    for k, got in enumerate(derivatives, start=1):
        want = torch.tensor([derivative(float(p), k) for p in points], dtype=F64)
        scale = max(1.0, float(want.abs().max()))
        error = float((got - want).abs().max()) / scale
        assert error < 1e-12, f"{name}: derivative {k} relative error {error:.2e}"


def test_gradients_of_the_linear_field_derivatives_match_the_closed_form():
    """z' = z Aᵀ: d^K z = z (A^K)ᵀ for every K, so the gradients of any loss of them with respect to A and z
    are those of the matrix-power formula."""
    gen = torch.Generator().manual_seed(0)
    a = (0.5 * torch.randn(3, 3, generator=gen, dtype=F64)).requires_grad_(True)
    z = torch.randn(5, 3, generator=gen, dtype=F64, requires_grad=True)
    weights = torch.randn(6, 5, 3, generator=gen, dtype=F64)
    derivatives = ode_derivatives(lambda t, y: y @ a.T, torch.tensor(0.3, dtype=F64), z, 6)
    def loss(ds):
        return sum((w * d).sum() + d.pow(2).mean() for w, d in zip(weights, ds, strict=True))

    got = torch.autograd.grad(loss(derivatives), [a, z])
    want = torch.autograd.grad(loss([z @ torch.linalg.matrix_power(a, k).T for k in range(1, 7)]), [a, z])
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("dtype, tol", [(F64, 1e-12), (torch.float32, 2e-6)], ids=["float64", "float32"])
def test_gradients_with_respect_to_time_state_and_parameter_match_the_closed_form(dtype, tol):
    """z' = sin(ω t) z: with s = sin ωt, c = cos ωt, z'' = (ω c + s²) z and z''' = (−ω² s + 3 ω s c + s³) z;
    in float32 (R_K's training dtype) against the float64 closed form."""
    omega = torch.tensor(1.7, dtype=dtype, requires_grad=True)
    t = torch.tensor(0.6, dtype=dtype, requires_grad=True)
    z = torch.tensor([[0.5, -1.5], [2.0, 0.25]], dtype=dtype, requires_grad=True)
    derivatives = ode_derivatives(lambda t_, y: torch.sin(omega * t_) * y, t, z, 3)

    def closed_form(omega, t, z):
        s, c = torch.sin(omega * t), torch.cos(omega * t)
        return [s * z, (omega * c + s ** 2) * z, (-omega ** 2 * s + 3 * omega * s * c + s ** 3) * z]

    inputs = [x.detach().double().requires_grad_(True) for x in (omega, t, z)]
    exact = closed_form(*inputs)
    for got, want in zip(derivatives, exact, strict=True):
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), want.detach(), rtol=tol / 10, atol=tol / 10)

    def loss(ds):
        return ds[2].pow(2).mean() + (ds[1] * ds[0]).sum()

    got = torch.autograd.grad(loss(derivatives), [omega, t, z])
    want = torch.autograd.grad(loss(exact), inputs)
    for g, w in zip(got, want, strict=True):
        assert float(w.abs().max()) > 1e-2 and g.dtype == dtype
        torch.testing.assert_close(g.double(), w, rtol=tol, atol=tol)


W3 = torch.tensor([[0.5, -1.0, 0.3], [0.2, 0.1, -0.7]], dtype=F64)


def rarely_used_ops(t, z):
    """narrow/select/index_select, permute/movedim, unbind, unflatten, broadcast_to, reshape_as/view_as/type_as,
    bmm, F.linear with a series weight, conv1d and conv3d with biases, new_ones, true_divide, negative,
    subtract, multiply; z is (B, 6)."""
    b = z.shape[0]
    cube = z.unflatten(1, (2, 3))  # (B, 2, 3)
    moved = cube.permute(0, 2, 1).movedim(1, 2)  # back to (B, 2, 3)
    first, second = moved.unbind(1)  # (B, 3) each
    picked = torch.index_select(first, 1, torch.tensor([2, 0])) + second.narrow(1, 1, 2)  # (B, 2)
    column = z.select(1, 4).unsqueeze(1)  # (B, 1)
    spread = torch.broadcast_to(column, (b, 2)).reshape_as(picked).view_as(picked).type_as(picked)
    batched = torch.bmm(cube, cube.transpose(1, 2))  # (B, 2, 2), both factors series
    weight = torch.tanh(z[:2, :3])  # a series weight (2, 3)
    linear = F.linear(first, weight, torch.tensor([0.1, -0.2], dtype=F64)) + F.linear(second, W3)
    conv1 = F.conv1d(cube, torch.full((1, 2, 2), 0.3, dtype=F64), torch.tensor([0.5], dtype=F64)).flatten(1)  # (B, 2)
    conv3 = F.conv3d(z.reshape(b, 1, 1, 2, 3), torch.full((2, 1, 1, 2, 2), -0.2, dtype=F64),
                     torch.tensor([0.1, 0.4], dtype=F64)).flatten(1)  # (B, 4)
    ones = z.new_ones(b, 2)
    mixed = torch.true_divide(picked, 2.0 + spread ** 2) + torch.negative(batched.flatten(1)[:, :2])
    out = torch.cat([torch.subtract(mixed, linear), torch.multiply(conv1, ones + t), conv3[:, :2]], dim=1)
    return out * torch.sin(t)


def test_rarely_used_operations_match_nested_jvp():
    z = 0.5 * torch.randn(3, 6, generator=torch.Generator().manual_seed(2), dtype=F64)
    t = torch.tensor(0.4, dtype=F64)
    taylor = ode_derivatives(rarely_used_ops, t, z, 4)
    reference = ode_derivatives(rarely_used_ops, t, z, 4, method="jvp")
    for k, (got, want) in enumerate(zip(taylor, reference, strict=True), start=1):
        assert float(want.abs().max()) > 1e-3, k
        error = float((got - want).abs().max() / want.abs().max())
        assert error < 1e-10, (k, error)
