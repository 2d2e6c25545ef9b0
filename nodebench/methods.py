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
rk4           Disc-Opt: backprop through fixed-step **classic** RK4 (Onken & Ruthotto 2020)
rk4_38        backprop through torchdiffeq's fixed-step ``rk4``, the **3/8 rule**
euler         backprop through fixed-step forward Euler
midpoint      backprop through fixed-step explicit midpoint
sde_direct    torchsde ``sdeint``, reversible Heun, backprop through the solver (SDE tasks only)
sde_adjoint   torchsde ``sdeint_adjoint``, reversible Heun and its adjoint (SDE tasks only)
snode         SNODE (Quaglino et al. 2020): Legendre spectral elements and coordinate descent, no ODE
              solve while training (full-state trajectory tasks only; :mod:`nodebench.snode`)
============= ==================================================================================

Each method is an object of a :class:`Method` subclass — :class:`Backprop`, :class:`Adjoint`,
:class:`GaussQuadrature`, :class:`SDEBackprop`, :class:`SDEAdjoint`, :class:`Spectral` — that says which
solver options it accepts (:attr:`Method.accepts`) and how it builds its solve. The options (``hparams``
of a case, typed by :data:`SOLVER_PARAMS`): ``rtol``/``atol`` for adaptive solvers, ``adjoint_rtol``/
``adjoint_atol`` for adjoints (default: the forward values), ``step_size`` for fixed-step solvers (default:
step exactly on the output times ``t``; SDE methods: 0.01) and ``gtol``, the quadrature constant C of the
GQ methods (default 0.1; larger means more nodes). ``nodebench run`` warns about an option a method
does not use (:meth:`Method.ignored_options`).

Trained output times (``t`` requiring grad): given ``step_size``, a fixed-step method (``rk4``, ``rk4_38``,
``euler``, ``midpoint``) returns an output time between grid points by torchdiffeq's linear interpolation, so its
gradient is the interpolant's (first order in the step), and one exactly on a grid point none: torchdiffeq 0.2.5's
``FixedGridODESolver._linear_interp`` returns the step's end value there, and t0's gradient takes its share. To
train output times use an adaptive method, or a fixed-step one without ``step_size`` (its grid is then ``t``).

ODE methods work on SDE tasks too: the task then trains its Wong–Zakai ODE
(:mod:`nodebench.sde`). SDE methods need an SDE task (``Task.dynamics == "sde"``). ``snode`` takes its
own ``snode_*`` options (:mod:`nodebench.snode.options`) and needs a full-state trajectory task
(``Task.full_state``); its solve, used only by evaluation, is dopri5.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Mapping

import torch
from torchdiffeq import odeint, odeint_adjoint

from nodebench import solvers
from nodebench.config import Param
from nodebench.errors import UserError
from nodebench.callbacks import solver_field
from nodebench.gq import odeint_adjoint_gq
from nodebench.registry import Registry
from nodebench.sde import StepReportingBrownian

#: The typed solver options (:mod:`nodebench.config`).
SOLVER_PARAMS = {p.name: p for p in (
    Param("rtol", "float", positive=True), Param("atol", "float", positive=True),
    Param("adjoint_rtol", "float", positive=True, optional=True),
    Param("adjoint_atol", "float", positive=True, optional=True),
    Param("step_size", "float", positive=True, optional=True), Param("gtol", "float", positive=True),
)}
SOLVER_OPTIONS = tuple(SOLVER_PARAMS)
SDE_DEFAULT_DT = 0.01
#: The most steps a fixed-step solve may take over its time span: far above any real use, low enough that a typo
#: (``step_size=1e-300``) is refused rather than overflowing the solver's time grid.
MAX_FIXED_STEPS = 10**6
ADAPTIVE_OPTIONS = ("rtol", "atol")
ADJOINT_OPTIONS = ("adjoint_rtol", "adjoint_atol")


