"""Tests for nodebench.regularizers: R_K and RNODE as running costs, the forward and adjoint-only
variants, and their wiring into training."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchdiffeq import odeint

from nodebench.errors import UserError
from nodebench.harness import count_nfe
from nodebench.methods import get_method
from nodebench.regularizers import Regularizer, regularizer_from_hparams
from nodebench.runner.settings import case_settings
from nodebench.training import train

F64 = torch.float64
TIGHT = dict(rtol=1e-10, atol=1e-12)


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.A = nn.Parameter(torch.tensor([[-0.3, 1.0], [-1.0, -0.2]], dtype=F64))

    def forward(self, t, z):
        return z @ self.A.T


def exact_speed_penalty(field, z0, order, t1=1.0, n=4001):
    """∫₀^t1 mean_dims (A^K z(t))² dt, batch-averaged, z(t) = expm(At) z0, by Simpson's rule."""
    ts = torch.linspace(0, t1, n, dtype=F64)
    ak = torch.linalg.matrix_power(field.A, order)
    values = torch.stack([((z0 @ torch.linalg.matrix_exp(field.A * s).T @ ak.T) ** 2).mean(dim=1).mean() for s in ts])
    h = t1 / (n - 1)
    return h / 3 * (values[0] + values[-1] + 4 * values[1:-1:2].sum() + 2 * values[2:-1:2].sum())


Z0 = torch.tensor([[1.0, 0.5], [-0.2, 0.8]], dtype=F64)
T = torch.tensor([0.0, 0.5, 1.0], dtype=F64)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_forward_speed_penalty_is_the_integral_of_the_kth_derivative(order):
    field = Linear()
    reg = Regularizer("speed", order=order, lam=2.0)
    solve = reg.wrap(get_method("direct").make_solve(list(field.parameters()), **TIGHT))
    ys = solve(field, Z0, T)
    torch.testing.assert_close(ys, odeint(field, Z0, T, **TIGHT))
    want = exact_speed_penalty(field, Z0, order).detach()
    assert solve.value == pytest.approx(float(want), rel=1e-8)
    assert float(solve.penalty.detach()) == pytest.approx(2.0 * float(want), rel=1e-8)


def _gradient(method, variant, field):
    reg = Regularizer("speed", order=2, lam=0.7, variant=variant)
    solve = reg.wrap(get_method(method).make_solve(list(field.parameters()), **TIGHT))
    loss = (solve(field, Z0, T)[-1] ** 2).sum() + solve.penalty
    return torch.autograd.grad(loss, list(field.parameters()))[0], solve


@pytest.mark.parametrize("method", ["adjoint", "gq"])
def test_adjoint_only_gradient_matches_the_forward_variant_and_leaves_the_forward_solve_alone(method):
    field = Linear()
    want, _ = _gradient("direct", "forward", field)
    got, solve = _gradient(method, "adjoint_only", field)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)
    assert math.isnan(solve.value)  # never computed forward (the penalty lives only in the backward pass): unknown

    counted = count_nfe(field)
    plain = get_method(method).make_solve(list(field.parameters()), rtol=1e-6, atol=1e-8)
    plain(counted, Z0, T)
    nfe_plain = counted.nfe["forward"]
    counted.reset()
    reg = Regularizer("speed", order=3, lam=1.0, variant="adjoint_only")
    reg.wrap(plain)(counted, Z0, T)
    assert counted.nfe["forward"] == nfe_plain  # same steps as the unregularised dynamics
    counted.reset()
    Regularizer("speed", order=3, lam=1.0, variant="forward").wrap(plain)(counted, Z0, T)
    assert counted.nfe["forward"] != nfe_plain  # the R-state is inside the forward error control


def test_rnode_penalty_on_a_linear_field():
    """c = ½ mean(f²) + mean((εᵀA)²) with ε fixed within a solve."""
    field = Linear()
    reg = Regularizer("rnode", lam=1.0, seed=3)
    solve = reg.wrap(get_method("direct").make_solve(list(field.parameters()), **TIGHT))
    solve(field, Z0, T)
    eps = torch.randn(Z0.shape, generator=torch.Generator().manual_seed(3), dtype=F64)
    with torch.no_grad():
        frobenius = ((eps @ field.A) ** 2).mean(dim=1).mean()  # εᵀ∂f/∂z per example, z-independent here
        ts = torch.linspace(0, 1, 2001, dtype=F64)
        kinetic = torch.stack([0.5 * ((Z0 @ torch.linalg.matrix_exp(field.A * s).T @ field.A.T) ** 2).mean(1).mean()
                               for s in ts])
        kinetic = float(torch.trapezoid(kinetic, ts))
    assert solve.value == pytest.approx(kinetic + float(frobenius), rel=1e-5)


