"""Training methods: how the loss gradient through an ODE (or SDE) solve is obtained.

A method turns the problem's vector field, initial state and output times into predicted states with a
gradient path, using torchdiffeq's call convention ``solve(func, y0, t) -> ys``. The registry holds:

============= ==================================================================================
id            what it does
============= ==================================================================================
direct        backprop through dopri5 (discretise-then-optimise with an adaptive solver)
bosh3         backprop through adaptive Bogacki–Shampine 3(2)
adaptive_heun backprop through adaptive Heun 2(1)
adjoint       torchdiffeq ``odeint_adjoint`` with dopri5 (optimise-then-discretise; Chen et al. 2018)
seminorm      ``odeint_adjoint`` with ``adjoint_options=dict(norm="seminorm")`` (Kidger et al. 2021)
gq            :func:`nodebench.gq.odeint_adjoint_gq`, dopri5: Gauss–Legendre quadrature adjoint, one
              parameter VJP per node (Norcliffe & Deisenroth 2023, the paper's algorithm)
gq_batched    the same with each interval's node VJPs evaluated as one vectorised VJP (nodebench variant)
rk4           Disc-Opt: backprop through fixed-step **classic** RK4 (Onken & Ruthotto 2020, §DO)
rk4_38        backprop through torchdiffeq's fixed-step ``rk4``, the **3/8 rule**
euler         backprop through fixed-step forward Euler
midpoint      backprop through fixed-step explicit midpoint
sde_direct    torchsde ``sdeint``, reversible Heun, backprop through the solver (SDE tasks only)
sde_adjoint   torchsde ``sdeint_adjoint``, reversible Heun and its adjoint (SDE tasks only)
snode         SNODE (Quaglino et al. 2020): Legendre spectral elements and coordinate descent, no ODE
              solve while training (full-state trajectory tasks only; :mod:`nodebench.snode`)
============= ==================================================================================

Options every method takes (``hparams`` of a case): ``rtol``/``atol`` for adaptive solvers,
``adjoint_rtol``/``adjoint_atol`` for adjoints (default: the forward values), ``step_size`` for
fixed-step solvers (default: step exactly on the output times ``t``; SDE methods: 0.01) and ``gtol``,
the quadrature constant C of the GQ methods (default 0.1; larger means more nodes).

ODE methods work on SDE tasks too: the task then trains its Wong–Zakai ODE
(:mod:`nodebench.sde`). SDE methods need an SDE task (``Task.dynamics == "sde"``). ``snode`` takes its
own ``snode_*`` options (:mod:`nodebench.snode.options`) and needs a full-state trajectory task
(``Task.full_state``); its solve, used only by evaluation, is dopri5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import torch
from torchdiffeq import odeint, odeint_adjoint

from nodebench import solvers
from nodebench.errors import UserError
from nodebench.gq import odeint_adjoint_gq

SOLVER_OPTIONS = ("rtol", "atol", "adjoint_rtol", "adjoint_atol", "step_size", "gtol")

#: How a method obtains the gradient: backprop through an ODE solver, torchdiffeq's adjoint, the
#: Gauss–Legendre quadrature adjoint, torchsde's backprop / adjoint through an SDE solver, or SNODE's
#: spectral coordinate descent (no solve while training).
KINDS = ("backprop", "adjoint", "gq", "sde_backprop", "sde_adjoint", "spectral")
SDE_DEFAULT_DT = 0.01


@dataclass(frozen=True)
class Solve:
    """``solve(func, y0, t, **kw) -> ys`` built by :meth:`Method.make_solve`; it knows its method, so a
    task can tell an SDE solve (called with a torchsde SDE and ``entropy=``) from an ODE solve."""

    method: "Method"
    fn: Callable[..., torch.Tensor]
    #: Filled by GQ methods after each backward pass: ``nfe_forward``, ``nodes``, ``intervals``.
    stats: dict = field(default_factory=dict)

    def __call__(self, func, y0, t, **kwargs) -> torch.Tensor:
        return self.fn(func, y0, t, **kwargs)


@dataclass(frozen=True)
class Method:
    """A gradient strategy over a torchdiffeq (or torchsde) solver.

    Attributes:
        name: registry id.
        solver: torchdiffeq method string (torchsde's for SDE kinds).
        kind: one of :data:`KINDS`.
        adaptive: the solver controls its step size (tolerances apply), else it uses a fixed grid.
        description: one line for ``nodebench list``.
        adjoint_options: extra ``adjoint_options`` for ``odeint_adjoint``.
        quadrature: for ``gq``: ``"sequential"`` (one VJP per node) or ``"batched"`` (one per interval).
    """

    name: str
    solver: str
    kind: str
    adaptive: bool
    description: str
    adjoint_options: Mapping[str, str] = field(default_factory=dict)
    quadrature: str = "sequential"

    @property
    def family(self) -> str:
        """``OD`` (optimise-discretise: a continuous adjoint), ``DO`` (discretise-optimise: backprop) or
        ``SP`` (spectral: SNODE's relaxation, no solve while training)."""
        if self.kind == "spectral":
            return "SP"
        return "OD" if self.kind in ("adjoint", "gq", "sde_adjoint") else "DO"

    @property
    def sde(self) -> bool:
        """Whether the method integrates an SDE with torchsde (and so needs an SDE task)."""
        return self.kind.startswith("sde_")

    def check_task(self, task: Any) -> None:
        """A :class:`UserError` if this method cannot train ``task`` (an SDE method on an ODE task)."""
        if self.sde and getattr(task, "dynamics", "ode") != "sde":
            raise UserError(f"method {self.name!r} integrates an SDE, but task {task.name!r} is an ODE task; "
                            f"use it on an SDE task (ou_sde) or pick an ODE method")
        if self.kind == "spectral" and not getattr(task, "full_state", False):
            raise UserError(f"method {self.name!r} needs fully observed trajectories, which task {task.name!r} "
                            "does not have; use it on cubic_spiral, vehicle, multi_agent or trajectories:PATH")

    def make_solve(self, params: Iterable[torch.Tensor] = (), **options) -> Solve:
        """Build ``solve(func, y0, t)`` with this method's gradient path.

        Args:
            params: the parameters the adjoint must return gradients for (``adjoint_params``); all
                trainable parameters of the model, not only the field's.
            **options: ``rtol``, ``atol``, ``adjoint_rtol``, ``adjoint_atol``, ``step_size``, ``gtol``.
        """
        unknown = set(options) - set(SOLVER_OPTIONS)
        if unknown:
            raise UserError(f"unknown solver option(s) {sorted(unknown)}; valid: {', '.join(SOLVER_OPTIONS)}")
        rtol = float(options.get("rtol", 1e-7))
        atol = float(options.get("atol", 1e-9))
        adjoint_tols = dict(adjoint_rtol=float(options.get("adjoint_rtol", rtol)),
                            adjoint_atol=float(options.get("adjoint_atol", atol)))
        step_size = options.get("step_size")
        solver_options = {"step_size": float(step_size)} if not self.adaptive and step_size is not None else {}
        params = tuple(params) or None
        method = self.solver
        stats: dict = {}

        if self.kind in ("backprop", "spectral"):
            def solve(func, y0, t):
                return odeint(func, y0, t, rtol=rtol, atol=atol, method=method, options=solver_options)
        elif self.kind == "adjoint":
            def solve(func, y0, t):
                return odeint_adjoint(func, y0, t, rtol=rtol, atol=atol, method=method, options=solver_options,
                                      adjoint_params=params, adjoint_options=dict(self.adjoint_options),
                                      **adjoint_tols)
        elif self.kind == "gq":
            gtol = float(options.get("gtol", 0.1))

            def solve(func, y0, t):
                return odeint_adjoint_gq(func, y0, t, rtol=rtol, atol=atol, method=method, options=solver_options,
                                         gtol=gtol, adjoint_params=params, quadrature=self.quadrature,
                                         stats=stats, **adjoint_tols)
        else:
            solve = self._make_sde_solve(params, float(step_size or SDE_DEFAULT_DT))
        return Solve(self, solve, stats)

    def _make_sde_solve(self, params, dt: float):
        import torchsde

        def solve(sde, y0, t, *, entropy: int):
            # An explicit Brownian interval over the solve's span avoids torchsde's hidden per-call cost
            # with float32 times (a tiny last step that rebuilds the Brownian tree; ENVIRONMENT.md).
            bm = torchsde.BrownianInterval(t0=float(t[0]), t1=float(t[-1]), size=y0.shape, dtype=y0.dtype,
                                           device=y0.device, entropy=entropy, dt=dt)
            if self.kind == "sde_backprop":
                return torchsde.sdeint(sde, y0, t, bm=bm, method=self.solver, dt=dt)
            return torchsde.sdeint_adjoint(sde, y0, t, bm=bm, method=self.solver, dt=dt, adjoint_params=params,
                                           adjoint_method=f"adjoint_{self.solver}")
        return solve


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("direct", "dopri5", "backprop", adaptive=True, description="backprop through dopri5"),
    Method("adjoint", "dopri5", "adjoint", adaptive=True, description="torchdiffeq odeint_adjoint, dopri5"),
    Method("seminorm", "dopri5", "adjoint", adaptive=True, adjoint_options={"norm": "seminorm"},
           description="odeint_adjoint, dopri5, seminorm error control on the adjoint (Kidger et al. 2021)"),
    Method("gq", "dopri5", "gq", adaptive=True, quadrature="sequential",
           description="Gauss–Legendre quadrature adjoint, dopri5, one VJP per node (Norcliffe & Deisenroth 2023)"),
    Method("gq_batched", "dopri5", "gq", adaptive=True, quadrature="batched",
           description="GQ adjoint, each interval's node VJPs as one VJP, nodes vmapped where possible "
                       "(nodebench variant)"),
    Method("bosh3", "bosh3", "backprop", adaptive=True,
           description="backprop through adaptive Bogacki–Shampine 3(2) (order-matching studies)"),
    Method("adaptive_heun", "adaptive_heun", "backprop", adaptive=True,
           description="backprop through adaptive Heun 2(1) (order-matching studies)"),
    Method("rk4", solvers.CLASSIC_RK4, "backprop", adaptive=False,
           description="Disc-Opt: backprop through fixed-step classic RK4 (1/6, 1/3, 1/3, 1/6)"),
    Method("rk4_38", solvers.RK4_38, "backprop", adaptive=False,
           description="backprop through torchdiffeq's fixed-step rk4, the 3/8 rule (1/8, 3/8, 3/8, 1/8)"),
    Method("euler", "euler", "backprop", adaptive=False, description="backprop through fixed-step Euler"),
    Method("midpoint", "midpoint", "backprop", adaptive=False,
           description="backprop through fixed-step explicit midpoint"),
    Method("sde_direct", "reversible_heun", "sde_backprop", adaptive=False,
           description="torchsde sdeint, reversible Heun (Stratonovich), backprop through the solver"),
    Method("sde_adjoint", "reversible_heun", "sde_adjoint", adaptive=False,
           description="torchsde sdeint_adjoint, reversible Heun with its adjoint"),
    Method("snode", "dopri5", "spectral", adaptive=False,
           description="SNODE: Legendre spectral elements + coordinate descent, no solve while training "
                       "(Quaglino et al. 2020; full-state trajectory tasks)"),
]}


def get_method(name: str) -> Method:
    """The registered method ``name``; an unknown name is a :class:`UserError` listing the valid ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise UserError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}") from None
