"""Tests for the TayNODE tasks: MNIST-style classification on raw pixels (nodebench.papers.taynode.classification),
the latent ODE (nodebench.papers.taynode.latent_ode) and the PhysioNet 2012 record reader
(nodebench.datasets.physionet).

Record files are written in the challenge's format into a temporary data directory; MNIST is a few tiny
IDX files; the training tests use the offline presets (sklearn digits, synthetic series).
"""

import math

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torchdiffeq import odeint

from nodebench.datasets import physionet
from nodebench.datasets.physionet import PARAMETERS, collate, load_physionet, parse_record, record_files
from nodebench.errors import UserError
from nodebench.harness.nfe import CountingField
from nodebench.methods import get_method
from nodebench.tasks import TASKS, get_task
from nodebench.papers.taynode.classification import ConcatSigmoidMLP, ODEClassifier, counted_dopri5
from nodebench.papers.taynode.latent_ode import LatentGRU, TanhMLPDynamics
from nodebench.training import train

CPU = torch.device("cpu")
DIGITS = {"n_train": 60, "n_test": 30, "batch_size": 20, "hidden": 16}
SYNTH = {"n_records": 24, "n_channels": 4, "n_obs": 6, "batch_size": 6, "eval_batch_size": 10, "eval_tol": 1e-6,
         "latent_dim": 4, "rec_dim": 6, "gru_units": 8, "rec_to_gen_units": 8, "dynamics_units": 8}
TOLS = {"rtol": 1e-3, "atol": 1e-3}
HR, WEIGHT, GCS = PARAMETERS.index("HR"), PARAMETERS.index("Weight"), PARAMETERS.index("GCS")


# -- PhysioNet record files ------------------------------------------------------------------------------------

RECORD = """Time,Parameter,Value
00:00,RecordID,132539
00:00,Age,54
00:00,Gender,0
00:00,Height,-1
00:00,ICUType,4
00:00,Weight,80.5
00:10,HR,70
00:40,HR,80
00:50,HR,90
00:50,GCS,15
01:30,HR,100
02:30,GCS,9
"""


def write_record(folder, name, text=RECORD):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.txt").write_text(text)


def test_parse_record_quantises_averages_and_drops_descriptors(tmp_path):
    write_record(tmp_path, "132539")
    r = parse_record(tmp_path / "132539.txt")
    assert r.record_id == "132539" and r.values.shape == (3, 37) == r.mask.shape
    # 00:10 -> 0 h; 00:40 and 00:50 -> 1 h; 01:30 -> 2 h and 02:30 -> 2 h (round half to even, as the official code)
    np.testing.assert_array_equal(r.times, [0.0, 1.0, 2.0])
    assert r.values[0, WEIGHT] == 80.5 and r.values[0, HR] == 70
    assert r.values[1, HR] == 85 and r.values[1, GCS] == 15  # two HR measurements in one bin are averaged
    assert r.values[2, HR] == 100 and r.values[2, GCS] == 9
    expected = np.zeros((3, 37))
    expected[0, [WEIGHT, HR]] = 1
    expected[1, [HR, GCS]] = 1
    expected[2, [HR, GCS]] = 1
    np.testing.assert_array_equal(r.mask, expected)
    assert np.all(r.values[r.mask == 0] == 0)
    fine = parse_record(tmp_path / "132539.txt", quantization=0)
    np.testing.assert_allclose(fine.times, [0, 10 / 60, 40 / 60, 50 / 60, 1.5, 2.5])


def test_record_without_a_time_zero_observation_still_starts_at_zero(tmp_path):
    write_record(tmp_path, "1", "Time,Parameter,Value\n03:00,HR,60\n")
    r = parse_record(tmp_path / "1.txt")
    np.testing.assert_array_equal(r.times, [0.0, 3.0])
    assert r.mask[0].sum() == 0 and r.mask[1, HR] == 1


