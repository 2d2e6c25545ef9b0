"""Tests for nodebench.papers.do_vs_od.gradients: the Taylor test and gradient error against a reference."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from nodebench.papers.do_vs_od.gradients import (
    gradient_error_vs_reference,
    gradient_taylor_table,
    random_direction,
    taylor_slopes,
    taylor_summary,
    taylor_test,
)


def quadratic_setup(seed=0, n=6):
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=gen, dtype=torch.float64)
    a = m @ m.T + n * torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, generator=gen, dtype=torch.float64)
    theta = torch.randn(n, generator=gen, dtype=torch.float64, requires_grad=True)
    return a, b, theta


class ScaledGradient(torch.autograd.Function):
    """Identity forward, gradient scaled by ``scale`` backward: a loss with a deliberately wrong gradient."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def test_quadratic_slopes_one_and_two():
    a, b, theta = quadratic_setup()
    before = theta.detach().clone()
    df = taylor_test(lambda ps: 0.5 * ps[0] @ a @ ps[0] + b @ ps[0], [theta])
    assert list(df.columns[:3]) == ["h", "E0", "E1"]
    assert len(df) == 20 and df["h"].iloc[0] == 0.5 and df["h"].iloc[-1] == 2.0**-20
    slopes = taylor_slopes(df, h_max=2.0**-6)  # E0 is O(h) only once h·|∇Jᵀdθ| dominates h²·dθᵀAdθ/2
    assert slopes["E0"] == pytest.approx(1.0, abs=0.05)
    assert slopes["E1"] == pytest.approx(2.0, abs=0.05)
    assert taylor_slopes(df)["E1"] == pytest.approx(2.0, abs=0.05)
    torch.testing.assert_close(theta.detach(), before, rtol=0, atol=0)  # parameters restored
    # for a quadratic, E1 = h²/2 dθᵀ A dθ exactly (up to round-off)
    (d,) = random_direction([theta], seed=0)
    expected = 0.5 * df["h"] ** 2 * float(d @ a @ d)
    big = df["h"] > 2.0**-12
    np.testing.assert_allclose(df.loc[big, "E1"], expected[big], rtol=1e-6)


def test_wrong_gradient_gives_first_order_e1():
    a, b, theta = quadratic_setup(1)

    def loss(ps):
        return ScaledGradient.apply(0.5 * ps[0] @ a @ ps[0] + b @ ps[0], 1.05)  # returns 1.05·∇J

    df = taylor_test(loss, [theta])
    # E1 ≈ |h²/2 dθᵀAdθ − 0.05 h ∇Jᵀdθ|: first order once h is below the crossover
    slopes = taylor_slopes(df, h_max=2.0**-10)
    assert slopes["E0"] == pytest.approx(1.0, abs=0.1)
    assert slopes["E1"] == pytest.approx(1.0, abs=0.1)
    # the same through an explicitly given (wrong) gradient
    true_grad = (a @ theta + b).detach()
    df = taylor_test(lambda ps: 0.5 * ps[0] @ a @ ps[0] + b @ ps[0], [theta], gradient=[1.01 * true_grad])
    assert taylor_slopes(df, h_max=2.0**-10)["E1"] == pytest.approx(1.0, abs=0.1)
    df = taylor_test(lambda ps: 0.5 * ps[0] @ a @ ps[0] + b @ ps[0], [theta], gradient=[true_grad])
    assert taylor_slopes(df)["E1"] == pytest.approx(2.0, abs=0.05)


def test_slopes_ignore_roundoff_and_report_range():
    hs = 2.0 ** -np.arange(1, 21)
    e1 = np.where(hs > 2.0**-15, hs**2, 1e-15)  # E1 at round-off level below h = 2⁻¹⁵
    df = pd.DataFrame({"h": hs, "E0": hs, "E1": e1, "J0": 1.0})
    slopes = taylor_slopes(df)
    assert slopes["E1"] == pytest.approx(2.0, abs=1e-9) and slopes["E0"] == pytest.approx(1.0, abs=1e-9)
    assert slopes["h_min"] == 2.0**-14 and slopes["n"] == 14
    assert taylor_slopes(df, h_max=2.0**-5)["h_max"] == 2.0**-5
    assert math.isnan(taylor_slopes(df.iloc[:2])["E1"])


