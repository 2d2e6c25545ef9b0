"""Continuous spectral elements: a trajectory on [t0, t1] as E Legendre series joined without jumps.

Paper: Quaglino et al., SNODE (ICLR 2020, arXiv 1906.07038), §4: the trajectory is a truncated Legendre
series, optionally split into elements (nodebench's reconstruction, ``nodebench/papers/snode/README.md``, whose
equation labels (M1)–(M14) the docstrings here cite). How the paper couples elements is UNVERIFIED;
**nodebench's choice** is exact C⁰ continuity by construction (M5):

* element e ∈ {0..E−1} covers [t0 + e·h, t0 + (e+1)·h], h = (t1 − t0)/E, local τ = 2(t − t_e)/h − 1, and
  carries x_e(τ) = Σ_{k=0..p} c_{e,k} P_k(τ);
* the free coefficients are a = c_{0,0} and c_{e,k} for every e and k ≥ 1, so P = 1 + E·p per state
  dimension; the remaining constants follow from x_e(τ=1) = x_{e+1}(τ=−1), using P_k(1) = 1 and
  P_k(−1) = (−1)^k: c_{e+1,0} = c_{e,0} + Σ_{k≥1} c_{e,k} − Σ_{k≥1} (−1)^k c_{e+1,k}.

Every quantity SNODE needs is therefore *linear* in the free coefficients z ∈ R^{P×D}: the states and the
slopes ẋ = (2/h) Σ_k c_{e,k} P_k'(τ) at any fixed set of times are matrix products ``M @ z`` with
matrices computed once (:meth:`ElementBasis.values`, :meth:`ElementBasis.slopes`). With E = 1 this is a
plain Legendre series (:class:`~nodebench.snode.legendre.LegendreSeries`).
"""

from __future__ import annotations

import math
import numbers

import torch

from nodebench.snode.legendre import (
    gauss_legendre_nodes,
    gauss_lobatto_nodes,
    least_squares,
    legendre_basis,
    legendre_basis_derivative,
)

QUADRATURE_RULES = {"legendre": gauss_legendre_nodes, "lobatto": gauss_lobatto_nodes}


