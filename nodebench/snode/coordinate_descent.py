"""SNODE's coordinate descent (Quaglino et al., ICLR 2020, §3; nodebench's reconstruction,
``nodebench/papers/snode/README.md``, iteration (M14) and multiplier update (M13) there).

One iteration of :class:`CoordinateDescent`:

1. **coefficient block**: ``coef_steps`` Adam steps on the free spectral coefficients z with θ fixed,
   minimising J = L + γR (+ multiplier term); only ∂J/∂z is computed;
2. **weight block**: ``weight_steps`` Adam steps on θ with z fixed, minimising γR (+ multiplier term):
   a regression of f(t_q, x_q, u_q; θ) onto the fixed slopes ẋ_q, batched over every trajectory and
   every node at once (the time-parallel part);
3. the augmented variant's guarded dual ascent λ ← λ + s·2γ r (:class:`DualAscent`), then the γ
   continuation γ ← min(γ·growth, γ_max).

No ODE is solved while training (claim S7): the only calls of the dynamics are batched node evaluations.
The coefficients are initialised by a least-squares fit to the observations (nodebench choice) inside the
first timed iteration, so that the fit counts towards SNODE's training time.

The harness measures an iteration like any method's: its "forward" phase is the coefficient block and its
"backward" phase the weight block (and the dual update); each NFE is one batched call over all nodes.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator

import torch

from nodebench.snode.elements import ElementBasis
from nodebench.snode.memory import check_memory
from nodebench.snode.objective import SpectralObjective
from nodebench.snode.options import SnodeOptions
from nodebench.undo import restored


class CoordinateDescent:
    """Train ``problem``'s field by SNODE on all its training trajectories: iterations (M14) of paper §3's
    coordinate descent, started from the fit (M6).

    Args:
        problem: a full-state trajectory problem: ``t`` (T,), ``y_train`` (N, T, D), ``u_train`` (N, T, M) or
            None, ``use_controls(t, u)``, ``field`` and ``lr`` (the weight steps' Adam rate).
        params: the trainable parameters θ.
        options: the SNODE settings.
    """

    def __init__(self, problem, params: list[torch.Tensor], options: SnodeOptions):
        self.problem, self.params, self.options = problem, params, options
        self.weight_optimizer = torch.optim.Adam(params, lr=problem.lr, weight_decay=problem.weight_decay)
        self.objective: SpectralObjective | None = None
        self.z: torch.Tensor | None = None
        self.gamma = options.gamma
        self.multipliers: torch.Tensor | None = None
        self.last: dict[str, torch.Tensor | float] = {}  # read as floats by metrics()

    def setup(self) -> None:
        """Build the basis (M2)–(M5) and quadrature (M7), fit the coefficients to the observations (M6), reset
        γ and λ (λ = 0). First refuses (:class:`~nodebench.snode.memory.SnodeMemoryError`) a basis whose maps and
        fit would not fit in the device's memory (:func:`~nodebench.snode.memory.check_memory`)."""
        p, opts = self.problem, self.options
        t, y = p.t, p.y_train
        elements = opts.elements_for(t.shape[0])
        check_memory(t.shape[0], y.shape[0] * y.shape[-1], opts.degree, elements, opts.nodes_per_element,
                     y.element_size(), y.device, ridge=opts.ridge)
        basis = ElementBasis(float(t[0]), float(t[-1]), opts.degree, elements, dtype=torch.float64, device=y.device)
        self.objective = SpectralObjective(p.field, basis, t, y, nodes_per_element=opts.nodes_per_element,
                                           rule=opts.quadrature)
        p.use_controls(t, p.u_train)
        z = basis.fit(t, y, ridge=opts.ridge)
        self.z = z.requires_grad_(True)
        self.coef_optimizer = torch.optim.Adam([self.z], lr=opts.coef_lr)
        self.gamma = opts.gamma
        self.multipliers = torch.zeros_like(self.objective.nodes(z.detach())[0]) \
            if opts.variant == "augmented" else None
        self.dual = DualAscent(opts) if opts.variant == "augmented" else None

    def warmup(self) -> None:
        """One untimed evaluation of J and of both blocks' gradients, no update; the first timed iteration
        starts again from the fit."""
        self.setup()
        objective = self.objective
        r = objective.residual(self.z)
        j = objective.data_loss(self.z) + objective.penalty(r, self.gamma, self.multipliers)
        torch.autograd.grad(j, [self.z, *self.params])
        self.objective = None

    def step(self, boundary: Callable[[], None]) -> torch.Tensor:
        """One coordinate-descent iteration (M14); calls ``boundary()`` between the two blocks; returns J as it
        was at the last coefficient step (before that step's update)."""
        if self.objective is None:
            self.setup()
        j = self.coefficient_block()
        boundary()
        self.weight_block()
        self.gamma = min(self.gamma * self.options.gamma_growth, self.options.gamma_max or math.inf)
        return j

    def coefficient_block(self) -> torch.Tensor:
        """(M14) step 1: ``coef_steps`` Adam steps on z with θ fixed, minimising J (M11) or J_A (M12) (only ∂J/∂z
        is computed); returns J before the last."""
        objective = self.objective
        for _ in range(self.options.coef_steps):
            r = objective.residual(self.z)
            data = objective.data_loss(self.z)
            j = data + objective.penalty(r, self.gamma, self.multipliers)
            (grad,) = torch.autograd.grad(j, [self.z])
            self.z.grad = grad
            self.coef_optimizer.step()
        # kept as tensors, read by metrics() after training: a host read here would synchronise a GPU inside the
        # timed step, which the method itself never does (the weight block neither, in the penalty variant)
        self.last = {"snode_fit_mse": data.detach(), "snode_violation": objective.violation(r.detach()),
                     "snode_gamma": self.gamma}
        return j.detach()

    def weight_block(self) -> None:
        """(M14) step 2: ``weight_steps`` Adam steps on θ with z fixed, minimising γR (+ ⟨λ, r⟩), batched over
        every trajectory and node; then the augmented variant's dual update (M13)."""
        objective = self.objective
        states, slopes = (v.detach() for v in objective.nodes(self.z))
        for _ in range(self.options.weight_steps):
            self.weight_optimizer.zero_grad(set_to_none=True)
            objective.penalty(objective.residual_given(states, slopes), self.gamma, self.multipliers).backward()
            self.weight_optimizer.step()
        if self.dual is not None:
            with torch.no_grad():
                r_new = objective.residual_given(states, slopes)
                lagrangian = float(objective.data_loss(self.z) + objective.penalty(r_new, self.gamma, self.multipliers))
                self.multipliers = self.dual.update(self.multipliers, r_new, float(objective.violation(r_new)),
                                                    lagrangian, self.gamma)

    @contextlib.contextmanager
    def kept(self) -> Iterator[None]:
        """On leaving the block, the training state is as it was on entering it: z, θ and both Adam states
        (in place, :func:`nodebench.undo.restored`), γ, λ, the dual ascent's bookkeeping and the last
        metrics. The harness's untimed memory passes run iterations inside it."""
        attributes, dual = dict(vars(self)), dict(vars(self.dual)) if self.dual is not None else None
        with restored([self.z, *self.params], [self.coef_optimizer, self.weight_optimizer]):
            yield
        vars(self).update(attributes)
        if dual is not None:
            vars(self.dual).update(dual)

    def metrics(self) -> dict[str, float]:
        """The last iteration's data loss L (M8) on the series, its ODE violation R (M10) and the γ it used."""
        return {name: float(value) for name, value in self.last.items()}


class DualAscent:
    """The safeguarded multiplier update (M13) of the augmented variant (method of multipliers, Hestenes 1969,
    Powell 1969; safeguards after Nocedal & Wright, Numerical Optimization, Algorithm 17.4).

    With J_A = L + γR + ⟨λ, r⟩, where ⟨a, b⟩ = Σ_q w_q mean_{n,d} a·b and R = ⟨r, r⟩, the stationarity of
    J_A in r gives the first-order multiplier estimate λ + 2γ r — valid only where (z, θ) minimise J_A for
    the current λ. Coordinate descent takes a few gradient steps per iteration, so the update is guarded:

    * **outer iterations**: λ is held for ``dual_every`` iterations and updated only when J_A stopped
      decreasing over the last outer iteration (relative decrease below ``dual_tolerance``): the sub-problem
      is then approximately solved;
    * **acceptance**: a dual step is kept only if the violation R at the end of the next outer iteration is
      not larger than before the step; otherwise λ is restored and the step length s is halved (s ≤ 1,
      doubled again after an accepted step). The constraint r = 0 of a finite network on N·E·Q·D nodes is
      generally infeasible, and there unguarded dual ascent drives λ, hence J, to infinity.
    """

    def __init__(self, options: SnodeOptions):
        self.every, self.tolerance = options.dual_every, options.dual_tolerance
        self.iteration, self.step_length = 0, 1.0
        self.accepted = self.rejected = 0
        self.previous_lagrangian = math.inf
        self.trial: tuple[torch.Tensor, float] | None = None  # (λ before the step, R before the step)

    def update(self, multipliers, r, violation: float, lagrangian: float, gamma: float) -> torch.Tensor:
        """λ after iteration ``self.iteration + 1`` (``r``, R and J_A at its end), by the guarded rule (M13)."""
        self.iteration += 1
        if self.iteration % self.every:
            return multipliers
        # a relative decrease below the tolerance, of |J_A|: J_A = L + γR + ⟨λ, r⟩ can be negative, where
        # (1 − tol)·J_A would lie above J_A and count any decrease, even a small rise, as progress
        previous = self.previous_lagrangian
        stalled = math.isfinite(previous) and lagrangian >= previous - self.tolerance * abs(previous)
        self.previous_lagrangian = lagrangian
        if self.trial is not None:
            before, violation_before = self.trial
            self.trial = None
            if violation > violation_before:
                self.step_length /= 2
                self.rejected += 1
                self.previous_lagrangian = math.inf
                return before
            self.step_length = min(1.0, 2 * self.step_length)
            self.accepted += 1
        if not stalled:
            return multipliers
        self.trial = (multipliers, violation)
        return multipliers + self.step_length * (multiplier_estimate(multipliers, r, gamma) - multipliers)


def multiplier_estimate(multipliers: torch.Tensor, r: torch.Tensor, gamma: float) -> torch.Tensor:
    """λ + 2γ r: the multipliers that make the gradient of L + ⟨λ, r⟩ equal that of J_A = L + γR + ⟨λ, r⟩
    (∂J_A/∂r = λ + 2γ r in the inner product ⟨·,·⟩ of :meth:`SpectralObjective.weighted_mean`), hence exact
    multipliers when (z, θ) minimise J_A (Nocedal & Wright, eq. 17.39)."""
    return multipliers + 2.0 * gamma * r
