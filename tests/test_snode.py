"""SNODE: continuous elements, the relaxed objective, coordinate descent, the harness method and the systems."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from nodebench.claims import check_claims
from nodebench.errors import UserError
from nodebench.methods import get_method
from nodebench.runner.case import Case
from nodebench.runner.settings import case_settings, check_case
from nodebench.runner.worker import run_case
from nodebench.snode import CoordinateDescent, ElementBasis, SnodeOptions, SpectralObjective
from nodebench.target import time_to_target_table
from nodebench.tasks import get_task
from nodebench.papers.snode.systems import swarm_data, swarm_dynamics, vehicle_dynamics
from nodebench.tasks.trajectory import PiecewiseLinearControls
from nodebench.training import train

D64 = torch.float64
CPU = torch.device("cpu")
A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=D64)


def _linear_truth(t):
    x0 = torch.tensor([[1.0, 0.5], [-0.3, 2.0]], dtype=D64)
    return torch.stack([x0 @ torch.linalg.matrix_exp(A.T * float(s)) for s in t], dim=1)  # (2, T, 2)


def test_element_slopes_match_finite_differences():
    basis = ElementBasis(0.0, 3.0, degree=5, elements=4)
    z = torch.randn(2, basis.n_free, 3, dtype=D64)
    t = torch.tensor([0.1, 0.7, 1.3, 2.2, 2.9], dtype=D64)  # inside elements (the slope jumps at boundaries)
    h = 1e-6
    fd = (basis.values(t + h) @ z - basis.values(t - h) @ z) / (2 * h)
    assert torch.allclose(basis.slopes(t) @ z, fd, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("rule", ["legendre", "lobatto"])
def test_residual_vanishes_on_the_exact_solution(rule):
    """With f fixed to the true dynamics, the residual of a fit of the exact solution is at round-off level
    (linear system: closed form via the matrix exponential), and it is large for wrong dynamics."""
    t = torch.linspace(0.0, 2.0, 201, dtype=D64)
    y = _linear_truth(t)
    basis = ElementBasis(0.0, 2.0, degree=14, elements=2)
    truth = SpectralObjective(lambda _, x: x @ A.T, basis, t, y, nodes_per_element=16, rule=rule)
    z = basis.fit(t, y)
    assert float(truth.data_loss(z)) < 1e-20
    assert float(truth.violation(truth.residual(z))) < 1e-16
    wrong = SpectralObjective(lambda _, x: x @ (1.1 * A).T, basis, t, y, nodes_per_element=16, rule=rule)
    assert float(wrong.violation(wrong.residual(z))) > 1e-3


def test_float32_data_gives_float32_coefficients_and_objective():
    """The fit is solved in float64 but follows the data's dtype, so a float32 field and data work as is."""
    t = torch.linspace(0.0, 2.0, 41)
    y = _linear_truth(t).float()
    basis = ElementBasis(0.0, 2.0, degree=8, elements=2)
    z = basis.fit(t, y, ridge=1e-8)
    assert z.dtype == torch.float32
    objective = SpectralObjective(lambda _, x: x @ A.float().T, basis, t, y, nodes_per_element=9)
    assert objective.data_loss(z).dtype == torch.float32 and float(objective.data_loss(z)) < 1e-6
    assert objective.residual(z).dtype == torch.float32


def test_residual_vanishes_for_the_nonlinear_swarm():
    """True nonlinear dynamics: the residual of the fitted exact solution falls spectrally with the degree."""
    t = torch.linspace(0.0, 3.0, 601, dtype=D64)
    y = swarm_data(2, 4, t, torch.Generator().manual_seed(1))
    violations = []
    for degree in (8, 12, 16):
        basis = ElementBasis(0.0, 3.0, degree=degree, elements=12)
        objective = SpectralObjective(lambda _, x: swarm_dynamics(x), basis, t, y, nodes_per_element=degree + 1)
        violations.append(float(objective.violation(objective.residual(basis.fit(t, y)))))
    assert violations[0] > 1e3 * violations[2] and violations[2] < 1e-12


