"""The rational tanh of compiled float32 CPU Taylor mode (nodebench.taylor.fast_tanh): its accuracy over
float32, its special values, its derivative, and where it is used."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nodebench.papers.taynode.cost import Autonomous, make_field
from nodebench.taylor import compile_derivatives, compile_grad_and_value, ode_derivatives, rk_integrand
from nodebench.taylor.fast_tanh import primal_tanh, rational_tanh


def float32_sample(low: float, high: float, stride: int) -> torch.Tensor:
    """Every ``stride``-th float32 in [low, high], walking the bit patterns (so each binade is covered)."""
    bits = np.arange(np.float32(low).view(np.int32), np.float32(high).view(np.int32), stride, dtype=np.int32)
    return torch.from_numpy(bits.view(np.float32))


def test_rational_tanh_is_within_8_ulps_of_tanh_on_float32_and_odd():
    """3.3 million float32 values, in chunks of a MB: arrays of tens of MB, once freed, stay resident in
    malloc's heap and would be reused unseen by the resident-set memory tests that follow in this process."""
    worst, total, count = 0.0, 0.0, 0
    for x in float32_sample(2.0 ** -20, 10.0, 61).split(1 << 18):
        want = torch.tanh(x.double())
        ulp = torch.from_numpy(np.spacing(want.float().numpy())).double()
        errors = (rational_tanh(x).double() - want).abs() / ulp
        worst, total, count = max(worst, float(errors.max())), total + float(errors.sum()), count + len(x)
        assert torch.equal(rational_tanh(-x), -rational_tanh(x))
    assert worst <= 8 and total / count < 1.5


def test_compiled_primal_tanh_keeps_tanhs_special_values():
    x = torch.tensor([0.0, -0.0, 1e-30, -1e-40, float("inf"), -float("inf"), float("nan"), 9.6, -20.0, 3e38])
    got = torch.compile(primal_tanh, fullgraph=True)(x)
    want = torch.tanh(x)
    numbers = ~want.isnan()
    assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got[numbers].signbit(), want[numbers].signbit())
    torch.testing.assert_close(got, want, equal_nan=True, rtol=4e-7, atol=0)


def test_primal_tanh_derivative_is_one_minus_its_value_squared():
    x = torch.linspace(-12, 12, 1001, requires_grad=True)
    y = torch.compile(primal_tanh, fullgraph=True, backend="aot_eager")(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(grad, 1 - y.detach() * y.detach())
    assert (y.detach() - torch.tanh(x.detach())).abs().max() < 1e-6


def graph_ops(fn, *args) -> set[str]:
    """The names of the functions in the graphs that Dynamo traces of ``fn(*args)``."""
    graphs = torch._dynamo.explain(fn)(*args).graphs
    return {getattr(node.target, "__name__", str(node.target)) for graph in graphs for node in graph.graph.nodes
            if node.op in ("call_function", "call_method")}


@pytest.mark.parametrize("dtype, uses_tanh", [(torch.float32, False), (torch.float64, True)])
def test_compiled_taylor_mode_uses_the_rational_tanh_in_float32_only(dtype, uses_tanh):
    """Only the compiled float32 CPU graph swaps tanh's primal (for the autograd.Function that gives it
    tanh's derivative); float64 keeps torch.tanh."""
    net = make_field(2, 8, torch.device("cpu"), dtype, 0)
    t, z = torch.tensor(0.0, dtype=dtype), torch.randn(4, 2, dtype=dtype)
    ops = graph_ops(lambda t_, z_: ode_derivatives(lambda s, y: net(y), t_, z_, 3), t, z)
    assert ("tanh" in ops) == uses_tanh and ("autograd_function_apply" in ops) != uses_tanh


def test_compiled_float32_taylor_mode_and_its_gradients_match_eager():
    """compile_derivatives and compile_grad_and_value in float32 on the CPU (so with the rational tanh, and
    Inductor) agree with eager Taylor mode (torch.tanh) to float32 round-off."""
    net = make_field(2, 16, torch.device("cpu"), torch.float32, 0)
    t, z = torch.tensor(0.2), torch.randn(32, 2)
    want = ode_derivatives(lambda s, y: net(y), t, z, 3)
    want_grads = torch.autograd.grad(rk_integrand(want), list(net.parameters()))
    with torch.no_grad():
        got = compile_derivatives(lambda s, y: net(y), 3)(t, z)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-5 * float(b.detach().abs().max()))
    grads, value = compile_grad_and_value(Autonomous(net), 3)(t, z)
    torch.testing.assert_close(value, rk_integrand(want).detach(), rtol=1e-5, atol=0)
    for name, g in zip(grads, want_grads):
        torch.testing.assert_close(grads[name], g, rtol=1e-5, atol=1e-5 * float(g.abs().max()))
