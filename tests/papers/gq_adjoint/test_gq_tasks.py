"""Tests for the gq_adjoint paper's tasks: g1d, nested spheres (nodebench.papers.gq_adjoint.anode), sines
(nodebench.papers.gq_adjoint.sines) and the OU task's batch order (nodebench.papers.gq_adjoint.ou)."""

from __future__ import annotations

import math

import pytest
import torch
from torchdiffeq import odeint

from nodebench.errors import UserError
from nodebench.methods import get_method
from nodebench.tasks import TASKS, get_task
from nodebench.papers.gq_adjoint.anode import augment_zeros
from nodebench.training import train

CPU = torch.device("cpu")
TIGHT = {"method": "dopri5", "rtol": 1e-10, "atol": 1e-12}

# Small but complete versions of each task, for training and gradient tests.
SMALL = {
    "g1d": {"width": 8},
    "nested_spheres": {"width": 8, "n_train": 20, "n_test": 5, "batch_size": 16},
    "sines": {"width": 8, "n_train": 3, "n_test": 2, "n_obs": 4, "irregular": True},
}


def build(name, seed=0, **hparams):
    return get_task(name).build(seed=seed, device=CPU, hparams=hparams)


def zero_output_layer(field):
    """Zero the last Linear layer of a field's MLP: the MLP part of the dynamics becomes 0."""
    last = [m for m in field.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()


# -- registry and defaults -----------------------------------------------------------------------------------

def test_registered_with_the_paper_defaults():
    expected = {
        "g1d": {"width": 20, "augment": 3, "lr": 1e-2, "dtype": "float32", "t_end": 1.0},
        "nested_spheres": {"width": 20, "augment": 3, "lr": 1e-2, "batch_size": 200, "n_train": 1000, "n_test": 50,
                           "dtype": "float32", "t_end": 1.0},
        "sines": {"width": 100, "lr": 1e-3, "n_train": 15, "n_test": 5, "n_obs": 10, "irregular": False,
                  "dtype": "float32"},
    }
    for name, defaults in expected.items():
        task = get_task(name)
        assert name in TASKS and task.paper == "gq_adjoint"
        assert {k: task.defaults[k] for k in defaults} == defaults
        assert not {"rtol", "atol", "gtol"} & set(task.defaults)  # tolerances are solver options


@pytest.mark.parametrize("name, width, hparams, count", [
    # parameter counts implied by the official code (paper sheet §7): w² + 10w + 4, w² + 13w + 17, w² + 5w + 1
    ("g1d", 100, {}, 11_004),
    ("nested_spheres", 100, {"n_train": 2, "n_test": 1}, 11_317),
    ("sines", 200, {"n_train": 2, "n_test": 1}, 41_001),
])
def test_parameter_counts_match_the_official_models(name, width, hparams, count):
    problem = build(name, width=width, **hparams)
    assert sum(p.numel() for p in problem.model.parameters()) == count
    field_params = {id(p) for p in problem.field.parameters()}
    assert field_params <= {id(p) for p in problem.model.parameters()}
    if name == "nested_spheres":  # the head is trained but is not part of the dynamics
        assert len(field_params) == len(list(problem.model.parameters())) - 2


def test_dtype_and_seeded_initialisation():
    a, b, c = build("g1d"), build("g1d"), build("g1d", seed=1)
    assert all(p.dtype == torch.float32 for p in a.model.parameters()) and a.z0.dtype == torch.float32
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.model.parameters(), c.model.parameters()))
    d = build("sines", dtype="float64", width=4)
    assert d.train.xv0.dtype == d.train.grid.dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in d.model.parameters())


# -- g1d ---------------------------------------------------------------------------------------------------

def test_g1d_data_and_augmentation():
    p = build("g1d", augment=2)
    torch.testing.assert_close(p.z0, torch.tensor([[-1.0, 0, 0], [1.0, 0, 0]]))
    torch.testing.assert_close(p.y, torch.tensor([[1.0], [-1.0]]))
    torch.testing.assert_close(p.t, torch.tensor([0.0, 1.0]))
    assert p.field.net[0].in_features == 3 and p.field.net[-1].out_features == 3


