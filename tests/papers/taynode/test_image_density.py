"""Tests for the FFJORD image-density tasks (nodebench.papers.taynode.image_density) and ConcatConvNet (nodebench.cnf)."""

import math

import numpy as np
import pytest
import torch

from nodebench.cnf import ConcatConvNet
from nodebench.errors import UserError
from nodebench.methods import get_method
from nodebench.regularizers import Regularizer
from nodebench.taylor import ode_derivatives
from nodebench.tasks import TASKS, get_task
from nodebench.papers.taynode.image_density import (
    LOGIT_ALPHA,
    ImageDensityProblem,
    LogitTransform,
    bits_per_dim,
    dequantize,
    inverse_logit_transform,
    logit_transform,
)
from nodebench.training import train

CPU = torch.device("cpu")
SMALL = {"n_train": 64, "n_test": 24, "channels": 8, "batch_size": 32, "eval_size": 24, "test_batch_size": 24}


# -- preprocessing -------------------------------------------------------------------------------------------

def test_logit_transform_round_trip_and_logdet_match_autograd():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(5, 12, generator=gen, dtype=torch.float64)
    x[0, 0], x[0, 1] = 0.0, 1.0 - 1e-12  # the ends of [0, 1) stay finite
    y, logdet = logit_transform(x)
    assert torch.isfinite(y).all() and torch.isfinite(logdet).all()
    x_back, inv_logdet = inverse_logit_transform(y)
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-9)
    torch.testing.assert_close(inv_logdet, -logdet, rtol=1e-9, atol=1e-7)
    # The map is elementwise, so the Jacobian is diagonal: its diagonal is the gradient of sum(y).
    xr = x[1:].clone().requires_grad_(True)
    (diag,) = torch.autograd.grad(logit_transform(xr)[0].sum(), xr)
    torch.testing.assert_close(logdet[1:], diag.abs().log().sum(dim=1), rtol=1e-10, atol=1e-10)
    # y is logit(α + (1 − 2α) x)
    s = LOGIT_ALPHA + (1 - 2 * LOGIT_ALPHA) * x[1:]
    torch.testing.assert_close(y[1:], torch.log(s / (1 - s)), rtol=1e-9, atol=1e-9)
    # the nflows transform is the same map
    t_y, t_logdet = LogitTransform()(x)
    torch.testing.assert_close(t_y, y)
    torch.testing.assert_close(t_logdet, logdet)