@pytest.mark.parametrize("text, match", [
    ("Tijd,Parameter,Value\n00:00,HR,1\n", "expected 'Time,Parameter,Value'"),
    ("Time,Parameter,Value\n00:00,HR\n", "2 comma-separated fields"),
    ("Time,Parameter,Value\n0.5,HR,1\n", "is not HH:MM"),
    ("Time,Parameter,Value\n00:75,HR,1\n", "is not HH:MM"),
    ("Time,Parameter,Value\n00:10,Pulse,1\n", "unknown parameter 'Pulse'"),
    ("Time,Parameter,Value\n00:10,HR,fast\n", "is not a number"),
    ("Time,Parameter,Value\n00:10,HR,nan\n", "not finite"),
    ("Time,Parameter,Value\n49:00,HR,1\n", "after 48:00"),
])
def test_malformed_record_is_a_one_line_user_error(tmp_path, text, match):
    write_record(tmp_path, "7", text)
    with pytest.raises(UserError, match=match) as err:
        parse_record(tmp_path / "7.txt")
    assert "\n" not in str(err.value) and "7.txt" in str(err.value)


def test_load_physionet_reads_sets_in_order_caps_and_reports_missing_folders(tmp_path):
    with pytest.raises(UserError) as err:
        load_physionet(tmp_path)
    message = str(err.value)
    assert "\n" not in message and "physionet/set-a/<RecordID>.txt" in message and "NODEBENCH_DATA" in message
    assert str(tmp_path) in message and "datasets/README.md" in message
    write_record(tmp_path / "physionet" / "set-a", "2")
    write_record(tmp_path / "physionet" / "set-a", "1", "Time,Parameter,Value\n00:00,HR,1\n")
    with pytest.raises(UserError, match="set-b"):
        load_physionet(tmp_path)
    (tmp_path / "physionet" / "set-b").mkdir()
    with pytest.raises(UserError, match="holds no .txt record files"):
        load_physionet(tmp_path)
    write_record(tmp_path / "physionet" / "set-b", "0")
    assert [r.record_id for r in load_physionet(tmp_path)] == ["1", "2", "0"]
    assert [r.record_id for r in load_physionet(tmp_path, n_records=2)] == ["1", "2"]
    assert [p.name for p in record_files(tmp_path, ["set-b"])] == ["0.txt"]
    with pytest.raises(UserError, match="n_records"):
        load_physionet(tmp_path, n_records=0)


def test_normalisation_and_union_grid():
    rec = physionet.Record
    a = rec("a", np.array([0.0, 24.0]), np.array([[2.0, 0.0], [4.0, 5.0]]), np.array([[1.0, 0.0], [1.0, 1.0]]))
    b = rec("b", np.array([0.0, 12.0]), np.array([[0.0, 0.0], [6.0, 0.0]]), np.array([[0.0, 0.0], [1.0, 0.0]]))
    lo, hi = physionet.channel_range([a, b])
    np.testing.assert_array_equal(lo, [2.0, 5.0])
    np.testing.assert_array_equal(hi, [6.0, 5.0])
    na, nb = physionet.normalise([a, b], lo, hi, "minmax")
    np.testing.assert_allclose(na.values, [[0.0, 0.0], [0.5, 0.0]])  # constant channel: divided by 1
    np.testing.assert_allclose(nb.values, [[0.0, 0.0], [1.0, 0.0]])  # unobserved entries stay 0
    oa, _ = physionet.normalise([a, b], lo, hi, "official")
    np.testing.assert_allclose(oa.values, [[0.0, 0.0], [2 / 6, 0.0]])  # (x - min) / max
    with pytest.raises(UserError):
        physionet.normalise([a], lo, hi, "zscore")
    lo1, hi1 = physionet.channel_range([b])
    np.testing.assert_array_equal(lo1, [6.0, 0.0])
    np.testing.assert_array_equal(hi1, [6.0, 1.0])  # never observed: (0, 1)
    grid, values, mask = collate([physionet.to_series(na), physionet.to_series(nb)])
    torch.testing.assert_close(grid, torch.tensor([0.0, 0.25, 0.5], dtype=torch.float64))
    assert values.shape == (2, 3, 2) and float(mask[0, 1].sum()) == 0 and float(mask[1, 2].sum()) == 0
    assert float(values[0, 2, 0]) == 0.5 and float(values[1, 1, 0]) == 1.0


