"""Tests for nodebench.snode.legendre: Legendre series, its derivative, fits and Gauss quadrature rules."""

import math

import numpy as np
import pytest
import torch

from nodebench.snode import (
    ElementBasis,
    LegendreSeries,
    gauss_legendre_nodes,
    gauss_lobatto_nodes,
    legendre_basis,
    legendre_basis_derivative,
)

D64 = torch.float64


def test_basis_matches_numpy_legvander():
    tau = torch.linspace(-1, 1, 41, dtype=D64)
    ours = legendre_basis(tau, 12)
    ref = np.polynomial.legendre.legvander(tau.numpy(), 12)
    assert ours.shape == (41, 13)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-13)


def test_basis_derivative_matches_numpy_and_endpoints():
    degree = 15
    tau = torch.linspace(-1, 1, 33, dtype=D64)
    ours = legendre_basis_derivative(tau, degree)
    for k in range(degree + 1):
        e = np.zeros(k + 1)
        e[k] = 1.0
        ref = np.polynomial.legendre.legval(tau.numpy(), np.polynomial.legendre.legder(e))
        np.testing.assert_allclose(ours[:, k].numpy(), ref, atol=1e-10, rtol=1e-12)
    ends = legendre_basis_derivative(torch.tensor([-1.0, 1.0], dtype=D64), degree)
    k = torch.arange(degree + 1, dtype=D64)
    assert torch.allclose(ends[1], k * (k + 1) / 2, atol=0, rtol=1e-14)
    assert torch.allclose(ends[0], (-1.0) ** (k + 1) * k * (k + 1) / 2, atol=0, rtol=1e-14)
    assert torch.isfinite(ends).all()


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 20])
def test_gauss_legendre_exact_to_degree_2n_minus_1(n):
    x, w = gauss_legendre_nodes(n)
    assert x.dtype == D64 and x.shape == w.shape == (n,)
    assert (x.diff() > 0).all() and (x.abs() < 1).all() and (w > 0).all()
    for m in range(2 * n):
        exact = 2.0 / (m + 1) if m % 2 == 0 else 0.0
        assert abs(float((w * x ** m).sum()) - exact) < 1e-13, (n, m)
    # degree 2n is not exact: the rule gives 0 for P_n^2 (its nodes are the roots of P_n), not 2/(2n+1)
    pn = legendre_basis(x, n)[:, -1]
    assert abs(float((w * pn ** 2).sum())) < 1e-13


@pytest.mark.parametrize("n", [2, 3, 4, 6, 9, 16])
def test_gauss_lobatto_exact_to_degree_2n_minus_3(n):
    x, w = gauss_lobatto_nodes(n)
    assert x.shape == w.shape == (n,)
    assert float(x[0]) == -1.0 and float(x[-1]) == 1.0 and (x.diff() > 0).all() and (w > 0).all()
    # weights 2 / (n (n - 1) P_{n-1}(x)^2), in particular 2 / (n (n - 1)) at the end points
    p = legendre_basis(x, n - 1)[:, -1]
    assert torch.allclose(w, 2.0 / (n * (n - 1) * p ** 2), rtol=1e-13)
    for m in range(2 * n - 2):
        exact = 2.0 / (m + 1) if m % 2 == 0 else 0.0
        assert abs(float((w * x ** m).sum()) - exact) < 1e-13, (n, m)
    # degree 2n - 2 is not exact: the rule gives 2/(n-1) for P_{n-1}^2 instead of 2/(2n-1)
    assert abs(float((w * p ** 2).sum()) - 2.0 / (n - 1)) < 1e-12
    assert abs(2.0 / (n - 1) - 2.0 / (2 * n - 1)) > 1e-3


