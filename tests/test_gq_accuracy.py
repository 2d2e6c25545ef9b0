"""The GQ adjoint's documented accuracy rule (``nodebench.gq.odeint_adjoint_gq``, argument ``gtol``; the
gq_adjoint README, "Gradient accuracy"): the parameter gradient is the n_i-node Gauss–Legendre sum of the exact
integrand aᵀ∂f/∂θ up to the backward solve's error, so its error is the rule's, which rtol/atol do not shrink,
plus the solve's; n_i = ⌈gtol · NFE_fwd · Δ_i / T⌉; and gtol = n·N / NFE_fwd gives every one of N equal intervals
n nodes, whose relative error is about c_n · (ωΔ)^{2n}, c_n = (n!)⁴ / ((2n+1)·((2n)!)³).

The field dz/dt = −λz + θ cos(ωt), L = z(T), has the closed form dL/dθ = ∫_0^T e^{−λ(T−t)} cos(ωt) dt, and
its integrand is known in closed form, so the Gauss–Legendre sum the method should return is computed here
independently (numpy).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nodebench.gq import odeint_adjoint_gq

F64 = torch.float64
T_END, INTERVALS, OMEGA = 2.0, 10, 3.0  # ωΔ = 0.6


class CosineDrive(nn.Module):
    def __init__(self, lam: float):
        super().__init__()
        self.lam = lam
        self.theta = nn.Parameter(torch.tensor(0.7, dtype=F64))

    def forward(self, t, z):
        return -self.lam * z + self.theta * torch.cos(OMEGA * t)


def gq_gradient(lam: float, rtol: float, gtol: float) -> tuple[float, dict]:
    field, stats = CosineDrive(lam), {}
    t = torch.linspace(0.0, T_END, INTERVALS + 1, dtype=F64)
    ys = odeint_adjoint_gq(field, torch.ones(1, dtype=F64), t, rtol=rtol, atol=rtol, gtol=gtol, stats=stats)
    (grad,) = torch.autograd.grad(ys[-1].sum(), field.theta)
    return float(grad), stats


def integrand(lam: float, t):
    return np.exp(-lam * (T_END - t)) * np.cos(OMEGA * t)


def exact(lam: float) -> float:
    return (lam * math.cos(OMEGA * T_END) + OMEGA * math.sin(OMEGA * T_END) - lam * math.exp(-lam * T_END)) / (
        lam ** 2 + OMEGA ** 2)


def gauss_legendre_sum(lam: float, n: int) -> float:
    x, w = np.polynomial.legendre.leggauss(n)
    d = T_END / INTERVALS
    return sum(float(np.sum(d / 2 * w * integrand(lam, d / 2 * x + d * (i + 0.5)))) for i in range(INTERVALS))


def c_n(n: int) -> float:
    return math.factorial(n) ** 4 / ((2 * n + 1) * math.factorial(2 * n) ** 3)


@pytest.mark.parametrize("rtol", [1e-6, 1e-9])
@pytest.mark.parametrize("gtol", [0.117, 1.07])  # gtol · NFE_fwd / N off the integers, where round-off may
# add a node to some intervals
def test_gradient_is_the_gauss_legendre_sum_of_the_exact_integrand_up_to_the_solve(rtol, gtol):
    lam = 0.5
    got, stats = gq_gradient(lam, rtol, gtol)
    n = math.ceil(gtol * stats["nfe_forward"] / INTERVALS)  # equal intervals: Δ_i / T = 1 / N
    assert stats["intervals"] == INTERVALS and stats["nodes"] == n * INTERVALS, stats
    rule = gauss_legendre_sum(lam, n)
    assert abs(got - rule) <= 10 * rtol * abs(exact(lam)), (n, got, rule)


def test_one_node_per_interval_stalls_the_gradient_error_whatever_the_tolerance():
    """With N ≥ gtol · NFE_fwd every interval gets the midpoint rule; its error does not move with rtol."""
    lam, gtol = 0.5, 1e-3
    errors = []
    for rtol in (1e-6, 1e-8, 1e-10):
        got, stats = gq_gradient(lam, rtol, gtol)
        assert stats["nodes"] == INTERVALS, stats
        errors.append(abs(got - exact(lam)) / abs(exact(lam)))
    midpoint = abs(gauss_legendre_sum(lam, 1) - exact(lam)) / abs(exact(lam))
    assert midpoint > 1e-2
    for error in errors:
        assert error == pytest.approx(midpoint, rel=1e-3), errors


@pytest.mark.parametrize("n", [1, 2, 3])
def test_gtol_of_n_intervals_over_the_forward_nfe_gives_n_nodes_and_the_documented_error(n):
    """The documented setting gtol = n·N / NFE_fwd, and the error estimate c_n · (ωΔ)^{2n} (λ = 0: the adjoint
    is 1, the rule's relative error is the same on every interval)."""
    rtol = 1e-10
    _, first = gq_gradient(0.0, rtol, 0.1)
    _, stats = gq_gradient(0.0, rtol, n * INTERVALS / first["nfe_forward"])
    assert n * INTERVALS <= stats["nodes"] <= (n + 1) * INTERVALS, stats  # at least n (round-off may add one)
    got, stats = gq_gradient(0.0, rtol, (n - 0.5) * INTERVALS / first["nfe_forward"])
    assert stats["nodes"] == n * INTERVALS, stats
    error = abs(got - exact(0.0)) / abs(exact(0.0))
    estimate = c_n(n) * (OMEGA * T_END / INTERVALS) ** (2 * n)
    assert estimate / 1.5 < error < 1.5 * estimate, (error, estimate)
