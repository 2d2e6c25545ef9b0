"""Bad arguments to :func:`nodebench.gq.odeint_adjoint_gq`: a ValueError or TypeError naming the argument, before
any solve, where torchdiffeq's conventions are broken; never a silent wrong answer, a hang or a deep error."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchdiffeq import odeint

from nodebench.gq import odeint_adjoint_gq

F64 = torch.float64


class Field(nn.Module):
    """dy/dt = tanh(y Aᵀ) + w sin(t) y; raises after ``limit`` evaluations, so a solve that would loop fails."""

    def __init__(self, limit: int = 5000):
        super().__init__()
        self.A = nn.Parameter(torch.tensor([[-0.5, 0.3], [0.2, -0.4]], dtype=F64))
        self.w = nn.Parameter(torch.tensor(0.3, dtype=F64))
        self.calls, self.limit = 0, limit

    def forward(self, t, y):
        self.calls += 1
        if self.calls > self.limit:
            raise RuntimeError("the solve kept evaluating the field (a hang)")
        return torch.tanh(y @ self.A.T) + self.w * torch.sin(t) * y


Y0 = torch.tensor([[1.0, -0.5], [0.3, 0.8]], dtype=F64)
T = torch.tensor([0.0, 0.5, 1.0], dtype=F64)


def solve(**kwargs):
    args = dict(func=Field(), y0=Y0, t=T)
    args.update({k: kwargs.pop(k) for k in list(kwargs) if k in args})
    ys = odeint_adjoint_gq(args["func"], args["y0"], args["t"], **kwargs)
    (ys[0] if isinstance(ys, tuple) else ys).sum().backward()


BAD = {
    # silently wrong before: the outputs after the turn were dense output of the wrong steps
    "t not monotone": (dict(t=torch.tensor([0.0, 1.0, 0.5], dtype=F64)), ValueError,
                       r"t must be strictly increasing or strictly decreasing, got t\[0\.\.2\] = 0, 1, 0.5"),
    # looped for ever before
    "t with NaN": (dict(t=torch.tensor([0.0, math.nan, 1.0], dtype=F64)), ValueError, r"t must be finite, got t\[1\]"),
    "t empty": (dict(t=torch.tensor([], dtype=F64)), ValueError, r"t must be a 1-D tensor of at least one time"),
    "t infinite": (dict(t=torch.tensor([0.0, math.inf], dtype=F64)), ValueError, r"t must be finite, got t\[1\] = inf"),
    # every parameter gradient was silently 0 before: the quadrature nodes were cast to integers
    "t of integers": (dict(t=torch.tensor([0, 1, 2])), TypeError, "t must be a floating-point tensor"),
    "t a list": (dict(t=[0.0, 1.0]), ValueError, "t must be a 1-D tensor of at least one time, got list"),
    # ran with a negative tolerance, or failed in the solver with "underflow in dt"
    "rtol negative": (dict(rtol=-1e-3), ValueError, "rtol must be a finite number ≥ 0, got -0.001"),
    "atol NaN": (dict(atol=math.nan), ValueError, "atol must be a finite number ≥ 0, got nan"),
    "adjoint_rtol negative": (dict(adjoint_rtol=-1.0), ValueError, "adjoint_rtol must be a finite number ≥ 0"),
    "rtol a string": (dict(rtol="1e-3"), TypeError, "rtol must be a number ≥ 0"),
    # torchdiffeq's bare "rtol cannot require gradient" AssertionError at the first solve before
    "rtol a 0-d tensor requiring grad": (dict(rtol=torch.tensor(1e-6, dtype=F64, requires_grad=True)), TypeError,
                                         r"rtol must require no gradient \(as in torchdiffeq\), got a 0-d tensor"),
    # per-component tolerances (torchdiffeq's) were all refused before; these are refused naming the valid shapes
    "rtol of the wrong shape": (dict(rtol=torch.full((3,), 1e-6, dtype=F64)), ValueError,
                                r"rtol has shape \(3,\), which does not broadcast to the state's shape \(2, 2\)"),
    "rtol a list for a tensor y0": (dict(rtol=[1e-6, 1e-6]), TypeError,
                                    r"rtol must be a number or a tensor broadcastable to y0's shape \(2, 2\)"),
    "atol per part of a tensor y0": (dict(y0=(Y0,), func=lambda t, s: s, adjoint_params=(), atol=(1e-6, 1e-6)),
                                     TypeError, r"atol must be a number, or for a tuple y0 of 1 parts a tuple of as "
                                     r"many .*got 2 entries"),
    "rtol negative at a component": (dict(rtol=torch.tensor([1e-6, -1.0], dtype=F64)), ValueError,
                                     "rtol must hold finite numbers ≥ 0, got -1.0 at component 1"),
    "rtol and atol 0 at a component": (dict(rtol=torch.zeros(2, dtype=F64), atol=torch.tensor([1e-6, 0], dtype=F64)),
                                       ValueError, "rtol and atol are both 0 at a component"),
    "adjoint_rtol of torchdiffeq's form, wrong size": (
        dict(adjoint_rtol=(0.0, torch.ones(3, dtype=F64), 1e-6, 0.0, 0.0)), ValueError,
        r"adjoint_rtol\[1\] has shape \(3,\), which does not broadcast to the state's shape \(4,\)"),
    "rtol and atol both 0": (dict(rtol=0.0, atol=0.0), ValueError, "rtol and atol are both 0"),
    # a warning from torchdiffeq, or a failure only in the backward pass, before
    "unknown option": (dict(options=dict(step=0.1)), ValueError, r"unknown options \['step'\] for method 'dopri5'"),
    "unknown adjoint option": (dict(adjoint_options=dict(first=0.1)), ValueError,
                               r"unknown adjoint_options \[.first.\]"),
    "unknown adjoint method": (dict(adjoint_method="rk5"), ValueError, "unknown adjoint_method 'rk5'; valid: .*dopri5"),
    "unknown method": (dict(method="dopri7"), ValueError, "unknown method 'dopri7'; valid: .*dopri5"),  # not adjoint_
    "options a list": (dict(options=["step_size"]), TypeError, "options must be a dict"),
    "stats a list": (dict(stats=[]), TypeError, "stats must be a dict"),
    # deep PyTorch errors before
    "y0 float16": (dict(y0=Y0.half()), TypeError, "y0 must be float32 or float64, got torch.float16"),
    "y0 of integers": (dict(y0=torch.ones(2, 2, dtype=torch.long)), TypeError, "y0 must be float32 or float64"),
    "y0 a list": (dict(y0=[Y0, Y0]), TypeError, "y0 must be a tensor or a tuple of tensors"),
    "y0 empty": (dict(y0=torch.ones(0, 2, dtype=F64)), ValueError, "y0 has no elements"),
    "func of the wrong shape": (dict(func=lambda t, y: y[..., :1], adjoint_params=()), ValueError,
                                r"func returned shape \(2, 1\) for a state of shape \(2, 2\)"),
    # a TypeError for an unexpected keyword before, not saying what is supported
    "event_fn": (dict(event_fn=lambda t, y: y.sum()), ValueError,
                 "event_fn is not supported by odeint_adjoint_gq: .* solve events with torchdiffeq's odeint_event"),
    # "'str' object is not callable" inside the forward solve before
    "forward norm a string": (dict(options=dict(norm="seminorm")), TypeError,
                              "options\\['norm'\\] must be a callable of the state, got 'seminorm'"),
    "adjoint norm a number": (dict(adjoint_options=dict(norm=3)), TypeError,
                              "adjoint_options\\['norm'\\] must be a callable of the state, or \"seminorm\", got 3"),
    # "element 0 of tensors does not require grad" from the backward pass before
    "adjoint_params not tensors": (dict(adjoint_params=[1.0]), TypeError,
                                   r"adjoint_params must be tensors .*, got float at index 0"),
    # the forward's first_step was silently dropped for the rk4 backward solve before (torchdiffeq refuses it)
    "options with another adjoint_method": (dict(options=dict(first_step=0.01), adjoint_method="rk4"), ValueError,
                                            r"adjoint_method 'rk4' differs from method 'dopri5', so options "
                                            r"\['first_step'\] are not carried over .* pass adjoint_options too"),
    "jump_t not times": (dict(options=dict(jump_t="0.5")), TypeError,
                         r"options\['jump_t'\] must be times \(a tensor or a list of numbers\), got '0.5'"),
    "max_nodes True": (dict(max_nodes=True), ValueError, "max_nodes must be a positive integer, got True"),
    "func returning None": (dict(func=lambda t, y: None, adjoint_params=()), TypeError, "func must return a tensor"),
    "func of the wrong tuple": (dict(y0=(Y0, Y0[:, :1]), func=lambda t, s: (s[0], s[0]), adjoint_params=()),
                                ValueError, r"func returned shape \[\(2, 2\), \(2, 2\)\] for a state of shape"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_argument_is_a_clear_error(name):
    kwargs, error, message = BAD[name]
    with pytest.raises(error, match=message):
        solve(**kwargs)


def test_adjoint_seminorm_is_accepted_as_torchdiffeqs_and_changes_nothing():
    """torchdiffeq's ``adjoint_options=dict(norm="seminorm")`` (a TypeError inside the solver before): the
    backward state holds no parameter block, so the gradients are the default norm's."""
    grads = []
    for adjoint_options in (None, dict(norm="seminorm")):
        field = Field()
        odeint_adjoint_gq(field, Y0, T, adjoint_options=adjoint_options).sum().backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in field.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