def test_training_adds_the_penalty_and_records_it(linear_problem):
    problem = linear_problem(lr=0.05, dtype=F64, a0=0.5)
    plain = train(linear_problem(lr=0.05, dtype=F64, a0=0.5), get_method("rk4"), device=torch.device("cpu"), iters=3)
    reg = train(problem, get_method("rk4"), device=torch.device("cpu"), iters=3,
                regularizer=Regularizer("speed", order=2, lam=10.0))
    assert all(math.isnan(v) for v in plain.curves["regularizer"])
    assert all(v > 0 for v in reg.curves["regularizer"])
    assert reg.curves["loss"][0] == pytest.approx(plain.curves["loss"][0] + 10.0 * reg.curves["regularizer"][0])


def test_the_task_loss_is_recorded_without_the_penalty(linear_problem):
    plain = train(linear_problem(lr=0.05, dtype=F64, a0=0.5), get_method("rk4"), device=torch.device("cpu"), iters=3)
    reg = train(linear_problem(lr=0.05, dtype=F64, a0=0.5), get_method("rk4"), device=torch.device("cpu"), iters=3,
                regularizer=Regularizer("speed", order=2, lam=10.0))
    c = reg.curves
    assert c["task_loss"][0] == plain.curves["loss"][0]  # same parameters at iteration 1: the same task loss
    for loss, task_loss, r in zip(c["loss"], c["task_loss"], c["regularizer"]):
        assert task_loss == pytest.approx(loss - 10.0 * r, rel=1e-12) and task_loss < loss
    assert reg.summary()["final_task_loss"] == c["task_loss"][-1] < reg.summary()["final_loss"]
    assert plain.curves["task_loss"] == plain.curves["loss"]  # no regulariser: the loss is the task loss
    assert plain.summary()["final_task_loss"] == plain.summary()["final_loss"]


def test_hyperparameters_and_validation():
    assert regularizer_from_hparams({}) is None and regularizer_from_hparams({"reg": "none"}) is None
    assert regularizer_from_hparams({"reg": "speed", "reg_lambda": 0.0}) is None  # λ = 0: the baseline
    reg = regularizer_from_hparams({"reg": "speed", "reg_order": 3, "reg_lambda": 0.1, "reg_variant": "adjoint_only"})
    assert (reg.kind, reg.order, reg.lam, reg.variant) == ("speed", 3, 0.1, "adjoint_only")
    settings = case_settings({"rtol": 1e-3, "reg": "rnode", "reg_lambda": 0.01, "width": 5}, get_method("direct"))
    assert settings.solver_options == {"rtol": 1e-3} and settings.regularizer.kind == "rnode"
    assert settings.task_hparams == {"width": 5} and settings.spectral is None
    for bad, match in [({"reg": "fast"}, "unknown regulariser"), ({"reg": "speed", "reg_order": 0}, "reg_order"),
                       ({"reg": "speed", "reg_order": 2.5}, "reg_order"),
                       ({"reg": "speed", "reg_lambda": -1}, "reg_lambda"),
                       ({"reg": "speed", "reg_variant": "both"}, "variant")]:
        with pytest.raises(UserError, match=match):
            regularizer_from_hparams(bad)


@pytest.mark.parametrize("kind", ["speed", "rnode"])
def test_cnf_tuple_state_is_regularised_on_its_dynamics(kind):
    """On a CNF's (z, log-det) state the cost is that of f(t, z) alone: the same R as regularising a plain
    solve of f from the same z."""
    from nodebench.cnf import AugmentedDynamics

    field = Linear()
    plain = Regularizer(kind, order=2, lam=1.0, seed=1).wrap(get_method("direct").make_solve(**TIGHT))
    plain(field, Z0, T)
    cnf = Regularizer(kind, order=2, lam=1.0, seed=1).wrap(get_method("direct").make_solve(**TIGHT))
    zs, logdets = cnf(count_nfe(AugmentedDynamics(field)), (Z0, torch.zeros(2, dtype=F64)), T)
    torch.testing.assert_close(zs, odeint(field, Z0, T, **TIGHT))
    assert cnf.value == pytest.approx(plain.value, rel=1e-8)