class _Field(nn.Module):
    def __init__(self, dim=2, hidden=16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, dim))

    def forward(self, t, x):
        return self.net(x)


def test_objective_gradients_match_finite_differences():
    torch.manual_seed(0)
    field = _Field().double()
    t = torch.linspace(0.0, 1.0, 21, dtype=D64)
    y = _linear_truth(t)
    basis = ElementBasis(0.0, 1.0, degree=4, elements=2)
    objective = SpectralObjective(field, basis, t, y, nodes_per_element=5)
    z = basis.fit(t, y).requires_grad_(True)
    lam = torch.randn(2, objective.n_nodes, 2, dtype=D64)
    names = [name for name, _ in field.named_parameters()]

    def j(z, *theta):
        objective.field = lambda t, x: torch.func.functional_call(field, dict(zip(names, theta)), (t, x))
        return objective.data_loss(z) + objective.penalty(objective.residual(z), 0.7, lam)

    theta = [p.detach().clone().requires_grad_(True) for p in field.parameters()]
    assert torch.autograd.gradcheck(j, (z, *theta), atol=1e-6)


@pytest.mark.parametrize("dense_columns", [0, 10**9])  # ElementMap's branches: matrix-free, dense
@pytest.mark.parametrize("rule", ["legendre", "lobatto"])
def test_float32_objective_gradients_match_float64(dense_columns, rule, monkeypatch):
    """J's gradients in z and θ in float32 (the tasks' training dtype: data, field and z in float32) are the
    float64 ones to float32 round-off, on both branches of the maps (matrix-free and dense) and both rules."""
    from nodebench.snode import elements as elements_module

    monkeypatch.setattr(elements_module, "DENSE_COLUMNS", dense_columns)
    torch.manual_seed(0)
    field = _Field().double()
    t = torch.linspace(0.0, 1.0, 21, dtype=D64)
    y = _linear_truth(t)
    basis = ElementBasis(0.0, 1.0, degree=4, elements=3)
    z = basis.fit(t, y) + 0.1 * torch.randn(2, basis.n_free, 2, dtype=D64)
    lam = torch.randn(2, 3 * 5, 2, dtype=D64)
    grads = {}
    for dtype in (torch.float32, D64):
        f = _Field().to(dtype)
        f.load_state_dict(field.state_dict())
        objective = SpectralObjective(f, basis, t, y.to(dtype), nodes_per_element=5, rule=rule)
        assert (objective.node_values.matrix is None) == (dense_columns == 0)
        zd = z.to(dtype).requires_grad_(True)
        j = objective.data_loss(zd) + objective.penalty(objective.residual(zd), 0.7, lam.to(dtype))
        grads[dtype] = torch.autograd.grad(j, [zd, *f.parameters()])
    for g32, g64 in zip(grads[torch.float32], grads[D64], strict=True):
        assert g32.dtype == torch.float32 and float(g64.abs().max()) > 1e-3
        error = float((g32.double() - g64).abs().max() / g64.abs().max())
        assert error < 2e-6, error  # measured ≤ 2.0e-7


def _problem(task="cubic_spiral", **hp):
    return get_task(task).build(seed=0, device=CPU, hparams=hp)


def test_coordinate_descent_decreases_j():
    problem = _problem()
    from nodebench.harness import count_nfe

    problem.field = count_nfe(problem.field)
    cd = CoordinateDescent(problem, list(problem.model.parameters()), SnodeOptions(weight_steps=5, gamma=1.0))
    values = [float(cd.step(lambda: None)) for _ in range(60)]
    assert values[-1] < 0.5 * values[0]
    assert all(math.isfinite(v) for v in values)
    # one coefficient step with a small rate decreases J at fixed θ
    cd = CoordinateDescent(problem, list(problem.model.parameters()), SnodeOptions(coef_lr=1e-4))
    cd.setup()
    before = cd.objective.data_loss(cd.z) + cd.objective.penalty(cd.objective.residual(cd.z), cd.gamma, None)
    cd.weight_optimizer = torch.optim.SGD(cd.params, lr=0.0)  # freeze θ
    cd.step(lambda: None)
    after = cd.objective.data_loss(cd.z) + cd.objective.penalty(cd.objective.residual(cd.z), cd.gamma, None)
    assert float(after.detach()) < float(before.detach())