def test_forward_options_pass_to_a_backward_solve_of_the_same_method_only():
    """As torchdiffeq's odeint_adjoint: the forward's options go to a backward solve of the same method, its
    ``norm`` applied to z and to a apart (torchdiffeq's default adjoint norm), never to the pair; another
    ``adjoint_method`` takes ``adjoint_options`` (refused without them, in BAD above)."""
    seen = []

    def norm(y):
        seen.append(tuple(y.shape))
        return y.abs().max()

    field = Field()
    ys = odeint_adjoint_gq(field, Y0, T, options=dict(first_step=0.01, norm=norm))
    forward_norms = len(seen)
    ys.sum().backward()
    assert 0 < forward_norms < len(seen) and set(seen) == {tuple(Y0.shape)}
    field = Field()
    odeint_adjoint_gq(field, Y0, T, method="rk4", options=dict(step_size=0.01), adjoint_method="dopri5",
                      adjoint_options={}, rtol=1e-9, atol=1e-10).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in field.parameters())


RTOL = torch.tensor([[1e-10, 1e-9], [1e-3, 1e-10]], dtype=F64)  # one loose component
ATOL = torch.tensor([1e-12, 1e-3], dtype=F64)  # broadcast over the rows of y0


def _gradients(solve, tuple_state: bool = False) -> torch.Tensor:
    """dL/dy0 (and du0) and dL/dθ of L = Σ y(t)² (+ Σ u(t)) for ``solve(func, y0, field)``."""
    field, y0 = Field(), Y0.clone().requires_grad_(True)
    u0 = torch.tensor([0.5], dtype=F64, requires_grad=True)
    if tuple_state:
        ys, us = solve(lambda t, s: (field(t, s[0]), -field.w * s[1]), (y0, u0), field)
        (ys.pow(2).sum() + us.sum()).backward()
    else:
        solve(field, y0, field).pow(2).sum().backward()
    return torch.cat([y0.grad.reshape(-1), *([u0.grad] if tuple_state else []),
                      *(p.grad.reshape(-1) for p in field.parameters())])