def test_dequantize_uses_its_generator_and_stays_in_the_bin():
    levels = torch.tensor([[0.0, 3.0, 16.0], [16.0, 0.0, 5.0]])
    a = dequantize(levels, 17, torch.Generator().manual_seed(1))
    torch.manual_seed(123)
    b = dequantize(levels, 17, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert torch.equal(torch.floor(a * 17), levels.double())
    with pytest.raises(UserError):
        dequantize(torch.tensor([[17.0]]), 17, torch.Generator())
    with pytest.raises(UserError):
        dequantize(torch.tensor([[0.5]]), 17, torch.Generator())


def test_bits_per_dim_of_a_uniform_density():
    # A uniform density on [0, 1]^D has NLL 0: every one of the L^D discrete images has probability L^-D,
    # i.e. log2(L) bits per dimension.
    assert bits_per_dim(0.0, 784, 256) == pytest.approx(8.0)
    assert bits_per_dim(0.0, 64, 17) == pytest.approx(math.log2(17))
    # A density 2^D on the half-cube [0, 1/2]^D halves the bins: one bit per dimension less.
    assert bits_per_dim(-10 * math.log(2), 10, 256) == pytest.approx(7.0)


# -- the conv dynamics ---------------------------------------------------------------------------------------

def test_concat_conv_net_shape_zero_init_and_time_dependence():
    torch.manual_seed(0)
    f = ConcatConvNet((2, 5, 6), (4, 4, 4))
    assert len(f.layers) == 4
    assert f.layers[0].conv.in_channels == 3 and f.layers[-1].conv.out_channels == 2
    last = f.layers[-1].conv
    assert torch.count_nonzero(last.weight) == 0 and torch.count_nonzero(last.bias) == 0
    z = torch.randn(3, 60)
    out = f(torch.tensor(0.2), z)
    assert out.shape == (3, 60) and torch.count_nonzero(out) == 0
    torch.nn.init.normal_(last.weight, std=0.3)
    assert not torch.allclose(f(torch.tensor(0.1), z), f(torch.tensor(0.9), z))  # the t channel matters
    with pytest.raises(UserError):
        ConcatConvNet((1, 4), (4,))


def test_concat_conv_net_runs_under_taylor_mode():
    torch.manual_seed(1)
    f = ConcatConvNet((1, 6, 5), (5, 5, 5)).double()
    torch.nn.init.normal_(f.layers[-1].conv.weight, std=0.3)
    torch.nn.init.normal_(f.layers[-1].conv.bias, std=0.3)
    z = torch.randn(4, 30, dtype=torch.float64)
    t = torch.tensor(0.37, dtype=torch.float64)
    taylor = ode_derivatives(f, t, z, 2)
    ref = ode_derivatives(f, t, z, 2, method="jvp")
    assert len(taylor) == 2 and taylor[1].abs().max() > 1e-3  # not trivially zero
    for a, b in zip(taylor, ref):
        assert a.shape == z.shape
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


# -- the tasks -----------------------------------------------------------------------------------------------

def _analytic_bpd(x: np.ndarray, n_levels: int, alpha: float = LOGIT_ALPHA) -> float:
    """bits/dim of an identity CNF (f ≡ 0) over the logit transform, under a standard normal, in NumPy."""
    x = x.astype(np.float64)
    s = alpha + (1 - 2 * alpha) * x
    y = np.log(s) - np.log(1 - s)
    logp = (-0.5 * y**2 - 0.5 * np.log(2 * np.pi) + np.log(1 - 2 * alpha) - np.log(s) - np.log(1 - s)).sum(1)
    dim = x.shape[1]
    return float((-logp.mean() / dim + np.log(n_levels)) / np.log(2))


def test_registry():
    for name in ("cnf_image_mnist", "cnf_image_digits"):
        assert name in TASKS and TASKS[name].paper == "taynode"
        assert get_task(name).metrics[:2] == ("test_bpd", "test_nll")
    defaults = TASKS["cnf_image_mnist"].defaults
    assert (defaults["channels"], defaults["nlayers"], defaults["batch_size"], defaults["lr"]) == (64, 3, 200, 1e-3)
    assert (defaults["noise"], defaults["nfe_tol"], defaults["alpha"]) == ("rademacher", 1e-5, 1e-5)


def test_digits_task_builds_with_identity_flow_bpd():
    task = get_task("cnf_image_digits")
    problem = task.build(seed=0, device="cpu", hparams=SMALL)
    assert isinstance(problem, ImageDensityProblem)
    assert problem.data.train.shape == (64, 64) and problem.data.test.shape == (24, 64)
    assert problem.data.train.dtype == torch.float32
    assert 0 <= float(problem.data.train.min()) and float(problem.data.train.max()) <= 1
    assert problem.cnf.noise == "rademacher" and problem.train_trace == "hutchinson"
    assert problem.batch_size == 32 and problem.n_levels == 17
    # integer levels 0..16 are recovered from the dequantised data
    levels = torch.floor(problem.data.train.double() * 17)
    assert levels.min() >= 0 and levels.max() <= 16
    # f ≡ 0 at initialisation: the flow is the logit transform alone, whose bits/dim is known in closed form
    metrics = problem.evaluate(problem.cnf.solve)
    expected = _analytic_bpd(problem.data.test.double().numpy(), 17)
    assert metrics["test_bpd"] == pytest.approx(expected, rel=1e-5)
    assert metrics["test_nll"] == pytest.approx((expected * math.log(2) - math.log(17)) * 64, rel=1e-5)
    assert set(metrics) == set(task.metrics)
    # the loss is bits/dim of a training batch
    loss = problem.loss_fixed(problem.cnf.solve)
    assert float(loss.detach()) == pytest.approx(_analytic_bpd(problem.data.train[:32].double().numpy(), 17), rel=1e-5)
    # dequantisation noise is seeded by the case seed, not the global RNG
    torch.manual_seed(999)
    again = task.build(seed=0, device="cpu", hparams=SMALL)
    torch.testing.assert_close(again.data.test, problem.data.test)
    other = task.build(seed=1, device="cpu", hparams=SMALL)
    assert not torch.equal(other.data.train, problem.data.train)


def test_digits_task_trains_two_iterations_with_speed_regularizer():
    problem = get_task("cnf_image_digits").build(seed=0, device="cpu", hparams=SMALL)
    before = [p.detach().clone() for p in problem.model.parameters()]
    result = train(problem, get_method("adjoint"), device=CPU, iters=2, solver_options=dict(rtol=1e-3, atol=1e-3),
                   regularizer=Regularizer("speed", order=2, lam=0.01, variant="adjoint_only"))
    metrics = result.metrics
    assert math.isfinite(metrics["test_bpd"]) and 0 < metrics["test_bpd"] < 20
    assert math.isfinite(metrics["test_nfe"]) and metrics["test_nfe"] >= 2
    after = list(problem.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))


