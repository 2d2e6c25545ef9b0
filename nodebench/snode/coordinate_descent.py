"""SNODE's coordinate descent (Quaglino et al., ICLR 2020, §3; reconstruction in snode.md §4.4).

One iteration of :class:`CoordinateDescent`:

1. **coefficient block**: ``coef_steps`` Adam steps on the free spectral coefficients z with θ fixed,
   minimising J = L + γR (+ multiplier term); only ∂J/∂z is computed;
2. **weight block**: ``weight_steps`` Adam steps on θ with z fixed, minimising γR (+ multiplier term):
   a regression of f(t_q, x_q, u_q; θ) onto the fixed slopes ẋ_q, batched over every trajectory and
   every node at once (the time-parallel part);
3. the augmented variant's dual ascent λ ← λ + 2γ r, then the γ continuation γ ← min(γ·growth, γ_max).

No ODE is solved while training (claim S7): the only calls of the dynamics are batched node evaluations.
The coefficients are initialised by a least-squares fit to the observations (nodebench choice) inside the
first timed iteration, so that the fit counts towards SNODE's training time (snode.md §9, pitfall 7).

The harness measures an iteration like any method's: its "forward" phase is the coefficient block and its
"backward" phase the weight block (and the dual update); each NFE is one batched call over all nodes.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from nodebench.snode.elements import ElementBasis
from nodebench.snode.objective import SpectralObjective
from nodebench.snode.options import SnodeOptions


class CoordinateDescent:
    """Train ``problem``'s field by SNODE on all its training trajectories.

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
        self.last: dict[str, float] = {}

    def setup(self) -> None:
        """Build the basis and quadrature, fit the coefficients to the observations, reset γ and λ."""
        p, opts = self.problem, self.options
        t, y = p.t, p.y_train
        basis = ElementBasis(float(t[0]), float(t[-1]), opts.degree, opts.elements_for(t.shape[0]),
                             dtype=torch.float64, device=y.device)
        self.objective = SpectralObjective(p.field, basis, t, y, nodes_per_element=opts.nodes_per_element,
                                           rule=opts.quadrature)
        p.use_controls(t, p.u_train)
        z = basis.fit(t, y, ridge=opts.ridge).to(y.dtype)
        self.z = z.requires_grad_(True)
        self.coef_optimizer = torch.optim.Adam([self.z], lr=opts.coef_lr)
        self.gamma = opts.gamma
        self.multipliers = torch.zeros_like(self.objective.nodes(z.detach())[0]) \
            if opts.variant == "augmented" else None

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
        """One coordinate-descent iteration; calls ``boundary()`` between the two blocks; returns J as it
        was at the last coefficient step (before that step's update)."""
        if self.objective is None:
            self.setup()
        objective, opts = self.objective, self.options
        for _ in range(opts.coef_steps):
            r = objective.residual(self.z)
            data = objective.data_loss(self.z)
            j = data + objective.penalty(r, self.gamma, self.multipliers)
            (grad,) = torch.autograd.grad(j, [self.z])
            self.z.grad = grad
            self.coef_optimizer.step()
        boundary()
        states, slopes = (v.detach() for v in objective.nodes(self.z))
        for _ in range(opts.weight_steps):
            self.weight_optimizer.zero_grad(set_to_none=True)
            objective.penalty(objective.residual_given(states, slopes), self.gamma, self.multipliers).backward()
            self.weight_optimizer.step()
        if self.multipliers is not None:
            with torch.no_grad():
                self.multipliers += 2.0 * self.gamma * objective.residual_given(states, slopes)
        self.last = {"snode_fit_mse": float(data.detach()), "snode_violation": float(objective.violation(r.detach())),
                     "snode_gamma": self.gamma}
        self.gamma = min(self.gamma * opts.gamma_growth, opts.gamma_max or math.inf)
        return j.detach()

    def metrics(self) -> dict[str, float]:
        """The last iteration's data loss on the series, its ODE violation R and the γ it used."""
        return dict(self.last)