def test_g1d_metrics_on_a_known_model():
    p = build("g1d", dtype="float64")
    zero_output_layer(p.field)  # f = 0: z(T) = z(0), prediction x, target −x, squared error 4
    euler = get_method("euler").make_solve()
    metrics = p.evaluate(euler)
    assert metrics["test_mse"] == pytest.approx(4.0, abs=1e-12)
    assert metrics["train_mse"] == pytest.approx(4.0, abs=1e-12)
    # train_mse uses the training solve: one Euler step over [0, 1] without step_size
    q = build("g1d", dtype="float64")
    with torch.no_grad():
        one_step = q.z0 + q.field(torch.tensor(0.0, dtype=torch.float64), q.z0)
    metrics = q.evaluate(euler)
    assert metrics["train_mse"] == pytest.approx(float(((one_step[:, :1] - q.y) ** 2).mean()), rel=1e-10)
    assert metrics["test_mse"] != pytest.approx(metrics["train_mse"], rel=1e-6)


# -- nested spheres ----------------------------------------------------------------------------------------

def test_nested_spheres_data_follow_the_class_rules():
    p = build("nested_spheres", n_train=300, n_test=40)
    for x, y, n in [(p.x_train, p.y_train, 300), (p.x_test, p.y_test, 40)]:
        assert x.shape == (2 * n, 2) and y.shape == (2 * n,) and y.dtype == torch.long
        assert int((y == 0).sum()) == int((y == 1).sum()) == n
        assert x.abs().max() <= 1
        r = x.double().norm(dim=1)
        assert (r[y == 0] < 0.4).all()
        assert ((r[y == 1] > 0.7) & (r[y == 1] < 0.9)).all()
        assert r[y == 0].max() > 0.35 and r[y == 1].min() < 0.72 and r[y == 1].max() > 0.88  # fills the regions
    assert not any(torch.equal(a, b) for a in p.x_train for b in p.x_test[:5])  # test points are new draws


def test_nested_spheres_data_come_from_a_local_generator():
    torch.manual_seed(123)
    a = build("nested_spheres", n_train=30, n_test=5)
    torch.manual_seed(456)
    b = build("nested_spheres", n_train=30, n_test=5)
    c = build("nested_spheres", seed=1, n_train=30, n_test=5)
    d = build("nested_spheres", seed=1, n_train=30, n_test=5, data_seed=0)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_test, b.x_test)
    assert not torch.equal(a.x_train, c.x_train)
    assert torch.equal(a.x_train, d.x_train)  # data_seed holds the data fixed across seeds...
    assert not torch.equal(a.model.head.weight, d.model.head.weight)  # ...while the model init follows the seed


def test_nested_spheres_batches_are_epochs_of_a_permutation():
    p = build("nested_spheres", n_train=10, n_test=2, batch_size=5)
    batches = [p.next_batch() for _ in range(8)]
    assert all(len(b) == 5 for b in batches)
    for epoch in range(2):
        seen = torch.cat(batches[4 * epoch:4 * epoch + 4]).sort().values
        assert torch.equal(seen, torch.arange(20))
    assert not torch.equal(torch.cat(batches[:4]), torch.cat(batches[4:]))  # reshuffled every epoch
    q = build("nested_spheres", n_train=10, n_test=2, batch_size=5)
    assert all(torch.equal(x, q.next_batch()) for x in batches)
    full = build("nested_spheres", n_train=10, n_test=2, batch_size=None)
    assert torch.equal(full.next_batch().sort().values, torch.arange(20))



def test_ou_batches_are_epochs_of_a_permutation(monkeypatch):
    """The official OU run is 100 epochs of a shuffled DataLoader (batch 40 of 200 initial conditions): each
    iteration's initial conditions are one batch of a per-epoch permutation, every one used once per epoch."""
    p = build("ou_sde", n_train=12, n_test=2, paths=3, batch_size=4, n_times=5, t_end=1.0, eval_dt=0.05)
    seen = []

    def record(solve, x0):
        seen.append(x0.clone())
        return torch.zeros(len(x0), p.paths, len(p.t))

    monkeypatch.setattr(p, "simulate_train", record)
    for _ in range(9):
        p.loss(None)
    assert all(len(x0) == 4 for x0 in seen)
    epochs = [torch.cat(seen[3 * e:3 * e + 3]) for e in range(3)]
    for x0 in epochs:
        assert torch.equal(x0.sort().values, p.x0_train.sort().values)
    assert not torch.equal(epochs[0], epochs[1])  # reshuffled every epoch