def test_physionet_task_builds_from_record_files(tmp_path, monkeypatch, single_thread):
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path))
    with pytest.raises(UserError, match="PhysioNet 2012 data not found"):
        get_task("latent_ode_physionet").build(seed=0, device=CPU, hparams={})
    rng = np.random.default_rng(0)
    for folder, ids in (("set-a", range(100, 106)), ("set-b", range(200, 204))):
        for rid in ids:
            lines = ["Time,Parameter,Value", f"00:00,RecordID,{rid}", "00:00,Age,60"]
            for minute in sorted(rng.choice(48 * 60, size=8, replace=False)):
                name = PARAMETERS[rng.integers(0, 37)]
                lines.append(f"{minute // 60:02d}:{minute % 60:02d},{name},{rng.normal(50, 10):.2f}")
            write_record(tmp_path / "physionet" / folder, str(rid), "\n".join(lines) + "\n")
    hp = {"batch_size": 4, "eval_tol": 1e-6, "latent_dim": 4, "rec_dim": 6, "gru_units": 8, "dynamics_units": 8,
          "n_records": 9}
    problem = get_task("latent_ode_physionet").build(seed=0, device=CPU, hparams=hp)
    assert len(problem.train) == 7 and len(problem.test) == 2  # 80/20 of the first 9 records
    values = torch.cat([s.values[s.mask > 0] for s in problem.train])
    assert float(values.min()) >= 0.0 and float(values.max()) <= 1.0  # min-max over the training split
    assert all(float(s.times.max()) <= 1.0 and float(s.times[0]) == 0.0 for s in problem.train + problem.test)
    assert problem.train[0].values.shape[1] == 37
    result = train(problem, get_method("direct"), device=CPU, iters=1, solver_options=TOLS)
    assert all(math.isfinite(v) for v in result.metrics.values())


# -- offline tasks: training ---------------------------------------------------------------------------------

def test_registry_and_defaults():
    for name in ("mnist_ode", "digits_ode", "latent_ode_physionet", "latent_ode_synthetic"):
        assert TASKS[name]().paper == "taynode"
    hp = get_task("mnist_ode").hparams()
    assert (hp["hidden"], hp["batch_size"], hp["lr"], hp["dtype"]) == (100, 100, 1e-2, "float32")
    assert get_task("digits_ode").hparams()["lr"] == 1e-3
    assert get_task("mnist_ode").metrics == ("test_accuracy", "test_loss", "train_accuracy", "test_nfe",
                                             "test_nfe_train_solver")
    hp = get_task("latent_ode_physionet").hparams()
    assert (hp["latent_dim"], hp["rec_dim"], hp["gru_units"], hp["dynamics_units"], hp["dynamics_layers"]) == \
        (20, 40, 50, 50, 4)
    assert (hp["n_samples"], hp["obs_std"], hp["batch_size"], hp["dtype"], hp["quantization"]) == \
        (3, 0.01, 50, "float64", 1.0)
    assert get_task("latent_ode_synthetic").metrics == ("test_mse", "test_loss", "train_mse", "test_nfe")


@pytest.mark.parametrize("task, hp", [("digits_ode", DIGITS), ("latent_ode_synthetic", SYNTH)])
@pytest.mark.parametrize("method", ["direct", "adjoint", "rk4"])
def test_offline_tasks_train_with_finite_metrics(single_thread, task, hp, method):
    problem = get_task(task).build(seed=0, device=CPU, hparams=hp)
    result = train(problem, get_method(method), device=CPU, iters=2, solver_options=TOLS)
    assert result.iters == 2 and all(math.isfinite(v) for v in result.curves["loss"])
    assert set(result.metrics) == set(get_task(task).metrics)
    assert all(math.isfinite(v) for v in result.metrics.values())
    assert all(n > 0 for n in result.curves["nfe_forward"])
    if method == "adjoint":
        assert all(n > 0 for n in result.curves["nfe_backward"])
    nfe = result.metrics["test_nfe"]
    assert nfe >= 8 and (nfe - 2) % 6 == 0  # one batch: exactly 2 + 6 × steps
    if task == "digits_ode":
        assert 0 <= result.metrics["test_accuracy"] <= 1 and 0 <= result.metrics["train_accuracy"] <= 1
    else:
        assert result.metrics["test_mse"] > 0 and result.metrics["train_mse"] > 0


