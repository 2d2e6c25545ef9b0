"""SNODE's relaxed objective J(z, θ) (Quaglino et al., ICLR 2020, §3; nodebench's reconstruction,
``nodebench/papers/snode/README.md``, equations (M8)–(M12) there).

For N fully observed trajectories y_n(t_j) on a shared time grid, each represented by free spectral
coefficients z_n (:class:`~nodebench.snode.elements.ElementBasis`):

* data loss   L(z) = mean over n, j, d of (x_n(t_j; z) − y_n(t_j))², the same scale as the baselines' MSE;
* residual    r_n(t_q) = ẋ_n(t_q; z) − f(t_q, x_n(t_q; z), u_n(t_q); θ) at the quadrature nodes t_q;
* violation   R(z, θ) = Σ_q w_q · mean over n, d of r_n(t_q)² ≈ (1/T)∫ mean‖ẋ − f‖² dt, the weights w_q of a
  composite Gauss rule normalised to sum to 1 (a time average: nodebench's normalisation);
* penalty variant:              J = L + γ R;
* augmented-Lagrangian variant: J = L + γ R + Σ_q w_q · mean over n, d of λ_n(t_q)·r_n(t_q), with
  multipliers λ updated by guarded dual ascent towards λ + 2γ r (the stationarity condition of the penalty
  term; :class:`~nodebench.snode.coordinate_descent.DualAscent`).

The network is evaluated **once per objective**, on all N × (E·Q) nodes as one batch: the time-parallel
part of the method. ``field(t_nodes, x)`` receives the node times (E·Q,) and states (N, E·Q, D), so the
field must broadcast over those leading dimensions (nodebench's MLP fields do).
"""

from __future__ import annotations

import numbers

import torch

from nodebench.snode.elements import ElementBasis


class SpectralObjective:
    """The maps (:class:`~nodebench.snode.elements.ElementMap`) and terms of J (M8)–(M12), paper §3, for one set
    of trajectories.

    Args:
        field: ``f(t, x)``, called as ``field(t_nodes, x_nodes)``.
        basis: the element basis on the observation horizon.
        t_obs: observation times (T,); y_obs: observations (N, T, D).
        nodes_per_element, rule: the quadrature (``legendre`` or ``lobatto``).
    """

    def __init__(self, field, basis: ElementBasis, t_obs: torch.Tensor, y_obs: torch.Tensor, *,
                 nodes_per_element: int, rule: str = "legendre"):
        basis.check_observations(t_obs, y_obs, dims="(N, T, D)")
        dtype = y_obs.dtype
        self.field, self.basis, self.y_obs = field, basis, y_obs
        # matrix-free maps (ElementMap): memory O((T + E·Q)·p), where dense ones take (T + 2·E·Q)·(1 + E·p); only
        # small ones (P ≤ DENSE_COLUMNS) hold the dense matrix
        self.obs_map = basis.value_map(t_obs).to(dtype)
        t_nodes, weights = basis.quadrature(nodes_per_element, rule)
        element = basis.node_elements(nodes_per_element)  # a Gauss–Lobatto end node takes its own element's slope
        self.node_values = basis.value_map(t_nodes, element).to(dtype)
        self.node_slopes = basis.slope_map(t_nodes, element).to(dtype)
        self.t_nodes, self.weights = t_nodes.to(dtype), weights.to(dtype)

    @property
    def n_nodes(self) -> int:
        """Nodes per trajectory (E·Q)."""
        return self.t_nodes.shape[0]

    def _check_z(self, z: torch.Tensor) -> torch.Tensor:
        n, _, d = self.y_obs.shape
        if tuple(z.shape) != (n, self.basis.n_free, d):
            raise ValueError(f"z must have shape (N, P, D) = {(n, self.basis.n_free, d)}, got {tuple(z.shape)}")
        return z

    def _field(self, states: torch.Tensor) -> torch.Tensor:
        f = self.field(self.t_nodes, states)
        if f.shape != states.shape:  # it would broadcast against the slopes into a wrong residual
            raise ValueError(f"field returned shape {tuple(f.shape)} for node states of shape {tuple(states.shape)}: "
                             "it must return dx/dt, of the states' shape")
        return f

    def data_loss(self, z: torch.Tensor) -> torch.Tensor:
        """L = mean over n, j, d of (x_n(t_j; z) − y_n(t_j))² (M8)."""
        return torch.mean((self.obs_map @ self._check_z(z) - self.y_obs) ** 2)

    def residual(self, z: torch.Tensor) -> torch.Tensor:
        """r (N, E·Q, D) = ẋ − f at every node (M9) (one batched field call)."""
        return self.residual_given(*self.nodes(z))

    def residual_given(self, states: torch.Tensor, slopes: torch.Tensor) -> torch.Tensor:
        """r (M9) for fixed node states and slopes (the weight block of (M14), where z is constant)."""
        return slopes - self._field(states)

    def nodes(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Node states and slopes (N, E·Q, D) each (the coefficients of (M5) computed once for both, unless the
        maps are small enough to hold their dense matrices: :data:`~nodebench.snode.elements.DENSE_COLUMNS`)."""
        z = self._check_z(z)
        if self.node_values.matrix is not None:
            return self.node_values @ z, self.node_slopes @ z
        c = self.basis.coefficients(z)
        return self.node_values.apply(c), self.node_slopes.apply(c)

    def violation(self, r: torch.Tensor) -> torch.Tensor:
        """R = Σ_q w_q mean_{n,d} r² (M10)."""
        return self.weighted_mean(r * r)

    def weighted_mean(self, values: torch.Tensor) -> torch.Tensor:
        """Σ_q w_q mean over trajectories and dimensions of ``values`` (N, E·Q, D): ⟨1, values⟩ in the inner
        product of (M12)."""
        return torch.einsum("q,nqd->", self.weights, values) / (values.shape[0] * values.shape[2])

    def penalty(self, r: torch.Tensor, gamma: float, multipliers: torch.Tensor | None) -> torch.Tensor:
        """γR (M11), plus the multiplier term ⟨λ, r⟩ = Σ w mean(λ·r) when ``multipliers`` is given (augmented
        variant, (M12))."""
        if isinstance(gamma, numbers.Real) and not gamma >= 0:  # a tensor γ is not read (no host sync)
            raise ValueError(f"gamma must be a number >= 0, got {gamma!r}")
        value = gamma * self.violation(r)
        if multipliers is not None:
            value = value + self.weighted_mean(multipliers * r)
        return value