def test_augmented_lagrangian_multipliers_of_a_linear_problem():
    """min L(z) s.t. r(z) = 0 for the fixed linear field f = Ax, collocated at p Gauss nodes per element (one
    free initial state per trajectory): the KKT system gives z* and λ* in closed form. The method of
    multipliers with exact sub-problem solves and nodebench's update must satisfy stationarity after every
    update and converge to λ*."""
    from torch.autograd.functional import hessian, jacobian

    from nodebench.snode.coordinate_descent import multiplier_estimate

    t = torch.linspace(0, 2, 21, dtype=D64)
    y = _linear_truth(t) + 0.05 * torch.sin(7 * t)[None, :, None]  # data off the dynamics: λ* ≠ 0
    basis = ElementBasis(0.0, 2.0, degree=4, elements=2)
    objective = SpectralObjective(lambda tq, x: x @ A.T, basis, t, y, nodes_per_element=4)
    shape = (2, basis.n_free, 2)
    zero = torch.zeros(shape, dtype=D64).reshape(-1)

    def data(zf):
        return objective.data_loss(zf.reshape(shape))

    c = jacobian(lambda zf: objective.residual(zf.reshape(shape)).reshape(-1), zero)
    h, b = hessian(data, zero), jacobian(data, zero)
    weights = (objective.weights[None, :, None] / 4).expand(2, -1, 2).reshape(-1)  # ⟨a, b⟩ = Σ w_q mean_{n,d}
    n_r = c.shape[0]
    assert torch.linalg.matrix_rank(c) == n_r < h.shape[0]
    kkt = torch.cat([torch.cat([h, c.T], 1), torch.cat([c, torch.zeros(n_r, n_r, dtype=D64)], 1)])
    solution = torch.linalg.solve(kkt, torch.cat([-b, torch.zeros(n_r, dtype=D64)]))
    lam_star = (solution[h.shape[0]:] / weights).reshape(2, -1, 2)
    assert lam_star.norm() > 1e-2

    gamma, lam = 10.0, torch.zeros_like(lam_star)
    for _ in range(12):
        def augmented(zf, lam=lam):
            return data(zf) + objective.penalty(objective.residual(zf.reshape(shape)), gamma, lam)

        z = -torch.linalg.solve(hessian(augmented, zero), jacobian(augmented, zero))  # J_A is quadratic in z
        lam = multiplier_estimate(lam, objective.residual(z.reshape(shape)), gamma)
        stationarity = jacobian(
            lambda zf: data(zf) + objective.weighted_mean(lam * objective.residual(zf.reshape(shape))), z)
        assert stationarity.abs().max() < 1e-10
    assert (lam - lam_star).norm() < 1e-8 * lam_star.norm()
    assert torch.allclose(z, solution[:h.shape[0]], atol=1e-10)


def test_dual_ascent_keeps_a_step_only_if_the_violation_falls():
    from nodebench.snode.coordinate_descent import DualAscent

    dual = DualAscent(SnodeOptions(variant="augmented", dual_every=1, dual_tolerance=0.1))
    lam0, r = torch.zeros(3), torch.ones(3)
    assert torch.equal(dual.update(lam0, r, 1.0, 10.0, gamma=0.5), lam0)  # nothing to compare J_A with yet
    lam1 = dual.update(lam0, r, 1.0, 9.5, gamma=0.5)  # J_A fell by less than 10 %: a full step λ + 2γr
    assert torch.equal(lam1, r)
    assert torch.equal(dual.update(lam1, r, 2.0, 10.0, gamma=0.5), lam0)  # R rose: the step is undone
    assert dual.step_length == 0.5 and dual.rejected == 1
    assert torch.equal(dual.update(lam0, r, 1.5, 5.0, gamma=0.5), lam0)  # J_A still falling: no step
    lam2 = dual.update(lam0, r, 1.5, 5.0, gamma=0.5)  # stalled: a half step
    assert torch.allclose(lam2, 0.5 * r)
    assert torch.equal(dual.update(lam2, r, 1.0, 5.0, gamma=0.5), lam2 + r) and dual.accepted == 1


