"""Tests for nodebench.cnf: invertibility, log-determinants, trace estimators, solvers, nflows composition."""

import functools
import math

import pytest
import torch
from nflows.distributions.normal import ConditionalDiagonalNormal, StandardNormal
from nflows.flows.base import Flow
from nflows.transforms.autoregressive import MaskedAffineAutoregressiveTransform
from nflows.transforms.base import CompositeTransform
from nflows.transforms.permutations import ReversePermutation
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from nodebench.cnf import CNF, AugmentedDynamics, ConcatConvNet, ConcatSquashLinear, ConcatSquashMLP
from nodebench.errors import UserError

TIGHT = dict(rtol=1e-10, atol=1e-10)


def make_cnf(dim=3, dtype=torch.float64, init_seed=0, hidden=(16, 16), **kwargs):
    torch.manual_seed(init_seed)
    dynamics = ConcatSquashMLP(dim, hidden, "tanh")
    with torch.no_grad():
        for p in dynamics.parameters():
            p.mul_(2.0)  # a livelier field than the default initialisation, so log-dets are far from 0
    return CNF(dynamics, **kwargs).to(dtype)


def data(n, dim=3, dtype=torch.float64, seed=1):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def rk4(step):
    return functools.partial(odeint, method="rk4", options={"step_size": step})


