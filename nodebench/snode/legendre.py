"""Legendre-series trajectories and Gauss quadrature rules: the spectral groundwork of SNODE.

Paper: Quaglino, Gallieri, Masci, Koutník, "SNODE: Spectral Discretization of Neural ODEs for System
Identification", ICLR 2020 (arXiv 1906.07038). The paper released no code, so everything here is a
nodebench reimplementation from the paper text (``nodebench/papers/snode/README.md``, section "The method, as
implemented", whose equation labels (M1)–(M14) the docstrings here cite):

* §4 of the paper: on an interval [t0, t1] the state is a truncated
  Legendre series x(t) = Σ_{k=0..p} c_k P_k(τ), τ = 2(t − t0)/(t1 − t0) − 1 (M2), with the analytic derivative
  ẋ(t) = (2/(t1 − t0)) Σ_k c_k P_k'(τ) (M3), by the recurrences (M4). Those formulas are standard
  spectral-method material.
* nodebench choices (not taken from the paper): the least-squares initial fit of the coefficients
  (``LegendreSeries.fit``, optional ridge) and offering both Gauss–Legendre and Gauss–Lobatto rules (which
  rule and how many nodes the paper uses is UNVERIFIED). Several elements joined continuously are in
  :mod:`nodebench.snode.elements`.

All functions work in torch, default to float64, and broadcast over leading (trajectory) dimensions.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import scipy.linalg
import torch

__all__ = ["LegendreSeries", "check_ridge", "gauss_legendre_nodes", "gauss_lobatto_nodes", "least_squares",
           "legendre_basis", "legendre_basis_derivative", "minimum_norm_lstsq", "svd_lstsq"]

_DTYPE = torch.float64


def _legendre_np(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """P_n(x) and P_n'(x) in numpy float64 (three-term recurrence; derivative via P'_{k+1} = P'_{k-1} +
    (2k+1)P_k). Used only to polish quadrature nodes by Newton's method."""
    p_prev, p = np.ones_like(x), x.copy()
    d_prev, d = np.zeros_like(x), np.ones_like(x)
    if n == 0:
        return p_prev, d_prev
    for k in range(1, n):
        p_next = ((2 * k + 1) * x * p - k * p_prev) / (k + 1)
        d_next = d_prev + (2 * k + 1) * p
        p_prev, p, d_prev, d = p, p_next, d, d_next
    return p, d


def _jacobi_nodes(off_diagonal: np.ndarray) -> np.ndarray:
    """The ascending roots of an orthogonal polynomial whose three-term recurrence has zero diagonal and these
    off-diagonal coefficients: the eigenvalues of its symmetric tridiagonal Jacobi matrix (Golub & Welsch,
    Math. Comp. 23, 1969), by LAPACK's tridiagonal solver: O(n²) time and O(n) memory, where a dense companion
    matrix (numpy's ``leggauss``, ``legroots``) takes O(n³) time and 8n² bytes (7 GiB and hours for
    ``snode_nodes=30000``)."""
    return scipy.linalg.eigh_tridiagonal(np.zeros(len(off_diagonal) + 1), off_diagonal, eigvals_only=True)


