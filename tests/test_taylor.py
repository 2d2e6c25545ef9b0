"""Taylor-mode AD (:mod:`nodebench.taylor`): closed-form ODE derivatives, Taylor mode against nested
``torch.func.jvp``, parameter gradients against finite differences, every elementary rule against nested
jvp of the scalar function, and the error for unsupported operations. All in float64."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from nodebench.taylor import (TaylorModeError, compile_derivatives, compile_grad_and_value, jet, ode_derivatives,
                              rk_integrand, supported_ops)
from nodebench.taylor import jax_jet
from benchmark_scripts import assert_refused_in_one_line
from cuda_stand_ins import SilentEvent
from nodebench.papers.taynode.cost import JAX, Autonomous, calls_per_block, measure_cost, ratio
from nodebench.papers.taynode.cost import make_field as mlp_field

DTYPE = torch.float64
# torch.func.jvp scripts its decompositions on first use, which warns on torch 2.13
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True)
def float64():
    before = torch.get_default_dtype()
    torch.set_default_dtype(DTYPE)
    yield
    torch.set_default_dtype(before)


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.detach(), want.detach()
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-300))


def nested_derivatives(phi, s: torch.Tensor, order: int) -> list[torch.Tensor]:
    """d^k φ/ds^k at s, k = 1..order, by nested torch.func.jvp (independent of the ODE code)."""
    fns = [phi]
    for _ in range(order):
        fns.append(lambda s_, prev=fns[-1]: torch.func.jvp(prev, (s_,), (torch.ones_like(s_),))[1])
    return [fn(s) for fn in fns[1:]]


# --- closed forms ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["taylor", "jvp"])
def test_linear_field_gives_matrix_powers(method):
    torch.manual_seed(0)
    A, z = torch.randn(3, 3) / 2, torch.randn(5, 3)
    top = 6 if method == "taylor" else 4
    derivatives = ode_derivatives(lambda t, z: z @ A.T, torch.tensor(0.4), z, top, method=method)
    assert len(derivatives) == top
    for k, dk in enumerate(derivatives, start=1):
        assert rel_err(dk, z @ torch.linalg.matrix_power(A, k).T) < 1e-10, k


@pytest.mark.parametrize("method", ["taylor", "jvp"])
def test_quadratic_field_gives_factorial_powers(method):
    """z' = z²: z(t) = z0/(1 − z0 t), so d^k z/dt^k = k! z^{k+1} (the derivative, not divided by k!)."""
    z = torch.linspace(-1.2, 0.9, 7).reshape(7, 1)
    top = 6 if method == "taylor" else 4
    derivatives = ode_derivatives(lambda t, z: z * z, torch.tensor(0.0), z, top, method=method)
    for k, dk in enumerate(derivatives, start=1):
        assert rel_err(dk, math.factorial(k) * z ** (k + 1)) < 1e-10, k


@pytest.mark.parametrize("method", ["taylor", "jvp"])
def test_time_dependent_sine_field(method):
    """f(z, t) = sin(t)·z: z'' = (cos t + sin² t) z, z''' = (−sin t + 3 sin t cos t + sin³ t) z."""
    t, z = torch.tensor(0.7), torch.tensor([[0.5, -1.5], [2.0, 0.25]])
    s, c = torch.sin(t), torch.cos(t)
    d1, d2, d3 = ode_derivatives(lambda t, z: torch.sin(t) * z, t, z, 3, method=method)
    assert rel_err(d1, s * z) < 1e-10
    assert rel_err(d2, (c + s**2) * z) < 1e-10
    assert rel_err(d3, (-s + 3 * s * c + s**3) * z) < 1e-10


@pytest.mark.parametrize("method", ["taylor", "jvp"])
def test_polynomial_in_time_fields(method):
    t, z = torch.tensor(1.3), torch.tensor([[0.5, -2.0, 1.0]])
    derivatives = ode_derivatives(lambda t, z: (2 * t**3 - t + 1) * torch.ones_like(z), t, z, 5, method=method)
    expected = [2 * t**3 - t + 1, 6 * t**2 - 1, 12 * t, torch.tensor(12.0), torch.tensor(0.0)]
    for k, (dk, want) in enumerate(zip(derivatives, expected), start=1):
        assert torch.allclose(dk, want.expand_as(z), rtol=1e-10, atol=1e-10), k
    d1, d2, d3 = ode_derivatives(lambda t, z: t**2 * z, t, z, 3, method=method)  # z' = t² z
    assert rel_err(d1, t**2 * z) < 1e-10
    assert rel_err(d2, (2 * t + t**4) * z) < 1e-10
    assert rel_err(d3, (2 + 6 * t**3 + t**6) * z) < 1e-10


# --- fields for the Taylor-vs-jvp comparisons -------------------------------------------------------------
class ConcatMLP(nn.Module):
    """tanh, sigmoid and softplus layers, with t concatenated to the input of the first two."""

    def __init__(self, dim: int = 3, hidden: int = 5):
        super().__init__()
        self.l1, self.l2 = nn.Linear(dim + 1, hidden), nn.Linear(hidden + 1, hidden)
        self.out = nn.Sequential(nn.Softplus(beta=2.0), nn.Linear(hidden, dim))

    def forward(self, t, z):
        h = torch.tanh(self.l1(torch.cat([z, t.expand(z.shape[0], 1)], -1)))
        h = torch.sigmoid(self.l2(torch.cat([h, t * torch.ones_like(h[:, :1])], dim=1)))
        return self.out(h)


class SequentialField(nn.Module):
    def __init__(self, dim: int = 3, hidden: int = 5):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Sigmoid(),
                                 nn.Linear(hidden, hidden), nn.Softplus(), nn.Linear(hidden, dim))

    def forward(self, t, z):
        return self.net(z)


class ConvField(nn.Module):
    """A concat-t conv field on (B, C, H, W) states."""

    def __init__(self, channels: int = 2, hidden: int = 3):
        super().__init__()
        self.c1 = nn.Conv2d(channels + 1, hidden, 3, padding=1)
        self.c2 = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, t, z):
        b, _, h, w = z.shape
        x = torch.tanh(self.c1(torch.cat([z, t.expand(b, 1, h, w)], 1)))
        return self.c2(F.softplus(x))