@pytest.mark.parametrize("task, hp", [("digits_ode", DIGITS), ("latent_ode_synthetic", SYNTH)])
def test_test_nfe_is_two_plus_six_steps_of_a_separate_dopri5_solve(single_thread, task, hp):
    hp = hp | {"n_test": 30, "eval_batch_size": 30} if task == "digits_ode" else hp | {"eval_batch_size": 100}
    hp = hp | {"nfe_rtol": 1e-4, "nfe_atol": 1e-6}
    problem = get_task(task).build(seed=1, device=CPU, hparams=hp)
    metrics = problem.evaluate(get_method("direct").make_solve())
    counted = CountingField(problem.field)
    with torch.no_grad():
        if task == "digits_ode":
            y0, t = problem.test_x.float(), problem.t
        else:  # the test records as one batch, the first z0 samples the evaluation draws
            grid, values, mask = collate(problem.test)
            mean, std = problem.model.z0_distribution(grid, values, mask)
            noise = problem._noise(len(problem.test), mean, torch.Generator().manual_seed(1 + 2))
            y0, t = (mean + std * noise).reshape(-1, mean.shape[1]), grid
        odeint(counted, y0, t, method="dopri5", rtol=1e-4, atol=1e-6)
    steps = counted.steps["forward"]
    assert steps >= 1 and counted.nfe["forward"] == 2 + 6 * steps == metrics["test_nfe"]


@pytest.mark.parametrize("method, solver", [("bosh3", "bosh3"), ("adaptive_heun", "adaptive_heun"),
                                            ("rk4", "rk4"), ("direct", "dopri5")])
def test_test_nfe_train_solver_counts_the_training_solver_on_each_test_batch(single_thread, method, solver):
    """The order-matching claim (T6) compares each solver's own test NFE: the evaluations of the training
    method's solver at its tolerances (or step), per test batch, averaged; dopri5's equals ``test_nfe``."""
    hp = DIGITS | {"n_test": 50, "eval_batch_size": 20, "nfe_rtol": 1e-4, "nfe_atol": 1e-4}
    problem = get_task("digits_ode").build(seed=2, device=CPU, hparams=hp)
    options = {"rtol": 1e-4, "atol": 1e-4} | ({"step_size": 0.3} if method == "rk4" else {})
    metrics = problem.evaluate(get_method(method).make_solve(**options))
    nfes = []
    with torch.no_grad():
        for x in problem.test_x.float().split(20):  # batches of 20, 20 and 10
            nfes.append(0)

            def counted(t, y):
                nfes[-1] += 1
                return problem.field(t, y)
            extra = {"options": {"step_size": 0.3}} if method == "rk4" else {"rtol": 1e-4, "atol": 1e-4}
            odeint(counted, x, problem.t, method=solver, **extra)
    assert len(nfes) == 3 and metrics["test_nfe_train_solver"] == pytest.approx(sum(nfes) / 3)
    if method == "rk4":  # 4 evaluations per step, ⌈1 / 0.3⌉ = 4 steps
        assert nfes == [16, 16, 16]
    if method == "direct":
        assert metrics["test_nfe_train_solver"] == metrics["test_nfe"]


def test_counted_dopri5_matches_the_callback_convention():
    field = TanhMLPDynamics(3, 8, 2).double()
    _, nfe = counted_dopri5(field, torch.randn(5, 3, dtype=torch.float64), torch.linspace(0, 2, 7, dtype=torch.float64),
                            rtol=1e-9, atol=1e-9, max_steps=1000)
    assert nfe > 8 and (nfe - 2) % 6 == 0
    with pytest.raises(AssertionError, match="max_num_steps"):
        counted_dopri5(field, torch.randn(5, 3, dtype=torch.float64), torch.tensor([0.0, 50.0], dtype=torch.float64),
                       rtol=1e-12, atol=1e-12, max_steps=3)