def test_polynomial_reproduced_exactly_batched():
    torch.manual_seed(0)
    p = 5
    t0, t1 = 0.5, 3.0
    t = torch.linspace(t0, t1, 30, dtype=D64)
    # random polynomials in the Legendre basis of degree p on [t0, t1], batch (3, 2) trajectories, D = 4
    true = torch.randn(3, 2, p + 1, 4, dtype=D64)
    y = LegendreSeries(true, t0, t1)(t)
    assert y.shape == (3, 2, 30, 4)
    for degree in (p, p + 3, 12):
        fit = LegendreSeries.fit(t, y, degree, t0, t1)
        assert fit.coeffs.shape == (3, 2, degree + 1, 4)
        assert (fit(t) - y).abs().max() < 1e-10
        assert (fit.coeffs[..., : p + 1, :] - true).abs().max() < 1e-10
        if degree > p:
            assert fit.coeffs[..., p + 1:, :].abs().max() < 1e-10
    # monomial check: t^3 - 2t on [-1, 2], fitted with degree 3 from exactly 4 points (interpolation)
    ts = torch.tensor([-1.0, 0.0, 0.7, 2.0], dtype=D64)
    fit = LegendreSeries.fit(ts, (ts ** 3 - 2 * ts)[:, None], 3)
    tt = torch.linspace(-1, 2, 17, dtype=D64)
    assert (fit(tt)[:, 0] - (tt ** 3 - 2 * tt)).abs().max() < 1e-10
    assert (fit.derivative(tt)[:, 0] - (3 * tt ** 2 - 2)).abs().max() < 1e-10


def test_per_trajectory_times_and_ridge():
    torch.manual_seed(1)
    t = torch.sort(torch.rand(2, 25, dtype=D64) * 2, dim=-1).values
    y = torch.stack([t ** 2, 1 - t], dim=-1)  # (2, 25, 2)
    fit = LegendreSeries.fit(t, y, 4, 0.0, 2.0)
    assert fit.coeffs.shape == (2, 5, 2)
    tt = torch.linspace(0, 2, 9, dtype=D64)
    assert (fit(tt) - torch.stack([tt ** 2, 1 - tt], dim=-1)).abs().max() < 1e-10
    with pytest.raises(ValueError):
        LegendreSeries.fit(t[:, :3], y[:, :3], 4, 0.0, 2.0)
    shrunk = LegendreSeries.fit(t[:, :3], y[:, :3], 4, 0.0, 2.0, ridge=1e-3)
    assert torch.isfinite(shrunk.coeffs).all()
    big = LegendreSeries.fit(t, y, 4, 0.0, 2.0, ridge=1e3)
    assert big.coeffs.norm() < fit.coeffs.norm()


def _sin_fit_error(degree):
    t = torch.linspace(0, 2, 200, dtype=D64)
    y = torch.sin(3 * t)[:, None]
    fit = LegendreSeries.fit(t, y, degree, 0.0, 2.0)
    tt = torch.linspace(0, 2, 1001, dtype=D64)
    return fit, float((fit(tt)[:, 0] - torch.sin(3 * tt)).abs().max())


def test_spectral_convergence_on_sin():
    errs = {p: _sin_fit_error(p)[1] for p in (4, 8, 12, 16)}
    assert errs[16] < 1e-8
    assert errs[8] < 1e-2 * errs[4]
    assert errs[16] < 1e-4 * errs[8]
    assert errs[4] > errs[8] > errs[12] > errs[16]
    # exponential, not algebraic: log-error roughly linear in p
    slope1 = math.log(errs[8] / errs[4]) / 4
    slope2 = math.log(errs[16] / errs[12]) / 4
    assert slope1 < -1.0 and slope2 < -1.0


def test_derivative_matches_analytic_and_finite_differences():
    fit, _ = _sin_fit_error(18)
    tt = torch.linspace(0.05, 1.95, 77, dtype=D64)
    d = fit.derivative(tt)[:, 0]
    assert (d - 3 * torch.cos(3 * tt)).abs().max() < 1e-7
    h = 1e-5
    fd = (fit(tt + h) - fit(tt - h))[:, 0] / (2 * h)
    assert (d - fd).abs().max() < 1e-8
    # derivative of a batched random series vs central differences, nonstandard interval
    torch.manual_seed(2)
    s = LegendreSeries(torch.randn(3, 9, 2, dtype=D64), -3.0, 1.5)
    tq = torch.linspace(-3.0, 1.5, 21, dtype=D64)
    fd = (s(tq + h) - s(tq - h)) / (2 * h)
    assert s.derivative(tq).shape == (3, 21, 2)
    assert (s.derivative(tq) - fd).abs().max() < 1e-5 * max(1.0, float(fd.abs().max()))