def ops_field(t, z):
    """cat, slicing, pow (integer, fractional), div, rdiv, exp, log, sin, cos, sum and mean; z is (B, 4)."""
    a, b = z[:, :2], z[..., 2:]
    s = torch.exp(0.3 * a) / (1.5 + b**2)
    r = torch.log(1 + z.pow(2).sum(-1, keepdim=True))
    m = z.mean(dim=0, keepdim=True)
    q = (2.0 + torch.sin(t) * a) ** 2.5 - 1 / (2 + b.square())
    return torch.cat([s * r - m[:, :2], q + torch.cos(a * b) - t], dim=-1)


M = torch.tensor([[0.5, -1.0, 0.3], [0.2, 0.1, -0.7], [1.1, 0.4, 0.0]], dtype=DTYPE)


def structural_field(t, z):
    """reshape/transpose/(un)squeeze/flatten, chunk/split, stack, matmul both ways, where, expand_as,
    sqrt/rsqrt/reciprocal, sub/rsub; z is (B, 6)."""
    w = z.reshape(-1, 2, 3).transpose(1, 2)
    u = w.unsqueeze(1).squeeze(1).flatten(1)
    p, q = u.chunk(2, dim=-1)
    left, right = torch.split(p, [1, 2], dim=1)
    stacked = torch.stack([q, torch.cat([right, left], 1)], dim=0).sum(0)
    mixed = stacked @ M + (M @ stacked.unsqueeze(-1)).squeeze(-1)
    gated = torch.where(torch.arange(3) % 2 == 0, mixed, -mixed)
    scale = torch.sqrt(2 + q * q) * torch.rsqrt(3 + p * p) + torch.reciprocal(2 + torch.tanh(p))
    return torch.cat([gated - t.expand_as(gated), 1 - scale * t], dim=1)


FIELDS = {
    "concat_mlp": (ConcatMLP, (4, 3)),
    "sequential_mlp": (SequentialField, (4, 3)),
    "conv2d": (ConvField, (2, 2, 4, 4)),
    "ops": (lambda: ops_field, (3, 4)),
    "structural": (lambda: structural_field, (3, 6)),
}


def make_field(name: str):
    torch.manual_seed(1)
    build, shape = FIELDS[name]
    return build(), 0.5 * torch.randn(*shape), torch.tensor(0.3)


@pytest.mark.parametrize("name", list(FIELDS))
def test_taylor_matches_nested_jvp(name):
    func, z, t = make_field(name)
    with torch.no_grad():
        taylor = ode_derivatives(func, t, z, 5)
        reference = ode_derivatives(func, t, z, 5, method="jvp")
    assert all(d.shape == z.shape for d in taylor)
    for k, (got, want) in enumerate(zip(taylor, reference), start=1):
        assert rel_err(got, want) < 1e-8, (name, k)
    for order in range(1, 5):  # a lower order gives the prefix of the same derivatives
        prefix = ode_derivatives(func, t, z, order)
        assert len(prefix) == order and all(rel_err(a, b) < 1e-12 for a, b in zip(prefix, taylor))


# --- gradients ---------------------------------------------------------------------------------------------
def _loss(func, t, z, order, method):
    return ode_derivatives(func, t, z, order, method=method)[-1].pow(2).mean()


@pytest.mark.parametrize("method", ["taylor", "jvp"])
def test_parameter_gradients_match_finite_differences(method):
    torch.manual_seed(2)
    func, z, t, order = ConcatMLP(dim=2, hidden=3), 0.5 * torch.randn(3, 2), torch.tensor(0.2), 3
    params = list(func.parameters())
    grads = torch.autograd.grad(_loss(func, t, z, order, method), params)
    eps = 1e-6
    with torch.no_grad():
        for p, g in zip(params, grads):
            fd = torch.empty_like(p)
            for i in range(p.numel()):
                flat = p.view(-1)
                old = flat[i].item()
                flat[i] = old + eps
                up = _loss(func, t, z, order, method)
                flat[i] = old - eps
                down = _loss(func, t, z, order, method)
                flat[i] = old
                fd.view(-1)[i] = (up - down) / (2 * eps)
            assert rel_err(g, fd) < 1e-6


def test_gradients_agree_between_methods_for_parameters_state_and_time():
    func, z, t = make_field("concat_mlp")
    z.requires_grad_(True)
    t.requires_grad_(True)
    inputs = [z, t, *func.parameters()]
    taylor = torch.autograd.grad(_loss(func, t, z, 4, "taylor"), inputs)
    reference = torch.autograd.grad(_loss(func, t, z, 4, "jvp"), inputs)
    for got, want in zip(taylor, reference):
        assert rel_err(got, want) < 1e-8


# --- elementary rules against nested jvp of the scalar function -------------------------------------------
POS = [0.4, 1.3, 2.2]
ANY = [-1.1, 0.2, 0.9]
ELEMENTARY = {
    "exp": (torch.exp, [ANY]),
    "log": (torch.log, [POS]),
    "sin": (torch.sin, [ANY]),
    "cos": (torch.cos, [ANY]),
    "tanh": (torch.tanh, [ANY]),
    "sigmoid": (torch.sigmoid, [ANY]),
    "softplus": (F.softplus, [ANY]),
    "softplus_beta": (lambda x: F.softplus(x, beta=2.0, threshold=5.0), [ANY]),
    "softplus_linear_branch": (lambda x: F.softplus(x, beta=1.0, threshold=1.0), [[2.5, 0.2, 3.0]]),
    "pow_2.5": (lambda x: x**2.5, [POS]),
    "pow_-1.5": (lambda x: torch.pow(x, -1.5), [POS]),
    "pow_3_through_zero": (lambda x: x**3, [[-1.0, 0.0, 0.7]]),
    "pow_tensor_exponent": (lambda x: x ** torch.tensor([0.5, 1.5, 2.5]), [POS]),
    "sqrt": (torch.sqrt, [POS]),
    "rsqrt": (lambda x: x.rsqrt(), [POS]),
    "square": (torch.square, [ANY]),
    "reciprocal": (lambda x: 1 / x, [POS]),
    "div": (lambda x, y: x / y, [ANY, POS]),
    "div_constant": (lambda x: x / torch.tensor([2.0, -3.0, 0.5]), [ANY]),
    "mul": (lambda x, y: x * y, [ANY, POS]),
    "add_sub": (lambda x, y: 2.0 - x + torch.sub(y, x, alpha=0.5) + torch.add(3, y, alpha=2), [ANY, POS]),
    "series_pow_series": (lambda x, y: x**y, [POS, ANY]),
    "constant_pow_series": (lambda x: torch.tensor(2.0) ** x + 3.0**x, [ANY]),
    "matmul": (lambda x, y: (torch.ones(2, 1) @ x.unsqueeze(0)) @ (y.unsqueeze(1) * torch.eye(3)), [ANY, POS]),
    "neg": (lambda x: -torch.neg(x), [ANY]),
    "cat_stack_constant": (lambda x: torch.cat([x[:2], torch.tensor([1.5])])
                           * torch.stack([x[1], x[2], torch.tensor(2.0)]), [ANY]),
}



