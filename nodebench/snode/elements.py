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
slopes ẋ = (2/h) Σ_k c_{e,k} P_k'(τ) at any fixed set of times are products ``M @ z``. Their (T × P) matrices
(:meth:`ElementBasis.values`, :meth:`ElementBasis.slopes`) grow with E·T; :class:`ElementMap`
(:meth:`ElementBasis.value_map`, :meth:`ElementBasis.slope_map`) applies the same maps without them, in
O(T·p) memory and time per state column: z → c by the cumulative sum of (M5) (:meth:`ElementBasis.coefficients`),
then each time's (p + 1) basis values against its element's c, one sparse (CSR) product. With E = 1 this is a
plain Legendre series (:class:`~nodebench.snode.legendre.LegendreSeries`).
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings

import torch

from nodebench.snode.legendre import (
    check_ridge,
    gauss_legendre_nodes,
    gauss_lobatto_nodes,
    least_squares,
    legendre_basis,
    legendre_basis_derivative,
)

QUADRATURE_RULES = {"legendre": gauss_legendre_nodes, "lobatto": gauss_lobatto_nodes}
#: Most free coefficients P = 1 + E·p for which an :class:`ElementMap` holds its dense (T × P) matrix and applies it
#: as one product: there the products and their gradients cost less than the sparse product after the cumulative
#: sum (M5) (the objective's three maps, forward and backward, on one CPU core with N·D = 192 float32 columns,
#: p = 6, T ≈ P: dense 2.4× faster at P = 61, 1.6× at P = 103, 1.1× at P = 145, even at P = 169; the sparse
#: product 1.2× faster at P = 199, 2.8× at P = 403). The matrix takes T·P ≤ 128·T entries, so memory stays linear
#: in T.
DENSE_COLUMNS = 128


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
        #: (−1)^k for k = 1..p: P_k(−1), the start of an element (M5)
        self.signs = torch.tensor([(-1.0) ** k for k in range(1, degree + 1)], dtype=dtype, device=device)

    @property
    def n_free(self) -> int:
        """P = 1 + E·p free coefficients per state dimension."""
        return 1 + self.elements * self.degree

    @property
    def width(self) -> float:
        """h = (t1 − t0)/E, the width of every element (M2)."""
        return (self.t1 - self.t0) / self.elements

    @property
    def coefficient_map(self) -> torch.Tensor:
        """G of shape (E, p + 1, P) with c_{e,k} = Σ_j G[e, k, j] z_j (M5), dense (E·(p + 1)·P entries, built on
        each use: only the dense matrices of :meth:`values` and :meth:`slopes` need it)."""
        return self.coefficients(torch.eye(self.n_free, dtype=self.dtype, device=self.device))

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

    def value_map(self, t, element=None) -> "ElementMap":
        """x(t) = M z ((M2), paper §4) as an :class:`ElementMap`, without M; ``element`` as in :meth:`locate`."""
        idx, tau = self.locate(t, element)
        return ElementMap(self, legendre_basis(tau, self.degree), idx)

    def slope_map(self, t, element=None) -> "ElementMap":
        """ẋ(t) = M' z, ẋ = (2/h) Σ_k c_{e,k} P_k'(τ) ((M3), paper §4), as an :class:`ElementMap`, without M'.
        The slope is the one of ``element`` (:meth:`locate`), which matters at a boundary, where it jumps."""
        idx, tau = self.locate(t, element)
        return ElementMap(self, legendre_basis_derivative(tau, self.degree).mul_(2.0 / self.width), idx)

    def values(self, t, element=None) -> torch.Tensor:
        """The dense M (T, P) of :meth:`value_map`: x(t) = M @ z (M2)."""
        return self.value_map(t, element).dense()

    def slopes(self, t, element=None) -> torch.Tensor:
        """The dense M' (T, P) of :meth:`slope_map`: ẋ(t) = M' @ z (M3)."""
        return self.slope_map(t, element).dense()

    def check_free(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` itself; a ValueError unless it has shape (..., P, D), free coefficients of this basis."""
        if z.dim() < 2 or z.shape[-2] != self.n_free:
            raise ValueError(f"z must have shape (..., P, D) with P = {self.n_free}, got {tuple(z.shape)}")
        return z

    def coefficients(self, z: torch.Tensor) -> torch.Tensor:
        """Per-element Legendre coefficients c_{e,k} (..., E, p + 1, D) of free coefficients z (..., P, D) by the
        continuity (M5): c_{e,k} (k ≥ 1) are z's, and c_{e,0} = c_{0,0} + Σ_{j<e} (Σ_{k≥1} c_{j,k} −
        Σ_{k≥1} (−1)^k c_{j+1,k}), a cumulative sum over the earlier elements: O(E·p) per column, differentiable
        (its transpose, a reverse cumulative sum, is autograd's)."""
        free = self.check_free(z)[..., 1:, :].unflatten(-2, (self.elements, self.degree))  # c_{e,k}, k ≥ 1
        signs = self.signs.to(free.dtype)  # on the device: no host copy inside a training step
        steps = free[..., :-1, :, :].sum(-2) - torch.einsum("k,...ekd->...ed", signs, free[..., 1:, :, :])
        first = z[..., :1, :]
        constants = first + torch.cat([torch.zeros_like(first), steps.cumsum(-2)], dim=-2)  # c_{e,0}: (..., E, D)
        return torch.cat([constants.unsqueeze(-2), free], dim=-2)

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
        :class:`~nodebench.snode.objective.SpectralObjective` and the field work in. With ``ridge > 0`` element
        by element (:meth:`_fit_by_elements`, memory O((T + E·p)·(p + K)) for K = N·D columns), without it on
        the dense M (:func:`~nodebench.snode.legendre.least_squares`, the minimum-norm solution where M is
        rank-deficient). Fewer observations than coefficients need ``ridge > 0``."""
        self.check_observations(t_obs, y_obs)
        if not torch.isfinite(y_obs).all():
            raise ValueError("y_obs holds NaN or infinite values; the least-squares fit needs finite observations")
        check_ridge(ridge)
        y = y_obs.to(self.dtype)
        if ridge == 0:
            return least_squares(self.values(t_obs), y, ridge).to(y_obs.dtype)
        folded = y.movedim(-2, 0).reshape(y.shape[-2], -1)  # every trajectory and dimension a column
        z = self._fit_by_elements(t_obs, folded, ridge)
        return z.reshape(self.n_free, *y.shape[:-2], y.shape[-1]).movedim(0, -2).to(y_obs.dtype)

    def _fit_by_elements(self, t_obs, y: torch.Tensor, ridge: float) -> torch.Tensor:
        """z (P, K) minimising ‖M z − y‖² + ridge ‖z‖² (M6) for y (T, K), ridge > 0, by orthogonal
        transformations element by element, never forming M: in the unknowns f_e = (c_{e,1..p}) and v_e, the
        state where element e starts (c_{e,0} = v_e − Σ_k (−1)^k f_{e,k}), the continuity (M5) is the chain
        v_{e+1} = v_e + Σ_k (1 − (−1)^k) f_{e,k}, and z = (v_0 − Σ_k (−1)^k f_{0,k}, f_0, …, f_{E−1}). From
        the last element back, a QR factorisation of the element's rows (its observations, the ridge's, and
        the next element's remaining cost as one row in v_{e+1}) leaves that cost as one row in v_e; then v_0
        and, element after element, f_e and v_{e+1} follow by back substitution. A square-root (information)
        form of dynamic programming over the chain, as stable as one QR of the stacked system
        :func:`~nodebench.snode.legendre.least_squares` solves, in O(E·(T/E + p)·p·(p + K)) time."""
        p, n_elem, width = self.degree, self.elements, y.shape[1]
        idx, tau = self.locate(t_obs)
        signs = self.signs
        steps = 1.0 - signs  # v_{e+1} − v_e = steps · f_e
        local = legendre_basis(tau, p)
        rows = torch.cat([local[:, 1:] - signs, local[:, :1], y], dim=1)  # [f_e | v_e | y] per observation
        order = torch.argsort(idx, stable=True)
        observed = torch.split(rows[order], torch.bincount(idx, minlength=n_elem).tolist())
        root = ridge ** 0.5
        ridge_rows = torch.cat([root * torch.eye(p, dtype=self.dtype, device=self.device),
                                rows.new_zeros(p, 1 + width)], dim=1)
        first = torch.cat([-root * signs, rows.new_tensor([root]), rows.new_zeros(width)])[None]  # ridge on z_0
        tail = rows.new_zeros(1, p + 1 + width)  # the remaining cost after the last element: none
        triangles = [None] * n_elem
        for e in reversed(range(n_elem)):
            stack = [observed[e], ridge_rows, tail] + ([first] if e == 0 else [])
            r = torch.linalg.qr(torch.cat(stack), mode="r").R[:p + 1]
            triangles[e] = r
            tail = torch.cat([r[p, p] * steps, r[p, p:]])[None]  # r_vv (v_e + steps · f_e) ≈ g_v, in element e − 1
        r = torch.stack(triangles)  # (E, p + 1, p + 1 + K)
        # f_e = const_e − lin_e v_e, from the triangle's f rows
        solved = torch.linalg.solve_triangular(r[:, :p, :p], torch.cat([r[:, :p, p + 1:], r[:, :p, p:p + 1]], -1),
                                               upper=True)
        const, lin = solved[..., :width], solved[..., width:]
        start = r[0, p, p + 1:] / r[0, p, p]
        v, free = start, []
        for e in range(n_elem):
            free.append(const[e] - lin[e] * v)
            v = v + steps @ free[-1]
        return torch.cat([(start - signs @ free[0])[None], *free])

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


class ElementMap:
    """The linear map z (..., P, D) ↦ X (..., T, D) of an :class:`ElementBasis` at T fixed times (values (M2)
    or slopes (M3), paper §4), applied as ``map @ z`` without its dense (T × P) matrix: the per-element
    coefficients c (:meth:`ElementBasis.coefficients`, a cumulative sum for (M5)), then X[t] = Σ_k B[t, k]
    c[element[t], k], one product of a sparse CSR matrix S (T × E·(p + 1), each time's p + 1 basis values in its
    element's columns) with c, every trajectory and dimension a column. Memory and time O(T·p) per column, where
    the dense matrix takes T·(1 + E·p); the gradient is the product with Sᵀ, held as a second CSR matrix
    (:class:`_SparseProduct`). A small map (P ≤ :data:`DENSE_COLUMNS`) also holds its dense matrix
    (:attr:`matrix`, :meth:`dense`) and applies it as one product, faster there and still O(T) in memory.

    Args:
        basis: the element basis.
        local: B (T, p + 1), each time's Legendre values (or scaled derivatives) at its local τ.
        element: (T,) each time's element.
    """

    def __init__(self, basis: ElementBasis, local: torch.Tensor, element: torch.Tensor):
        self.basis = basis
        n_times, width = local.shape
        device = element.device
        columns = (element[:, None] * width + torch.arange(width, device=device)).reshape(-1)  # S's, time by time
        shape = (n_times, basis.elements * width)
        self.sparse = _csr(torch.arange(0, columns.numel() + 1, width, device=device), columns, local.reshape(-1),
                           shape)
        # Sᵀ, for the gradient: S's entries column by column, times ascending in each (entry i is time i // width's)
        order = torch.argsort(columns, stable=True)
        values = local.reshape(-1)[order]
        counts = torch.bincount(columns, minlength=shape[1])
        self.sparse_transpose = _csr(torch.cat([counts.new_zeros(1), counts.cumsum(0)]),
                                     order.div_(width, rounding_mode="floor"), values, shape[::-1])
        self.matrix = None  # not held yet: dense() builds it
        self.matrix = self.dense() if basis.n_free <= DENSE_COLUMNS else None

    @property
    def shape(self) -> tuple[int, int]:
        """(T, P), the dense matrix's."""
        return self.sparse.shape[0], self.basis.n_free

    def to(self, dtype: torch.dtype) -> "ElementMap":
        """The same map with its basis values in ``dtype`` (the data's, which z has)."""
        other = self._rebuilt(lambda indices: indices, lambda values: values.to(dtype))  # indices shared
        other.matrix = None if self.matrix is None else self.matrix.to(dtype)
        return other

    def __deepcopy__(self, memo: dict) -> "ElementMap":
        """A copy that shares no tensor with this map (``copy.deepcopy``, which torch refuses for a sparse CSR
        tensor: S and Sᵀ are rebuilt from copies of their indices and values)."""
        def deep(value):
            return copy.deepcopy(value, memo)
        other = memo[id(self)] = self._rebuilt(deep, deep)
        other.basis, other.matrix = deep(self.basis), deep(self.matrix)
        return other

    def _rebuilt(self, indices, values) -> "ElementMap":
        """A shallow copy whose S and Sᵀ are rebuilt from ``indices`` of their index tensors and ``values`` of
        their values."""
        other = copy.copy(self)
        other.sparse, other.sparse_transpose = (
            _csr(indices(m.crow_indices()), indices(m.col_indices()), values(m.values()), m.shape)
            for m in (self.sparse, self.sparse_transpose))
        return other

    def __matmul__(self, z: torch.Tensor) -> torch.Tensor:
        """M @ z (..., T, D) for z (..., P, D)."""
        if self.matrix is not None:
            return self.matrix @ self.basis.check_free(z)
        return self.apply(self.basis.coefficients(z))

    def apply(self, c: torch.Tensor) -> torch.Tensor:
        """M @ z (..., T, D) from z's coefficients c = ``basis.coefficients(z)`` (..., E, p + 1, D), which maps
        of the same z can share; matrix-free, whatever the map's size (``map @ z`` uses :attr:`matrix` if held)."""
        stacked = c.flatten(-3, -2)  # (..., E·(p + 1), D): S's columns
        folded = stacked.movedim(-2, 0).reshape(stacked.shape[-2], -1)  # every trajectory and dimension a column
        x = _SparseProduct.apply(folded, self.sparse, self.sparse_transpose)
        return x.view(x.shape[0], *stacked.shape[:-2], stacked.shape[-1]).movedim(0, -2)

    def dense(self) -> torch.Tensor:
        """The matrix M (T, P): rows B[t] @ G[element[t]] (:attr:`ElementBasis.coefficient_map`), B and the
        elements read from S, element by element (memory O(T·P + E·(p + 1)·P), not O(T·(p + 1)·P), nor the
        product S G's second T × P block), in the basis values' dtype."""
        if self.matrix is not None:
            return self.matrix
        width = self.basis.degree + 1
        local, element = self.sparse.values().view(-1, width), self.sparse.col_indices()[::width] // width
        g = self.basis.coefficient_map.to(local.dtype)
        out = local.new_zeros(self.shape)
        for e in torch.unique(element).tolist():
            rows = element == e
            out[rows] = local[rows] @ g[e]
        return out


def _csr(starts: torch.Tensor, columns: torch.Tensor, values: torch.Tensor, shape) -> torch.Tensor:
    """``torch.sparse_csr_tensor`` without invariant checks (the indices are built right here) and without torch's
    warning, on every new CSR tensor, that sparse CSR support is in beta: an :class:`ElementMap` only builds them
    and multiplies them with dense matrices, which the tests check against the dense oracle."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
        return torch.sparse_csr_tensor(starts, columns, values, shape, check_invariants=False)


class _SparseProduct(torch.autograd.Function):
    """S @ w for a sparse CSR S and a dense w, with the gradient Sᵀ @ grad from a held CSR Sᵀ (autograd's
    gradient of ``S @ w`` transposes S into CSR on every backward: a sort and a conversion, 1.2× slower
    overall at T = 201 and 2001). Like ``S @ w`` it differentiates w only."""

    @staticmethod
    def forward(ctx, w: torch.Tensor, sparse: torch.Tensor, sparse_transpose: torch.Tensor) -> torch.Tensor:
        ctx.sparse_transpose = sparse_transpose
        return sparse @ w

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return ctx.sparse_transpose @ grad, None, None