def test_quadrature_integrates_series_and_grad_flows():
    # ∫_0^2 sin(3t) dt via the fitted series at Gauss–Legendre nodes
    fit, _ = _sin_fit_error(16)
    tau, w = gauss_legendre_nodes(12)
    t = (tau + 1) * (fit.t1 - fit.t0) / 2 + fit.t0
    integral = float((w * fit(t)[:, 0]).sum() * (fit.t1 - fit.t0) / 2)
    assert abs(integral - (1 - math.cos(6.0)) / 3) < 1e-9
    c = torch.zeros(4, 1, dtype=D64, requires_grad=True)
    LegendreSeries(c, 0.0, 1.0).derivative(t).pow(2).sum().backward()
    assert c.grad is not None and torch.isfinite(c.grad).all()


def test_continuous_elements():
    t = torch.linspace(0, 6, 241, dtype=D64)
    y = torch.stack([torch.sin(3 * t), torch.cos(t)], dim=-1).expand(2, -1, -1)
    basis = ElementBasis(0.0, 6.0, degree=12, elements=3)
    z = basis.fit(t, y)
    assert z.shape == (2, 1 + 3 * 12, 2) and basis.n_free == 37
    tt = torch.linspace(0, 6, 601, dtype=D64)
    ref = torch.stack([torch.sin(3 * tt), torch.cos(tt)], dim=-1)
    assert (basis.values(tt) @ z - ref).abs().max() < 1e-6
    dref = torch.stack([3 * torch.cos(3 * tt), -torch.sin(tt)], dim=-1)
    assert (basis.slopes(tt) @ z - dref).abs().max() < 1e-4
    # continuity holds exactly, for any free coefficients: x_e(τ=1) = x_{e+1}(τ=−1)
    c = basis.coefficients(torch.randn(4, basis.n_free, 3, dtype=D64))
    alt = torch.tensor([(-1.0) ** k for k in range(13)], dtype=D64)
    right = c[:, :-1].sum(dim=2)
    left = torch.einsum("k,nekd->ned", alt, c[:, 1:])
    assert torch.allclose(left, right, atol=1e-12)
    # one element is the plain Legendre series fit
    one = ElementBasis(0.0, 6.0, degree=8, elements=1)
    assert torch.allclose(one.coefficients(one.fit(t, y))[:, 0], LegendreSeries.fit(t, y, 8).coeffs, atol=1e-10)
    # the composite rule's weights average: Σ w g(t_q) = (1/6)∫ g for a smooth g
    tq, w = basis.quadrature(10)
    assert abs(float(w.sum()) - 1.0) < 1e-14
    assert abs(float((w * torch.sin(tq)).sum()) - (1 - math.cos(6.0)) / 6) < 1e-12
    tq, w = basis.quadrature(10, "lobatto")
    assert abs(float((w * torch.sin(tq)).sum()) - (1 - math.cos(6.0)) / 6) < 1e-12


def test_element_basis_refuses_invalid_values():
    """NaN observations ended in a PyTorch internal assert; a float degree was truncated, an infinite end
    or a NaN ridge accepted."""
    t = torch.linspace(0, 1, 9, dtype=D64)
    y = torch.stack([t, t ** 2], dim=-1)
    basis = ElementBasis(0.0, 1.0, degree=3, elements=2)
    with pytest.raises(ValueError, match="NaN or infinite"):
        basis.fit(t, torch.where(t > 0.5, math.nan, 1.0).unsqueeze(-1).expand(9, 2))
    with pytest.raises(ValueError, match="ridge must be a finite number"):
        basis.fit(t, y, ridge=math.nan)
    for degree, elements, t1 in ((2.5, 2, 1.0), (3, True, 1.0), (3, 2, math.inf)):
        with pytest.raises(ValueError, match="need"):
            ElementBasis(0.0, t1, degree=degree, elements=elements)
    assert torch.allclose(ElementBasis(0.0, 1.0, np.int64(3), 2).fit(t, y), basis.fit(t, y))  # NumPy ints are ints