class Counting(nn.Module):
    """Wraps a field and counts its evaluations."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.nfe = 0

    def forward(self, t, z):
        self.nfe += 1
        return self.inner(t, z)


def test_concat_squash_layer_formula():
    layer = ConcatSquashLinear(2, 3).double()
    x, t = data(4, 2), torch.tensor(0.3, dtype=torch.float64)
    gate = torch.sigmoid(layer.gate.weight[:, 0] * t + layer.gate.bias)
    expected = layer.linear(x) * gate + layer.shift.weight[:, 0] * t
    torch.testing.assert_close(layer(t, x), expected)
    torch.testing.assert_close(layer(0.3, x), expected)


def test_invalid_choices_raise_user_error():
    with pytest.raises(UserError, match="valid: tanh, softplus"):
        ConcatSquashMLP(2, (4,), "relu")
    with pytest.raises(UserError, match="exact, hutchinson"):
        make_cnf(trace="hutch")
    with pytest.raises(UserError, match="gaussian, rademacher"):
        make_cnf(noise="uniform")
    for t1 in (0.0, math.inf, "1"):  # an infinite end was accepted, a string failed in a comparison
        with pytest.raises(UserError, match="t1 must be a positive finite number"):
            make_cnf(t1=t1)
    with pytest.raises(UserError, match="generator must be a torch.Generator"):
        make_cnf(generator="x")
    for dim, hidden in ((0, (4,)), (2, (4, 0)), (2, (2.5,))):
        with pytest.raises(UserError, match="positive integers"):
            ConcatSquashMLP(dim, hidden)


@pytest.mark.parametrize("kwargs, message", [
    ({"shape": (1, 4.7, 4)}, r"shape must be \(C, H, W\) of positive integers, got \(1, 4.7, 4\)"),
    ({"hidden_channels": (2.5,)}, r"hidden_channels must be positive integers, got \(2.5,\)"),
    ({"hidden_channels": (True,)}, r"hidden_channels must be positive integers, got \(True,\)"),
    ({"ksize": "3"}, "kernel size must be a positive odd integer, got '3'"),
    ({"ksize": True}, "kernel size must be a positive odd integer, got True"),
])
def test_conv_net_sizes_must_be_positive_integers(kwargs, message):
    """A fractional size was truncated (shape (1, 4.7, 4) built a 4×4 field, 2.5 channels 2), True passed as one
    channel or a 1×1 kernel, a string kernel size failed in a comparison (TypeError)."""
    with pytest.raises(UserError, match=message):
        ConcatConvNet(**({"shape": (1, 4, 4)} | kwargs))


def test_round_trip_float64():
    cnf = make_cnf(**TIGHT)
    x = data(16)
    z, ld_fwd = cnf(x)
    x_back, ld_inv = cnf.inverse(z)
    assert ld_fwd.shape == (16,)
    assert ld_fwd.abs().max() > 0.2  # a non-trivial map
    torch.testing.assert_close(x_back, x, atol=1e-8, rtol=0)
    torch.testing.assert_close(ld_fwd + ld_inv, torch.zeros_like(ld_fwd), atol=1e-8, rtol=0)


def test_logdet_matches_bruteforce_jacobian():
    cnf = make_cnf(**TIGHT)
    for x in data(3):
        _, ld = cnf(x[None])
        jac = torch.autograd.functional.jacobian(lambda v: cnf(v[None])[0][0], x)
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign > 0
        assert abs(logabs.item() - ld.item()) < 1e-7


def test_composes_with_nflows():
    dim = 2
    torch.manual_seed(0)
    transform = CompositeTransform(
        [
            CNF(ConcatSquashMLP(dim, (16,)), method="rk4", options={"step_size": 0.25}),
            ReversePermutation(dim),
            MaskedAffineAutoregressiveTransform(features=dim, hidden_features=8),
        ]
    )
    flow = Flow(transform, StandardNormal([dim]))
    x = data(32, dim, torch.float32)
    log_prob = flow.log_prob(x)
    assert log_prob.shape == (32,) and torch.isfinite(log_prob).all()
    z, logdet = transform(x)
    torch.testing.assert_close(log_prob, StandardNormal([dim]).log_prob(z) + logdet)
    (-log_prob.mean()).backward()
    cnf_grads = [p.grad for p in transform._transforms[0].parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in cnf_grads)
    assert sum(g.abs().sum() for g in cnf_grads) > 0
    with torch.no_grad():
        samples = flow.sample(5)
    assert samples.shape == (5, dim) and torch.isfinite(samples).all()


def test_is_a_block_of_a_conditional_flow():
    """nflows's unconditional transforms ignore ``context``; the CNF raised NotImplementedError ("CNF does not take
    a context"), so no conditional flow could hold one."""
    dim, features = 2, 3
    torch.manual_seed(0)
    cnf = CNF(ConcatSquashMLP(dim, (8,)), method="rk4", options={"step_size": 0.25})
    maf = MaskedAffineAutoregressiveTransform(features=dim, hidden_features=8, context_features=features)
    base = ConditionalDiagonalNormal([dim], context_encoder=nn.Linear(features, 2 * dim))
    flow = Flow(CompositeTransform([cnf, maf]), base)
    x, context = data(16, dim, torch.float32), data(16, features, torch.float32, seed=2)
    z, logdet = cnf(x)
    z_c, logdet_c = cnf(x, context=context)
    assert torch.equal(z_c, z) and torch.equal(logdet_c, logdet)  # the CNF does not depend on the context
    u, logdet_maf = maf(z, context=context)
    log_prob = flow.log_prob(x, context=context)
    torch.testing.assert_close(log_prob, base.log_prob(u, context=context) + logdet + logdet_maf)
    (-log_prob.mean()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in cnf.parameters())
    with torch.no_grad():
        samples = flow.sample(5, context=context[:4])
    assert samples.shape == (4, 5, dim) and torch.isfinite(samples).all()


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_log_prob_and_inverse_under_inference_mode(trace):
    """Under ``torch.inference_mode`` the trace's autograd failed: "element 0 of tensors does not require grad"."""
    cnf = make_cnf(trace=trace, seed=4, solve=rk4(0.25))
    flow = Flow(cnf, StandardNormal([3]))
    x = data(8)
    with torch.no_grad():
        expected = flow.log_prob(x)
        x_back = cnf.inverse(cnf(x)[0])
    cnf.generator.manual_seed(4)
    with torch.inference_mode():
        got = flow.log_prob(x)
        got_back = cnf.inverse(cnf(x)[0])
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    for a, b in zip(got_back, x_back):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("noise", ["gaussian", "rademacher"])
def test_hutchinson_is_unbiased(noise):
    cnf = make_cnf(solve=rk4(0.25), noise=noise, seed=3)
    x = data(1).repeat(4000, 1)
    with torch.no_grad():
        exact = cnf(x[:1])[1].item()
        cnf.trace = "hutchinson"
        estimates = cnf(x)[1]
    stderr = estimates.std().item() / len(estimates) ** 0.5
    assert stderr > 1e-4  # the estimator really is stochastic
    assert abs(estimates.mean().item() - exact) < 4 * stderr