@pytest.mark.parametrize("fn, a", [(torch.sqrt, 0.5), (torch.rsqrt, -0.5), (lambda x: x**0.5, 0.5),
                                   (lambda x: x**2.5, 2.5), (lambda x: x ** torch.tensor([0.5, 0.5]), 0.5)],
                         ids=["sqrt", "rsqrt", "0.5", "2.5", "tensor"])
def test_a_non_integer_power_at_zero_has_no_series_and_says_so_with_nan_or_inf(fn, a):
    """x**a is not analytic at x_0 = 0 for a non-integer a (its K-th derivative is infinite for K > a), so the
    documented result there is NaN or ±inf, as JAX's jet gives, never a finite value; at x_0 ≠ 0 in the same tensor
    the series is the closed form's, (x_0 + s)**a's derivatives."""
    x, order = torch.tensor([0.0, 1.7], dtype=torch.float64), 3
    _, derivatives = jet(fn, (x,), ([torch.ones_like(x)] + [torch.zeros_like(x)] * (order - 1),))
    for k, got in enumerate(derivatives, start=1):
        assert not torch.isfinite(got[0]), k
        assert got[1].item() == pytest.approx(math.prod(a - i for i in range(k)) * 1.7 ** (a - k), rel=1e-12)


def test_an_integer_power_at_zero_is_exact():
    """x**2 and x**3 by repeated products: at x_0 = 0 along x(s) = s their series is s**a's, 0 but a! at K = a."""
    x = torch.tensor([0.0], dtype=torch.float64)
    for a in (2, 3):
        _, derivatives = jet(lambda u: u**a, (x,), ([torch.ones_like(x)] + [torch.zeros_like(x)] * 3,))
        assert [d.item() for d in derivatives] == [math.factorial(a) if k == a else 0.0 for k in range(1, 5)]


@pytest.mark.parametrize("name", list(ELEMENTARY))
def test_elementary_rule_matches_nested_jvp(name):
    fn, values = ELEMENTARY[name]
    torch.manual_seed(3)
    order = 4
    primals = [torch.tensor(v) for v in values]
    series = [[0.3 * torch.randn(3) for _ in range(order)] for _ in primals]

    def along_curve(s):
        return fn(*[p + sum(d * s**k / math.factorial(k) for k, d in enumerate(ds, start=1))
                    for p, ds in zip(primals, series)])

    primal_out, derivatives = jet(fn, primals, series)
    assert torch.allclose(primal_out, fn(*primals), rtol=1e-14, atol=1e-14)
    reference = nested_derivatives(along_curve, torch.tensor(0.0), order)
    for k, (got, want) in enumerate(zip(derivatives, reference), start=1):
        assert rel_err(got, want) < 1e-10, (name, k)


def test_jet_uses_the_derivative_convention():
    x = torch.tensor([0.3, -1.0])
    y, (d1, d2, d3) = jet(torch.sin, (x,), ([torch.ones(2), torch.zeros(2), torch.zeros(2)],))
    assert torch.allclose(y, torch.sin(x))
    assert torch.allclose(d1, torch.cos(x)) and torch.allclose(d2, -torch.sin(x))
    assert torch.allclose(d3, -torch.cos(x))
    (a, b), (da, db) = jet(lambda x: (x * 2, torch.ones(3)), (x,), ([torch.ones(2)],))
    assert torch.equal(da[0], 2 * torch.ones(2)) and torch.equal(db[0], torch.zeros(3))


# --- errors and contract -----------------------------------------------------------------------------------
@pytest.mark.parametrize("field, name", [
    (lambda t, z: torch.relu(z), "torch.relu"),
    (lambda t, z: nn.ReLU()(z), "torch.nn.functional.relu"),
    (lambda t, z: z.abs(), "Tensor.abs"),
    (lambda t, z: torch.abs(z), "torch.abs"),
    (lambda t, z: F.gelu(z), "torch.nn.functional.gelu"),
    (lambda t, z: z if z > 0 else -z, "comparison"),
])
def test_unsupported_operation_names_itself(field, name):
    with pytest.raises(TaylorModeError, match="not supported in Taylor mode; supported: ") as info:
        ode_derivatives(field, torch.tensor(0.0), torch.randn(2, 3), 2)
    assert str(info.value).startswith(name)
    assert "tanh" in str(info.value) and "tanh" in supported_ops()


def test_taylor_mode_calls_the_field_once():
    calls = []
    net = SequentialField()

    def field(t, z):
        calls.append(1)
        return net(t, z)

    ode_derivatives(field, torch.tensor(0.0), torch.randn(2, 3), 6)
    assert len(calls) == 1


def test_constant_and_time_only_fields():
    z = torch.randn(2, 3)
    d = ode_derivatives(lambda t, z: torch.full((2, 3), 1.5), torch.tensor(0.0), z, 3)
    assert torch.equal(d[0], torch.full((2, 3), 1.5)) and torch.equal(d[2], torch.zeros(2, 3))
    d = ode_derivatives(lambda t, z: torch.sin(t).expand(2, 3), 0.5, z, 3)
    assert torch.allclose(d[2], -torch.sin(torch.tensor(0.5)).expand(2, 3))


