"""Counting function evaluations and solver steps, per phase, in the harness rather than in each model.

:class:`CountingField` wraps any vector field ``f(t, y)`` (an ``nn.Module``, torchdiffeq's call
convention, tuple states included). The harness sets :attr:`CountingField.phase` to ``"forward"``
before the loss is computed and to ``"backward"`` before ``loss.backward()``, so evaluations made by an
adjoint solve land in the backward count and backprop through a solver's graph adds none.

Steps come from torchdiffeq's solver callbacks: ``callback_step`` for every attempted step (fixed-grid
and adaptive solvers) and ``callback_accept_step`` for accepted adaptive steps; their ``_adjoint``
variants are called by ``odeint_adjoint``'s backward solve. Rejected steps are attempted minus accepted.
torchsde calls no step callback: the SDE methods wrap the Brownian motion so that each increment their
fixed-step solver draws reports one step (:class:`nodebench.sde.StepReportingBrownian`), every one accepted.
An evaluation at n stacked points counts n (the GQ adjoint's batched quadrature, :mod:`nodebench.gq`, declares
it with :func:`nodebench.callbacks.stacked_evaluations`).
Known conventions (torchdiffeq FAQ): dopri5 makes 2 evaluations before its first
step (f(t0, y0), reused as the first stage, and one to select the initial step size), then 6 per
attempted step, rejected ones included (FSAL); fixed-step RK4 makes 4 per step.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules import module as _module

from nodebench.callbacks import CALLBACKS, STEP_CALLBACKS, ForwardsCallbacks  # noqa: F401 (re-exported)

PHASES = ("forward", "backward")


#: Attributes of a counting field that are plain values, set without nn.Module's bookkeeping.
_PLAIN_ATTRIBUTES = frozenset({"phase", "nfe", "steps", "accepted"})



class StepCountingField(nn.Module):
    """A vector field that counts its own evaluations and its solver's attempted steps per phase: the
    counter for fixed-grid solvers (:class:`CountingField` also counts accepted steps).

    It offers torchdiffeq only ``callback_step`` (and its ``_adjoint`` variant), the one callback that
    fixed-grid solvers call: offering callbacks a solver does not support makes torchdiffeq warn on every
    solve, and a warning costs tens of µs even when filtered out.

    Args:
        field: the vector field ``f(t, y)``; its parameters stay reachable through this module.

    Attributes:
        phase: the phase the next evaluations are counted under, ``"forward"`` or ``"backward"``.
        nfe, steps, accepted: dicts from phase to count since the last :meth:`reset` (``accepted`` stays
            zero here: on a fixed grid every attempted step is accepted).
    """

    #: Marks the wrapper for :func:`nodebench.callbacks.unwrap`.
    counts_evaluations = True

    def __init__(self, field: nn.Module):
        super().__init__()
        self.field = field  # registered, so parameters() and odeint_adjoint see the field's parameters
        self.phase = "forward"
        self.nfe = dict.fromkeys(PHASES, 0)
        self.steps = dict.fromkeys(PHASES, 0)
        self.accepted = dict.fromkeys(PHASES, 0)
        self.reset()

    def __setattr__(self, name: str, value) -> None:
        # ``phase`` and the counts change several times per training step; nn.Module.__setattr__ (which
        # checks parameters, buffers and submodules) costs several µs a call, about 1 % of a 4 ms step.
        if name in _PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)
            if name == "field":  # also kept plain, read at every reset without nn.Module's attribute lookup
                object.__setattr__(self, "_field", value)

    def reset(self) -> None:
        """Zero the counts in place (the harness calls it before every step and keeps the three dicts) and
        choose how the field is called."""
        for counts in (self.nfe, self.steps, self.accepted):
            counts["forward"] = counts["backward"] = 0
        # Solvers call the field tens to thousands of times per step, and nn.Module's call dispatch costs
        # about as much as this wrapper's own call: where the dispatch has nothing to do, call ``forward``
        # directly, so that counting costs no more than the uncounted call (measured side by side: +1.2 %
        # of a 7 ms Euler step through the dispatch, +0.1 % without). Re-checked at every reset, so hooks
        # added between steps are honoured.
        field = self._field
        object.__setattr__(self, "_call", field.forward if _dispatch_is_a_no_op(field) else field)

    def forward(self, t, y):
        self.nfe[self.phase] += 1
        return self._call(t, y)

    # The wrapper itself skips nn.Module's dispatch too (hooks belong on ``field``).
    __call__ = forward

    def callback_step(self, t0, y0, dt):
        self.steps[self.phase] += 1

    callback_step_adjoint = callback_step


def _dispatch_is_a_no_op(field) -> bool:
    """``field(t, y)`` would only call ``field.forward``: an ``nn.Module`` without hooks (its own or global),
    not compiled, and no JIT tracing under way."""
    return isinstance(field, nn.Module) and not (
        field._forward_hooks or field._forward_pre_hooks or field._backward_hooks or field._backward_pre_hooks
        or _module._global_forward_hooks or _module._global_forward_pre_hooks or _module._global_backward_hooks
        or _module._global_backward_pre_hooks or getattr(field, "_compiled_call_impl", None)
        or torch._C._get_tracing_state())


class CountingField(StepCountingField):
    """A vector field that counts its own evaluations and its solver's attempted and accepted steps per
    phase (see :class:`StepCountingField`), for adaptive solvers and any solver in general."""

    def callback_accept_step(self, t0, y0, dt):
        self.accepted[self.phase] += 1

    callback_accept_step_adjoint = callback_accept_step


class CallCounter:
    """A plain callable wrapping ``func`` for one solve outside the harness (evaluation solves, NFE
    protocols): counts its evaluations (``nfe``) and the solver's attempted steps (``steps``, from
    torchdiffeq's ``callback_step``). Not an ``nn.Module``, so it adds nothing to parameter lists."""

    def __init__(self, func):
        self.func, self.nfe, self.steps = func, 0, 0

    def __call__(self, t, y):
        self.nfe += 1
        return self.func(t, y)

    def callback_step(self, t0, y0, dt):
        self.steps += 1


def count_nfe(field: nn.Module, adaptive: bool = True) -> StepCountingField:
    """Wrap ``field`` in a :class:`CountingField`, or a :class:`StepCountingField` for fixed-grid solvers
    (``adaptive=False``); a field that already counts is returned unchanged, except a fixed-grid counter asked
    for an adaptive solver, whose inner field is wrapped anew (it would leave the accepted steps at zero)."""
    if isinstance(field, CountingField) or (isinstance(field, StepCountingField) and not adaptive):
        return field
    if isinstance(field, StepCountingField):
        field = field.field
    return CountingField(field) if adaptive else StepCountingField(field)
