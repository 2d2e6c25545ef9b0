"""torchdiffeq's step callbacks and wrappers that pass them through.

torchdiffeq calls ``callback_step``, ``callback_accept_step`` and ``callback_reject_step`` (and their
``_adjoint`` variants in ``odeint_adjoint``'s backward solve) as attributes of the vector field. A module
that wraps a field — a regulariser's augmented state, the Wong–Zakai ODE, the harness's evaluation
counter — must forward them to the field it wraps, so that whoever listens inside still hears every step.
The evaluation counter is found through such wrappers (:func:`evaluation_counter`), and a numerical method
that evaluates the field at n stacked points in one call says so (:func:`stacked_evaluations`). A wrapper around a
plain function (torchdiffeq and torchsde take any callable) reaches the solver as a plain callable
(:func:`solver_field`), so that an adjoint asks for ``adjoint_params`` as it does for the function itself.
The numerics (:mod:`nodebench.gq`, :mod:`nodebench.sde`, :mod:`nodebench.regularizers`) use this module; the
harness (:mod:`nodebench.harness.nfe`) builds its counters on it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn

#: torchdiffeq's step callbacks, looked up as attributes of the vector field: the forward solve's, then
#: the ``_adjoint`` variants ``odeint_adjoint`` calls during its backward solve.
STEP_CALLBACKS = ("callback_step", "callback_accept_step", "callback_reject_step")
CALLBACKS = STEP_CALLBACKS + tuple(name + "_adjoint" for name in STEP_CALLBACKS)


class ForwardsCallbacks(nn.Module):
    """Base for a module that wraps a vector field ``self.field``, a module or a plain callable: torchdiffeq's
    step callbacks (:data:`CALLBACKS`) are forwarded to it, so a counter inside still counts every solver step;
    absent ones (a plain function has none) raise ``AttributeError``, as torchdiffeq expects."""

    def __getattr__(self, name: str):
        if name in CALLBACKS:
            # a module field is in _modules; a plain callable is an ordinary attribute, in __dict__
            return getattr(self._modules.get("field", self.__dict__.get("field")), name)
        return super().__getattr__(name)


def _wraps(func) -> bool:
    """Whether ``func`` is a wrapper whose ``field`` these helpers follow: a :class:`ForwardsCallbacks` or an
    evaluation counter (``counts_evaluations``)."""
    return isinstance(func, ForwardsCallbacks) or getattr(func, "counts_evaluations", False)


def wraps_plain_function(func) -> bool:
    """Whether ``func`` is a wrapper (:class:`ForwardsCallbacks`, an evaluation counter) around a plain function
    rather than a module, followed through nested wrappers: it then holds none of the function's parameters."""
    if not _wraps(func):
        return False
    while _wraps(func):
        func = func.field
    return not isinstance(func, nn.Module)


class _PlainCallable:
    """A wrapper seen as what it wraps, a plain callable: calls and attributes (step callbacks, a torchsde SDE's
    ``f_and_g``, ``sde_type`` and ``noise_type``, ``field``) go to the wrapper, but it is no ``nn.Module``."""

    def __init__(self, wrapper: nn.Module):
        self.wrapper = wrapper

    def __call__(self, t, y):
        return self.wrapper(t, y)

    def __getattr__(self, name: str):
        if name == "wrapper":  # not set yet (a copy being made)
            raise AttributeError(name)
        return getattr(self.wrapper, name)


def solver_field(func):
    """``func`` as a solver should get it: ``func`` itself, except a wrapper around a plain function
    (:func:`wraps_plain_function`), which goes as a plain callable that forwards calls and attributes to it. An
    adjoint (torchdiffeq's, torchsde's, :func:`nodebench.gq.odeint_adjoint_gq`) without ``adjoint_params`` then
    asks for them (a ValueError), as for the function itself, instead of taking the wrapper module's
    ``parameters()``, which are none of the function's, and returning no parameter gradient."""
    return _PlainCallable(func) if wraps_plain_function(func) else func


def unwrap(func: nn.Module) -> nn.Module:
    """The field inside an evaluation-counting wrapper (one that sets ``counts_evaluations``), else ``func``:
    derivatives taken through it are not counted as the solve's own evaluations."""
    return func.field if getattr(func, "counts_evaluations", False) else func


def evaluation_counter(field) -> object | None:
    """The evaluation counter (a wrapper that sets ``counts_evaluations`` and keeps per-phase counts
    ``nfe[phase]``, as :mod:`nodebench.harness.nfe`'s do) that ``field`` is or wraps, following each
    wrapper's ``field`` attribute; None if there is none."""
    seen = set()
    while field is not None and id(field) not in seen:
        if getattr(field, "counts_evaluations", False):
            return field
        seen.add(id(field))
        field = getattr(field, "field", None)
    return None


@contextmanager
def stacked_evaluations(field, n: int) -> Iterator[None]:
    """Inside the block, each evaluation ``field``'s counter records is one at ``n`` stacked points (one
    ``torch.func.vmap`` call) and counts ``n``: NFE counts field evaluations, as if made one point at a time.
    If the block raises, the counts are put back as they were, so a failed attempt counts nothing."""
    counter = evaluation_counter(field)
    if counter is None:
        yield
        return
    nfe, phase = counter.nfe, counter.phase
    before = nfe[phase]
    try:
        yield
    except BaseException:
        nfe[phase] = before
        raise
    nfe[phase] = before + (nfe[phase] - before) * n