def test_noise_drawn_once_per_solve_from_own_generator(monkeypatch):
    cnf = make_cnf(trace="hutchinson", seed=5, rtol=1e-6, atol=1e-6)
    cnf.dynamics = Counting(cnf.dynamics)
    draws = []
    original = cnf._draw_noise

    def draw_once(like):
        # Fail at the second draw: a probe redrawn per evaluation makes the adaptive solve chase noise and
        # shrink its steps without end, so counting the draws after the solve would hang instead of failing.
        if draws:
            pytest.fail("the Hutchinson probe was drawn again within one solve")
        draws.append(1)
        return original(like)

    monkeypatch.setattr(cnf, "_draw_noise", draw_once)
    global_state = torch.get_rng_state()
    cnf.solve = lambda func, y0, t: odeint_adjoint(func, y0, t, rtol=1e-6, atol=1e-6, method="dopri5")
    _, ld = cnf(data(8))
    ld.sum().backward()
    assert len(draws) == 1
    assert cnf.dynamics.nfe > 10  # forward and adjoint backward evaluations all used that one probe
    assert torch.equal(torch.get_rng_state(), global_state)


def test_hutchinson_uses_one_probe_across_evaluations():
    dyn = ConcatSquashMLP(2, (8,)).double()
    eps = data(4, 2, seed=7)
    func = AugmentedDynamics(dyn, eps)
    z = data(4, 2)
    for t in (0.0, 0.5):
        t = torch.tensor(t, dtype=torch.float64)
        jac = torch.stack([torch.autograd.functional.jacobian(lambda v: dyn(t, v[None])[0], zi) for zi in z])
        expected = torch.einsum("bi,bij,bj->b", eps, jac, eps)
        torch.testing.assert_close(func(t, (z, torch.zeros(4, dtype=torch.float64)))[1], expected)


def test_seeded_probes_are_reproducible():
    x = data(8)
    a = make_cnf(trace="hutchinson", seed=11)(x)[1]
    b = make_cnf(trace="hutchinson", seed=11)(x)[1]
    c = make_cnf(trace="hutchinson", seed=12)(x)[1]
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.allclose(a, c)


def test_float32():
    cnf = make_cnf(dtype=torch.float32, rtol=1e-6, atol=1e-6)
    x = data(16, dtype=torch.float32)
    z, ld = cnf(x)
    assert z.dtype == ld.dtype == torch.float32
    x_back, ld_inv = cnf.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-4, rtol=0)
    torch.testing.assert_close(ld + ld_inv, torch.zeros_like(ld), atol=1e-4, rtol=0)


def test_trainable_t1_gradient_matches_finite_difference():
    cnf = make_cnf(train_t1=True, t1=0.7, **TIGHT)
    x = data(8)
    z, ld = cnf(x)
    loss = (z**2).sum() + ld.sum()
    loss.backward()
    grad = cnf.sqrt_t1.grad.item()
    assert grad != 0.0
    h = 1e-5
    with torch.no_grad():
        losses = []
        for s in (cnf.sqrt_t1.item() + h, cnf.sqrt_t1.item() - h):
            cnf.sqrt_t1.fill_(s)
            z, ld = cnf(x)
            losses.append(((z**2).sum() + ld.sum()).item())
    assert abs((losses[0] - losses[1]) / (2 * h) - grad) < 1e-5 * max(1.0, abs(grad))


def test_adjoint_solve_matches_direct_backprop():
    x = data(8)

    def grads(solve):
        cnf = make_cnf(train_t1=True, **TIGHT)
        if solve is not None:
            cnf.solve = solve
        z, ld = cnf(x)
        ((z**2).sum() - ld.sum()).backward()
        return torch.cat([p.grad.flatten() for p in cnf.parameters()])

    def adjoint(func, y0, t):
        return odeint_adjoint(func, y0, t, method="dopri5", adjoint_params=tuple(func.parameters()), **TIGHT)

    direct, adj = grads(None), grads(adjoint)
    assert direct.abs().max() > 1e-3
    torch.testing.assert_close(adj, direct, atol=1e-6, rtol=1e-6)


