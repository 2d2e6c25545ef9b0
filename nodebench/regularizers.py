"""Solver-cost regularisers as running costs of the ODE solve: TayNODE's R_K and RNODE.

- **R_K** (Kelly, Bettencourt, Johnson, Duvenaud, "Learning Differential Equations that are Easy to
  Solve", NeurIPS 2020, §3): R_K(θ) = ∫_{t0}^{t1} ‖d^K z/dt^K‖²₂ dt, the K-th *total* time derivative of
  the solution (not divided by K!), from Taylor-mode AD (:func:`nodebench.taylor.ode_derivatives`). The
  official code integrates the mean over state dimensions instead of the squared norm (the sum), per
  example, and averages over the batch; so do we.
- **RNODE** (Finlay, Jacobsen, Nurbekyan, Oberman, "How to train your neural ODE: the world of Jacobian and
  kinetic regularization", ICML 2020): kinetic energy ½·mean(f²) plus the Jacobian Frobenius estimate
  mean((εᵀ∂f/∂z)²), ε Gaussian and fixed within a solve (both weighted by the same λ, as in RNODE's MNIST
  script).
  The ½ and the means over dimensions follow the released code ``cfinlay/ffjord-rnode`` rather than the
  paper's squared norms; the Frobenius term is a Hutchinson estimate from a VJP, as there.

The cost c(t, z) is integrated as one extra state per example, r' = c, next to z; the training loss
becomes task loss + λ · mean over the batch of R (summed over the solves of one iteration), R = r(t1) over
the solve's interval [t0, t1]. A solve backwards in time (t1 < t0, a CNF's inverse) ends at r(t1) = −∫ c dt,
so there R = −r(t1): the integral over the interval traversed (the paper's §3 integral, t0 < t1), never a
negative penalty that would reward fast dynamics. Two variants:

- ``forward``: the augmented state is solved in the forward pass with the training method, so with an
  adaptive solver the R-state is inside the forward error control (the official latent-ODE script);
- ``adjoint_only``: the cost is evaluated only while autograd records, i.e. inside an adjoint's backward
  solve (``adjoint``, ``seminorm``, ``gq``...): the forward pass sees c = 0, so the forward step sizes
  and NFE are those of the unregularised dynamics, and the R-state's adjoint is the constant λ/B, which
  puts λ·∂R/∂θ into the parameter gradient (the "Finlay trick" of the official MNIST and FFJORD
  scripts). With a backprop method the forward pass records autograd, so this variant is the ``forward``
  one there. R is then never evaluated in the forward pass, so the value logged for it (the curves'
  ``regularizer`` column) is NaN, not measured, rather than the 0 the forward solve integrates.

The derivatives are taken through the wrapped field's *inner* module, so a harness
:class:`~nodebench.harness.CountingField` counts only the dynamics evaluations of the solve itself.

Tuple states (a CNF's ``(z, log-det)``) are regularised on their first component: the field must then
expose ``state_field``, the dynamics of that component alone (``AugmentedDynamics.state_field`` is the
CNF's f(t, z), so R_K is computed on f as in the official FFJORD scripts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from nodebench.errors import UserError
from nodebench.callbacks import ForwardsCallbacks, solver_field, unwrap

KINDS = ("none", "speed", "rnode")
VARIANTS = ("forward", "adjoint_only")
#: The largest K accepted: d^K z/dt^K = (K−1)!·[f]_{K−1} (:func:`nodebench.taylor.ode_derivatives`) and 35! is
#: beyond float32's range, so from K = 36 every float32 R_K is inf or NaN (the official code takes K ≤ 6; the
#: Taylor tape's cost grows as K², so a mistyped K of 10⁶ would otherwise run without end).
MAX_ORDER = 35
#: Case hyper-parameters read by :func:`regularizer_from_hparams` (the harness splits them off).
REGULARIZER_OPTIONS = ("reg", "reg_order", "reg_lambda", "reg_variant")


def _check_settings(kind, order, lam, variant, names: tuple[str, str, str, str], kinds: tuple[str, ...]) -> None:
    """A :class:`UserError` naming the bad value by ``names`` (the setting as the caller wrote it: a
    :class:`Regularizer` argument, or a case's ``reg*`` hyper-parameter, :data:`REGULARIZER_OPTIONS`)."""
    kind_name, order_name, lam_name, variant_name = names
    if kind not in kinds:
        raise UserError(f"unknown regulariser {kind!r} ({kind_name}); valid: {', '.join(kinds)}")
    if variant not in VARIANTS:
        raise UserError(f"unknown regulariser variant {variant!r} ({variant_name}); valid: {', '.join(VARIANTS)}")
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= MAX_ORDER:
        raise UserError(f"{order_name} must be an integer from 1 to {MAX_ORDER}, got {order!r}")
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not 0 <= lam < math.inf:
        raise UserError(f"{lam_name} must be a finite number ≥ 0, got {lam!r}")


def _batch_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension but the first (the batch)."""
    return x.reshape(x.shape[0], -1).mean(dim=1)


def speed_cost(order: int, derivative_method: str = "taylor") -> Callable:
    """c(t, z) = mean over dimensions of (d^K z/dt^K)², K = ``order``, per example: the R_K integrand (Kelly et
    al., NeurIPS 2020, §3), mean rather than sum over dimensions as in their official code."""
    from nodebench.taylor import ode_derivatives

    def cost(func, t, z, f):
        return _batch_mean(ode_derivatives(func, t, z, order, method=derivative_method)[-1] ** 2)
    return cost


def rnode_cost(noise: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    """c(t, z) = ½·mean(f²) + mean((εᵀ∂f/∂z)²), ε = ``noise(z)`` fixed within a solve: RNODE's kinetic and
    Jacobian-Frobenius running costs (Finlay et al., ICML 2020), scaled as in ``cfinlay/ffjord-rnode``.

    Outside autograd (an adjoint's forward solve) z is taken detached, as :class:`nodebench.cnf.AugmentedDynamics`
    does: a state that requires grad there (from a y0 that does) has no graph to ∂f/∂z."""
    def cost(func, t, z, f):
        recording = torch.is_grad_enabled()
        with torch.enable_grad():
            z_ = z if recording and z.requires_grad else z.detach().requires_grad_(True)
            f_ = func(t, z_)
            eps = noise(z)
            (vjp,) = torch.autograd.grad(f_, z_, eps, create_graph=recording)
        return 0.5 * _batch_mean(f ** 2) + _batch_mean(vjp ** 2)
    return cost


def _state_field(func: nn.Module, tuple_state: bool):
    """The uncounted field of the regularised state component (see the module docstring)."""
    inner = unwrap(func)
    if not tuple_state:
        return inner
    state_field = getattr(inner, "state_field", None)
    if state_field is None:
        raise UserError(f"a regulariser on a tuple state needs the field ({type(inner).__name__}) to expose "
                        "state_field, the dynamics of the first state component")
    return state_field


class RunningCostField(ForwardsCallbacks):
    """Augmented dynamics ``(y, r)' = (f(t, y), c(t, z))`` for a per-example running cost ``c``, where z is
    ``y`` or, for a tuple state, its first component.

    Args:
        field: the vector field, a module (possibly the harness's counting wrapper; its step callbacks are
            forwarded) or a plain function. The cost differentiates its inner module, uncounted.
        cost: ``cost(func, t, z, f) -> (B,)``.
        only_when_recording: evaluate the cost only while autograd records (the ``adjoint_only``
            variant); otherwise return zeros.
        parts: the number of tensors of a tuple state ``y`` (``None`` for a tensor state). torchdiffeq
            takes flat tuples only, so the augmented state is ``(*y, r)``.
    """

    def __init__(self, field: nn.Module, cost: Callable, only_when_recording: bool, parts: int | None = None):
        super().__init__()
        self.field = field
        self.cost = cost
        self.only_when_recording = only_when_recording
        self.parts = parts
        self.evaluated = False  # whether any call computed the cost (not so in adjoint_only's forward solve)

    def forward(self, t, state):
        y = state[0] if self.parts is None else tuple(state[:self.parts])
        f = self.field(t, y)
        z, fz = (y, f) if self.parts is None else (y[0], f[0])
        if self.only_when_recording and not torch.is_grad_enabled():
            cost = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        else:
            cost = self.cost(_state_field(self.field, self.parts is not None), t, z, fz)
            self.evaluated = True
        return (f, cost) if self.parts is None else (*f, cost)


@dataclass
class Regularizer:
    """A running-cost regulariser of weight ``lam`` (see the module docstring).

    Attributes:
        kind: ``"speed"`` (R_K) or ``"rnode"``.
        order: K for ``speed``.
        lam: the weight λ.
        variant: ``"forward"`` or ``"adjoint_only"``.
        derivative_method: ``"taylor"`` or ``"jvp"`` (nested ``torch.func.jvp``) for R_K.
        seed: seeds the local generator of RNODE's Hutchinson noise.
    """

    kind: str
    order: int = 2
    lam: float = 0.0
    variant: str = "forward"
    derivative_method: str = "taylor"
    seed: int = 0
    _generator: torch.Generator = field(init=False, repr=False)

    def __post_init__(self):
        _check_settings(self.kind, self.order, self.lam, self.variant, names=("kind", "order", "lam", "variant"),
                        kinds=KINDS[1:])
        from nodebench.taylor.ode import METHODS

        if self.derivative_method not in METHODS:
            raise UserError(f"unknown derivative_method {self.derivative_method!r}; valid: {', '.join(METHODS)}")
        self._generator = torch.Generator().manual_seed(self.seed)

    def check_method(self, method) -> None:
        """A :class:`UserError` for a method the running cost cannot ride on (torchsde's SDE solvers, and
        SNODE, which solves no ODE while training)."""
        if getattr(method, "spectral", False):
            raise UserError(f"regulariser {self.kind!r} rides on an ODE solve; method {method.name!r} trains "
                            "without one; pick a solver-based method")
        if getattr(method, "sde", False):
            raise UserError(f"regulariser {self.kind!r} needs an ODE method; {method.name!r} integrates an SDE "
                            "(on an SDE task use an ODE method such as gq, which trains the Wong–Zakai ODE)")

    def wrap(self, solve: Callable) -> "RegularizedSolve":
        """``solve`` with this regulariser's running cost added to every solve it makes."""
        return RegularizedSolve(solve, self)

    def running_cost(self) -> Callable:
        if self.kind == "speed":
            return speed_cost(self.order, self.derivative_method)
        drawn = {}

        def noise(z):  # one ε per solve: drawn at the first evaluation, reused after
            if "eps" not in drawn or drawn["eps"].shape != z.shape:
                drawn["eps"] = torch.randn(z.shape, generator=self._generator, dtype=z.dtype).to(z.device)
            return drawn["eps"]
        return rnode_cost(noise)


class RegularizedSolve:
    """Calls the wrapped ``solve(func, y0, t)`` on the augmented state and returns the z-part; the
    penalty λ·mean_batch r(t1) of every call since :meth:`reset` is in :attr:`penalty`, and the sum of
    their R in :attr:`value` (NaN when a forward solve never evaluated the cost: ``adjoint_only``).
    :meth:`regularized` adds the penalty to a task loss and keeps that task loss in :attr:`task_loss`.

    A solve reads nothing back to the host: R is summed on the device and :attr:`value` reads it when asked
    (the harness asks after the step's clock has stopped), so a GPU step is not synchronised mid-forward."""

    def __init__(self, solve: Callable, regularizer: Regularizer):
        self.solve, self.regularizer = solve, regularizer
        self.method = getattr(solve, "method", None)
        self.stats = getattr(solve, "stats", {})
        self.reset()

    def reset(self) -> None:
        self.penalty: torch.Tensor | float = 0.0
        self._r: torch.Tensor | float = 0.0  # Σ R since the reset, detached; NaN once a solve never evaluated it
        self.task_loss: torch.Tensor | float = math.nan

    @property
    def value(self) -> float:
        """R summed over the solves since :meth:`reset` (NaN when one never evaluated the cost); a host read."""
        return float(self._r)

    def regularized(self, task_loss: torch.Tensor) -> torch.Tensor:
        """``task_loss`` (computed through this solve since :meth:`reset`) plus the penalty; ``task_loss`` is
        kept, detached, in :attr:`task_loss`: the quality without the penalty, for comparisons at matched
        accuracy."""
        self.task_loss = task_loss.detach()
        return task_loss + self.penalty

    def __call__(self, func, y0, t, **kwargs):
        z0 = y0[0] if isinstance(y0, tuple) else y0
        if not torch.is_tensor(z0) or z0.dim() < 1:
            raise UserError("regularisers need a state with a batch dimension first")
        reg = self.regularizer
        parts = len(y0) if isinstance(y0, tuple) else None
        augmented = RunningCostField(func, reg.running_cost(), only_when_recording=reg.variant == "adjoint_only",
                                     parts=parts)
        # A field that is a plain function (torchdiffeq takes any callable) reaches the solver as one, so that an
        # adjoint asks for adjoint_params as it does without the regulariser, rather than finding none in the module.
        r0 = torch.zeros(z0.shape[0], dtype=z0.dtype, device=z0.device)
        out = self.solve(solver_field(augmented), (y0, r0) if parts is None else (*y0, r0), t, **kwargs)
        ys, rs = (out[0], out[1]) if parts is None else (tuple(out[:-1]), out[-1])
        r = rs[-1].mean() * (t[-1] - t[0]).sign()  # backwards in time r(t1) = −R; no host read of t
        self.penalty = self.penalty + reg.lam * r
        self._r = self._r + r.detach() if augmented.evaluated else math.nan
        return ys


def regularizer_from_hparams(hparams: dict, seed: int = 0) -> Regularizer | None:
    """The regulariser a case's ``reg*`` hyper-parameters ask for, or ``None`` (``reg = "none"`` or unset,
    or ``reg_lambda = 0``: a λ grid's zero is the unregularised baseline, with no cost computed). A positive
    ``reg_lambda`` without ``reg`` is a :class:`UserError`: the user meant a regulariser and would get none."""
    kind = hparams.get("reg", "none")
    lam = hparams.get("reg_lambda")
    if kind == "none" and isinstance(lam, (int, float)) and not isinstance(lam, bool) and lam > 0:
        raise UserError(f"reg_lambda {lam:g} has no effect without a regulariser: set reg to "
                        f"{' or '.join(KINDS[1:])}, or leave reg_lambda out")
    order, lam = hparams.get("reg_order", 2), hparams.get("reg_lambda", 0.0)
    variant = hparams.get("reg_variant", "forward")
    # checked with reg = none too: the other reg_* values are refused all the same, by their hyper-parameter names
    _check_settings(kind, order, lam, variant, names=REGULARIZER_OPTIONS, kinds=KINDS)
    regularizer = Regularizer(kind="speed" if kind == "none" else kind, order=order, lam=lam, variant=variant,
                              seed=seed)
    return regularizer if kind != "none" and regularizer.lam > 0 else None