# -- models ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("centred", [False, True])
def test_classifier_field_and_head_compose_as_the_official_code(centred):
    """centred = false is the official model; true reads σ(·) − ½ in the dynamics' input and the head."""
    F = torch.nn.functional
    problem = get_task("digits_ode").build(seed=0, device=CPU, hparams=DIGITS | {"centred": centred})
    field, head = problem.model.field, problem.model.head
    shift = 0.5 if centred else 0.0
    assert field.lin1.in_features == 65 and field.lin1.out_features == 16 and field.lin2.out_features == 64
    z, t = torch.rand(3, 64), torch.tensor(0.7)
    h = torch.sigmoid(F.linear(torch.cat([torch.full((3, 1), 0.7), torch.sigmoid(z) - shift], 1), field.lin1.weight,
                               field.lin1.bias))
    expected = F.linear(torch.cat([torch.full((3, 1), 0.7), h], 1), field.lin2.weight, field.lin2.bias)
    torch.testing.assert_close(field(t, z), expected)
    torch.testing.assert_close(field(t.double(), z), expected)  # torchdiffeq passes float64 times
    assert float(head.bias.detach().abs().sum()) == 0  # Haiku's init: zero bias, truncated-normal weights
    std = 1 / math.sqrt(65)
    assert float(field.lin1.weight.detach().abs().max()) <= 2 * std + 1e-7
    logits = problem.model(z, lambda f, y0, tt: torch.stack([y0, y0 + f(tt[0], y0)]), field, problem.t)
    torch.testing.assert_close(logits, head(torch.sigmoid(z + field(torch.tensor(0.0), z)) - shift))


def test_centred_features_are_an_exact_reparameterisation():
    """A centred model equals the official one whose biases absorb the shift: b' = b − ½·W·1 (pixel columns)."""
    torch.manual_seed(1)
    centred = ODEClassifier(6, 5, centred=True).double()
    official = ODEClassifier(6, 5, centred=False).double()
    official.load_state_dict(centred.state_dict())
    with torch.no_grad():
        official.field.lin1.bias -= 0.5 * centred.field.lin1.weight[:, 1:].sum(1)  # column 0 reads t
        official.head.bias -= 0.5 * centred.head.weight.sum(1)
    z, t = torch.randn(4, 6, dtype=torch.float64), torch.tensor(0.4, dtype=torch.float64)
    torch.testing.assert_close(centred.field(t, z), official.field(t, z), rtol=1e-12, atol=1e-12)
    ts = torch.tensor([0.0, 1.0], dtype=torch.float64)

    def solve(f, y0, tt):
        return odeint(f, y0, tt, method="dopri5", rtol=1e-10, atol=1e-10)

    torch.testing.assert_close(centred(z, solve, centred.field, ts), official(z, solve, official.field, ts),
                               rtol=1e-8, atol=1e-8)


def test_latent_ode_loss_follows_the_official_formula():
    problem = get_task("latent_ode_synthetic").build(seed=3, device=CPU, hparams=SYNTH)
    assert problem.beta(10) == 0.0 and problem.beta(0) == 0.0
    assert problem.beta(11) == pytest.approx(0.01) and problem.beta(12) == pytest.approx(1 - 0.99 ** 2)
    problem.kl_coef = 0.3
    batch = problem.train[:5]
    solve = get_method("direct").make_solve(rtol=1e-8, atol=1e-8)
    out = problem.terms(batch, solve, torch.Generator().manual_seed(0))
    grid, x, m = collate(batch)
    mean, std = problem.model.z0_distribution(grid, x, m)
    eps = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    zs = odeint(problem.field, (mean + std * eps).reshape(15, 4), grid, rtol=1e-8, atol=1e-8)
    pred = problem.model.output(zs).reshape(len(grid), 3, 5, -1).permute(1, 2, 0, 3)
    sigma = 0.01
    point = -((x * m - pred * m) ** 2) / (2 * sigma ** 2) - math.log(sigma) - math.log(2 * math.pi) / 2
    lik = point.sum(dim=(1, 2, 3)) / m.sum()
    kl = (0.5 * (std ** 2 + mean ** 2 - 1 - torch.log(std ** 2))).mean()
    torch.testing.assert_close(out["likelihood"], lik)
    torch.testing.assert_close(out["loss"], -torch.logsumexp(lik - 0.3 * kl, 0))
    mse = ((x * m - pred * m) ** 2).sum(dim=(1, 2, 3)).mean() / m.sum()
    torch.testing.assert_close(out["sq_error"] / out["n_observed"], mse)