def test_invalid_arguments():
    z = torch.randn(2, 3)
    with pytest.raises(ValueError, match="unknown method"):
        ode_derivatives(lambda t, z: z, torch.tensor(0.0), z, 2, method="jet")
    for order in (0, True, 2.0):
        with pytest.raises(ValueError, match="order must be an integer ≥ 1"):
            ode_derivatives(lambda t, z: z, torch.tensor(0.0), z, order)
    with pytest.raises(ValueError, match="0-d"):
        ode_derivatives(lambda t, z: z, torch.zeros(1), z, 2)
    with pytest.raises(ValueError, match="shape"):
        ode_derivatives(lambda t, z: z.sum(-1), torch.tensor(0.0), z, 2)
    # a NumPy integer is an integer (its message had read "must be an integer ≥ 1, got np.int64(2)")
    assert len(ode_derivatives(lambda t, z: z, torch.tensor(0.0), z, np.int64(2))) == 2
    # a float time would be a constant of the compiled graph: refused before Dynamo traces anything
    with pytest.raises(ValueError, match="t must be a 0-d tensor"):
        compile_derivatives(lambda t, z: z, 2)(0.0, z)


@pytest.mark.skipif(not jax_jet.available(), reason="jax is not installed (the JAX jet column is optional)")
def test_jax_jet_reference_agrees_with_taylor_mode():
    """The benchmark's JAX column computes the same derivatives from the same weights."""
    net = mlp_field(2, 16, torch.device("cpu"), torch.float64, 0)
    z = torch.randn(8, 2, dtype=torch.float64)
    import jax
    jax.config.update("jax_enable_x64", True)
    try:
        _, _, ours_k = jax_jet.JaxJet(net, 4).time_call(z)
    finally:
        jax.config.update("jax_enable_x64", False)
    want = ode_derivatives(lambda t, y: net(y), torch.tensor(0.0, dtype=torch.float64), z, 4)[-1]
    torch.testing.assert_close(ours_k, want.detach(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cpu_time", [False, True])
def test_measure_cost_rows_agreement_and_optional_columns(cpu_time):
    methods = ("taylor", "jvp") + ((JAX,) if cpu_time and jax_jet.available() else ())  # JAX compiles once
    samples, agreement = measure_cost(dims=(2,), orders=(2,), methods=methods, hidden=8, batch=4, rounds=2,
                                      cpu_time=cpu_time)
    timed = samples[~samples.skipped]
    assert set(timed.method) == set(methods) and len(timed) == 2 * len(methods)
    assert (timed.forward_s > 0).all()
    assert agreement[(2, 2)] < 1e-5
    if JAX in methods:
        assert agreement[(2, 2, JAX)] < 1e-5 and (timed[timed.method == JAX].compile_s > 0).all()
    median, lo, hi = ratio(samples, 2, 2, "total_s")
    assert 0 < lo <= median <= hi  # inclusive quartiles: no extrapolation below the smallest ratio


def test_measure_cost_times_the_compiled_methods(monkeypatch):
    """``taylor_compiled`` and ``taylor_fused`` rows: timed, compile time apart, derivatives agreeing with eager
    Taylor mode; the fused forward is its unrecorded forward. Compiled on AOTAutograd's eager backend (the
    Inductor path is tested above), which keeps the test to seconds."""
    from nodebench.papers.taynode.cost import COMPILED, FUSED
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **settings: real_compile(fn, fullgraph=True, backend="aot_eager"))
    methods = ("taylor", COMPILED, FUSED)
    samples, agreement = measure_cost(dims=(2,), orders=(3,), methods=methods, hidden=8, batch=4, rounds=2)
    timed = samples[~samples.skipped]
    assert set(timed.method) == set(methods) and len(timed) == 2 * len(methods)
    # backward_s is the difference of two one-call timings: on a loaded machine a stalled forward call makes it
    # negative (measured: a 13 ms forward against a 1.8 ms forward + backward), so only its presence is checked
    assert (timed.forward_s > 0).all() and timed.backward_s.notna().all()
    fused = timed[timed.method == FUSED]
    assert (fused.forward_s == fused.unrecorded_s).all() and (fused.compile_s > 0).all()
    assert agreement[(2, 3, COMPILED)] < 1e-6 and agreement[(2, 3, FUSED)] < 1e-6


def test_measure_cost_synchronises_before_every_clock_reading_of_a_cuda_run_the_compile_time_included(monkeypatch):
    """torch.cuda replaced by recorders (no GPU needed; the tensors stay on the CPU, the clocks are a CUDA run's,
    the compiler is a stand-in): every wall-clock reading directly follows a synchronisation, the two that bracket
    a compiled method's first calls (``compile_s``) included, so no queued kernel lands inside or outside them."""
    from nodebench.harness import Stopwatch
    from nodebench.papers.taynode import cost

    log = []
    real_clock = time.perf_counter
    monkeypatch.setattr(torch.cuda, "Event", SilentEvent)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append("synchronize"))
    monkeypatch.setattr(time, "perf_counter", lambda: (log.append("clock"), real_clock())[1])
    monkeypatch.setattr(cost, "Stopwatch", lambda device: Stopwatch("cuda:0"))
    monkeypatch.setattr(cost, "compile_derivatives", lambda f, order, **settings: (
        log.append("compiled"), lambda t, z: ode_derivatives(f, t, z, order))[1])
    samples, _ = measure_cost(dims=(2,), orders=(2,), methods=("taylor", cost.COMPILED), hidden=8, batch=4, rounds=1)
    assert (samples[samples.method == cost.COMPILED].compile_s > 0).all()
    first_calls = log[log.index("compiled"):]
    assert first_calls.count("clock") >= 4  # the compile time's two readings and the timed calls' inside them
    assert [log[i - 1] for i, call in enumerate(log) if call == "clock"] == ["synchronize"] * log.count("clock")


def test_measure_cost_times_blocks_of_calls_sized_from_a_warm_call(monkeypatch):
    """With ``min_block`` each phase is a block of consecutive calls, as many as :func:`calls_per_block` asks for
    at one warm call's unrecorded-forward time, and the times are per call. The sizing step's input is recorded
    rather than the block's wall time asserted: on a loaded machine one warm call can run twice as slow as the
    block that follows it."""
    from nodebench.papers.taynode import cost
    sized = []
    monkeypatch.setattr(cost, "calls_per_block", lambda seconds, block: sized.append(seconds) or
                        calls_per_block(seconds, block))
    samples, _ = measure_cost(dims=(2,), orders=(2,), methods=("taylor",), hidden=8, batch=4, rounds=2,
                              min_block=0.02)
    timed = samples[~samples.skipped]
    assert len(sized) == 1 and 0 < sized[0] < 0.02  # one warm call, shorter than a block, sized the blocks
    assert (timed.number == calls_per_block(sized[0], 0.02)).all() and (timed.number > 1).all()
    # backward_s, a difference of two blocks, can be negative on a loaded machine: the timed blocks are checked
    assert (timed.unrecorded_s > 0).all() and (timed.total_s > 0).all()
    with pytest.raises(ValueError, match="min_block"):
        measure_cost(dims=(2,), orders=(2,), methods=("taylor",), min_block=float("nan"))