def test_direction_is_seeded_unit_norm():
    params = [torch.zeros(3, 2, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)]
    d1, d2 = random_direction(params, seed=3), random_direction(params, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(d1, d2))
    assert math.sqrt(sum(float((d**2).sum()) for d in d1)) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        taylor_test(lambda ps: ps[0].sum(), [params[0].requires_grad_()], direction=[torch.zeros(2)])


def test_direction_and_gradient_must_match_the_parameters():
    """A direction with an extra tensor was cut by ``zip`` and a gradient of the wrong shape broadcast into
    ``∇Jᵀdθ``: both gave a table, the second with a wrong E1."""
    theta = torch.zeros(3, dtype=torch.float64, requires_grad=True)

    def loss(ps):
        return (ps[0] ** 2).sum()
    with pytest.raises(ValueError, match=r"direction must have one tensor per parameter.*got \[\(3,\), \(5,\)\]"):
        taylor_test(loss, [theta], direction=[torch.ones(3), torch.ones(5)])
    with pytest.raises(ValueError, match=r"gradient must have one tensor per parameter.*got \[\(1,\)\]"):
        taylor_test(loss, [theta], gradient=[torch.ones(1, dtype=torch.float64)])
    df = taylor_test(loss, [theta], direction=(d for d in [torch.ones(3)]), hs=[0.5])  # any iterable
    assert df["E1"].tolist() == [0.75]


def test_spiral_do_consistent_od_loose_tolerance_not():
    table = gradient_taylor_table("cubic_spiral", ["rk4", "adjoint"], [1e-2], [None], seed=0)
    assert set(table.columns) >= {"method", "family", "tol", "step_size", "h", "E0", "E1"}
    summary = taylor_summary(table).set_index("method")
    # Disc-Opt: the gradient of the discrete objective, E1 = O(h²) down to h = 2⁻²⁰
    assert summary.loc["rk4", "E1_slope"] == pytest.approx(2.0, abs=0.05)
    assert summary.loc["rk4", "E0_slope"] == pytest.approx(1.0, abs=0.05)
    # Opt-Disc at rtol = atol = 1e-2 (the Julia check's setting): E1 only first order (measured 0.97)
    assert summary.loc["adjoint", "E1_slope"] < 1.2
    small_h = table[(table.method == "adjoint") & (table.h <= 2.0**-10)]
    np.testing.assert_allclose(small_h["E1_order"], 1.0, atol=0.05)
    assert summary.loc["adjoint", "family"] == "OD" and summary.loc["rk4", "family"] == "DO"


def test_cnf_density_do_gradient_consistent():
    hp = {"hidden_dims": [8, 8], "n_train": 64, "n_val": 8, "n_test": 8, "batch_size": 32}
    table = gradient_taylor_table("cnf_toy_moons", ["rk4"], step_sizes=[0.25], seed=0, hparams=hp)
    assert taylor_summary(table)["E1_slope"].iloc[0] == pytest.approx(2.0, abs=0.05)


def test_gradient_error_shrinks_with_tolerance():
    df = gradient_error_vs_reference("cubic_spiral", ["adjoint", "rk4"], [1e-2, 1e-6], [None], seed=0,
                                     reference_tol=1e-10).set_index(["method", "tol"], drop=False)
    loose, tight = df.loc[("adjoint", 1e-2)], df.loc[("adjoint", 1e-6)]
    assert loose["grad_rel_error"] > 100 * tight["grad_rel_error"]
    assert tight["grad_rel_error"] < 1e-4
    assert loose["nfe_backward"] > 0
    rk4 = df[df.method == "rk4"].iloc[0]
    assert rk4["grad_rel_error"] < 1e-4 and rk4["nfe_backward"] == 0 and rk4["nfe_forward"] == 4 * 29
