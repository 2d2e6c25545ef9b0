"""Training methods: how the loss gradient through an ODE solve is obtained.

A method turns the problem's vector field, initial state and output times into predicted states with a
gradient path, using torchdiffeq's call convention ``solve(func, y0, t) -> ys``. The registry holds:

========== ===================================================================================
id          what it does
========== ===================================================================================
direct      backprop through dopri5 (discretise-then-optimise with an adaptive solver)
adjoint     torchdiffeq ``odeint_adjoint`` with dopri5 (optimise-then-discretise; Chen et al. 2018)
seminorm    ``odeint_adjoint`` with ``adjoint_options=dict(norm="seminorm")`` (Kidger et al. 2021)
rk4         Disc-Opt: backprop through fixed-step **classic** RK4 (Onken & Ruthotto 2020, §DO)
rk4_38      backprop through torchdiffeq's fixed-step ``rk4``, the **3/8 rule**
euler       backprop through fixed-step forward Euler
midpoint    backprop through fixed-step explicit midpoint
========== ===================================================================================

Options every method takes (``hparams`` of a case): ``rtol``/``atol`` for adaptive solvers,
``adjoint_rtol``/``adjoint_atol`` for adjoints (default: the forward values), and ``step_size`` for
fixed-step solvers (default: step exactly on the output times ``t``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import torch
from torchdiffeq import odeint, odeint_adjoint

from nodebench import solvers
from nodebench.errors import UserError

Solve = Callable[..., torch.Tensor]

SOLVER_OPTIONS = ("rtol", "atol", "adjoint_rtol", "adjoint_atol", "step_size")


@dataclass(frozen=True)
class Method:
    """A gradient strategy over a torchdiffeq solver.

    Attributes:
        name: registry id.
        solver: torchdiffeq method string.
        adjoint: integrate an adjoint ODE backwards instead of backpropagating through the solver.
        adaptive: the solver controls its step size (tolerances apply), else it uses a fixed grid.
        adjoint_options: extra ``adjoint_options`` for ``odeint_adjoint``.
        description: one line for ``nodebench list``.
    """

    name: str
    solver: str
    adjoint: bool
    adaptive: bool
    description: str
    adjoint_options: Mapping[str, str] = field(default_factory=dict)

    @property
    def family(self) -> str:
        """``OD`` (optimise-discretise: continuous adjoint) or ``DO`` (discretise-optimise: backprop)."""
        return "OD" if self.adjoint else "DO"

    def make_solve(self, params: Iterable[torch.Tensor] = (), **options) -> Solve:
        """Build ``solve(func, y0, t)`` with this method's gradient path.

        Args:
            params: the parameters the adjoint must return gradients for (``adjoint_params``); all
                trainable parameters of the model, not only the field's.
            **options: ``rtol``, ``atol``, ``adjoint_rtol``, ``adjoint_atol``, ``step_size``.
        """
        unknown = set(options) - set(SOLVER_OPTIONS)
        if unknown:
            raise UserError(f"unknown solver option(s) {sorted(unknown)}; valid: {', '.join(SOLVER_OPTIONS)}")
        rtol = float(options.get("rtol", 1e-7))
        atol = float(options.get("atol", 1e-9))
        solver_options = {}
        if not self.adaptive and options.get("step_size") is not None:
            solver_options["step_size"] = float(options["step_size"])
        if not self.adjoint:
            def solve(func, y0, t):
                return odeint(func, y0, t, rtol=rtol, atol=atol, method=self.solver, options=solver_options)
            return solve
        params = tuple(params)
        adjoint_rtol = float(options.get("adjoint_rtol", rtol))
        adjoint_atol = float(options.get("adjoint_atol", atol))

        def solve_adjoint(func, y0, t):
            return odeint_adjoint(func, y0, t, rtol=rtol, atol=atol, method=self.solver, options=solver_options,
                                  adjoint_rtol=adjoint_rtol, adjoint_atol=adjoint_atol,
                                  adjoint_params=params or None, adjoint_options=dict(self.adjoint_options))
        return solve_adjoint


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("direct", "dopri5", adjoint=False, adaptive=True, description="backprop through dopri5"),
    Method("adjoint", "dopri5", adjoint=True, adaptive=True, description="torchdiffeq odeint_adjoint, dopri5"),
    Method("seminorm", "dopri5", adjoint=True, adaptive=True, adjoint_options={"norm": "seminorm"},
           description="odeint_adjoint, dopri5, seminorm error control on the adjoint (Kidger et al. 2021)"),
    Method("rk4", solvers.CLASSIC_RK4, adjoint=False, adaptive=False,
           description="Disc-Opt: backprop through fixed-step classic RK4 (1/6, 1/3, 1/3, 1/6)"),
    Method("rk4_38", solvers.RK4_38, adjoint=False, adaptive=False,
           description="backprop through torchdiffeq's fixed-step rk4, the 3/8 rule (1/8, 3/8, 3/8, 1/8)"),
    Method("euler", "euler", adjoint=False, adaptive=False, description="backprop through fixed-step Euler"),
    Method("midpoint", "midpoint", adjoint=False, adaptive=False,
           description="backprop through fixed-step explicit midpoint"),
]}


def get_method(name: str) -> Method:
    """The registered method ``name``; an unknown name is a :class:`UserError` listing the valid ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise UserError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}") from None