@pytest.mark.parametrize("seconds_per_call, min_block, want", [
    (1e-3, 0.0, 1), (1e-3, 0.02, 20), (3e-3, 0.02, 7), (0.5, 0.02, 1), (0.0, 0.02, 20_000)])
def test_calls_per_block(seconds_per_call, min_block, want):
    assert calls_per_block(seconds_per_call, min_block) == want


BAD_TAYLOR_COST_ARGUMENTS = [
    (["--min-block", "-1"], "--min-block: expected a number of seconds ≥ 0, got '-1'"),
    (["--compile-mode", "fast"], "--compile-mode: invalid choice: 'fast'"),
    (["--orders", "0"], "--orders: expected a positive integer, got '0'"),
    (["--device", "meta"], "unsupported device 'meta'; valid: cpu, cuda, cuda:N"),
    (["--device", "gpu0"], "unknown device 'gpu0'; valid: cpu, cuda, cuda:N"),
    (["--cap", "nan"], "--cap: expected a positive finite number, got 'nan'"),
]
if not torch.cuda.is_available():
    BAD_TAYLOR_COST_ARGUMENTS.append((["--device", "cuda"], "CUDA is not available on this machine; use cpu"))
if not jax_jet.available("cpu"):
    BAD_TAYLOR_COST_ARGUMENTS.append((["--methods", "taylor", "jax_jet"],
                                      "method jax_jet needs jax installed with a device for --device cpu (JAX jet "
                                      "runs on: cpu, cuda)"))


@pytest.mark.parametrize("arguments, message", BAD_TAYLOR_COST_ARGUMENTS)
def test_taylor_cost_benchmark_refuses_bad_arguments_in_one_line(tmp_path, capsys, monkeypatch, arguments, message):
    assert_refused_in_one_line("taylor_cost.py", arguments, message, tmp_path, capsys, monkeypatch)