def solver_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` checked against :data:`SOLVER_PARAMS`; an unknown key or a bad value is a UserError."""
    unknown = set(options) - set(SOLVER_PARAMS)
    if unknown:
        raise UserError(f"unknown solver option(s) {sorted(unknown)}; valid: {', '.join(SOLVER_OPTIONS)}")
    return {k: SOLVER_PARAMS[k].check(v, "solver option") for k, v in options.items()}


def check_step_size(step_size: float, span: float, where: str, *, name: str = "step_size",
                    longest: bool = True) -> None:
    """A :class:`UserError` when a fixed step ``step_size`` (the option ``name``) does not fit a time span of
    length ``span`` (``where`` names it): more than :data:`MAX_FIXED_STEPS` steps or, with ``longest``, a step
    longer than the span (the solver takes one step of the span instead; ``step_size=1e300`` fails in its time
    grid)."""
    span = abs(span)
    shortest = span / MAX_FIXED_STEPS
    if step_size < shortest or (longest and step_size > span):
        raise UserError(f"{name} {step_size:g} does not fit {where} (length {span:g}): give a {name} from "
                        f"{shortest:.3g} ({MAX_FIXED_STEPS:,} steps) to {span:g} (one step)")


@dataclass(frozen=True)
class Solve:
    """``solve(func, y0, t, **kw) -> ys`` built by :meth:`Method.make_solve`; it knows its method, so a
    task can tell an SDE solve (called with a torchsde SDE and ``entropy=``) from an ODE solve."""

    method: "Method"
    fn: Callable[..., torch.Tensor]
    #: Filled by GQ methods after each backward pass: ``nfe_forward``, ``nodes``, ``intervals``.
    stats: dict = field(default_factory=dict)
    #: The fixed step the solve was given, checked against its first call's time span (:func:`check_step_size`).
    step_size: float | None = None
    _span_checked: bool = field(default=False, init=False, repr=False, compare=False)

    def __call__(self, func, y0, t, **kwargs) -> torch.Tensor:
        if self.step_size is not None and not self._span_checked:
            # once: reading the span synchronises a GPU, and the first call is the harness's untimed warm-up
            object.__setattr__(self, "_span_checked", True)
            # detached: output times that are trained (t requiring grad) would make torch warn about the host read
            check_step_size(self.step_size, float((t[-1] - t[0]).detach()), "this solve's time span", longest=False)
        # a wrapper around a plain function (WongZakaiField(f, noise)) goes as a plain callable: without params, an
        # adjoint asks for them rather than taking the wrapper's parameters(), which are none of f's
        return self.fn(solver_field(func), y0, t, **kwargs)


@dataclass(frozen=True)
class Method(abc.ABC):
    """A gradient strategy over a torchdiffeq (or torchsde) solver.

    Attributes:
        name: registry id.
        solver: torchdiffeq method string (torchsde's for SDE methods).
        adaptive: the solver controls its step size (tolerances apply), else it uses a fixed grid.
        description: one line for ``nodebench list``.
    """

    name: str
    solver: str
    adaptive: bool
    description: str

    #: ``DO`` (discretise-optimise: backprop), ``OD`` (optimise-discretise: a continuous adjoint) or ``SP``
    #: (spectral: SNODE's relaxation, no solve while training).
    family: ClassVar[str] = "DO"
    #: The method integrates an SDE with torchsde (and so needs an SDE task).
    sde: ClassVar[bool] = False
    #: The method trains without solving (SNODE): the harness steps it with its own coordinate descent.
    spectral: ClassVar[bool] = False

    @property
    def accepts(self) -> tuple[str, ...]:
        """The solver options this method reads."""
        return ADAPTIVE_OPTIONS if self.adaptive else ("step_size",)

    def check_task(self, task: Any) -> None:
        """A :class:`UserError` if this method cannot train ``task`` (an SDE method on an ODE task)."""
        if self.sde and getattr(task, "dynamics", "ode") != "sde":
            raise UserError(f"method {self.name!r} integrates an SDE, but task {task.name!r} is an ODE task; "
                            f"use it on an SDE task (ou_sde) or pick an ODE method")

    def ignored_options(self, options: Mapping[str, Any]) -> list[str]:
        """The options in ``options`` this method does not use (``rtol`` for fixed-step RK4)."""
        return sorted(set(options) - set(self.accepts))

    def make_solve(self, params: Iterable[torch.Tensor] = (), **options) -> Solve:
        """Build ``solve(func, y0, t)`` with this method's gradient path.

        Args:
            params: the parameters the adjoint must return gradients for (``adjoint_params``); all
                trainable parameters of the model, not only the field's.
            **options: ``rtol``, ``atol``, ``adjoint_rtol``, ``adjoint_atol``, ``step_size``, ``gtol``
                (:data:`SOLVER_PARAMS`); options the method does not use are ignored.
        """
        options = solver_options(options)
        stats: dict = {}
        step = options.get("step_size") if "step_size" in self.accepts else None
        return Solve(self, self._solve_fn(tuple(params) or None, options, stats), stats, step)

    @staticmethod
    def _tolerances(options: Mapping[str, Any]) -> dict[str, float]:
        rtol, atol = options.get("rtol", 1e-7), options.get("atol", 1e-9)
        return dict(rtol=rtol, atol=atol, adjoint_rtol=options.get("adjoint_rtol") or rtol,
                    adjoint_atol=options.get("adjoint_atol") or atol)

    def _grid(self, options: Mapping[str, Any]) -> dict[str, float]:
        step = options.get("step_size")
        return {"step_size": step} if not self.adaptive and step is not None else {}

    @abc.abstractmethod
    def _solve_fn(self, params, options: Mapping[str, Any], stats: dict) -> Callable[..., torch.Tensor]:
        """The solve function of this method for checked ``options``."""


@dataclass(frozen=True)
class Backprop(Method):
    """Discretise-optimise: backprop through the solver's operations (torchdiffeq ``odeint``)."""

    def _solve_fn(self, params, options, stats):
        tol, grid = self._tolerances(options), self._grid(options)

        def solve(func, y0, t):
            return odeint(func, y0, t, rtol=tol["rtol"], atol=tol["atol"], method=self.solver, options=grid)
        return solve


@dataclass(frozen=True)
class Adjoint(Method):
    """Optimise-discretise: torchdiffeq's ``odeint_adjoint`` (Chen et al. 2018), optionally with
    ``adjoint_options`` such as the seminorm of Kidger et al. 2021."""

    adjoint_options: Mapping[str, str] = field(default_factory=dict)
    family: ClassVar[str] = "OD"

    @property
    def accepts(self) -> tuple[str, ...]:
        return super().accepts + ADJOINT_OPTIONS

    def _solve_fn(self, params, options, stats):
        tol, grid = self._tolerances(options), self._grid(options)

        def solve(func, y0, t):
            return odeint_adjoint(func, y0, t, method=self.solver, options=grid, adjoint_params=params,
                                  adjoint_options=dict(self.adjoint_options), **tol)
        return solve


@dataclass(frozen=True)
class GaussQuadrature(Method):
    """The Gauss–Legendre quadrature adjoint (:func:`nodebench.gq.odeint_adjoint_gq`; Norcliffe & Deisenroth
    2023, Algorithm 1), ``quadrature`` ``"sequential"`` (one VJP per node) or ``"batched"`` (one per interval)."""

    quadrature: str = "sequential"
    family: ClassVar[str] = "OD"

    @property
    def accepts(self) -> tuple[str, ...]:
        return super().accepts + ADJOINT_OPTIONS + ("gtol",)

    def _solve_fn(self, params, options, stats):
        tol, grid = self._tolerances(options), self._grid(options)
        gtol = options.get("gtol", 0.1)

        def solve(func, y0, t):
            return odeint_adjoint_gq(func, y0, t, method=self.solver, options=grid, gtol=gtol, adjoint_params=params,
                                     quadrature=self.quadrature, stats=stats, **tol)
        return solve


@dataclass(frozen=True)
class SDEBackprop(Method):
    """torchsde ``sdeint`` with an explicit Brownian interval, backprop through the solver.

    torchsde calls no step callbacks; where the SDE has ``callback_step`` (the harness's counter inside a
    :class:`~nodebench.sde.StratonovichSDE`), each solver step is reported to it through the Brownian motion
    (:class:`~nodebench.sde.StepReportingBrownian`), in the forward solve and in an adjoint's backward solve.
    """

    sde: ClassVar[bool] = True

    def _brownian(self, sde, y0, t, entropy: int, dt: float):
        import torchsde

        # An explicit Brownian interval over the solve's span avoids torchsde's hidden per-call cost with
        # float32 times (a tiny last step that rebuilds the Brownian tree).
        bm = torchsde.BrownianInterval(t0=float(t[0]), t1=float(t[-1]), size=y0.shape, dtype=y0.dtype,
                                       device=y0.device, entropy=entropy, dt=dt)
        callback = getattr(sde, "callback_step", None)
        return bm if callback is None else StepReportingBrownian(bm, callback)

    def _check_call(self, sde, entropy) -> None:
        """A :class:`UserError` when the solve is not given a torchsde SDE and a Brownian ``entropy``: an ODE
        problem trained with an SDE method outside the runner (``nodebench.training.train``), which
        :meth:`check_task` refuses earlier for a task."""
        if entropy is None or getattr(sde, "sde_type", None) is None or getattr(sde, "noise_type", None) is None:
            raise UserError(f"method {self.name!r} integrates an SDE: its solve takes a torchsde SDE (with sde_type "
                            f"and noise_type) and entropy=, got {type(sde).__name__} and entropy={entropy!r}; "
                            "use it on an SDE task (ou_sde) or pick an ODE method")

    def _solve_fn(self, params, options, stats):
        import torchsde

        dt = options.get("step_size") or SDE_DEFAULT_DT

        def solve(sde, y0, t, *, entropy: int | None = None):
            self._check_call(sde, entropy)
            return torchsde.sdeint(sde, y0, t, bm=self._brownian(sde, y0, t, entropy, dt), method=self.solver,
                                   dt=dt)
        return solve


@dataclass(frozen=True)
class SDEAdjoint(SDEBackprop):
    """torchsde ``sdeint_adjoint`` with the solver's own adjoint method (``adjoint_<solver>``)."""

    family: ClassVar[str] = "OD"

    def _solve_fn(self, params, options, stats):
        import torchsde

        dt = options.get("step_size") or SDE_DEFAULT_DT

        def solve(sde, y0, t, *, entropy: int | None = None):
            self._check_call(sde, entropy)
            return torchsde.sdeint_adjoint(sde, y0, t, bm=self._brownian(sde, y0, t, entropy, dt), method=self.solver,
                                           dt=dt, adjoint_params=params, adjoint_method=f"adjoint_{self.solver}")
        return solve


@dataclass(frozen=True)
class Spectral(Backprop):
    """SNODE (Quaglino et al. 2020): trained by coordinate descent on spectral elements
    (:mod:`nodebench.snode`), no solve while training; its solve (dopri5) is used only by evaluation."""

    family: ClassVar[str] = "SP"
    spectral: ClassVar[bool] = True

    @property
    def accepts(self) -> tuple[str, ...]:
        return ()

    def check_task(self, task: Any) -> None:
        if not getattr(task, "full_state", False):
            raise UserError(f"method {self.name!r} needs fully observed trajectories, which task {task.name!r} "
                            "does not have; use it on cubic_spiral, vehicle, multi_agent or trajectories:PATH")


METHODS: Registry[Method] = Registry("method")
for _method in (
    Backprop("direct", "dopri5", adaptive=True, description="backprop through dopri5"),
    Adjoint("adjoint", "dopri5", adaptive=True, description="torchdiffeq odeint_adjoint, dopri5"),
    Adjoint("seminorm", "dopri5", adaptive=True, adjoint_options={"norm": "seminorm"},
            description="odeint_adjoint, dopri5, seminorm error control on the adjoint (Kidger et al. 2021)"),
    GaussQuadrature("gq", "dopri5", adaptive=True, quadrature="sequential",
                    description="Gauss–Legendre quadrature adjoint, dopri5, one VJP per node (Norcliffe & "
                                "Deisenroth 2023)"),
    GaussQuadrature("gq_batched", "dopri5", adaptive=True, quadrature="batched",
                    description="GQ adjoint, each interval's node VJPs as one VJP, nodes vmapped where possible "
                                "(nodebench variant)"),
    Backprop("bosh3", "bosh3", adaptive=True,
             description="backprop through adaptive Bogacki–Shampine 3(2) (order-matching studies)"),
    Backprop("adaptive_heun", "adaptive_heun", adaptive=True,
             description="backprop through adaptive Heun 2(1) (order-matching studies)"),
    Backprop("rk4", solvers.CLASSIC_RK4, adaptive=False,
             description="Disc-Opt: backprop through fixed-step classic RK4 (1/6, 1/3, 1/3, 1/6)"),
    Backprop("rk4_38", solvers.RK4_38, adaptive=False,
             description="backprop through torchdiffeq's fixed-step rk4, the 3/8 rule (1/8, 3/8, 3/8, 1/8)"),
    Backprop("euler", "euler", adaptive=False, description="backprop through fixed-step Euler"),
    Backprop("midpoint", "midpoint", adaptive=False, description="backprop through fixed-step explicit midpoint"),
    SDEBackprop("sde_direct", "reversible_heun", adaptive=False,
                description="torchsde sdeint, reversible Heun (Stratonovich), backprop through the solver"),
    SDEAdjoint("sde_adjoint", "reversible_heun", adaptive=False,
               description="torchsde sdeint_adjoint, reversible Heun with its adjoint"),
    Spectral("snode", "dopri5", adaptive=False,
             description="SNODE: Legendre spectral elements + coordinate descent, no solve while training "
                         "(Quaglino et al. 2020; full-state trajectory tasks)"),
):
    METHODS.register(obj=_method)


def get_method(name: str) -> Method:
    """The registered method ``name``; an unknown name is a :class:`UserError` listing the valid ones."""
    return METHODS.lookup(name)