@pytest.mark.parametrize("task, hp", [("digits_ode", DIGITS | {"dtype": "float64"}), ("latent_ode_synthetic", SYNTH)])
def test_adjoint_gradients_match_direct_backprop(single_thread, task, hp):
    """Every parameter (encoder, rec→gen, dynamics, output / head) gets the backprop gradient from the adjoint."""
    grads = {}
    for method in ("direct", "adjoint"):
        problem = get_task(task).build(seed=2, device=CPU, hparams=hp)
        params = list(problem.model.parameters())
        solve = get_method(method).make_solve(params, rtol=1e-10, atol=1e-10)
        grads[method] = torch.autograd.grad(problem.loss_fixed(solve), params)
    for g, ref in zip(grads["adjoint"], grads["direct"]):
        assert float(ref.norm()) > 0
        assert float((g - ref).norm()) <= 1e-5 * float(ref.norm())

def test_kl_schedule_advances_per_epoch():
    problem = get_task("latent_ode_synthetic").build(seed=0, device=CPU, hparams=SYNTH | {
        "kl_delay": 0, "kl_rate": 0.5, "kl_epoch_iters": 2})
    solve = get_method("rk4").make_solve()
    betas = []
    for _ in range(5):
        problem.loss(solve)
        betas.append(problem.kl_coef)
    assert betas == pytest.approx([0.0, 0.0, 0.5, 0.5, 0.75])


def test_gru_updates_where_observed_or_dt_positive():
    torch.manual_seed(0)
    gru = LatentGRU(2, rec_dim=3, units=5).double()
    grid = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    values = torch.zeros(1, 3, 2, dtype=torch.float64)
    mask = torch.zeros_like(values)
    mean, std = gru(grid, values, mask)  # nothing observed: the last point is skipped, the others update
    zero = torch.zeros(1, 3, dtype=torch.float64)
    x = torch.cat([values, mask, torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64).view(1, 3, 1)], -1)
    one = torch.ones(1, 1, dtype=torch.float64)
    m1, s1 = gru.step(zero, zero, x[:, 1], one)
    m0, s0 = gru.step(m1, s1, x[:, 0], one)
    torch.testing.assert_close((mean, std), (m0, s0))
    mask[0, 2, 1] = 1.0  # an observation at the last point: it now updates too
    mean2, _ = gru(grid, values, mask)
    assert not torch.allclose(mean2, mean)


def test_latent_dynamics_compose_as_the_official_code():
    torch.manual_seed(0)
    f = TanhMLPDynamics(4, 6, 4)
    assert len(f.hidden) == 4 and f.hidden[0].in_features == 4 and f.out.out_features == 4
    z = torch.randn(2, 4)
    h = z
    for layer in f.hidden:
        h = layer(torch.tanh(h))
    torch.testing.assert_close(f(torch.tensor(0.0), z), f.out(torch.tanh(h)))
    torch.testing.assert_close(f(torch.tensor(0.9), z), f(torch.tensor(0.1), z))  # time-independent


def _fields():
    torch.manual_seed(0)
    return [ConcatSigmoidMLP(5, 7).double(), TanhMLPDynamics(5, 7, 4).double(),
            ConcatSigmoidMLP(5, 7, centred=True).double()]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_dynamics_run_under_nested_jvp(index):
    """z'' = f_z f + f_t by jvp of g(y) = (f(z, t), 1) along g, against central differences; K = 3 nests twice."""
    field = _fields()[index]
    z, t = torch.randn(3, 5, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64)

    def g(z_, t_):
        return field(t_, z_), torch.ones_like(t_)

    def g2(z_, t_):
        f, one = g(z_, t_)
        return torch.func.jvp(g, (z_, t_), (f, one))[1]

    second, _ = g2(z, t)
    f = field(t, z)
    eps = 1e-5
    fd = (field(t + eps, z + eps * f) - field(t - eps, z - eps * f)) / (2 * eps)
    torch.testing.assert_close(second, fd, rtol=1e-6, atol=1e-8)
    third, _ = torch.func.jvp(g2, (z, t), g(z, t))[1]
    s_plus, _ = g2(z + eps * f, t + eps)
    s_minus, _ = g2(z - eps * f, t - eps)
    torch.testing.assert_close(third, (s_plus - s_minus) / (2 * eps), rtol=1e-5, atol=1e-7)