def test_rediscretisation_by_swapping_solve():
    cnf = make_cnf(solve=rk4(0.5))
    x = data(8)
    coarse = cnf(x)[0]
    cnf.solve = rk4(0.05)
    fine = cnf(x)[0]
    cnf.solve = None  # back to the default dopri5
    default = cnf(x)[0]
    assert 0 < (coarse - fine).abs().max() < 1e-2
    torch.testing.assert_close(fine, default, atol=1e-4, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
def test_cuda_round_trip_and_gradients():
    cnf = make_cnf(trace="hutchinson", seed=0, **TIGHT).cuda()
    x = data(16).cuda()
    z, ld = cnf(x)
    assert z.device.type == ld.device.type == "cuda"
    ld.sum().backward()
    assert all(p.grad is not None and p.grad.is_cuda for p in cnf.parameters())
    cnf.trace = "exact"
    with torch.no_grad():
        z, ld = cnf(x)
        x_back, ld_inv = cnf.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-7, rtol=0)
    torch.testing.assert_close(ld + ld_inv, torch.zeros_like(ld), atol=1e-7, rtol=0)


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_field_independent_of_state(trace):
    class Drift(nn.Module):
        def __init__(self):
            super().__init__()
            self.speed = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

        def forward(self, t, z):
            return self.speed * t * torch.ones_like(z)

    x = data(4)
    z, ld = CNF(Drift(), trace=trace, seed=0)(x)
    torch.testing.assert_close(z, x + 0.5)
    torch.testing.assert_close(ld, torch.zeros_like(ld))



def test_a_tolerance_per_part_of_the_state_solves_as_torchdiffeq_does():
    """Per-component tolerances were refused ("not taken here"); the CNF's state is the tuple (z, Δ), for which
    torchdiffeq's odeint takes one tolerance per part: the default solver now gives exactly odeint's solution with
    the same pair, and the log-density's own tolerance takes effect. A per-feature tensor is refused, saying so."""
    tol = dict(rtol=(1e-3, 1e-9), atol=(1e-3, 1e-9))
    cnf, x = make_cnf(**tol), data(5)
    z, logdet = cnf(x)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    zs, logdets = odeint(AugmentedDynamics(cnf.dynamics), (x, torch.zeros(5, dtype=torch.float64)), t, **tol)
    torch.testing.assert_close((z, logdet), (zs[-1], logdets[-1]), rtol=0, atol=0)
    assert not torch.equal(logdet, make_cnf(rtol=1e-3, atol=1e-3)(x)[1])  # Δ's tighter tolerance is used
    with pytest.raises(TypeError, match=r"rtol must be a number ≥ 0, or a pair of them \(z's, the log-density's\)"):
        make_cnf(rtol=torch.full((3,), 1e-3))
    with pytest.raises(ValueError, match=r"atol\[1\] must be a finite number ≥ 0, got nan"):
        make_cnf(atol=(1e-3, math.nan))

def test_bad_solver_arguments_and_inputs_are_clear_errors():
    """Refused at construction (before: a negative rtol ran, an unknown option was a warning and an unknown method
    failed at the first forward), and inputs without a batch or of integers (before: "underflow in dt", a deep
    TypeError about t)."""
    from nodebench.cnf import CNF, ConcatSquashMLP

    dynamics = ConcatSquashMLP(2, hidden_dims=(4,))
    with pytest.raises(ValueError, match="rtol must be a finite number ≥ 0, got -1"):
        CNF(dynamics, rtol=-1.0)
    for tol in (torch.tensor(1e-6, requires_grad=True), (1e-6, torch.tensor(1e-6, requires_grad=True))):
        with pytest.raises(TypeError, match=r"atol(\[1\])? must require no gradient \(as in torchdiffeq\)"):
            CNF(dynamics, atol=tol)  # torchdiffeq's bare AssertionError at the first forward before (0-d tensor)
    with pytest.raises(ValueError, match="unknown method 'rk5'; valid: .*dopri5"):
        CNF(dynamics, method="rk5")
    with pytest.raises(ValueError, match=r"unknown options \['step'\] for method 'rk4'; valid: .*step_size"):
        CNF(dynamics, method="rk4", options=dict(step=0.1))
    cnf = CNF(dynamics, method="rk4", options=dict(step_size=0.25))
    with pytest.raises(ValueError, match=r"batch ≥ 1, got \(0, 2\)"):
        cnf(torch.zeros(0, 2))
    with pytest.raises(TypeError, match="floating-point inputs, got torch.int64"):
        cnf(torch.zeros(3, 2, dtype=torch.long))
