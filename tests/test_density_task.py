"""Tests for the CNF density tasks (nodebench.tasks.density) trained through the measured harness."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torchdiffeq import odeint

from nodebench.errors import UserError
from nodebench.methods import get_method
from nodebench.tasks import FILE_TASKS, TASKS, get_task
from nodebench.tasks.density import DensityFile, inverse_errors
from nodebench.training import train

CPU = torch.device("cpu")
SMALL_TOY = {"hidden_dims": [16, 16], "n_train": 512, "n_val": 16, "n_test": 128, "batch_size": 128,
             "eval_size": 128, "test_batch_size": 64, "test_step_sizes": [0.25, 0.1]}
SMALL_TAB = {"hidden_dims": [16, 16], "batch_size": 64, "eval_size": 64, "test_step_sizes": [0.5, 0.25]}
METRICS = ("test_nll", "test_nll_train_solver", "inverse_error", "inverse_error_frob")


def build(name, seed=0, **hparams):
    return get_task(name).build(seed=seed, device=CPU, hparams=hparams)


def check_table(result, step_sizes):
    rows = result.tables["rediscretisation"]
    assert [r["solver"] for r in rows] == ["reference"] + ["rk4_classic"] * len(step_sizes)
    assert math.isnan(rows[0]["step_size"])
    assert [r["step_size"] for r in rows[1:]] == step_sizes
    for row in rows:
        assert all(math.isfinite(row[k]) for k in ("test_nll", "inverse_error", "inverse_error_frob"))
    assert rows[0]["test_nll"] == result.metrics["test_nll"]


def test_registry_names():
    for name in ("cnf_toy_8gaussians", "cnf_toy_moons", "cnf_toy_checkerboard", "cnf_toy_rings", "cnf_power",
                 "cnf_gas", "cnf_hepmass", "cnf_miniboone", "cnf_bsds300", "cnf_sklearn_wine",
                 "cnf_sklearn_digits", "cnf_sklearn_breast_cancer"):
        assert name in TASKS
        assert TASKS[name]().metrics[0] == "test_nll"
    assert FILE_TASKS["density"] is DensityFile
    toy = TASKS["cnf_toy_moons"]()
    assert toy.defaults["hidden_dims"] == [64, 64, 64] and toy.defaults["trace"] == "exact"
    assert toy.defaults["t1"] == 0.5 and toy.defaults["train_t1"] is False
    maf = TASKS["cnf_miniboone"]()
    assert (maf.defaults["hdim_factor"], maf.defaults["nhidden"], maf.defaults["activation"]) == (20, 2, "softplus")
    assert maf.defaults["trace"] == "hutchinson" and maf.defaults["batch_size"] == 1000


def test_toy_rk4_trains_with_exact_nfe_and_rediscretisation_table():
    problem = build("cnf_toy_moons", **SMALL_TOY)
    result = train(problem, get_method("rk4"), device=CPU, iters=3, solver_options={"step_size": 0.25})
    # classic RK4, T = 0.5, h = 0.25: 2 steps × 4 evaluations of the augmented field; backprop adds none
    assert result.curves["nfe_forward"] == [8, 8, 8]
    assert result.curves["nfe_backward"] == [0, 0, 0]
    assert result.curves["steps_forward"] == [2, 2, 2]
    for key in METRICS:
        assert math.isfinite(result.metrics[key]), key
    assert result.metrics["inverse_error"] >= result.metrics["inverse_error_frob"] > 0
    assert result.metrics["t1"] == 0.5
    check_table(result, [0.25, 0.1])
    # the training solve is classic RK4 at h = 0.25, so the first re-discretisation row reproduces it
    assert result.tables["rediscretisation"][1]["test_nll"] == pytest.approx(result.metrics["test_nll_train_solver"],
                                                                             rel=1e-5)
    assert result.tables["rediscretisation"][1]["nfe_per_solve"] == 8
    assert result.tables["rediscretisation"][2]["nfe_per_solve"] == 20


def test_toy_adjoint_counts_backward_evaluations():
    problem = build("cnf_toy_moons", **SMALL_TOY)
    result = train(problem, get_method("adjoint"), device=CPU, iters=3,
                   solver_options={"rtol": 1e-4, "atol": 1e-4})
    assert all(n > 0 for n in result.curves["nfe_forward"])
    assert all(n > 0 for n in result.curves["nfe_backward"])
    for key in METRICS:
        assert math.isfinite(result.metrics[key]), key
    check_table(result, [0.25, 0.1])


def test_loss_is_mean_nll_under_standard_normal():
    problem = build("cnf_toy_moons", **SMALL_TOY)
    solve = get_method("rk4").make_solve(step_size=0.25)
    loss = problem.loss(solve)  # the first batch of the first epoch permutation
    idx = problem._order[: problem.batch_size]
    x = problem.data.train[idx]
    z, logdet = problem.cnf(x)
    log_p = -0.5 * (z**2).sum(1) - math.log(2 * math.pi) + logdet
    torch.testing.assert_close(loss, -log_p.mean())


def test_hutchinson_probe_drawn_once_per_solve():
    problem = build("cnf_sklearn_iris", **SMALL_TAB)
    assert problem.train_trace == "hutchinson"
    seen = []

    class Spy(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, t, y):
            seen.append(problem.augmented.noise)
            return self.inner(t, y)

    problem.field = Spy(problem.field)
    solve = get_method("rk4").make_solve(step_size=0.25)
    problem.loss(solve)
    first = list(seen)
    assert len(first) == 16  # T = 1, h = 0.25: 4 steps × 4 stages
    assert all(noise is first[0] for noise in first)
    seen.clear()
    problem.loss(solve)
    assert all(noise is seen[0] for noise in seen) and seen[0] is not first[0]


def test_sklearn_task_trains_and_evaluates():
    problem = build("cnf_sklearn_iris", **SMALL_TAB)
    result = train(problem, get_method("rk4"), device=CPU, iters=2, solver_options={"step_size": 0.5})
    assert result.curves["nfe_forward"] == [8, 8]  # T = 1, h = 0.5
    assert problem.provenance["dataset"] == "sklearn:iris" and problem.provenance["n_test"] > 0
    for key in METRICS:
        assert math.isfinite(result.metrics[key]), key
    check_table(result, [0.5, 0.25])


def test_inverse_error_definitions():
    x = torch.zeros(4, 2)
    x_hat = torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    mean_l2, frob = inverse_errors(x, x_hat)
    assert mean_l2 == pytest.approx(5.0 / 4)
    assert frob == pytest.approx(5.0 / 4)
    x_hat = torch.full((4, 2), 1.0)
    mean_l2, frob = inverse_errors(x, x_hat)
    assert mean_l2 == pytest.approx(math.sqrt(2))
    assert frob == pytest.approx(math.sqrt(8) / 4)  # √n smaller than the per-sample mean


def test_density_file_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        get_task(f"density:{tmp_path / 'missing.npy'}")
    np.save(tmp_path / "cube.npy", np.zeros((20, 2, 2)))
    with pytest.raises(UserError, match="2-D"):
        get_task(f"density:{tmp_path / 'cube.npy'}")
    bad = np.ones((20, 2))
    bad[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(UserError, match="NaN"):
        get_task(f"density:{tmp_path / 'nan.npy'}")
    (tmp_path / "text.npy").write_text("not an array")
    with pytest.raises(UserError):
        get_task(f"density:{tmp_path / 'text.npy'}")
    with pytest.raises(UserError, match="names no file"):
        get_task("density:")


def test_density_file_nll_in_data_units(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(200, 3)) @ np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 2.0]])
    np.save(tmp_path / "a.npy", data)
    np.save(tmp_path / "b.npy", 10.0 * data)
    hp = {"hidden_dims": [8], "eval_size": 64, "test_step_sizes": [0.5]}
    solve = get_method("rk4").make_solve(step_size=0.5)
    a = get_task(f"density:{tmp_path / 'a.npy'}").build(seed=1, device=CPU, hparams=hp)
    b = get_task(f"density:{tmp_path / 'b.npy'}").build(seed=1, device=CPU, hparams=hp)
    assert a.train_trace == "hutchinson"
    assert a.provenance == {"dataset": str(tmp_path / "a.npy"), "n_train": 160, "n_val": 20, "n_test": 20,
                            "data_verified": False}  # the file and its 80/10/10 split, on every row
    nll_a, nll_b = a.evaluate(solve)["test_nll"], b.evaluate(solve)["test_nll"]
    assert nll_b - nll_a == pytest.approx(3 * math.log(10.0), rel=1e-4)
    # a file task trains through the harness
    result = train(a, get_method("rk4"), device=CPU, iters=1, solver_options={"step_size": 0.5})
    assert math.isfinite(result.metrics["test_nll"])


def test_missing_maf_data_is_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path))
    with pytest.raises(UserError):
        build("cnf_miniboone")


def test_unknown_hparam_and_bad_values():
    with pytest.raises(UserError, match="no hyper-parameter"):
        build("cnf_toy_moons", width=3)
    with pytest.raises(UserError, match="test_step_sizes"):
        build("cnf_toy_moons", **(SMALL_TOY | {"test_step_sizes": [0.1, 0.0]}))
    with pytest.raises(UserError, match="dtype"):
        build("cnf_toy_moons", **(SMALL_TOY | {"dtype": "float16"}))


def test_reference_solver_is_tight_for_float64():
    problem = build("cnf_toy_moons", **(SMALL_TOY | {"dtype": "float64", "eval_tol": 1e-9}))
    solve = get_method("rk4").make_solve(step_size=0.025)
    metrics = problem.evaluate(solve)
    assert metrics["test_nll_train_solver"] == pytest.approx(metrics["test_nll"], abs=1e-6)
    assert metrics["inverse_error_reference"] < 1e-6
    # evaluation never changes the training trace or leaves the model on the evaluation solver
    assert problem.cnf.trace == problem.train_trace
    assert problem.cnf.solve is solve
    tight = lambda f, y0, t: odeint(f, y0, t, method="dopri5", rtol=1e-10, atol=1e-10)  # noqa: E731
    problem.cnf.solve = tight
    problem.cnf.trace = "exact"
    with torch.no_grad():
        x = problem.data.test[: problem.eval_size]
        nll = float(-problem.flow.log_prob(x).mean())
    assert nll == pytest.approx(metrics["test_nll"], abs=1e-6)


def test_density_grid_is_a_normalised_2d_density():
    """The learned density on the grid integrates to about the mass inside the grid's box (≤ 1)."""
    problem = build("cnf_toy_8gaussians", density_grid=48, eval_size=100, test_step_sizes=[0.25],
                    hidden_dims=[8, 8], dtype="float64")
    problem.evaluate(get_method("rk4").make_solve(step_size=0.25))
    grid = problem.tables["density_grid"]
    assert len(grid) == 48 * 48
    xs = sorted({row["x"] for row in grid})
    cell = (xs[1] - xs[0]) ** 2
    mass = sum(math.exp(row["log_prob"]) for row in grid) * cell
    assert 0.9 < mass < 1.02, mass
    # tabular (D > 2) problems have no grid
    tabular = build("cnf_sklearn_iris", eval_size=50, test_step_sizes=[0.5])
    tabular.evaluate(get_method("rk4").make_solve(step_size=0.5))
    assert "density_grid" not in tabular.tables