class _Recorder(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("index", [0, 1, 2])
def test_dynamics_use_only_out_of_place_torch_ops(index):
    field = _fields()[index]
    with _Recorder() as rec:
        field(torch.tensor(0.2, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64))
    assert rec.names, "no torch function was traced"
    in_place = [n for n in rec.names if n.endswith("_") and not n.startswith("__")]
    assert not in_place, in_place


# -- hyper-parameters and MNIST files ----------------------------------------------------------------------------

@pytest.mark.parametrize("task, bad", [
    ("digits_ode", {"hidden": 0}), ("digits_ode", {"n_train": 0}), ("digits_ode", {"eval_tol": -1.0}),
    ("digits_ode", {"batch_size": 2.5}), ("digits_ode", {"nfe_rtol": 0}), ("digits_ode", {"dtype": "half"}),
    ("digits_ode", {"width": 3}), ("digits_ode", {"centred": 1}),
    ("latent_ode_synthetic", {"normalisation": "zscore"}), ("latent_ode_synthetic", {"kl_rate": 1.5}),
    ("latent_ode_synthetic", {"test_fraction": 1.0}), ("latent_ode_synthetic", {"n_obs": 49}),
    ("latent_ode_synthetic", {"n_records": 1}), ("latent_ode_synthetic", {"obs_std": 0}),
    ("latent_ode_synthetic", {"p_observe": 0}), ("latent_ode_synthetic", {"kl_epoch_iters": 0}),
    ("latent_ode_synthetic", {"dynamics_layers": True}), ("latent_ode_physionet", {"sets": ""}),
    ("latent_ode_physionet", {"quantization": -1}),
])
def test_bad_hparams_are_user_errors(tmp_path, monkeypatch, task, bad):
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path))
    write_record(tmp_path / "physionet" / "set-a", "1")
    write_record(tmp_path / "physionet" / "set-b", "2")
    with pytest.raises(UserError, match=next(iter(bad))):
        get_task(task).build(seed=0, device=CPU, hparams=(SYNTH if task == "latent_ode_synthetic" else {}) | bad)


@pytest.mark.parametrize("task, bad", [
    ("latent_ode_synthetic", {"normalisation": "zscore"}), ("latent_ode_synthetic", {"kl_rate": 1.5}),
    ("latent_ode_synthetic", {"test_fraction": 1.0}), ("latent_ode_synthetic", {"kl_epoch_iters": 0}),
    ("latent_ode_synthetic", {"p_observe": 1.5}), ("latent_ode_synthetic", {"test_fraction": 0.9, "n_records": 2}),
    ("latent_ode_physionet", {"sets": ""}), ("latent_ode_physionet", {"quantization": 48}),
    ("cnf_image_digits", {"alpha": 0.5}),
])
def test_bad_hparams_are_rejected_before_any_case_runs(task, bad):
    """``Task.hparams`` is what the CLI checks up front (exit 2, nothing written); a value only ``build`` rejected
    became an ``error`` row of a sweep that had already started."""
    with pytest.raises(UserError, match=next(iter(bad))):
        get_task(task).hparams(bad)
    get_task(task).hparams({"sets": ["set-a", "set-b"]} if task == "latent_ode_physionet" else {})


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_mnist_task_builds_from_idx_files(tmp_path, monkeypatch, single_thread):
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path))
    with pytest.raises(UserError, match="MNIST data not found"):
        get_task("mnist_ode").build(seed=0, device=CPU, hparams={})
    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (8, 28, 28)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, 8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (4, 28, 28)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, 4)}
    for name, array in arrays.items():
        (folder / name).write_bytes(_idx(array))
    problem = get_task("mnist_ode").build(seed=0, device=CPU, hparams={"hidden": 8, "batch_size": 4})
    assert problem.train_x.shape == (8, 784) and problem.model.field.lin2.out_features == 784
    torch.testing.assert_close(problem.test_x[1], torch.from_numpy(arrays["t10k-images-idx3-ubyte"][1]).float()
                               .flatten() / 255)
    result = train(problem, get_method("direct"), device=CPU, iters=1, solver_options=TOLS)
    assert 0 <= result.metrics["test_accuracy"] <= 1 and math.isfinite(result.metrics["test_nfe"])