def test_tuple_state_without_a_state_field_is_a_clear_error():
    class Pair(nn.Module):
        def forward(self, t, state):
            return state[1], -state[0]

    solve = Regularizer("speed", lam=1.0).wrap(get_method("direct").make_solve())
    with pytest.raises(UserError, match="state_field"):
        solve(Pair(), (Z0, Z0), T)


@pytest.mark.parametrize("method, measured", [("adjoint", False), ("direct", True)])
def test_adjoint_only_records_r_only_where_the_forward_pass_computes_it(linear_problem, method, measured):
    """Under an adjoint, adjoint_only evaluates R only in the backward solve: its curve is NaN (not 0). With a
    backprop method the forward pass records autograd, so R is computed and recorded."""
    result = train(linear_problem(lr=0.05, dtype=F64, a0=0.5), get_method(method), device=torch.device("cpu"),
                   iters=2, regularizer=Regularizer("speed", order=2, lam=1.0, variant="adjoint_only"))
    values = result.curves["regularizer"]
    assert all(v > 0 for v in values) if measured else all(math.isnan(v) for v in values)


@pytest.mark.parametrize("bad, match", [({"reg_lambda": math.nan}, "reg_lambda"), ({"reg_order": 0}, "reg_order"),
                                        ({"reg_variant": "both"}, "variant")])
def test_reg_values_are_checked_without_a_regulariser_too(bad, match):
    """reg = none (or unset) leaves the other reg_* values unused, but a bad one is still refused, not ignored."""
    assert regularizer_from_hparams({"reg": "none", "reg_lambda": 0.0, "reg_order": 3}) is None
    for hparams in (bad, {"reg": "none", **bad}):
        with pytest.raises(UserError, match=match):
            regularizer_from_hparams(hparams)


@pytest.mark.parametrize("hparams", [{"reg_lambda": 1.0}, {"reg": "none", "reg_lambda": 0.5}])
def test_a_positive_lambda_without_a_regulariser_is_refused(hparams):
    """It trained without one, silently: the user meant a regulariser."""
    with pytest.raises(UserError, match=r"reg_lambda .* has no effect without a regulariser: set reg to speed or "
                                        r"rnode"):
        regularizer_from_hparams(hparams)
    assert regularizer_from_hparams({"reg": "none", "reg_lambda": 0.0}) is None  # a λ grid's unregularised zero


def test_an_infinite_weight_and_an_unknown_derivative_method_are_refused_at_construction():
    """Accepted before: λ = inf made every loss inf or NaN; a misspelt derivative method failed only at the first
    solve, inside the running cost."""
    with pytest.raises(UserError, match="^lam must be a finite number ≥ 0, got inf"):
        Regularizer("speed", lam=math.inf)
    with pytest.raises(UserError, match="unknown derivative_method 'taylr'; valid: taylor, jvp"):
        Regularizer("speed", lam=1.0, derivative_method="taylr")


@pytest.mark.parametrize("kwargs, library, hparams, cli", [
    ({"lam": -1}, "lam must be a finite number ≥ 0, got -1", {"reg_lambda": -1.0},
     "reg_lambda must be a finite number ≥ 0, got -1.0"),
    ({"order": 0}, "order must be an integer from 1 to 35, got 0", {"reg_order": 0},
     "reg_order must be an integer from 1 to 35, got 0"),
    ({"variant": "both"}, "unknown regulariser variant 'both' (variant); valid: forward, adjoint_only",
     {"reg_variant": "both"}, "unknown regulariser variant 'both' (reg_variant); valid: forward, adjoint_only"),
    ({"kind": "none"}, "unknown regulariser 'none' (kind); valid: speed, rnode", {"reg": "fast"},
     "unknown regulariser 'fast' (reg); valid: none, speed, rnode"),
])
def test_a_bad_value_is_named_as_its_caller_wrote_it(kwargs, library, hparams, cli):
    """The library class names its own arguments (lam, order...); it named the command line's reg_lambda, which
    a library user never wrote. A case's hyper-parameters keep their reg_* names."""
    with pytest.raises(UserError) as err:
        Regularizer(**{"kind": "speed", "lam": 1.0, **kwargs})
    assert str(err.value) == library
    with pytest.raises(UserError) as err:
        regularizer_from_hparams({"reg": "speed", "reg_lambda": 1.0, **hparams})
    assert str(err.value) == cli