def test_dual_ascent_reads_a_relative_decrease_of_a_negative_lagrangian():
    """J_A = L + γR + ⟨λ, r⟩ can be negative. The stall test compared J_A with (1 − tol)·J_A_before, which for a
    negative J_A lies above it: a 5 % decrease (−10 → −10.5) counted as progress and a 5 % rise (−10 → −9.5) as
    no stall either, so λ was updated only after J_A rose by more than the tolerance."""
    from nodebench.snode.coordinate_descent import DualAscent

    lam0, r = torch.zeros(3), torch.ones(3)
    for before, after, stalled in ((-10.0, -10.5, True), (-10.0, -9.5, True), (-10.0, -12.0, False),
                                   (10.0, 9.5, True), (10.0, 8.0, False)):
        dual = DualAscent(SnodeOptions(variant="augmented", dual_every=1, dual_tolerance=0.1))
        assert torch.equal(dual.update(lam0, r, 1.0, before, gamma=0.5), lam0)
        expected = r if stalled else lam0  # a full step λ + 2γr once J_A fell by less than 10 % of |J_A|
        assert torch.equal(dual.update(lam0, r, 1.0, after, gamma=0.5), expected), (before, after)


@pytest.mark.parametrize("task, extra", [("vehicle", {}), ("multi_agent", {"agents": 3})])
def test_both_variants_decrease_j_and_the_violation(task, extra):
    """Float64, 30 iterations, a dual step considered every 3 (so that the augmented variant takes several):
    J and R fall by over 5× for both variants (measured on the vehicle: R by 370× for the penalty variant and
    29× for the augmented one; J_A = L + γR + ⟨λ, r⟩ may become negative)."""
    for variant in ("penalty", "augmented"):
        torch.manual_seed(0)
        problem = _problem(task, n_train=2, n_test=1, hidden=16, horizon=1.5, dtype="float64", **extra)
        cd = CoordinateDescent(problem, list(problem.model.parameters()),
                               SnodeOptions(variant=variant, weight_steps=5, dual_every=3, dual_tolerance=0.5))
        history = []
        for _ in range(30):
            history.append((float(cd.step(lambda: None)), cd.metrics()["snode_violation"]))
        (j0, r0), (j1, r1) = history[0], history[-1]
        assert all(math.isfinite(j) and math.isfinite(r) for j, r in history)
        assert j1 < 0.2 * j0 and r1 < 0.2 * r0, (variant, history[0], history[-1])
        if variant == "augmented":
            assert cd.dual.accepted + cd.dual.rejected >= 2
            assert float(cd.multipliers.abs().max()) < 1.0


def test_snode_through_the_harness_counts_and_monitors():
    problem = _problem()
    method = get_method("snode")
    settings = case_settings({"snode_weight_steps": 3, "snode_coef_steps": 2, "monitor_every": 10}, method)
    result = train(problem, method, device=CPU, iters=20, spectral=settings.spectral,
                   monitor_every=settings.monitor_every)
    curves = pd.DataFrame(result.curves)
    assert (curves["nfe_forward"] == 2).all() and (curves["nfe_backward"] == 3).all()
    assert (curves["steps_forward"] == 0).all() and (curves["steps_backward"] == 0).all()
    monitored = curves.dropna(subset=["monitor"])
    assert list(monitored["iteration"]) == [1, 10, 20]
    assert monitored["monitor"].iloc[-1] < monitored["monitor"].iloc[0]
    assert {"test_mse", "snode_violation", "snode_fit_mse", "snode_gamma"} <= set(result.metrics)
    assert result.metrics["snode_gamma"] == 0.1  # the default γ, no continuation