def test_test_nfe_is_a_dopri5_solve_at_nfe_tol_and_grows_as_it_tightens():
    nfes = []
    for tol in (1e-2, 1e-6):
        problem = get_task("cnf_toy_8gaussians").build(seed=0, device=torch.device("cpu"),
                                                      hparams={"eval_size": 64, "nfe_tol": tol, "density_grid": 0,
                                                               "test_step_sizes": []})
        nfes.append(problem.evaluate(get_method("rk4").make_solve(step_size=0.25))["test_nfe"])
    assert all((n - 2) % 6 == 0 for n in nfes)  # 2 + 6 × attempted steps
    assert nfes[1] > nfes[0]


def test_density_file_values_are_checked_as_the_model_sees_them(tmp_path, capsys):
    """Files finite in float64 failed at run time ("diverged"): now the standardized, cast values are checked."""
    data = np.random.default_rng(0).normal(size=(50, 2))
    np.save(tmp_path / "huge.npy", data * 1e300)
    np.save(tmp_path / "big.npy", data * 1e100)
    huge, big = get_task(f"density:{tmp_path / 'huge.npy'}"), get_task(f"density:{tmp_path / 'big.npy'}")
    with pytest.raises(UserError, match="too large to standardize"):
        huge.hparams({})
    with pytest.raises(UserError, match="beyond the range of float32.*dtype=float64"):
        huge.hparams({"standardize": False})
    huge.hparams({"standardize": False, "dtype": "float64"})
    big.hparams({})  # z-scored before the cast: finite in float32
    with pytest.raises(UserError, match="beyond the range of float32"):
        big.hparams({"standardize": False})
    from nodebench.cli import main

    out = tmp_path / "run"
    for extra in (["--dry-run"], ["--out", str(out)]):
        assert main(["run", "--task", f"density:{tmp_path / 'huge.npy'}", "--method", "rk4", "--iters", "2",
                     *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "too large to standardize" in err, err
    assert not out.exists()


@pytest.mark.parametrize("name, task", [("moons", "cnf_toy_moons"), ("power", "cnf_power"),
                                        ("sklearn:wine", "cnf_sklearn_wine")])
def test_density_file_named_data_set_points_to_its_task(name, task):
    """``density:moons`` was refused with a list of names that claimed ``moons`` was valid."""
    with pytest.raises(UserError, match=f"density:PATH takes an existing N×D .npy file.*--task {task}$") as info:
        get_task(f"density:{name}")
    assert "one of" not in str(info.value) and task in TASKS


def test_density_file_folder_and_unknown_name(tmp_path):
    with pytest.raises(UserError, match="is a folder; give an N×D .npy file"):
        get_task(f"density:{tmp_path}")
    with pytest.raises(UserError, match="not found: nope; .*tasks of their own") as info:
        get_task("density:nope")
    assert "power, gas" not in str(info.value)


def test_density_file_grid_is_in_the_file_s_units(tmp_path):
    """The ``density_grid`` of a z-scored 2-D file had its points in the standardized space but its log-density
    in the file's units, so it integrated to ∏σ⁻¹ (0.01 here) over a box away from the data."""
    data = np.random.default_rng(0).normal(size=(400, 2)) * 10.0 + np.array([50.0, -20.0])
    np.save(tmp_path / "scaled.npy", data)
    problem = get_task(f"density:{tmp_path / 'scaled.npy'}").build(
        seed=0, device=CPU, hparams={"hidden_dims": [8], "eval_size": 40, "test_step_sizes": [0.5],
                                     "density_grid": 40, "dtype": "float64"})
    problem.evaluate(get_method("rk4").make_solve(step_size=0.5))
    grid = problem.tables["density_grid"]
    xs, ys = sorted({row["x"] for row in grid}), sorted({row["y"] for row in grid})
    assert xs[0] < 30 and xs[-1] > 70 and ys[0] < -40 and ys[-1] > 0  # covers the data, in its units
    mass = sum(math.exp(row["log_prob"]) for row in grid) * (xs[1] - xs[0]) * (ys[1] - ys[0])
    assert 0.9 < mass < 1.02, mass


def test_density_file_with_a_constant_column_is_refused(tmp_path, capsys):
    """A zero-variance column was only centred and trained: a finite but meaningless NLL (a point mass has none)."""
    data = np.random.default_rng(0).normal(size=(50, 3))
    data[:, 1] = 5.0
    np.save(tmp_path / "const.npy", data)
    with pytest.raises(UserError, match=r"1 constant column\(s\) \(zero variance\): 2, counting from 1"):
        get_task(f"density:{tmp_path / 'const.npy'}")
    from nodebench.cli import main

    assert main(["run", "--task", f"density:{tmp_path / 'const.npy'}", "--method", "rk4", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "constant column" in err, err


def test_density_file_column_constant_where_the_model_is_fitted_is_refused(tmp_path, capsys):
    """A column varying only in the test rows was only centred: the model trained on a point mass (its loss has
    no lower bound) and was scored on rows off it."""
    from nodebench.cli import main

    data = np.random.default_rng(0).normal(size=(50, 3))
    data[:, 2] = 0.0
    data[np.random.default_rng(0).permutation(50)[7], 2] = 1.0  # a test row of seed 0's 80/10/10 split
    np.save(tmp_path / "rare.npy", data)
    task = get_task(f"density:{tmp_path / 'rare.npy'}")  # the file as a whole has no constant column
    message = r"seed 0's split have 1 constant column\(s\) \(zero variance\): 3, counting from 1"
    for standardize in (True, False):
        with pytest.raises(UserError, match=message):
            task.hparams({"standardize": standardize})
    assert main(["run", "--task", f"density:{tmp_path / 'rare.npy'}", "--method", "rk4", "--out",
                 str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "differ only in test rows" in err, err
    assert not (tmp_path / "run").exists()


def test_density_file_of_booleans_is_refused(tmp_path):
    """Booleans (two point masses, unbounded like a constant column) were accepted as a density to fit."""
    np.save(tmp_path / "flags.npy", np.random.default_rng(0).normal(size=(50, 2)) > 0)
    with pytest.raises(UserError, match=r"holds bool data; expected a real \(integer or float\) N×D array"):
        get_task(f"density:{tmp_path / 'flags.npy'}")