@pytest.mark.parametrize("kind", ["speed", "rnode"])
@pytest.mark.parametrize("method", ["direct", "adjoint"])
def test_a_solve_backwards_in_time_is_penalised_by_the_same_positive_integral(method, kind):
    """R = ∫ c dt over the interval traversed (Kelly et al. §3). A solve from t = 1 back to 0 ends at
    r(0) = −∫₀¹ c dt: its R was negative before, a penalty that rewarded fast dynamics. It is now the R of the
    same trajectory solved forwards, and for R_2 its gradient is that of the closed form, z(t) = expm(A(t − 1)) z(1)."""
    field = Linear()
    params = list(field.parameters())
    z1 = odeint(field, Z0, T, **TIGHT)[-1].detach()
    values = []
    for t, y0 in ((T, Z0), (T.flip(0), z1)):
        solve = Regularizer(kind, order=2, lam=1.0, seed=4).wrap(get_method(method).make_solve(params, **TIGHT))
        solve(field, y0, t)
        values.append(solve.value)
    assert values[0] > 0 and values[1] == pytest.approx(values[0], rel=1e-7)
    if kind == "speed":
        got = torch.autograd.grad(solve.penalty, params)[0]
        want = torch.autograd.grad(exact_speed_penalty(field, z1 @ torch.linalg.matrix_exp(-field.A).T, 2), params)[0]
        torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-10)


def test_an_order_past_float32s_factorials_is_one_line_at_the_command_line(capsys, tmp_path):
    """d^K z = (K−1)!·[f]_{K−1} is inf in float32 from K = 36, and a huge K ran without end (reg_order=1000000
    on digits_ode had not finished its first iteration after two minutes)."""
    from nodebench.cli import main

    assert Regularizer("speed", order=35, lam=1.0).order == 35
    with pytest.raises(UserError, match="reg_order must be an integer from 1 to 35, got 36"):
        regularizer_from_hparams({"reg": "speed", "reg_order": 36, "reg_lambda": 1.0})
    out = tmp_path / "out"
    code = main(["run", "--task", "digits_ode", "--method", "adjoint", "--hparam", "reg=speed", "--hparam",
                 "reg_order=1000000", "--hparam", "reg_lambda=1", "--iters", "1", "--out", str(out)])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and lines == ["nodebench: error: reg_order must be an integer from 1 to 35, got 1000000"]
    assert not out.exists()


def test_an_order_given_to_rnode_is_reported_as_ignored():
    """RNODE (kinetic + Jacobian Frobenius) has no order K: ``reg_order`` with ``reg = rnode`` was silently
    unused; it is reported as the other options a case does not use are, as the regulariser's, not the method's."""
    from nodebench.runner.case import Case
    from nodebench.runner.settings import check_cases

    hparams = {"reg": "rnode", "reg_lambda": 1.0, "extrap_t_end": 2.0}
    assert check_cases([Case(task="cubic_spiral", method="rk4", iters=1, hparams=hparams | {"reg_order": 3})]) == [
        "regulariser reg=rnode does not use reg_order; ignored"]
    assert check_cases([Case(task="cubic_spiral", method="rk4", iters=1, hparams=hparams)]) == []