def test_a_penalty_iteration_reads_no_tensor_on_the_host(monkeypatch):
    """After its setup a penalty iteration makes no host read of a tensor value (on a GPU, a synchronisation
    inside the timed step): its last metrics are kept as tensors and read only by ``metrics()``."""
    problem = _problem(hidden=8)
    cd = CoordinateDescent(problem, list(problem.model.parameters()), SnodeOptions(weight_steps=2))
    cd.step(lambda: None)  # the setup (basis, fit) reads times and sizes once, in the first iteration
    reads = []
    for name in ("__float__", "__bool__", "tolist"):
        def read(self, *args, _name=name, _original=getattr(torch.Tensor, name)):
            reads.append(_name)
            return _original(self, *args)
        monkeypatch.setattr(torch.Tensor, name, read)
    cd.step(lambda: None)
    monkeypatch.undo()
    assert reads == []
    metrics = cd.metrics()
    assert set(metrics) == {"snode_fit_mse", "snode_violation", "snode_gamma"}
    assert all(type(value) is float and math.isfinite(value) for value in metrics.values())


def test_snode_on_a_trajectory_file_with_controls(tmp_path):
    t = np.linspace(0, 2, 21)
    # smooth controls: white-noise ones kinked the interpolated field at every sample, and the monitor's and
    # evaluation's tight dopri5 solves took 330 steps each (20 of the test's 38 s on a loaded machine)
    u = np.sin(t[None, :, None] + np.random.default_rng(0).uniform(0, 2 * np.pi, size=(6, 1, 1)))
    y = np.cumsum(np.concatenate([np.ones((6, 21, 1)), u], axis=-1), axis=1) * 0.1
    path = tmp_path / "data.npz"
    np.savez(path, t=t, y=y, u=u)
    case = Case(task=f"trajectories:{path}", method="snode", iters=5,
                hparams={"snode_degree": 4, "snode_variant": "augmented", "monitor_every": 2})
    (tmp_path / "out").mkdir()
    row = run_case(case, tmp_path / "out")
    assert row["status"] == "ok", row["reason"]
    assert math.isfinite(row["test_mse"]) and row["steps_forward"] == 0


def test_vector_controls_equal_scalar_calls():
    t = torch.linspace(0, 1, 6, dtype=D64)
    u = torch.randn(3, 6, 2, dtype=D64)
    controls = PiecewiseLinearControls(t, u)
    times = torch.tensor([0.0, 0.13, 0.5, 0.99, 1.0, 1.2], dtype=D64)
    batched = controls(times)
    assert batched.shape == (3, 6, 2)
    for q, s in enumerate(times):
        assert torch.allclose(batched[:, q], controls(s))


@pytest.mark.parametrize("hparams, method, match", [
    ({}, "snode", "fully observed"),
    ({"snode_degree": 0}, "rk4", "snode_degree"),  # checked whatever the method
    ({"snode_degree": 0}, "snode", "snode_degree"),
    ({"snode_variant": "exact"}, "snode", "snode_variant"),
    ({"snode_gamma": float("nan")}, "snode", "snode_gamma"),
    ({"snode_speed": 1}, "snode", "unknown SNODE option"),
    ({"reg": "speed", "reg_lambda": 0.1}, "snode", "trains without one"),
    ({"monitor_every": 0}, "snode", "monitor_every"),
])
def test_invalid_snode_settings(hparams, method, match):
    m = get_method(method)
    with pytest.raises(UserError, match=match):
        if match == "fully observed":
            m.check_task(get_task("g1d"))
        else:
            case_settings(hparams, m)


def test_snode_options_are_reported_ignored_by_other_methods():
    """A combined run (``--method snode,rk4 --hparam snode_gamma=0.1``) gives SNODE its options and warns that
    rk4 ignores them, as for a solver option a method does not use."""
    hparams = {"snode_gamma": 0.1, "gtol": 0.5}
    assert check_case(get_task("vehicle"), get_method("rk4"), hparams) == ["gtol", "snode_gamma"]
    assert check_case(get_task("vehicle"), get_method("snode"), hparams) == ["gtol"]
    assert case_settings(hparams, get_method("rk4")).spectral is None
    assert case_settings(hparams, get_method("snode")).spectral.gamma == 0.1