def test_per_component_tolerances_give_the_gradients_of_backpropagation_through_odeint():
    """torchdiffeq's per-component rtol/atol (a tensor broadcastable to y0; for a tuple y0 one entry per part) were
    refused: the forward solve takes the steps of odeint's with them, and the gradients match backpropagation through
    that solve. The backward takes them for z and a (by default, a tuple y0 given per part, or torchdiffeq's
    odeint_adjoint form over (t, y, adj_y, *params))."""
    direct = _gradients(lambda f, y0, _: odeint(f, y0, T, rtol=RTOL, atol=ATOL))
    gq = _gradients(lambda f, y0, field: odeint_adjoint_gq(f, y0, T, rtol=RTOL, atol=ATOL, gtol=5.0))
    torch.testing.assert_close(gq, direct, rtol=1e-7, atol=1e-8)
    counted = {}
    for name, tolerances in (("per component", dict(rtol=RTOL, atol=ATOL)), ("tightest", dict(rtol=1e-10, atol=1e-12))):
        field, stats = Field(), {}
        ys = odeint_adjoint_gq(field, Y0, T, stats=stats, **tolerances)
        ys.sum().backward()
        counted[name] = stats["nfe_forward"]
        if name == "per component":
            torch.testing.assert_close(ys, odeint(Field(), Y0, T, **tolerances), rtol=0, atol=1e-14)
    assert counted["per component"] < counted["tightest"], counted  # the loose component is taken, not the tightest
    flat_atol = ATOL.expand(2, 2).reshape(-1)  # torchdiffeq's tuple form: each part's tolerance flat
    direct = _gradients(lambda f, s, _: odeint(f, s, T, rtol=(RTOL.reshape(-1), 1e-10), atol=(flat_atol, 1e-12)), True)
    for adjoint in (dict(), dict(adjoint_rtol=(0.0, 1e-10, 1e-10, 0.0, 0.0),
                                 adjoint_atol=[0.0, 1e-12, torch.full((5,), 1e-12, dtype=F64), 0.0, 0.0])):
        gq = _gradients(lambda f, s, field: odeint_adjoint_gq(f, s, T, rtol=(RTOL, 1e-10), atol=(ATOL, 1e-12),
                                                              gtol=5.0, adjoint_params=tuple(field.parameters()),
                                                              **adjoint), True)
        torch.testing.assert_close(gq, direct, rtol=1e-7, atol=1e-8)