def gauss_legendre_nodes(n: int, dtype: torch.dtype = _DTYPE, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """n-point Gauss–Legendre rule on [−1, 1]: ``(nodes, weights)``, nodes ascending, end points excluded: the
    τ_i, ω_i of SNODE's quadrature (M7) (nodebench's default rule; the paper's is not known to us).

    Exact for polynomials of degree ≤ 2n − 1. Nodes come from the Golub–Welsch eigenvalue
    problem (:func:`_jacobi_nodes`) and are polished by two Newton steps on P_n; weights are
    2 / ((1 − x²) P_n'(x)²).
    """
    if n < 1:
        raise ValueError(f"gauss_legendre_nodes needs n >= 1, got {n}")
    k = np.arange(1, n)
    x = _jacobi_nodes(k / np.sqrt(4.0 * k * k - 1.0))
    for _ in range(2):
        p, d = _legendre_np(x, n)
        x = x - p / d
    _, d = _legendre_np(x, n)
    w = 2.0 / ((1.0 - x ** 2) * d ** 2)
    return torch.as_tensor(x, dtype=dtype, device=device), torch.as_tensor(w, dtype=dtype, device=device)


def gauss_lobatto_nodes(n: int, dtype: torch.dtype = _DTYPE, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """n-point Gauss–Lobatto(–Legendre) rule on [−1, 1]: ``(nodes, weights)``, nodes ascending: the τ_i, ω_i of
    SNODE's quadrature (M7) with ``snode_quadrature=lobatto`` (a nodebench option).

    The nodes are ±1 and the n − 2 roots of P'_{n−1}; the weights are 2 / (n(n − 1) P_{n−1}(x)²). Exact for
    polynomials of degree ≤ 2n − 3. Interior nodes: the roots of P'_{n−1}, which are those of the Jacobi
    polynomial P^{(1,1)}_{n−2} (:func:`_jacobi_nodes`), polished by Newton steps using
    (1 − x²)P''_{n−1} = 2xP'_{n−1} − (n−1)n P_{n−1}.
    """
    if n < 2:
        raise ValueError(f"gauss_lobatto_nodes needs n >= 2, got {n}")
    m = n - 1
    if n == 2:
        interior = np.zeros(0)
    else:
        k = np.arange(1, n - 2)
        interior = _jacobi_nodes(np.sqrt(k * (k + 2.0) / ((2.0 * k + 1.0) * (2.0 * k + 3.0))))
        for _ in range(3):
            p, d = _legendre_np(interior, m)
            dd = (2 * interior * d - m * (m + 1) * p) / (1 - interior ** 2)
            interior = interior - d / dd
    x = np.concatenate([[-1.0], interior, [1.0]])
    p, _ = _legendre_np(x, m)
    w = 2.0 / (n * m * p ** 2)
    return torch.as_tensor(x, dtype=dtype, device=device), torch.as_tensor(w, dtype=dtype, device=device)


def _as_points(tau, dtype, device) -> torch.Tensor:
    tau = torch.as_tensor(tau, dtype=dtype, device=device)
    if tau.dim() == 0:
        tau = tau.reshape(1)
    return tau


def legendre_basis(tau, degree: int) -> torch.Tensor:
    """P_0..P_degree at points ``tau`` via (k+1)P_{k+1} = (2k+1)τP_k − kP_{k−1} (M4; the basis of (M2), paper §4).

    ``tau`` has shape (..., T) (a 0-d value counts as T = 1); returns shape (..., T, degree + 1). Float
    tensors keep their dtype; anything else becomes float64. Differentiable in ``tau``.
    """
    if degree < 0:
        raise ValueError(f"degree must be >= 0, got {degree}")
    tau = tau if torch.is_tensor(tau) and tau.is_floating_point() else _as_points(tau, _DTYPE, None)
    tau = tau.reshape(1) if tau.dim() == 0 else tau
    cols = [torch.ones_like(tau)]
    if degree >= 1:
        cols.append(tau)
    for k in range(1, degree):
        cols.append(((2 * k + 1) * tau * cols[k] - k * cols[k - 1]) / (k + 1))
    return torch.stack(cols, dim=-1)


def legendre_basis_derivative(tau, degree: int) -> torch.Tensor:
    """dP_k/dτ for k = 0..degree at ``tau``, shape (..., T, degree + 1) (M4; the basis of (M3), paper §4).

    Uses P'_0 = 0, P'_1 = 1, P'_{k+1} = P'_{k−1} + (2k+1)P_k, which (unlike (1 − τ²)P_k' = k(P_{k−1} − τP_k))
    has no 0/0 at τ = ±1; there it gives P_k'(1) = k(k+1)/2 and P_k'(−1) = (−1)^{k+1} k(k+1)/2.
    """
    basis = legendre_basis(tau, degree)
    zero = torch.zeros_like(basis[..., 0])
    cols = [zero]
    if degree >= 1:
        cols.append(torch.ones_like(zero))
    for k in range(1, degree):
        cols.append(cols[k - 1] + (2 * k + 1) * basis[..., k])
    return torch.stack(cols, dim=-1)


def least_squares(basis: torch.Tensor, y: torch.Tensor, ridge: float) -> torch.Tensor:
    """Solve min_c ‖basis c − y‖² + ridge ‖c‖², batched (the initial fit (M6), a nodebench choice); ridge enters
    as extra rows √ridge·I (no normal equations, so conditioning is that of the Legendre Vandermonde matrix,
    not its square). Without ridge the basis may be rank-deficient (an element holding no observations): the
    answer is then the minimum-norm solution on every device (:func:`minimum_norm_lstsq`)."""
    n_obs, n_coef = basis.shape[-2], basis.shape[-1]
    check_ridge(ridge)
    if ridge > 0:
        eye = (ridge ** 0.5) * torch.eye(n_coef, dtype=basis.dtype, device=basis.device)
        basis = torch.cat([basis, eye.expand(*basis.shape[:-2], n_coef, n_coef)], dim=-2)
        y = torch.cat([y, y.new_zeros(*y.shape[:-2], n_coef, y.shape[-1])], dim=-2)
    elif n_obs < n_coef:
        raise ValueError(f"{n_obs} observations cannot determine {n_coef} coefficients without ridge > 0")
    if basis.dim() == 2 and y.dim() > 2:
        # One basis shared by every trajectory: fold the trajectories into columns, so the basis is not
        # copied per trajectory (memory O(T·P + T·N·D) instead of O(N·T·P)).
        lead, dim = y.shape[:-2], y.shape[-1]
        folded = y.movedim(-2, 0).reshape(y.shape[-2], -1)
        return minimum_norm_lstsq(basis, folded).reshape(n_coef, *lead, dim).movedim(0, -2)
    batch = torch.broadcast_shapes(basis.shape[:-2], y.shape[:-2])
    return minimum_norm_lstsq(basis.expand(*batch, *basis.shape[-2:]), y.expand(*batch, *y.shape[-2:]))


def check_ridge(ridge) -> None:
    """A ValueError unless ``ridge`` (of the fit (M6)) is a finite number >= 0."""
    if not (isinstance(ridge, numbers.Real) and math.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")


def minimum_norm_lstsq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The minimum-norm least-squares solution x of a x ≈ b (batched), whatever the rank of a: LAPACK's
    ``gelsd`` (``torch.linalg.lstsq``) on the CPU, :func:`svd_lstsq` elsewhere, where torch offers only
    ``gels``, a QR solve that assumes full column rank and returns NaN or wrong coefficients for a
    rank-deficient a."""
    if a.device.type == "cpu":
        return torch.linalg.lstsq(a, b, driver="gelsd").solution
    return svd_lstsq(a, b)


def svd_lstsq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x = a⁺ b with torch's SVD pseudo-inverse (batched), singular values at most eps·max(m, n)·σ_max dropped:
    the rank threshold ``gelsd`` uses under ``torch.linalg.lstsq``'s default, so the same minimum-norm solution
    up to round-off, at the price of an SVD instead of a QR factorisation."""
    return torch.linalg.pinv(a) @ b


class LegendreSeries:
    """x(t) = Σ_{k=0..degree} c_k P_k(τ(t)) on [t0, t1], τ = 2(t − t0)/(t1 − t0) − 1 (paper §4; (M2) with E = 1).

    ``coeffs`` has shape (..., degree + 1, D): leading dims index trajectories, D is the state dimension.
    Evaluation outside [t0, t1] is allowed (polynomial extrapolation) but is not what the series is for.
    The coefficients are a plain tensor, so they can be made ``requires_grad`` for SNODE's coefficient step.
    """

    def __init__(self, coeffs: torch.Tensor, t0: float = -1.0, t1: float = 1.0):
        if coeffs.dim() < 2:
            raise ValueError(f"coeffs must have shape (..., degree + 1, D), got {tuple(coeffs.shape)}")
        if not t1 > t0:
            raise ValueError(f"need t1 > t0, got [{t0}, {t1}]")
        self.coeffs = coeffs
        self.t0, self.t1 = float(t0), float(t1)

    @property
    def degree(self) -> int:
        """p, the highest Legendre degree of the series."""
        return self.coeffs.shape[-2] - 1

    @property
    def dim(self) -> int:
        """D, the state dimension."""
        return self.coeffs.shape[-1]

    @property
    def scale(self) -> float:
        """dτ/dt = 2/(t1 − t0), the chain-rule factor of ``derivative``."""
        return 2.0 / (self.t1 - self.t0)

    def to_tau(self, t) -> torch.Tensor:
        """τ = 2(t − t0)/(t1 − t0) − 1 of times ``t`` (M2)."""
        t = _as_points(t, self.coeffs.dtype, self.coeffs.device)
        return self.scale * (t - self.t0) - 1.0

    def __call__(self, t) -> torch.Tensor:
        """x(t) (M2) for times ``t`` of shape (T,): returns (..., T, D)."""
        return legendre_basis(self.to_tau(t), self.degree) @ self.coeffs

    def derivative(self, t) -> torch.Tensor:
        """dx/dt = (2/(t1 − t0)) Σ_k c_k P_k'(τ) (M3) for times ``t`` of shape (T,): returns (..., T, D)."""
        return self.scale * (legendre_basis_derivative(self.to_tau(t), self.degree) @ self.coeffs)

    @classmethod
    def fit(cls, t_obs, y_obs: torch.Tensor, degree: int, t0: float | None = None, t1: float | None = None,
            ridge: float = 0.0) -> "LegendreSeries":
        """Least-squares fit of the coefficients to observations (nodebench's initialisation of c, (M6)).

        Solves min_c Σ_j ‖x(t_j; c) − y_j‖² + ridge ‖c‖² independently for every leading index and state
        dimension. ``t_obs``: shape (N,) shared by all trajectories, or (..., N) per trajectory (broadcast
        against ``y_obs``'s leading dims). ``y_obs``: shape (..., N, D). ``t0``/``t1`` default to the
        min/max observation time. Needs N ≥ degree + 1 distinct times unless ``ridge > 0``; with
        N = degree + 1 the fit interpolates. Returns a series with coefficients (..., degree + 1, D).
        """
        if y_obs.dim() < 2:
            raise ValueError(f"y_obs must have shape (..., N, D), got {tuple(y_obs.shape)}")
        if isinstance(degree, bool) or not isinstance(degree, numbers.Integral) or degree < 0:
            raise ValueError(f"degree must be an integer >= 0, got {degree!r}")
        dtype = y_obs.dtype if y_obs.is_floating_point() else _DTYPE
        y_obs = y_obs.to(dtype)
        t_obs = _as_points(t_obs, dtype, y_obs.device)
        if t_obs.shape[-1] != y_obs.shape[-2]:
            raise ValueError(f"t_obs has {t_obs.shape[-1]} times but y_obs has {y_obs.shape[-2]} observations")
        if not (torch.isfinite(t_obs).all() and torch.isfinite(y_obs).all()):
            raise ValueError("t_obs and y_obs must be finite; the least-squares fit got NaN or infinite values")
        t0 = float(t_obs.min()) if t0 is None else float(t0)
        t1 = float(t_obs.max()) if t1 is None else float(t1)
        if not t1 > t0:
            raise ValueError(f"need t1 > t0, got [{t0}, {t1}]")
        tau = 2.0 * (t_obs - t0) / (t1 - t0) - 1.0
        coeffs = least_squares(legendre_basis(tau, degree), y_obs, ridge)
        return cls(coeffs, t0, t1)