def test_image_density_hparam_errors():
    task = get_task("cnf_image_digits")
    with pytest.raises(UserError):
        task.build(seed=0, device="cpu", hparams=SMALL | {"channels": 0})
    with pytest.raises(UserError):
        task.build(seed=0, device="cpu", hparams=SMALL | {"eval_trace": "nope"})
    with pytest.raises(UserError):
        task.build(seed=0, device="cpu", hparams=SMALL | {"n_train": 0})
    with pytest.raises(UserError):
        task.hparams({"hidden_dims": [4]})


# -- MNIST from tiny IDX files ---------------------------------------------------------------------------------

def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=">u1").tobytes()


def _fake_mnist(root, n_train=6, n_test=4):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    folder = root / "mnist"
    folder.mkdir(parents=True)
    for name, array in arrays.items():
        (folder / name).write_bytes(_idx_bytes(array))
    return arrays


def test_mnist_task_builds_from_idx_files(tmp_path, monkeypatch):
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path))
    task = get_task("cnf_image_mnist")
    with pytest.raises(UserError, match="MNIST"):
        task.build(seed=0, device="cpu", hparams={"n_train": 4})
    arrays = _fake_mnist(tmp_path)
    problem = task.build(seed=0, device="cpu",
                         hparams={"n_train": 5, "n_test": 3, "channels": 4, "eval_size": 3, "test_batch_size": 3})
    assert problem.data.train.shape == (5, 784) and problem.data.test.shape == (3, 784)
    assert problem.n_levels == 256 and problem.batch_size == 5
    # the dequantised pixels fall in the bins of the file's uint8 values
    levels = torch.floor(problem.data.test.double() * 256).clamp(max=255)
    expected = torch.from_numpy(arrays["t10k-images-idx3-ubyte"][:3].reshape(3, -1).astype(np.float64))
    assert torch.equal(levels, expected)
    dyn = problem.cnf.dynamics
    assert isinstance(dyn, ConcatConvNet) and dyn.shape == (1, 28, 28)
    assert [layer.conv.out_channels for layer in dyn.layers] == [4, 4, 4, 1]
    assert dyn.layers[0].conv.kernel_size == (3, 3)
    metrics = problem.evaluate(problem.cnf.solve)
    assert metrics["test_bpd"] == pytest.approx(_analytic_bpd(problem.data.test.double().numpy(), 256), rel=1e-5)
    assert metrics["test_nfe"] >= 2