def test_the_warning_for_an_ignored_order_names_the_regulariser_not_the_method(capsys, tmp_path):
    """``--method adjoint --hparam reg=rnode --hparam reg_order=3`` warned "method adjoint does not use reg_order":
    the adjoint was blamed for what RNODE ignores. A solver option the method ignores is still the method's."""
    from nodebench.cli import main

    code = main(["run", "--task", "digits_ode", "--method", "adjoint,rk4", "--hparam", "reg=rnode", "--hparam",
                 "reg_order=3", "--hparam", "reg_lambda=1", "--hparam", "gtol=0.1", "--iters", "1", "--dry-run",
                 "--out", str(tmp_path / "r")])
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert code == 0 and sorted(warnings) == [
        "nodebench: warning: method adjoint does not use gtol; ignored",
        "nodebench: warning: method rk4 does not use gtol; ignored",
        "nodebench: warning: regulariser reg=rnode does not use reg_order; ignored"], warnings


@pytest.mark.parametrize("typed, warning", [
    (["reg_order=3"], "no regulariser (reg unset) does not use reg_order; ignored"),
    (["reg=none", "reg_variant=forward"], "no regulariser (reg=none) does not use reg_variant; ignored"),
    (["reg=speed", "reg_order=3"], "no regulariser (reg=speed without reg_lambda: λ = 0) does not use reg, reg_order; "
                                   "ignored"),
    (["reg=speed", "reg_lambda=0", "reg_variant=forward"], None),  # λ = 0 stated: the unregularised baseline
], ids=["order-without-reg", "variant-with-reg-none", "reg-without-lambda", "explicit-lambda-0"])
def test_regulariser_options_of_an_unregularised_case_are_left_out_of_its_id(typed, warning, capsys, tmp_path):
    """With no regulariser (``reg`` unset or none, or λ = 0: regularizer_from_hparams), the ``reg*`` options change
    nothing, yet they stayed in the case id and recorded hparams without a warning: ``--method direct --hparam
    reg_order=3`` on a TayNODE task was another case than ``--method direct``. A stated λ = 0 is not warned about
    (a λ grid's baseline)."""
    import nodebench
    from nodebench.cli import main

    args = [arg for hparam in typed for arg in ("--hparam", hparam)]
    code = main(["run", "--task", "digits_ode", "--method", "direct", *args, "--iters", "1", "--dry-run", "--out",
                 str(tmp_path / "r")])
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert code == 0 and warnings == ([f"nodebench: warning: {warning}"] if warning else []), warnings
    assert captured.out.splitlines()[2].split()[-1] == "–", captured.out  # the case's hparams column: none
    plain = nodebench.run("digits_ode", "direct", iters=1, dry_run=True, out=tmp_path / "r").cases
    values = {k: int(v) if v.isdigit() else v for k, v in (h.split("=") for h in typed)}
    typed_cases = nodebench.run("digits_ode", "direct", iters=1, dry_run=True, out=tmp_path / "r", hparams=values).cases
    assert [c.case_id for c in typed_cases] == [c.case_id for c in plain] and typed_cases[0].hparams == {}


def test_a_lambda_grids_zero_is_the_unregularised_case_without_a_warning():
    """A spec's ``grid = { reg_lambda = [0, 1] }`` with ``reg = speed, reg_order = 3``: at λ = 0 every ``reg*``
    option is unused (the unregularised run) but none is warned about, as every λ grid with a 0 would be; at λ = 1
    every option is used."""
    from nodebench.runner.case import Case
    from nodebench.runner.settings import check_cases, unused_by_regularizer

    hparams = {"reg": "speed", "reg_order": 3, "reg_variant": "forward"}
    cases = [Case(task="cubic_spiral", method="rk4", iters=1, hparams=hparams | {"reg_lambda": lam}) for lam in (0, 1)]
    assert check_cases(cases) == []
    assert [unused_by_regularizer(case.hparams) for case in cases] == [
        ["reg", "reg_order", "reg_lambda", "reg_variant"], []]


def test_a_boolean_lambda_is_refused_as_no_number_not_as_a_lambda_of_1(capsys, tmp_path):
    """``--hparam reg_lambda=true`` without ``reg`` read "reg_lambda 1 has no effect without a regulariser": a bool
    passed the number check as 1. It is refused as what it is: not a finite number."""
    from nodebench.cli import main

    code = main(["run", "--task", "cubic_spiral", "--method", "rk4", "--hparam", "reg_lambda=true", "--iters", "1",
                 "--dry-run", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "nodebench: error: reg_lambda must be a finite number ≥ 0, got True", err
    assert not (tmp_path / "r").exists()