def test_nested_spheres_metrics_on_a_known_model():
    p = build("nested_spheres", dtype="float64", n_train=50, n_test=20)
    zero_output_layer(p.field)  # f = 0: z(T) = [x, 0, 0, 0]
    with torch.no_grad():  # logits (0, x₁): predicts class 1 exactly when x₁ > 0
        p.head.weight.zero_()
        p.head.bias.zero_()
        p.head.weight[1, 0] = 1.0
    metrics = p.evaluate(None)
    assert set(metrics) == set(get_task("nested_spheres").metrics)
    expect_acc = ((p.x_test[:, 0] > 0).long() == p.y_test).double().mean()
    assert metrics["test_accuracy"] == pytest.approx(float(expect_acc))
    train_acc = ((p.x_train[:, 0] > 0).long() == p.y_train).double().mean()
    assert metrics["train_accuracy"] == pytest.approx(float(train_acc))
    x1 = p.x_test[:, 0]
    nll = torch.where(p.y_test == 1, -x1, torch.zeros_like(x1)) + torch.log1p(torch.exp(x1))
    assert metrics["test_loss"] == pytest.approx(float(nll.mean()), rel=1e-9)


def test_nested_spheres_field_uses_time_and_runs_under_vmap():
    p = build("nested_spheres", n_train=4, n_test=1)
    z = augment_zeros(p.x_train[:3], 3)
    taus = torch.tensor([0.1, 0.5, 0.9])
    zs = torch.stack([z, 2 * z, -z])
    with torch.no_grad():
        batched = torch.func.vmap(p.field)(taus, zs)
        looped = torch.stack([p.field(tau, zk) for tau, zk in zip(taus, zs)])
        assert not torch.allclose(p.field(taus[0], z), p.field(taus[2], z))  # t is an input feature
    torch.testing.assert_close(batched, looped)


# -- sines --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("irregular", [False, True])
def test_sines_data(irregular):
    p = build("sines", n_train=6, n_test=3, n_obs=7, irregular=irregular, dtype="float64", width=4)
    for split, n in [(p.train, 6), (p.test, 3)]:
        assert split.xv0.shape == (n, 2) and split.t.shape == split.x.shape == (n, 7)
        assert split.xv0.abs().max() <= 1
        b, a = split.xv0[:, :1], split.xv0[:, 1:]
        torch.testing.assert_close(split.x, a * torch.sin(split.t) + b * torch.cos(split.t))
        assert (split.t[:, 0] == 0).all() and (split.t[:, 1:] > split.t[:, :-1]).all()
        assert (split.t <= 2 * math.pi + 1e-12).all()
        torch.testing.assert_close(split.grid[split.index], split.t)  # the index reads each curve's own times
        assert (split.grid[1:] > split.grid[:-1]).all()
        if irregular:
            assert len(split.grid) == n * 6 + 1  # distinct times per curve, t = 0 shared
            assert not torch.equal(split.t[0], split.t[1])
        else:
            torch.testing.assert_close(split.grid, torch.linspace(0, 2 * math.pi, 7, dtype=torch.float64))
            assert (split.index == torch.arange(7)).all()


def test_sonode_dynamics_and_vmap():
    p = build("sines", n_train=2, n_test=1, width=6)
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    f = p.field(torch.tensor(0.3), z)
    torch.testing.assert_close(f[:, 0], z[:, 1])  # dx/dt = v
    assert p.field.net[0].in_features == 2 and p.field.net[-1].out_features == 1
    zs = torch.stack([z, -z])
    torch.testing.assert_close(torch.func.vmap(p.field)(torch.tensor([0.1, 0.2]), zs),
                               torch.stack([p.field(torch.tensor(0.1), z), p.field(torch.tensor(0.2), -z)]))


def test_sines_union_solve_reads_each_curve_at_its_own_times():
    p = build("sines", n_train=4, n_test=2, n_obs=5, irregular=True, dtype="float64", width=16, seed=3)
    with torch.no_grad():  # make the learned acceleration matter
        p.field.net[-1].weight.mul_(5.0)

    def tight(func, y0, t):
        return odeint(func, y0, t, **TIGHT)

    with torch.no_grad():
        union = p.predict(tight, p.train)
        separate = torch.stack([tight(p.field, p.train.xv0[i:i + 1], p.train.t[i])[:, 0, 0] for i in range(4)])
        other = torch.stack([tight(p.field, p.train.xv0[i:i + 1], p.train.t[(i + 1) % 4])[:, 0, 0]
                             for i in range(4)])
    assert union.shape == (4, 5) and len(p.train.grid) == 17
    torch.testing.assert_close(union, separate, rtol=1e-7, atol=1e-8)
    assert (union - other).abs().max() > 1e-2  # reading another curve's times would be detected


