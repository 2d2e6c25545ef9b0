"""Every operation family with a Taylor rule (``supported_ops()``) against nested ``torch.func.jvp`` at order
K = 6 in float64, on random series and on the edge of each rule's domain: log/sqrt/rsqrt near 0, pow with a
negative base and an integer exponent (scalar and tensor), division, tanh/σ/softplus saturated and at
softplus's threshold, broadcasting, batched matmul/linear/conv, reductions, indexing, cat/stack, where.

abs and relu have no rule (their derivatives at 0 are a convention, not a Taylor series): they raise
:class:`TaylorModeError` naming the operation and listing the supported ones, as every unsupported op does.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nodebench.taylor import TaylorModeError, jet, ode_derivatives, supported_ops

F64 = torch.float64
K = 6
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def t(*values):
    return torch.tensor(values, dtype=F64)


def r(*shape, seed=0):
    return torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


W, B = r(5, 4, seed=7), r(5, seed=8)  # constant weights, made once (the function is evaluated several times)
KERNEL, KBIAS = r(2, 1, 3, seed=9), r(2, seed=10)
COND = torch.tensor([[True], [False]])

# name: (families covered, function, primals)
CASES = {
    "add_sub_neg": ({"add", "sub", "neg"}, lambda x, y: torch.sub(x, y, alpha=3) + torch.add(2.0, y, alpha=-0.5)
                    - (1.0 - x) + torch.rsub(x, 2.0) - torch.neg(y), [r(3), r(3, seed=1)]),
    "mul_broadcast": ({"mul"}, lambda x, y: x * y * x * 2.0, [r(3), r(4, 1, seed=1)]),
    "div_broadcast": ({"div", "reciprocal"}, lambda x, y: x / (2 + y * y) + 1.5 / y + torch.reciprocal(x),
                      [t(-1.3, 0.4, 2.0), t(-0.7, 1.1).reshape(2, 1)]),
    "exp_log_near_0": ({"exp", "log"}, lambda x: torch.log(x) + torch.exp(-x), [t(1e-4, 1e-2, 0.5, 3.0)]),
    "sqrt_rsqrt_near_0": ({"sqrt", "rsqrt"}, lambda x: torch.sqrt(x) + torch.rsqrt(x), [t(1e-4, 1e-2, 0.5)]),
    "pow_negative_base_integer": ({"pow", "square"}, lambda x: x ** 3 + x ** -2 + torch.pow(x, 4.0)
                                  + torch.square(x) + x ** torch.tensor(3), [t(-1.3, -0.4, 0.7, 2.0)]),
    "pow_tensor_exponent_negative_base": ({"pow"}, lambda x: x ** t(2.0, 3.0, -1.0, 2.0), [t(-1.3, -0.4, 0.7, 2.0)]),
    "pow_one_element_tensor_exponent": ({"pow"}, lambda x: x ** torch.tensor([[2.0]], dtype=F64)
                                        + torch.pow(x, torch.tensor([3.0], dtype=F64)), [t(-1.3, 0.0, 2.0)]),
    "pow_series_and_constant_base": ({"pow"}, lambda x, y: x ** y + 2.0 ** y + t(1.5, 3.0) ** y,
                                     [t(0.3, 2.0), t(-0.8, 0.6)]),
    "sin_cos": ({"sin", "cos"}, lambda x: torch.sin(x) * torch.cos(2 * x), [t(-50.0, 0.0, 1.3)]),
    "tanh_sigmoid_saturated": ({"tanh", "sigmoid"}, lambda x: torch.tanh(x) + torch.sigmoid(2 * x),
                               [t(-25.0, -8.0, 0.0, 8.0, 25.0)]),
    "softplus_saturated_and_threshold": ({"softplus"}, lambda x: F.softplus(x) + F.softplus(x, beta=2.0, threshold=3.0),
                                         [t(-40.0, -3.0, 1.4, 1.6, 19.0, 25.0)]),
    "matmul_batched_broadcast": ({"matmul"}, lambda x, y: torch.matmul(x, y) + (x @ y[0]) + torch.bmm(x[:, 0], y),
                                 [r(2, 1, 3, 4), r(2, 4, 2, seed=1)]),
    "matmul_vector_and_mm": ({"matmul"}, lambda x, y: (x @ y).sum(0) + torch.mm(y[0].t(), y[1]) @ x,
                             [r(4, seed=2), r(2, 4, 4, seed=3)]),
    "linear_batched": ({"linear"}, lambda x, w: F.linear(x, W, B) + F.linear(x, w), [r(2, 3, 4), r(5, 4, seed=1)]),
    "conv": ({"conv1d/conv2d/conv3d"}, lambda x: F.conv1d(torch.tanh(x), KERNEL, KBIAS, stride=2, padding=1),
             [r(2, 1, 7)]),
    "reductions": ({"sum", "mean"}, lambda x: x.sum((0, 2), keepdim=True) * x.mean(1, keepdim=True) + torch.sum(x)
                   + x.mean(dtype=F64), [r(2, 3, 4)]),
    "indexing": ({"getitem/narrow/select"}, lambda x: x[torch.tensor([0, 2, 2])] * x[:, None, 0]
                 + x.index_select(0, torch.tensor([1, 0, 2])) + x.narrow(0, 0, 3) * x.select(1, 1)[:, None],
                 [r(3, 2)]),
    "cat_stack_split": ({"cat", "stack", "split/chunk/unbind"}, lambda x, y: torch.stack(
        [torch.cat([x, y], 0), torch.cat([y, torch.ones(2, 2, dtype=F64)], 0)]).sin().sum(0)
        * sum(p.sum() for p in x.unbind(0)) * torch.split(x, 1, 0)[1]
        + torch.cat(torch.chunk(torch.cat([y, y], 0), 2, 1)[::-1], 1),
        [r(2, 2), r(2, 2, seed=1)]),
    "where_broadcast": ({"where"}, lambda x, y: torch.where(COND, x * x, y) + torch.where(COND, 2.0, x.exp()),
                        [r(3), r(2, 3, seed=1)]),
    "where_method": ({"where"}, lambda x, y: x.where(COND, y * y) + (2.0 * y).where(COND, x)
                     + torch.ones(3, dtype=F64).where(COND, x), [r(3), r(2, 3, seed=1)]),
    "shapes": ({"reshape/view", "flatten", "unsqueeze", "squeeze", "expand", "transpose/permute", "clone/contiguous",
                "expand_as/view_as/to"},
               lambda x: (x.permute(2, 0, 1).movedim(0, 1).transpose(0, 2).reshape(-1).view(3, 4).t()
                          .unsqueeze(0).squeeze(0).flatten().unflatten(0, (2, 6)).expand(3, 2, 6)
                          .clone().contiguous().to(F64) * torch.broadcast_to(x.reshape(2, 6), (3, 2, 6))
                          ).exp().expand_as(torch.zeros(3, 2, 6)).view_as(torch.zeros(6, 6)),
               [r(2, 3, 2)]),
    "constants_like": ({"ones_like/zeros_like/new_* (constants)"},
                       lambda x: x * torch.ones_like(x) + x.new_full((3,), 2.0) * torch.zeros_like(x) + x.new_ones(3),
                       [r(3)]),
}


def test_every_supported_family_has_a_case():
    covered = set().union(*(families for families, _, _ in CASES.values()))
    assert covered == set(supported_ops()), set(supported_ops()) ^ covered


def nested_jvp(phi, order: int) -> list[torch.Tensor]:
    """[φ'(0), …, φ^(order)(0)] from one nesting of ``torch.func.jvp`` that carries every lower derivative."""
    def level(prev):
        return lambda s: (lambda out: (out[0][0], *out[1]))(torch.func.jvp(prev, (s,), (torch.ones_like(s),)))

    fn = lambda s: (phi(s),)  # noqa: E731
    for _ in range(order):
        fn = level(fn)
    return list(fn(torch.tensor(0.0, dtype=F64))[1:])


@pytest.mark.parametrize("name", list(CASES))
def test_operation_matches_nested_jvp_to_order_6(name):
    _, fn, primals = CASES[name]
    gen = torch.Generator().manual_seed(len(name))
    series = [[0.3 * torch.randn(p.shape, dtype=F64, generator=gen) for _ in range(K)] for p in primals]
    coeffs = [[p] + [d / math.factorial(k) for k, d in enumerate(ds, 1)] for p, ds in zip(primals, series)]

    def along_curve(s):  # x(s) = Σ_k x^(k) s^k / k!, in Horner form
        points = []
        for c in coeffs:
            acc = c[-1]
            for ck in reversed(c[:-1]):
                acc = ck + s * acc
            points.append(acc)
        return fn(*points)

    primal, derivatives = jet(fn, primals, series)
    expected = fn(*primals)
    assert torch.isfinite(expected).all() and torch.allclose(primal, expected, rtol=1e-14, atol=0), name
    for k, (got, want) in enumerate(zip(derivatives, nested_jvp(along_curve, K), strict=True), start=1):
        assert got.shape == want.shape and torch.isfinite(want).all(), (name, k)
        error = float((got - want).abs().max() / want.abs().max().clamp_min(1e-300))
        assert error < 1e-11, (name, k, error)


@pytest.mark.parametrize("field, name", [
    (lambda z: torch.clamp(z, 0.0), "torch.clamp"),
    (lambda z: z.max(), "Tensor.max"),
    (lambda z: torch.cumsum(z, 0), "torch.cumsum"),
    (lambda z: torch.div(z, 2.0, rounding_mode="floor"), "torch.div(rounding_mode='floor')"),
    (lambda z: z.add_(1.0), "Tensor.add_"),
    (lambda z: abs(z), "torch.abs"),
    (lambda z: F.relu(z), "torch.nn.functional.relu"),
])
def test_an_unsupported_operation_is_one_error_naming_it_and_the_supported_ones(field, name):
    with pytest.raises(TaylorModeError) as info:
        ode_derivatives(lambda t, z: field(z), torch.tensor(0.0, dtype=F64), r(2, 3), 3)
    message = str(info.value)
    assert message == f"{name} is not supported in Taylor mode; supported: {', '.join(supported_ops())}"
