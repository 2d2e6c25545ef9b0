"""The GQ adjoint's lean dopri5 (nodebench.gq.dopri5) against torchdiffeq's dopri5 on the same problems and
tolerances: same algorithm, so the same steps (evaluations, step callbacks) and the same solution up to
round-off; and the GQ gradients through it against the torchdiffeq path and closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchdiffeq import odeint

from nodebench.gq import odeint_adjoint_gq
from nodebench.gq.dopri5 import dopri5

F64 = torch.float64


class Counting:
    """A field counting its evaluations and torchdiffeq's step callbacks."""

    def __init__(self, fn):
        self.fn, self.nfe = fn, 0
        self.steps = self.accepted = self.rejected = 0

    def __call__(self, t, y):
        self.nfe += 1
        return self.fn(t, y)

    def callback_step(self, t0, y0, dt):
        self.steps += 1

    def callback_accept_step(self, t0, y0, dt):
        self.accepted += 1

    def callback_reject_step(self, t0, y0, dt):
        self.rejected += 1

    def callbacks(self):
        return {name: getattr(self, name) for name in ("callback_step", "callback_accept_step", "callback_reject_step")}


def van_der_pol(t, y):
    x, v = y.view(-1, 2).unbind(-1)
    return torch.stack([v, 2.0 * (1 - x ** 2) * v - x + 0.3 * torch.sin(t)], -1).reshape(-1)


def mlp_field(dtype):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 32), nn.Softplus(), nn.Linear(32, 4)).to(dtype)
    return lambda t, y: net(y.view(-1, 4)).reshape(-1)


CASES = [(van_der_pol, torch.tensor([2.0, 0.0, -1.0, 0.5])), (mlp_field(F64), torch.linspace(-1, 1, 8))]


@pytest.mark.parametrize("fn, y0", CASES, ids=["van_der_pol", "mlp"])
@pytest.mark.parametrize("times", [[0.0, 0.3, 1.7, 4.0], [4.0, 2.5, 2.4, 0.0]], ids=["increasing", "decreasing"])
@pytest.mark.parametrize("tol", [1e-3, 1e-7])
def test_matches_torchdiffeq_step_for_step(fn, y0, times, tol):
    y0 = y0.to(F64)
    mine, theirs = Counting(fn), Counting(fn)
    ys, nfe = dopri5(mine, y0, times, rtol=tol, atol=tol, callbacks=mine.callbacks())
    want = odeint(theirs, y0, torch.tensor(times, dtype=F64), rtol=tol, atol=tol, method="dopri5")
    assert (nfe, mine.steps, mine.accepted, mine.rejected) == (theirs.nfe, theirs.steps, theirs.accepted,
                                                               theirs.rejected)
    if fn is van_der_pol and tol < 1e-5:
        assert mine.rejected > 0  # the stiff-ish tight case exercises rejected steps
    torch.testing.assert_close(ys, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("blocks, split, scale", [
    (2, 2, [1.0, 1e-4, 1.0, 1e-4]),  # [z; a]: a tiny second half that only the max norm sees
    ((3, 1), 3, [1e-4, 1e-4, 1e-4, 1.0]),  # parts of sizes 3 and 1: the size-1 part sets the step
], ids=["equal", "unequal"])
def test_blocks_take_torchdiffeqs_mixed_norm_of_a_tuple_state(blocks, split, scale):
    """``blocks`` is torchdiffeq's default norm of the tuple of those parts: the max of their RMS norms, which
    takes other steps than the RMS norm of the flat state."""
    scale = torch.tensor(scale, dtype=F64)

    def fn(t, y):
        return torch.cat([-y[:split], 3.0 * torch.cos(2 * t) * y[split:]]) * scale

    def tuple_fn(t, state):
        out = fn(t, torch.cat(state))
        return out[:split], out[split:]

    y0 = torch.tensor([1.0, 2.0, 0.5, -0.7], dtype=F64)
    mine, theirs = Counting(fn), Counting(tuple_fn)
    ys, nfe = dopri5(mine, y0, [0.0, 3.0], rtol=1e-6, atol=1e-8, blocks=blocks)
    first, second = odeint(theirs, (y0[:split], y0[split:]), torch.tensor([0.0, 3.0], dtype=F64), rtol=1e-6,
                           atol=1e-8)
    assert nfe == theirs.nfe
    _, flat_nfe = dopri5(fn, y0, [0.0, 3.0], rtol=1e-6, atol=1e-8)
    assert flat_nfe != nfe  # the test can tell the norms apart
    torch.testing.assert_close(ys, torch.cat([first, second], -1), rtol=1e-9, atol=1e-12)


def test_float32_state_agrees_with_torchdiffeq_to_the_tolerance():
    y0 = torch.linspace(-1, 1, 8)
    fn = mlp_field(torch.float32)
    ys, _ = dopri5(fn, y0, [0.0, 0.5, 1.0], rtol=1e-5, atol=1e-5)
    want = odeint(fn, y0, torch.tensor([0.0, 0.5, 1.0]), rtol=1e-5, atol=1e-5, method="dopri5")
    assert ys.dtype == torch.float32
    torch.testing.assert_close(ys, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("after", [0.0, 0.5])
def test_non_finite_field_raises_instead_of_looping(after):
    """NaN from the start or from t = 0.5 on: the step size becomes NaN, then an underflow error (as torchdiffeq)."""
    def fn(t, y):
        return -y if float(t) < after else y * math.nan

    with pytest.raises(RuntimeError, match="underflow"):
        dopri5(fn, torch.ones(2, dtype=F64), [0.0, 2.0], rtol=1e-6, atol=1e-6)


class Decay(nn.Module):
    """dy/dt = −k y: y(T) = y0 exp(−k T), so for L = y(T)², dL/dk = −2 T y(T)², dL/dy0 = 2 y(T) exp(−k T)."""

    def __init__(self):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(0.7, dtype=F64))

    def forward(self, t, y):
        return -self.k * y


@pytest.mark.parametrize("quadrature", ["sequential", "batched"])
def test_lean_and_torchdiffeq_paths_give_the_same_gradients(quadrature):
    """Options force the torchdiffeq path (here a no-op: max_num_steps); both paths match the closed form."""
    results = []
    for options in ({}, {"max_num_steps": 10 ** 6}):
        field = Decay()
        y0 = torch.tensor([1.5], dtype=F64, requires_grad=True)
        t = torch.tensor([0.0, 2.0], dtype=F64)
        y_end = odeint_adjoint_gq(field, y0, t, rtol=1e-9, atol=1e-11, options=options, gtol=0.5,
                                  quadrature=quadrature)[-1]
        results.append(torch.autograd.grad(y_end.pow(2).sum(), [y0, field.k]))
    y_end = 1.5 * math.exp(-0.7 * 2.0)  # k = 0.7, T = 2
    want = (torch.tensor([2 * y_end * math.exp(-1.4)], dtype=F64), torch.tensor(-2 * 2.0 * y_end ** 2, dtype=F64))
    for got in results:
        torch.testing.assert_close(got[0], want[0], rtol=1e-7, atol=0)
        torch.testing.assert_close(got[1], want[1], rtol=1e-7, atol=0)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-8, atol=0)