def test_snode_options_its_other_options_leave_without_effect_are_reported_ignored():
    """``snode_dual_*`` act only in the augmented variant and ``snode_gamma_max`` only with a continuation; set
    without them they were silently ignored (a user tuning the dual ascent of the default penalty variant saw no
    sign that it never ran). They are now warned about, as options another method does not use."""
    from nodebench.runner.settings import check_cases

    vehicle, snode = get_task("vehicle"), get_method("snode")
    inert = {"snode_dual_every": 3, "snode_dual_tolerance": 0.1, "snode_gamma_max": 1.0}
    assert check_case(vehicle, snode, inert) == sorted(inert)
    assert check_case(vehicle, snode, inert | {"snode_variant": "augmented"}) == ["snode_gamma_max"]
    assert check_case(vehicle, snode, inert | {"snode_variant": "augmented", "snode_gamma_growth": 1.01}) == []
    case = Case(task="vehicle", method="snode", iters=1, hparams={"snode_dual_every": 3})
    assert check_cases([case]) == ["method snode does not use snode_dual_every; ignored"]


def test_cli_rejects_snode_and_the_monitor_on_a_task_without_trajectories(capsys, tmp_path):
    from nodebench.cli import main

    assert main(["run", "--task", "g1d", "--method", "snode", "--iters", "1"]) == 2
    err = capsys.readouterr().err
    assert "fully observed" in err and "Traceback" not in err
    out = tmp_path / "run"
    assert main(["run", "--task", "g1d", "--method", "rk4", "--iters", "1", "--hparam", "monitor_every=5",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no training monitor" in err and "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("option, message", [
    # a count too large for a tensor size was a training-time TypeError or overflow row; "none" for a default
    # named no alternative
    ("snode_degree=1e30", "snode_degree must be an integer from 1 to 9999, got 1e+30"),
    ("snode_nodes=30000", "snode_nodes must be an integer from 1 to 10000 or null (p + 1), got 30000"),
    ("snode_elements=1000000000000", "snode_elements must be an integer from 1 to 1000000 or null (auto)"),
    ("snode_elements=none", "snode_elements must be an integer from 1 to 1000000 or null (auto), got 'none'"),
    ("snode_gamma_max=none", "snode_gamma_max must be a finite number >= 0.1 or null (no limit), got 'none'"),
    ("snode_degree=2.5", "snode_degree must be an integer"),
    ("snode_weight_steps=NaN", "snode_weight_steps must be an integer"),
    ("snode_nodes=0", "snode_nodes must be an integer from 1"),
    ("snode_gamma=-1", "snode_gamma must be a finite number > 0"),
    ("snode_ridge=nan", "snode_ridge must be a finite number >= 0"),
    ("snode_dual_tolerance=1", "snode_dual_tolerance must be < 1"),
])
def test_cli_refuses_bad_snode_option_values_in_one_line(capsys, tmp_path, option, message):
    from nodebench.cli import main

    out = tmp_path / "run"
    assert main(["run", "--task", "vehicle", "--method", "snode", "--iters", "1", "--hparam", option,
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_vehicle_dynamics_straight_line_and_swarm_symmetry():
    s = torch.tensor([[0.0, 0.0, 0.3, 2.0, 0.0, 0.0]], dtype=D64)
    ds = vehicle_dynamics(s, torch.tensor([[0.0, 0.3]], dtype=D64))
    assert torch.allclose(ds[0, :2], 2.0 * torch.tensor([math.cos(0.3), math.sin(0.3)], dtype=D64))
    assert torch.allclose(ds[0, 2:], torch.tensor([0.0, 0.3 - 0.15 * 2.0, 0.0, 0.0], dtype=D64))
    # two agents mirrored through the origin at rest: accelerations mirror too
    s = torch.tensor([[1.0, 0.5, -1.0, -0.5, 0.0, 0.0, 0.0, 0.0]], dtype=D64)
    acc = swarm_dynamics(s)[0, 4:].reshape(2, 2)
    assert torch.allclose(acc[0], -acc[1])
    # the documented formula, in closed form: at rest at (±0.1, 0), both interaction terms pull the agents together
    s = torch.tensor([[0.1, 0.0, -0.1, 0.0, 0.0, 0.0, 0.0, 0.0]], dtype=D64)
    pull = -0.5 * 0.1 + (1.0 * -0.2 + 0.5 * -0.2 / (0.2 ** 2 + 0.1)) / 2  # −k_t p + (k_a d + k_r d/(d² + ε))/A
    assert torch.allclose(swarm_dynamics(s)[0, 4:], torch.tensor([pull, 0.0, -pull, 0.0], dtype=D64))


def test_system_tasks_build():
    for name, dim in (("vehicle", 6), ("multi_agent", 16)):
        extra = {"agents": 4} if name == "multi_agent" else {}
        p = _problem(name, n_train=3, n_test=2, horizon=1.0, dt=0.25, **extra)
        assert p.y_train.shape == (3, 5, dim) and p.y_test.shape == (2, 5, dim)
        q = _problem(name, n_train=3, n_test=2, horizon=1.0, dt=0.25, noise=0.0, **extra)
        assert 0 < float((p.y_train - q.y_train).std()) < 0.02  # noise 0.01 on training data only
        assert torch.equal(p.y_test, q.y_test)
    with pytest.raises(UserError, match="noise"):
        _problem("vehicle", noise=-1.0)


def test_time_to_target_rules_and_claim():
    records = pd.DataFrame({"case_id": ["a", "b"], "method": ["snode", "direct"], "seed": [0, 0],
                            "status": ["ok", "ok"], "experiment": ["e", "e"], "hparams": ['{"n_train": 4}'] * 2})
    nan = math.nan
    curves = pd.DataFrame({"case_id": ["a"] * 3 + ["b"] * 3, "iteration": [1, 2, 3] * 2,
                           "elapsed_s": [0.1, 0.2, 0.3, 1.0, 2.0, 3.0], "monitor": [5.0, 0.5, 0.1, 5.0, nan, 1.0]})
    table = time_to_target_table(records, curves)
    assert set(table["target"]) == {1.0}  # the worse method's best
    times = dict(zip(table["method"], table["time_to_target_s"]))
    assert times == {"snode": 0.2, "direct": 3.0}
    verdict = check_claims([{"id": "S1", "text": "t", "check": "time_to_target", "method": "snode",
                             "baseline": "direct", "min": 10}], records, {"time_to_target": table})[0]
    assert verdict.verdict == "holds" and "15×" in verdict.measured
    fixed = time_to_target_table(records, curves, target=0.3)
    assert fixed.set_index("method").loc["direct", "reached"] == False  # noqa: E712
    # pairwise targets: a third, slow method does not lower the bar between the other two
    slow = pd.DataFrame({"case_id": ["c"] * 2, "iteration": [1, 2], "elapsed_s": [5.0, 9.0], "monitor": [9.0, 4.0]})
    records3 = pd.concat([records, records.iloc[[1]].assign(case_id="c", method="adjoint")], ignore_index=True)
    common = time_to_target_table(records3, pd.concat([curves, slow]))
    assert set(common["target"]) == {4.0}
    pairs = time_to_target_table(records3, pd.concat([curves, slow]), pair_with="snode")
    assert dict(zip(pairs["versus"], pairs["target"])) == {"direct": 1.0, "adjoint": 4.0}
    verdict = check_claims([{"id": "S1", "text": "t", "check": "time_to_target", "method": "snode",
                             "baseline": "adjoint", "min": 10}], records3, {"time_to_target": pairs})[0]
    assert "adjoint/snode" in verdict.measured and "9 s / 0.2 s" in verdict.measured


def _snode_run(warmup=1, **hp):
    from nodebench.training import SpectralStep

    problem = _problem()
    method = get_method("snode")
    settings = case_settings({"snode_variant": "augmented", "snode_coef_steps": 2, "snode_weight_steps": 2,
                              "snode_dual_every": 1, "snode_gamma_growth": 1.5, **hp}, method)
    seen = []
    step = SpectralStep.step

    def spy(self, boundary):
        seen.append(len(self.weight_optimizer.state))
        return step(self, boundary)

    SpectralStep.step = spy
    try:
        result = train(problem, method, device=CPU, iters=4, warmup=warmup, spectral=settings.spectral)
    finally:
        SpectralStep.step = step
    return result, [p.detach().clone() for p in problem.model.parameters()], seen


def test_snode_allocated_peaks_and_the_passes_leave_training_and_evaluation_bit_identical(monkeypatch):
    from nodebench.training import SpectralStep

    result, params, seen = _snode_run()
    # the coefficient block's peak is the iteration's: the weight block's regression on fixed slopes needs less
    assert result.alloc_peak_bytes == result.alloc_peak_forward_bytes > 0
    assert result.alloc_peak_optimizer_bytes is None  # SNODE's Adam steps belong to its blocks
    assert seen[:4] == [len(params)] * 4  # the weight optimiser's state exists before the first timed iteration
    monkeypatch.setattr(SpectralStep, "measure_memory", lambda self, device: (None, None, None))
    plain, plain_params, _ = _snode_run()
    assert plain.alloc_peak_bytes is None
    assert result.curves["loss"] == plain.curves["loss"]
    assert result.metrics == plain.metrics  # λ, γ, the dual ascent's state and the last metrics set back
    assert all(torch.equal(a, b) for a, b in zip(params, plain_params))


def test_snode_warmup_leaves_no_trace():
    warm, warm_params, _ = _snode_run(warmup=2)
    cold, cold_params, seen = _snode_run(warmup=0)
    assert seen[0] == 0  # without warm-up the first iteration allocates the weight optimiser's state
    assert warm.curves["loss"] == cold.curves["loss"] and warm.metrics == cold.metrics
    assert all(torch.equal(a, b) for a, b in zip(warm_params, cold_params))


def test_gauss_lobatto_end_nodes_take_their_own_elements_slope():
    """A Gauss–Lobatto node at the end of element e (τ = 1) lies on the boundary with element e + 1, where the
    slope of C⁰ elements jumps; its residual must use element e's slope. For a linear field and degree p the
    residual is a polynomial of degree p per element, so Gauss–Legendre with p + 1 nodes and Gauss–Lobatto with
    p + 2 both give R exactly, on any trajectory. Before, the end node was located in the next element: R came
    out 9 % too large (27.81 against 25.51) on the trajectory below."""
    t = torch.linspace(0.0, 5.0, 51, dtype=D64)
    y = torch.randn(2, 51, 2, generator=torch.Generator().manual_seed(0), dtype=D64)
    basis = ElementBasis(0.0, 5.0, degree=4, elements=5)
    z = basis.fit(t, y, ridge=1e-8)
    violations = {}
    for rule, nodes in (("legendre", 5), ("lobatto", 6), ("lobatto", 9)):
        objective = SpectralObjective(lambda _, x: x @ A.T, basis, t, y, nodes_per_element=nodes, rule=rule)
        violations[rule, nodes] = float(objective.violation(objective.residual(z)))
    assert violations["legendre", 5] > 1.0  # a trajectory far from a solution, so the slopes jump
    for value in violations.values():
        assert value == pytest.approx(violations["legendre", 5], rel=1e-12)
    jump = basis.slopes(torch.tensor([1.0, 1.0], dtype=D64), torch.tensor([0, 1])) @ z  # both sides of t = 1
    assert (jump[:, 0] - jump[:, 1]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="one index in 0..4 per time"):
        basis.values(torch.tensor([1.0]), torch.tensor([5]))
