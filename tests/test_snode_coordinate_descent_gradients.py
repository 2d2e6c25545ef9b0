"""SNODE's coordinate-descent blocks take the gradients of the relaxed objective (closed form).

For a field linear in its parameters, f(t, x) = x Θᵀ + b sin(t), and free coefficients z (N, P, D) with
observation, node-value and node-slope matrices M, V, S (:class:`~nodebench.snode.elements.ElementBasis`) and
quadrature weights w (summing to 1), the residual is r = S z − (V z) Θᵀ − b sin(t_q) and

    J = 1/(NTD) ‖M z − y‖² + γ/(ND) Σ_q w_q ‖r_q‖² + 1/(ND) Σ_q w_q ⟨λ_q, r_q⟩,
    ∇_z J = 2/(NTD) Mᵀ(M z − y) + 1/(ND) [Sᵀ μ − Vᵀ (μ Θ)],         μ_q = w_q (2γ r_q + λ_q),
    ∇_Θ J = −1/(ND) Σ_{n,q} μ_{nq} x_{nq}ᵀ,   ∇_b J = −1/(ND) Σ_{n,q} μ_{nq} sin t_q,   x = V z.

With both optimisers replaced by plain SGD, an iteration of :class:`CoordinateDescent` must therefore move z by
−η_z ∇_z J (θ fixed, per coefficient step) and then θ by −η_θ ∇_θ J at the new, fixed z (per weight step).
Before, the objective's gradient was checked (gradcheck) but not what the two blocks do with it: the only
check of a step was that one coefficient step with a small rate decreases J.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from nodebench.snode import CoordinateDescent, ElementBasis, SnodeOptions

D64 = torch.float64
ETA_Z, ETA_THETA, GAMMA = 0.3, 0.2, 0.7


class Field(nn.Module):
    def __init__(self):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([[-0.1, 1.8], [-2.1, -0.2]], dtype=D64))
        self.b = nn.Parameter(torch.tensor([0.3, -0.5], dtype=D64))

    def forward(self, t, x):  # t (Q,), x (N, Q, D)
        return x @ self.theta.T + self.b * torch.sin(t)[:, None]


def problem():
    t = torch.linspace(0.5, 2.5, 17, dtype=D64)  # t0 ≠ 0
    gen = torch.Generator().manual_seed(0)
    angle = 2.0 * t
    y = torch.stack([torch.stack([torch.cos(angle + p), -torch.sin(angle + p)], -1) * (1 + 0.2 * p)
                     for p in (0.0, 0.7)]) + 0.05 * torch.randn(2, 17, 2, generator=gen, dtype=D64)
    return SimpleNamespace(t=t, y_train=y, u_train=None, use_controls=lambda t, u: None, field=Field(), lr=ETA_THETA,
                           weight_decay=0.0)


def closed_form_step(p, options, z, theta, b, lam):
    basis = ElementBasis(float(p.t[0]), float(p.t[-1]), options.degree, options.elements, dtype=D64)
    tq, w = basis.quadrature(options.nodes_per_element, options.quadrature)
    m, v, s = basis.values(p.t), basis.values(tq), basis.slopes(tq)
    y = p.y_train
    n, t_count, d = y.shape
    sin = torch.sin(tq)[:, None]

    def mu(z, theta, b):
        x = v @ z
        r = s @ z - x @ theta.T - b * sin
        return w[:, None] * (2 * GAMMA * r + lam), x, r

    def j_value(z, theta, b):
        _, _, r = mu(z, theta, b)
        return (((m @ z - y) ** 2).sum() / (n * t_count * d) + GAMMA * (w[:, None] * r * r).sum() / (n * d)
                + (w[:, None] * lam * r).sum() / (n * d))

    j_before = None
    for _ in range(options.coef_steps):
        weighted, _, _ = mu(z, theta, b)
        grad_z = 2 * m.T @ (m @ z - y) / (n * t_count * d) + (s.T @ weighted - v.T @ (weighted @ theta)) / (n * d)
        j_before = j_value(z, theta, b)
        z = z - ETA_Z * grad_z
    for _ in range(options.weight_steps):
        weighted, x, _ = mu(z, theta, b)
        grad_theta = -torch.einsum("nqi,nqj->ij", weighted, x) / (n * d)
        grad_b = -(weighted * sin).sum((0, 1)) / (n * d)
        theta, b = theta - ETA_THETA * grad_theta, b - ETA_THETA * grad_b
    return z, theta, b, j_before


@pytest.mark.parametrize("variant", ["penalty", "augmented"])
def test_one_iteration_moves_z_and_theta_along_the_closed_form_gradients(variant):
    p = problem()
    options = SnodeOptions(degree=4, elements=3, nodes=5, variant=variant, gamma=GAMMA, coef_steps=2, weight_steps=2,
                           ridge=0.0)
    cd = CoordinateDescent(p, list(p.field.parameters()), options)
    cd.setup()
    cd.coef_optimizer = torch.optim.SGD([cd.z], lr=ETA_Z)
    cd.weight_optimizer = torch.optim.SGD(cd.params, lr=ETA_THETA)
    lam = torch.zeros(2, 3 * 5, 2, dtype=D64)
    if variant == "augmented":
        lam = 0.4 * torch.randn(lam.shape, generator=torch.Generator().manual_seed(1), dtype=D64)
        cd.multipliers = lam.clone()
    z0, theta0, b0 = cd.z.detach().clone(), p.field.theta.detach().clone(), p.field.b.detach().clone()
    j = cd.step(lambda: None)
    z_want, theta_want, b_want, j_want = closed_form_step(p, options, z0, theta0, b0, lam)
    assert (z_want - z0).abs().max() > 1e-3 and (theta_want - theta0).abs().max() > 1e-3  # real steps
    assert (b_want - b0).abs().max() > 1e-3
    torch.testing.assert_close(cd.z.detach(), z_want, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(p.field.theta.detach(), theta_want, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(p.field.b.detach(), b_want, rtol=1e-12, atol=1e-13)
    assert float(j) == pytest.approx(float(j_want), rel=1e-12)  # J at the last coefficient step, before it