class ElementBasis:
    """E equal C⁰-continuous Legendre elements of degree p on [t0, t1]: the trajectory (M2), (M3) of paper §4,
    with nodebench's continuity (M5) and quadrature (M7) (see the module docstring).

    Args:
        t0, t1: the horizon.
        degree: p ≥ 1, the Legendre degree of every element.
        elements: E ≥ 1.
        dtype, device: of every matrix this basis returns.
    """

    def __init__(self, t0: float, t1: float, degree: int, elements: int = 1, *, dtype=torch.float64,
                 device=None):
        counts = (degree, elements)
        if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1 for n in counts):
            raise ValueError(f"need integers degree >= 1 and elements >= 1, got {degree!r}, {elements!r}")
        if not (math.isfinite(t0) and math.isfinite(t1) and t1 > t0):
            raise ValueError(f"need finite t1 > t0, got [{t0}, {t1}]")
        self.t0, self.t1 = float(t0), float(t1)
        self.degree, self.elements = int(degree), int(elements)
        self.dtype, self.device = dtype, device
        self.coefficient_map = self._coefficient_map()

    @property
    def n_free(self) -> int:
        """P = 1 + E·p free coefficients per state dimension."""
        return 1 + self.elements * self.degree

    @property
    def width(self) -> float:
        """h = (t1 − t0)/E, the width of every element (M2)."""
        return (self.t1 - self.t0) / self.elements

    def _coefficient_map(self) -> torch.Tensor:
        """G of shape (E, p + 1, P) with c_{e,k} = Σ_j G[e, k, j] z_j (continuity eliminates c_{e,0}, e ≥ 1)."""
        p, n_elem = self.degree, self.elements
        g = torch.zeros(n_elem, p + 1, self.n_free, dtype=self.dtype, device=self.device)
        g[0, 0, 0] = 1.0
        for e in range(n_elem):
            for k in range(1, p + 1):
                g[e, k, 1 + e * p + (k - 1)] = 1.0
        signs = torch.tensor([(-1.0) ** k for k in range(1, p + 1)], dtype=self.dtype, device=self.device)
        for e in range(n_elem - 1):
            g[e + 1, 0] = g[e, 0] + g[e, 1:].sum(0) - (signs[:, None] * g[e + 1, 1:]).sum(0)
        return g

    def locate(self, t, element=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Element index and local τ of times ``t`` (T,). Without ``element`` each time goes to the element
        that contains it, a time on a boundary (t1 included) to the later one; the state is continuous there,
        so this is right for :meth:`values`, but the slope jumps. ``element`` (T,) names each time's element
        instead (a quadrature node at the end of its element, Gauss–Lobatto's τ = 1: :meth:`node_elements`)."""
        t = torch.as_tensor(t, dtype=self.dtype, device=self.device).reshape(-1)
        if element is None:
            idx = torch.floor((t - self.t0) / self.width).long().clamp(0, self.elements - 1)
        else:
            idx = torch.as_tensor(element, device=self.device).reshape(-1).long()
            if idx.shape != t.shape or not bool(((idx >= 0) & (idx < self.elements)).all()):
                raise ValueError(f"element must give one index in 0..{self.elements - 1} per time ({t.numel()} "
                                 f"times), got {idx.tolist()}")
        tau = 2.0 * (t - (self.t0 + idx.to(self.dtype) * self.width)) / self.width - 1.0
        return idx, tau

    def values(self, t, element=None) -> torch.Tensor:
        """M (T, P) with x(t) = M @ z: x_e(τ) = Σ_k c_{e,k} P_k(τ) ((M2), paper §4); ``element`` as in
        :meth:`locate`."""
        idx, tau = self.locate(t, element)
        return self._assemble(legendre_basis(tau, self.degree), idx)

    def slopes(self, t, element=None) -> torch.Tensor:
        """M' (T, P) with ẋ(t) = M' @ z: ẋ = (2/h) Σ_k c_{e,k} P_k'(τ) ((M3), paper §4).
        The slope is the one of ``element`` (:meth:`locate`), which matters at a boundary, where it jumps."""
        idx, tau = self.locate(t, element)
        # scaled in place: one (T, P) matrix at a time (nodebench.snode.memory counts on it)
        return self._assemble(legendre_basis_derivative(tau, self.degree), idx).mul_(2.0 / self.width)

    def _assemble(self, basis: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Rows basis[t] @ G[idx[t]], element by element (memory O(T·P), not O(T·(p+1)·P))."""
        out = basis.new_zeros(basis.shape[0], self.n_free)
        for e in torch.unique(idx).tolist():
            rows = idx == e
            out[rows] = basis[rows] @ self.coefficient_map[e]
        return out

    def coefficients(self, z: torch.Tensor) -> torch.Tensor:
        """Per-element Legendre coefficients c_{e,k} (..., E, p + 1, D) of free coefficients z (..., P, D), (M5)."""
        return torch.einsum("ekp,...pd->...ekd", self.coefficient_map, z)

    def quadrature(self, nodes_per_element: int, rule: str = "legendre") -> tuple[torch.Tensor, torch.Tensor]:
        """Node times (E·Q,) and weights (E·Q,) of a composite Gauss rule (M7), element by element; the weights
        sum to 1, so Σ_q w_q g(t_q) approximates the time average (1/(t1 − t0)) ∫ g dt."""
        if rule not in QUADRATURE_RULES:
            raise ValueError(f"unknown quadrature rule {rule!r}; valid: {', '.join(QUADRATURE_RULES)}")
        tau, w = QUADRATURE_RULES[rule](nodes_per_element, dtype=self.dtype, device=self.device)
        starts = self.t0 + self.width * torch.arange(self.elements, dtype=self.dtype, device=self.device)
        times = starts[:, None] + (tau[None, :] + 1.0) * (self.width / 2)
        weights = (w / (2.0 * self.elements)).expand(self.elements, -1)
        return times.reshape(-1), weights.reshape(-1)

    def node_elements(self, nodes_per_element: int) -> torch.Tensor:
        """The element (E·Q,) of each node of :meth:`quadrature`, which lists them element by element: give it to
        :meth:`values` and :meth:`slopes`, so that a node on a boundary takes its own element's slope."""
        return torch.arange(self.elements, device=self.device).repeat_interleave(nodes_per_element)

    def fit(self, t_obs, y_obs: torch.Tensor, ridge: float = 0.0) -> torch.Tensor:
        """Least-squares free coefficients z (..., P, D) of observations y_obs (..., T, D) at times t_obs (T,):
        min_z ‖M z − y‖² + ridge ‖z‖² (nodebench's initialisation of SNODE's coefficients, (M6)). Solved in the
        basis's dtype (float64 by default, for conditioning) and returned in the observations' dtype, the one
        :class:`~nodebench.snode.objective.SpectralObjective` and the field work in. Fewer observations than
        coefficients need ``ridge > 0``."""
        self.check_observations(t_obs, y_obs)
        if not torch.isfinite(y_obs).all():
            raise ValueError("y_obs holds NaN or infinite values; the least-squares fit needs finite observations")
        return least_squares(self.values(t_obs), y_obs.to(self.dtype), ridge).to(y_obs.dtype)

    def check_observations(self, t_obs, y_obs: torch.Tensor, *, dims: str = "(..., T, D)") -> None:
        """A ValueError or TypeError unless ``t_obs`` holds T finite times in [t0, t1] (1-D) and ``y_obs`` is a
        floating tensor of shape ``dims`` with those T observations (one host read of ``t_obs``)."""
        if not (torch.is_tensor(y_obs) and y_obs.is_floating_point()):
            got = y_obs.dtype if torch.is_tensor(y_obs) else type(y_obs).__name__
            raise TypeError(f"y_obs must be a floating-point tensor of shape {dims}, got {got}")
        if y_obs.dim() < 2 or (dims.startswith("(N") and y_obs.dim() != 3):
            raise ValueError(f"y_obs must have shape {dims}, got {tuple(y_obs.shape)}")
        t = torch.as_tensor(t_obs, dtype=torch.float64).detach().cpu()
        if t.dim() != 1 or len(t) != y_obs.shape[-2]:
            raise ValueError(f"t_obs must be 1-D with one time per observation: y_obs {tuple(y_obs.shape)} has "
                             f"{y_obs.shape[-2]}, t_obs has shape {tuple(t.shape)}")
        slack = 1e-6 * (self.t1 - self.t0)  # rounding of times stored in float32
        if not (torch.isfinite(t).all() and t.min() >= self.t0 - slack and t.max() <= self.t1 + slack):
            raise ValueError(f"t_obs must be finite times inside the basis's horizon [{self.t0:g}, {self.t1:g}], got "
                             f"values from {float(t.min()):g} to {float(t.max()):g}")
