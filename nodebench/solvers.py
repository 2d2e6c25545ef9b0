"""Classic fourth-order Runge–Kutta as a torchdiffeq fixed-grid solver.

torchdiffeq's ``method="rk4"`` is Kutta's **3/8 rule** (stages at 0, 1/3, 2/3, 1; weights 1/8, 3/8,
3/8, 1/8). The Disc-Opt code of Onken & Ruthotto (arXiv 2005.13420, time-series part) and OT-Flow use
the **classic** RK4 (stages at 0, 1/2, 1/2, 1; weights 1/6, 1/3, 1/3, 1/6). Importing this module
registers the classic rule with torchdiffeq as ``method="rk4_classic"``, so that ``odeint`` and
``odeint_adjoint`` accept it with their usual options (``step_size``, ``grid_constructor``,
``perturb``) and callbacks. Both rules make 4 function evaluations per step.

Also here: :func:`check_solver_arguments`, the entry check of torchdiffeq-style ``method``/``rtol``/``atol``/
``options`` arguments for nodebench's own solve entry points (:func:`nodebench.gq.odeint_adjoint_gq`,
:class:`nodebench.cnf.CNF`).
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Mapping

import torch
from torchdiffeq._impl.misc import Perturb
from torchdiffeq._impl.odeint import SOLVERS
from torchdiffeq._impl.rk_common import rk4_step_func
from torchdiffeq._impl.solvers import AdaptiveStepsizeODESolver, FixedGridODESolver

CLASSIC_RK4 = "rk4_classic"
RK4_38 = "rk4"


class ClassicRK4(FixedGridODESolver):
    """Classic RK4, y₁ = y₀ + h (k₁ + 2k₂ + 2k₃ + k₄) / 6, on torchdiffeq's fixed grid."""

    order = 4

    def _step_func(self, func, t0, dt, t1, y0):
        f0 = func(t0, y0, perturb=Perturb.NEXT if self.perturb else Perturb.NONE)
        return rk4_step_func(func, t0, dt, t1, y0, f0=f0, perturb=self.perturb), f0


SOLVERS.setdefault(CLASSIC_RK4, ClassicRK4)


# --------------------------------------------------------------------------------------------------
# Argument checks of torchdiffeq-style solve arguments, for nodebench's own entry points (the GQ adjoint, the CNF).

@functools.lru_cache(maxsize=None)
def solver_option_names(method: str) -> frozenset[str]:
    """The ``options`` torchdiffeq's solver ``method`` takes: the keyword parameters of its constructors."""
    names = {"norm"}  # taken by every solver (torchdiffeq's odeint sets it)
    for cls in SOLVERS[method].__mro__:
        init = cls.__dict__.get("__init__")
        if init is not None:
            names |= {p.name for p in inspect.signature(init).parameters.values()
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return frozenset(names - {"self", "func", "y0", "rtol", "atol"})


def check_tolerance(name: str, value) -> float:
    """``value`` as a float, or a TypeError or ValueError unless it is a finite number ≥ 0 (or a 0-d floating tensor
    that requires no gradient: torchdiffeq asserts that at the first solve)."""
    if torch.is_tensor(value) and value.dim() == 0 and value.is_floating_point():
        if value.requires_grad:
            raise TypeError(f"{name} must require no gradient (as in torchdiffeq), got a 0-d tensor requiring grad")
        number = float(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    else:
        got = f"a tensor of shape {tuple(value.shape)}" if torch.is_tensor(value) else repr(value)
        raise TypeError(f"{name} must be a number ≥ 0 (or a 0-d floating tensor); per-element or per-component "
                        f"tolerances are not taken here, got {got}")
    if not 0 <= number < math.inf:
        raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")
    return number


def check_component_tolerance(name: str, value):
    """``value`` as :func:`check_tolerance` takes it, or a 1-D floating tensor of per-component tolerances (the
    caller's flat state's components) that requires no gradient (as in torchdiffeq) and holds finite numbers ≥ 0,
    returned as it is; else a TypeError or ValueError naming the first bad component."""
    if not (torch.is_tensor(value) and value.dim() == 1):
        if not (torch.is_tensor(value) or isinstance(value, numbers.Real)) or isinstance(value, bool):
            raise TypeError(f"{name} must be a number ≥ 0 or a tensor of per-component ones, got {value!r}")
        return check_tolerance(name, value)
    if not value.is_floating_point() or value.requires_grad:
        raise TypeError(f"{name} must be floating and require no gradient (as in torchdiffeq), got {value.dtype}"
                        f"{' requiring grad' * value.requires_grad}")
    bad = (~torch.isfinite(value) | (value < 0)).nonzero()
    if len(bad):
        raise ValueError(f"{name} must hold finite numbers ≥ 0, got {value[bad[0, 0]].item()} at component "
                         f"{bad[0, 0].item()} of the flattened state")
    return value


def check_solver_arguments(prefix: str, method, rtol, atol, options, per_component: bool = False) -> dict:
    """``options`` as a new dict, or a ValueError or TypeError naming the argument, after checking the method
    name (one of torchdiffeq's ``SOLVERS``), its options (the keyword parameters of the solver's constructors,
    where torchdiffeq only warns about others) and the tolerances (finite numbers ≥ 0, not both 0 for an
    adaptive method; with ``per_component``, also 1-D tensors over the caller's flat state, not both 0 at any
    component: :func:`check_component_tolerance`). ``prefix`` (``"adjoint_"``) names the arguments in messages."""
    if not (isinstance(method, str) and method in SOLVERS):
        raise ValueError(f"unknown {prefix}method {method!r}; valid: {', '.join(SOLVERS)}")
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise TypeError(f"{prefix}options must be a dict of solver options or None, got {type(options).__name__}")
    options = dict(options)
    valid = solver_option_names(method)
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"unknown {prefix}options {unknown} for method {method!r}; valid: {', '.join(sorted(valid))}")
    check = check_component_tolerance if per_component else check_tolerance
    rtol, atol = check(f"{prefix}rtol", rtol), check(f"{prefix}atol", atol)
    both_zero = (rtol == 0) & (atol == 0)
    if torch.is_tensor(both_zero):  # per component: a component tested against 0 fails every step
        both_zero = bool(both_zero.any())
    if both_zero and issubclass(SOLVERS[method], AdaptiveStepsizeODESolver):
        raise ValueError(f"{prefix}rtol and {prefix}atol are both 0{' at a component' * per_component}: the "
                         f"adaptive {method!r} error test could never pass; give a positive tolerance")
    return options