class TupleOscillator(nn.Module):
    """(x, v) of unequal sizes with a slow part that only a per-part norm sees (torchdiffeq's mixed norm)."""

    def __init__(self):
        super().__init__()
        self.omega = nn.Parameter(torch.tensor(2.0, dtype=F64))

    def forward(self, t, state):
        x, v = state
        return -self.omega * x, 1e-4 * torch.cos(self.omega * t) * v


TUPLE_Y0 = (torch.tensor([1.0, 2.0, 0.5], dtype=F64), torch.tensor([-0.7], dtype=F64))


@pytest.mark.parametrize("method", ["dopri5", "bosh3"])
def test_a_tuple_states_forward_takes_torchdiffeqs_steps(method):
    """The forward solve of a tuple state takes torchdiffeq's steps, lean dopri5 or torchdiffeq's solver alike."""
    times = torch.tensor([0.0, 1.0, 3.0], dtype=F64)
    mine, theirs = Counting(TupleOscillator()), Counting(TupleOscillator())
    got = odeint_adjoint_gq(mine, TUPLE_Y0, times, rtol=1e-6, atol=1e-8, method=method, adjoint_params=())
    want = odeint(theirs, TUPLE_Y0, times, rtol=1e-6, atol=1e-8, method=method)
    assert mine.nfe == theirs.nfe
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12)


def test_a_user_norm_sees_the_state_in_its_own_shapes():
    """options=dict(norm=...) gets the state as torchdiffeq passes it: the tuple of parts, each of its shape."""
    shapes, calls = [], []

    def norm(state):
        shapes.append(tuple(tuple(part.shape) for part in state))
        return max(part.abs().max() for part in state)

    def their_norm(state):
        calls.append(1)
        return max(part.abs().max() for part in state)

    times = torch.tensor([0.0, 2.0], dtype=F64)
    mine, theirs = Counting(TupleOscillator()), Counting(TupleOscillator())
    got = odeint_adjoint_gq(mine, TUPLE_Y0, times, rtol=1e-6, atol=1e-8, options=dict(norm=norm),
                           adjoint_params=())
    want = odeint(theirs, TUPLE_Y0, times, rtol=1e-6, atol=1e-8, options=dict(norm=their_norm))
    assert set(shapes) == {((3,), (1,))} and mine.nfe == theirs.nfe
    torch.testing.assert_close(got[1], want[1], rtol=1e-9, atol=1e-12)


def test_a_tuple_states_backward_norm_is_the_same_lean_or_through_torchdiffeq():
    """The lean backward's blocks (each part of z, then of a) and the norm given to torchdiffeq's dopri5 on
    (z, a) agree: the same evaluations and the same gradients (the forced path: an option the lean solver
    does not take, set to its default)."""
    times = torch.tensor([0.0, 1.0, 3.0], dtype=F64)
    results = []
    for adjoint_options in (None, dict(max_num_steps=2 ** 31 - 1)):
        field = Counting(TupleOscillator())
        y0 = tuple(p.clone().requires_grad_(True) for p in TUPLE_Y0)
        xs, vs = odeint_adjoint_gq(field, y0, times, rtol=1e-7, atol=1e-9, adjoint_options=adjoint_options,
                                   adjoint_params=tuple(field.fn.parameters()))
        forward = field.nfe
        (xs[-1].sum() + 1e3 * vs[-1].sum()).backward()
        results.append((field.nfe - forward, y0[0].grad, y0[1].grad, field.fn.omega.grad))
    (lean_nfe, *lean), (torchdiffeq_nfe, *through) = results
    assert lean_nfe == torchdiffeq_nfe
    for a, b in zip(lean, through):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