def test_taylor_cost_benchmark_refuses_cpu_time_on_a_gpu(tmp_path, capsys, monkeypatch):
    """CPU time does not time a GPU: refused before anything runs (CUDA is faked as present, so that the
    device check lets ``--device cuda`` through on a machine without one; nothing touches CUDA)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert_refused_in_one_line("taylor_cost.py", ["--device", "cuda", "--cpu-time"],
                               "--cpu-time times the CPU; with --device cuda leave it out",
                               tmp_path, capsys, monkeypatch)


def test_taylor_cost_summary_keeps_three_significant_digits_of_a_millisecond():
    """A call of a few microseconds (a tiny field against JAX's per-call cost) keeps its digits in the tables."""
    import runpy
    from benchmark_scripts import BENCHMARKS
    fmt = runpy.run_path(str(BENCHMARKS / "taylor_cost.py"))["_fmt"]
    assert [fmt(s) for s in (1.14e-5, 2.341e-4, 1.2341e-3, 0.0456)] == ["0.0114", "0.234", "1.23", "45.6"]
    assert fmt(math.nan) == "skipped"



def test_cost_tables_show_a_backward_within_noise_as_such_not_as_a_negative_time(tmp_path):
    """``backward_s`` is the forward+backward block's time less the forward block's: samples where a forward block
    stalled past forward+backward (Taylor mode's here) give a backward within noise, not a negative median; nested
    jvp's, above 0 in every round, is shown. The benchmark's summary and the analysis's table agree."""
    import argparse
    import runpy
    import pandas as pd
    from benchmark_scripts import BENCHMARKS
    from nodebench.papers.taynode.analyses import taylor_cost
    from nodebench.papers.taynode.cost import WITHIN_NOISE, cost_table

    timings = {"taylor": ([2e-3] * 4, [1.5e-3, 2.1e-3, 1.9e-3, 2.05e-3]),  # (forward blocks, forward+backward)
               "jvp": ([1e-2] * 4, [15e-3, 16e-3, 14e-3, 15.5e-3])}
    samples = pd.DataFrame([dict(dim=2, K=3, method=m, round=r, forward_s=f, backward_s=t - f, total_s=t,
                                 unrecorded_s=f, number=1, skipped=False, compile_s=math.nan)
                            for m, (forwards, totals) in timings.items()
                            for r, (f, t) in enumerate(zip(forwards, totals))])
    (row,) = cost_table(samples).itertuples()
    assert row.taylor_backward_noise and math.isnan(row.taylor_backward_s)  # its median, −0.025 ms, is noise
    assert row.taylor_total_s == pytest.approx(1.975e-3) and row.taylor_forward_s == pytest.approx(2e-3)
    assert not row.jvp_backward_noise and row.jvp_backward_s == pytest.approx(5.25e-3)
    args = argparse.Namespace(dims=[2], orders=[3], methods=["taylor", "jvp"], hidden=8, batch=4, dtype="float32",
                              device="cpu", rounds=4, cpu_time=False, min_block=0.0, cap=2.0, compile_mode=None)
    summary = runpy.run_path(str(BENCHMARKS / "taylor_cost.py"))["summary"](samples, {}, {}, args)
    samples.to_parquet(tmp_path / "taylor_cost_samples.parquet")
    # a table stored before forward+backward had its own columns is rebuilt from the samples
    cost_table(samples).drop(columns=["taylor_total_s", "jvp_total_s"]).to_parquet(tmp_path / "taylor_cost.parquet")
    section, _ = taylor_cost({}, tmp_path, pd.DataFrame())
    for text, keys in ((summary, ["3"]), (section, ["2", "3"])):  # (K) in the summary, (D, K) in the analysis
        table = [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()
                 if line.startswith("|")]
        (cells,) = [cells for cells in table if cells[:len(keys)] == keys]
        assert cells[len(keys):len(keys) + 6] == ["2", "1.98", WITHIN_NOISE, "10", "15.2", "5.25"]
        assert not any(cell.startswith("-") for cell in cells)


# --- the kernels behind each order -------------------------------------------------------------------------
@pytest.mark.parametrize("name, fn, symbol", [
    ("exp", torch.exp, "exp"), ("tanh", torch.tanh, "tanh"), ("sigmoid", torch.sigmoid, "sigmoid"),
    ("sin", torch.sin, "sin"), ("log", torch.log, "log"), ("softplus", F.softplus, "softplus"),
])
def test_elementary_series_match_closed_form_derivatives(name, fn, symbol):
    """Along x(s) = x + s the series of f is f's own derivatives f^{(k)}(x), here from sympy, k = 1..6."""
    sympy = pytest.importorskip("sympy")
    u = sympy.Symbol("u")
    expr = {"exp": sympy.exp(u), "tanh": sympy.tanh(u), "sigmoid": 1 / (1 + sympy.exp(-u)), "sin": sympy.sin(u),
            "log": sympy.log(u), "softplus": sympy.log(1 + sympy.exp(u))}[symbol]
    values = [0.4, 1.3, 2.2] if name == "log" else [-1.7, -0.2, 0.3, 2.4]
    x, order = torch.tensor(values), 6
    _, derivatives = jet(fn, (x,), ([torch.ones_like(x)] + [torch.zeros_like(x)] * (order - 1),))
    for k, got in enumerate(derivatives, start=1):
        exact = sympy.lambdify(u, sympy.diff(expr, u, k), "math")
        want = torch.tensor([float(exact(v)) for v in values])
        assert rel_err(got, want) < 1e-12, (name, k)


class KernelCounter(TorchDispatchMode):
    """The ATen operations run inside the ``with`` block, by name."""

    def __enter__(self):
        self.ops = {}
        return super().__enter__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.ops[name] = self.ops.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("weights", [None, [0.25, 0.5, 0.75, 1.0], [-0.5, 2.0, -3.0, 0.125]])
def test_cauchy_sum_against_the_plain_sum(weights):
    """One kernel per term whether or not a term has weight 1 (then the chain starts there)."""
    from nodebench.taylor.rules import cauchy

    torch.manual_seed(4)
    xs, ys = [torch.randn(3, 2) for _ in range(5)], [torch.randn(3, 2) for _ in range(5)]
    ws = weights or [1.0] * 4
    want = sum(w * xs[j] * ys[4 - j] for w, j in zip(ws, range(1, 5)))
    cauchy(xs, ys, 4, 1, 4, weights)  # the cached zero exists now (run alone, this test would count its making)
    with KernelCounter() as counter:
        got = cauchy(xs, ys, 4, 1, 4, weights)
    assert rel_err(got, want) < 1e-14 and sum(counter.ops.values()) == 4
    assert cauchy(xs, ys, 4, 3, 2) is None


def test_mlp_derivatives_issue_no_scalar_copies_and_one_kernel_per_cauchy_term():
    """d^K z of a D-H-H-D tanh MLP: per order one matmul per linear layer, per tanh and order k ≥ 2 the
    k-term Cauchy sum and the ⌊(k−1)/2⌋+1-term half of [y²]_{k−1}; no scalar tensor made per call."""
    net = mlp_field(2, 8, torch.device("cpu"), torch.float64, 0)
    z, order = torch.randn(5, 2), 6
    ode_derivatives(lambda t, y: net(y), torch.tensor(0.0), z, order)  # the cached constants exist now
    with KernelCounter() as counter:
        ode_derivatives(lambda t, y: net(y), torch.tensor(0.0), z, order)
    ops = counter.ops
    assert "_to_copy" not in ops and "ones_like" not in ops and "zeros_like" not in ops and "copy_" not in ops
    assert ops["mm"] == 3 * (order - 1) and ops["addmm"] == 3 and ops["tanh"] == 2
    per_tanh = sum(k + ((k - 1) // 2 + 1 if k >= 2 else 0) for k in range(1, order))  # Cauchy + [y²] half
    per_tanh += 2  # u_0 = 1 − y_0², and −2 y_0 once
    scalings = 2 * (order - 2)  # z_k = [f]_{k−1}/k and (k−1)!·[f]_{k−1}
    assert sum(ops.get(name, 0) for name in ("mul", "addcmul", "addcmul_")) == 2 * per_tanh + scalings


def test_taylor_mode_traces_into_one_graph_for_torch_compile():
    """``torch.compile(..., fullgraph=True)`` of the whole derivative function needs no graph break."""
    net = mlp_field(2, 8, torch.device("cpu"), torch.float64, 0)
    explanation = torch._dynamo.explain(lambda z: ode_derivatives(lambda t, y: net(y), torch.tensor(0.0), z, 3))(
        torch.randn(5, 2))
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0, explanation.break_reasons


def test_every_activation_traces_into_one_compiled_graph():
    """softplus (the FFJORD activation) with elements on both sides of its threshold, σ, tanh, sin, cos, exp, log,
    sqrt, division and pow in a concat-t field: ``compile_derivatives`` traces it with ``fullgraph=True`` and gives
    eager Taylor mode's derivatives. softplus used to branch on its data (whether any element was past the
    threshold), which Dynamo refuses ("Could not guard on data-dependent expression"). Dynamo's limits do not
    depend on the backend: "eager" keeps the test fast."""
    linear = nn.Linear(3, 4)
    z, t = torch.randn(5, 2, generator=torch.Generator().manual_seed(1)), torch.tensor(0.3)

    def field(t_, y):
        h = 2.0 * linear(torch.cat([y, t_.expand(y.shape[0], 1)], 1))
        h = F.softplus(h, beta=2.0, threshold=1.0) + torch.sigmoid(h) * torch.sin(t_) + torch.exp(-h * h) / (
            2.0 + torch.cos(h))
        h = torch.tanh(h) + torch.sqrt(1.0 + h ** 2) + torch.log(2.0 + h.pow(3.0) ** 2)
        return h[:, :2] * h[:, 2:] - y

    past = 2.0 * 2.0 * linear(torch.cat([z, t.expand(5, 1)], 1)) > 1.0
    assert past.any() and not past.all()  # both of softplus's branches
    got = compile_derivatives(field, 4, backend="eager")(t, z)
    want = ode_derivatives(field, t, z, 4)
    assert all(rel_err(a, b) < 1e-12 for a, b in zip(got, want, strict=True))


def test_compiled_derivatives_match_eager_taylor_mode_and_its_gradients():
    """The compiled graph gives eager Taylor mode's derivatives and parameter gradients, in both grad modes."""
    net = mlp_field(2, 8, torch.device("cpu"), torch.float64, 0)
    t, z = torch.tensor(0.3, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    field = lambda t_, y: net(y)  # noqa: E731
    derivatives = compile_derivatives(field, 3)
    got, want = derivatives(t, z), ode_derivatives(field, t, z, 3)
    assert len(got) == 3 and all(rel_err(a, b) < 1e-12 for a, b in zip(got, want))
    grads = [torch.autograd.grad(d[-1].pow(2).mean(), list(net.parameters())) for d in (got, want)]
    assert all(rel_err(a, b) < 1e-12 for a, b in zip(*grads))
    with torch.no_grad():
        assert rel_err(derivatives(t, z)[-1], want[-1].detach()) < 1e-12
    with pytest.raises(ValueError, match="order"):
        compile_derivatives(field, 0)


def test_compiled_derivatives_do_not_share_dynamos_recompile_limit():
    """Orders 1..9 compiled in one process: more graphs than Dynamo's 8 per code object (the limit is
    Dynamo's, whatever the backend: "eager" keeps the test fast)."""
    net = nn.Linear(2, 2)
    field = lambda t_, y: net(y)  # noqa: E731
    z, t = torch.randn(3, 2), torch.tensor(0.0)
    for order in range(1, 10):
        got = compile_derivatives(field, order, backend="eager")(t, z)
        torch.testing.assert_close(got[-1], ode_derivatives(field, t, z, order)[-1])


def test_compiled_derivatives_follow_a_new_batch_size():
    """A second shape recompiles (dynamic shapes) and still gives eager Taylor mode's derivatives."""
    net = mlp_field(2, 8, torch.device("cpu"), torch.float64, 0)
    field = lambda t_, y: net(y)  # noqa: E731
    derivatives, t = compile_derivatives(field, 2), torch.tensor(0.0, dtype=torch.float64)
    for batch in (5, 7, 9):
        z = torch.randn(batch, 2, dtype=torch.float64)
        with torch.no_grad():
            got, want = derivatives(t, z), ode_derivatives(field, t, z, 2)
        assert got[-1].shape == (batch, 2) and rel_err(got[-1], want[-1]) < 1e-12


class TimeField(nn.Module):
    """f(t, z) = W2 tanh(W1 [z, t] + b1) + b2, a concat-t field (so ∂f/∂t enters every derivative)."""

    def __init__(self, dim: int = 2, hidden: int = 8):
        super().__init__()
        self.inner, self.outer = nn.Linear(dim + 1, hidden), nn.Linear(hidden, dim)

    def forward(self, t, z):
        return self.outer(torch.tanh(self.inner(torch.cat([z, t.expand(z.shape[0], 1)], -1))))


def test_compiled_grad_and_value_matches_autograd_and_finite_differences():
    """One compiled graph of forward and backward gives eager Taylor mode's R_K integrand and, through
    ordinary autograd, its parameter gradients; a central difference of its own value (the parameters are
    read at each call) agrees with its gradient."""
    torch.manual_seed(0)
    field = TimeField()
    t, z = torch.tensor(0.3), torch.randn(5, 2)
    step = compile_grad_and_value(field, 3)
    grads, value = step(t, z)
    want = rk_integrand(ode_derivatives(field, t, z, 3))
    want_grads = dict(zip(dict(field.named_parameters()), torch.autograd.grad(want, list(field.parameters()))))
    assert rel_err(value, want) < 1e-12 and grads.keys() == want_grads.keys()
    assert all(rel_err(grads[name], want_grads[name]) < 1e-12 for name in grads)
    h, entry = 1e-6, (1, 2)
    values = []
    with torch.no_grad():
        for sign in (1, -1):
            field.inner.weight[entry] += sign * h
            values.append(step(t, z)[1])
            field.inner.weight[entry] -= sign * h
    assert abs(float((values[0] - values[1]) / (2 * h)) / float(grads["inner.weight"][entry]) - 1) < 1e-7
    with pytest.raises(ValueError, match="order"):
        compile_grad_and_value(field, True)
    with pytest.raises(TypeError, match="field must be an nn.Module"):
        compile_grad_and_value(lambda t_, y: -y, 2)


def test_compiled_grad_and_value_takes_any_loss_of_the_derivatives():
    """A loss of all the derivatives (not only d^K z); traced by Dynamo with functorch's grad, run on
    AOTAutograd's eager backend to keep the test fast."""
    torch.manual_seed(1)
    field = TimeField()
    t, z = torch.tensor(-0.2), torch.randn(4, 2)

    def loss(derivatives):
        return sum((k + 1) * d.sin().sum() for k, d in enumerate(derivatives))

    grads, value = compile_grad_and_value(field, 4, loss, backend="aot_eager")(t, z)
    want = loss(ode_derivatives(field, t, z, 4))
    want_grads = torch.autograd.grad(want, list(field.parameters()))
    assert rel_err(value, want) < 1e-12
    assert all(rel_err(grads[name], g) < 1e-12 for name, g in zip(grads, want_grads))


@pytest.mark.parametrize("options, want", [
    ({}, {"fullgraph": True, "options": {"cpp_wrapper": True}}),
    ({"options": {"max_autotune": True}}, {"fullgraph": True, "options": {"cpp_wrapper": True, "max_autotune": True}}),
    ({"options": {"cpp_wrapper": False}, "dynamic": False},
     {"fullgraph": True, "dynamic": False, "options": {"cpp_wrapper": False}}),
    ({"mode": "max-autotune"}, {"fullgraph": True, "mode": "max-autotune"}),
    ({"backend": "eager", "fullgraph": False}, {"fullgraph": False, "backend": "eager"}),
])
def test_compile_derivatives_settings_on_the_cpu(monkeypatch, options, want):
    """On the CPU Inductor gets the C++ wrapper unless the caller's options say otherwise; a mode or another
    backend replaces the Inductor options (torch.compile refuses a mode with options)."""
    seen = {}

    def fake_compile(fn, **settings):
        seen.update(settings)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    compile_derivatives(lambda t, y: -y, 2, **options)(torch.tensor(0.0), torch.ones(3, 1))
    assert seen == want


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", [None, "reduce-overhead"])
def test_taylor_mode_and_compiled_derivatives_on_cuda_match_the_cpu(mode):
    """Eager and compiled Taylor mode and the compiled gradient on CUDA (with CUDA graphs for
    ``reduce-overhead``) give the CPU's derivatives and parameter gradients, on CUDA tensors."""
    cpu = mlp_field(2, 8, torch.device("cpu"), torch.float64, 0)
    gpu = mlp_field(2, 8, torch.device("cuda"), torch.float64, 0)
    t, z = torch.tensor(0.3, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    want = ode_derivatives(lambda t_, y: cpu(y), t, z, 3)
    want_grads = torch.autograd.grad(want[-1].pow(2).mean(), list(cpu.parameters()))
    compiled = compile_derivatives(lambda t_, y: gpu(y), 3, **({"mode": mode} if mode else {}))
    for derivatives in (lambda t_, z_: ode_derivatives(lambda s, y: gpu(y), t_, z_, 3), compiled):
        for _ in range(3):  # CUDA graphs record on a later call than the first
            got = derivatives(t.cuda(), z.cuda())
            grads = torch.autograd.grad(got[-1].pow(2).mean(), list(gpu.parameters()))
            assert got[-1].is_cuda and all(g.is_cuda for g in grads)
            assert all(rel_err(a.cpu(), b) < 1e-12 for a, b in zip(got, want))
            assert all(rel_err(a.cpu(), b) < 1e-12 for a, b in zip(grads, want_grads))
    fused = compile_grad_and_value(Autonomous(gpu), 3, **({"mode": mode} if mode else {}))
    for _ in range(3):
        grads, value = fused(t.cuda(), z.cuda())
        assert value.is_cuda and rel_err(value.cpu(), want[-1].pow(2).mean()) < 1e-12
        assert all(rel_err(g.cpu(), w) < 1e-12 for g, w in zip(grads.values(), want_grads))


def test_jax_jet_runs_only_where_jax_has_the_fields_device():
    assert not jax_jet.available("meta")
    if jax_jet.available("cpu"):
        with pytest.raises(RuntimeError, match="JAX jet runs on: cpu, cuda"):
            jax_jet.JaxJet(mlp_field(2, 4, torch.device("meta"), torch.float32, 0), 2)


@pytest.mark.skipif(not jax_jet.available("cuda"), reason="needs jax with a GPU backend and CUDA")
def test_jax_jet_on_the_gpu_agrees_with_taylor_mode_on_cuda():
    net = mlp_field(2, 16, torch.device("cuda"), torch.float32, 0)
    z = torch.randn(8, 2, device="cuda", dtype=torch.float32)
    runner = jax_jet.JaxJet(net, 4)
    assert runner.device.platform == "gpu"
    _, _, theirs = runner.time_call(z)
    want = ode_derivatives(lambda t, y: net(y), torch.tensor(0.0, device="cuda", dtype=torch.float32), z, 4)[-1]
    assert rel_err(theirs, want.cpu()) < 1e-5


def test_input_series_take_the_primal_dtype_and_shape():
    """A 0-d or lower-precision input coefficient is cast and broadcast like the primal (what the rules'
    in-place sums rely on), and the series through sin, exp and a product equal the full-shape ones."""
    from nodebench.taylor import Tape

    x = torch.tensor([0.3, -1.2, 0.8])
    leaf = Tape().leaf([x, torch.tensor(0.5, dtype=torch.float32), torch.full((1,), -0.25)])
    assert all(c.dtype == torch.float64 and c.shape == (3,) for c in leaf.coeffs)
    fn = lambda x: torch.sin(x) * torch.exp(x) * x  # noqa: E731
    _, full = jet(fn, (x,), ([torch.full((3,), 0.5), torch.full((3,), -0.25)],))
    _, short = jet(fn, (x,), ([torch.tensor(0.5, dtype=torch.float32), torch.tensor(-0.25)],))
    assert all(a.dtype == torch.float64 and a.shape == (3,) and torch.equal(a, b) for a, b in zip(short, full))


@pytest.mark.parametrize("method", ["taylor", "jvp"])
def test_bad_state_time_and_output_are_clear_errors(method):
    """A ValueError or TypeError naming the argument, from both methods alike (before: a deep PyTorch error from
    jvp or from ``expand``, integer derivatives computed silently, a wrong-shaped z' returned by jvp at K = 1)."""
    z = torch.randn(2, 3)
    for bad_z, message in ((torch.ones(2, 3, dtype=torch.long), "z must be a floating-point tensor"),
                           ((z, z), "z must be a tensor .*tuple states are not supported"),
                           ([1.0, 2.0], "z must be a tensor")):
        with pytest.raises(TypeError, match=message):
            ode_derivatives(lambda t, z: -z, torch.tensor(0.0), bad_z, 2, method=method)
    with pytest.raises(TypeError, match="t must be a 0-d tensor or a real number, got 'a'"):
        ode_derivatives(lambda t, z: -z, "a", z, 2, method=method)
    for order in (1, 3):
        with pytest.raises(ValueError, match=r"func returned shape \(2, 1\) for a state of shape \(2, 3\)"):
            ode_derivatives(lambda t, z: z[:, :1], torch.tensor(0.0), z, order, method=method)
        with pytest.raises(ValueError, match=r"func returned shape \(3,\) for a state of shape \(2, 3\)"):
            ode_derivatives(lambda t, z: torch.ones(3), torch.tensor(0.0), z, order, method=method)


def test_jet_refuses_series_of_another_shape_and_non_tensor_primals():
    x = torch.randn(5)
    with pytest.raises(ValueError, match=r"series\[0\]\[0\] must be a tensor of primals\[0\]'s shape \(5,\)"):
        jet(torch.sin, (x,), ([torch.ones(3)],))
    with pytest.raises(TypeError, match=r"primals\[0\] must be a tensor, got float"):
        jet(torch.sin, (1.0,), ([torch.ones(())],))