def test_sines_metrics_on_a_known_model():
    p = build("sines", dtype="float64", n_train=4, n_test=3, irregular=True, width=4)
    zero_output_layer(p.field)  # acceleration 0: x(t) = B + A t
    metrics = p.evaluate(None)
    for split, key in [(p.test, "test_mse"), (p.train, "train_mse")]:
        b, a = split.xv0[:, :1], split.xv0[:, 1:]
        assert metrics[key] == pytest.approx(float(((b + a * split.t - split.x) ** 2).mean()), rel=1e-6)


# -- training through the harness ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["direct", "gq", "gq_batched"])
@pytest.mark.parametrize("name", list(SMALL))
def test_training_runs_and_reports_finite_metrics(name, method):
    problem = build(name, **SMALL[name])
    before = [p.detach().clone() for p in problem.model.parameters()]
    result = train(problem, get_method(method), device=CPU, iters=3, solver_options={"rtol": 1e-3, "atol": 1e-3})
    assert len(result.curves["loss"]) == 3 and all(math.isfinite(v) for v in result.curves["loss"])
    assert set(result.metrics) == set(get_task(name).metrics)
    assert all(math.isfinite(v) for v in result.metrics.values())
    assert all(n > 0 for n in result.curves["nfe_forward"])  # the dynamics go through problem.field
    if method != "direct":
        assert all(n > 0 for n in result.curves["nfe_backward"])
    after = list(problem.model.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after))  # every tensor, the head included, trained


@pytest.mark.parametrize("name", list(SMALL))
def test_gq_gradients_match_direct_backprop(name):
    grads = {}
    for method in ("direct", "gq", "gq_batched"):
        problem = build(name, dtype="float64", **SMALL[name])
        params = list(problem.model.parameters())
        # a generous gtol: with the default 0.1 the short intervals of the union grid get one node and the
        # quadrature error (~1e-4 relative on sines) would hide plumbing errors of the same size
        solve = get_method(method).make_solve(params, rtol=1e-9, atol=1e-11, gtol=2.0)
        loss = problem.loss_fixed(solve) if hasattr(problem, "loss_fixed") else problem.loss(solve)
        grads[method] = torch.autograd.grad(loss, params)
    for method in ("gq", "gq_batched"):
        for g, ref in zip(grads[method], grads["direct"]):
            torch.testing.assert_close(g, ref, rtol=1e-5, atol=1e-7)


# -- validation ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, hparams", [
    ("g1d", {"width": 0}),
    ("g1d", {"width": 2.5}),
    ("g1d", {"width": True}),
    ("g1d", {"width": float("inf")}),
    ("g1d", {"width": float("nan")}),
    ("g1d", {"augment": -1}),
    ("g1d", {"t_end": 0.0}),
    ("g1d", {"t_end": float("nan")}),
    ("g1d", {"dtype": "float16"}),
    ("g1d", {"rtol": 1e-3}),
    ("nested_spheres", {"n_train": 0}),
    ("nested_spheres", {"batch_size": 0}),
    ("nested_spheres", {"width": "20"}),
    ("nested_spheres", {"data_seed": -1}),
    ("nested_spheres", {"lr": -1.0}),
    ("sines", {"n_obs": 1}),
    ("sines", {"n_test": 0}),
    ("sines", {"irregular": "yes"}),
    ("sines", {"width": -5}),
])
def test_invalid_hparams_are_user_errors(name, hparams):
    with pytest.raises(UserError):
        build(name, **hparams)


@pytest.mark.parametrize("task, hparams", [
    ("nested_spheres", {"n_train": 30, "n_test": 10, "batch_size": 20, "width": 8}),
    ("ou_sde", {}),
    ("images_digits", {"n_train": 40, "n_test": 8, "batch_size": 16, "width": 4, "eval_batch_size": 8}),
])
def test_warmup_leaves_the_epoch_batch_order_as_it_was(task, hparams):
    """The batch position is a value the problem replaces, so the harness's warm-up sets it back with the
    problem's attributes; changed in place, the timed iterations started from the warm-up's batches (OU's
    first losses 0.599 without warm-up, 0.523 after two warm-up steps)."""
    from nodebench.training import CURVE_COLUMNS

    def losses(warmup):
        problem = get_task(task).build(seed=0, device="cpu", hparams=hparams)
        rows = train(problem, get_method("rk4"), device=torch.device("cpu"), iters=3, warmup=warmup).rows
        return [row[CURVE_COLUMNS.index("loss")] for row in rows]

    assert losses(warmup=2) == losses(warmup=0)
