"""Tests for the image loaders (nodebench.datasets.images) and the GQ image tasks (nodebench.papers.gq_adjoint.images).

Loader tests write tiny files in the real formats (IDX, CIFAR python pickles, SVHN MATLAB files) into a
temporary data directory; the training tests use the offline sklearn digits preset.
"""

import gzip
import math
import os
import pickle

import numpy as np
import pytest
import scipy.io
import torch

from nodebench.datasets.images import (
    check_idx,
    load_cifar10,
    load_digits,
    load_images,
    load_mnist,
    load_svhn,
    read_cifar_batch,
    read_idx,
    read_svhn_mat,
)
from nodebench.errors import UserError
from nodebench.methods import get_method
from nodebench.tasks import TASKS, get_task
from nodebench.papers.gq_adjoint.images import ConvDynamics, ImageODEModel
from nodebench.training import train

CPU = torch.device("cpu")
SMALL = {"n_train": 64, "n_test": 40, "width": 8, "batch_size": 16}


# -- helpers writing the real formats ------------------------------------------------------------------------

def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def write(path, data: bytes, gz: bool = False):
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


def fake_mnist(root, n_train=5, n_test=3, folder="mnist", size=28, gz=(False, True, True, False)):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for (name, array), zipped in zip(arrays.items(), gz):
        write(root / folder / name, idx_bytes(array), gz=zipped)
    return arrays


def fake_cifar(root, n=4, protocol=2, str_keys=False):
    rng = np.random.default_rng(1)
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        key = (lambda k: k) if str_keys else (lambda k: k.encode())
        content = {key("batch_label"): key(name), key("labels"): labels, key("data"): data,
                   key("filenames"): [key(f"img{i}.png") for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(content, protocol=protocol))
        batches[name] = (data, labels)
    return batches


def fake_svhn(root, n_train=6, n_test=4):
    rng = np.random.default_rng(2)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
        y[0, 0] = 10  # the digit 0
        (root / "svhn").mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(root / "svhn" / f"{split}_32x32.mat", {"X": x, "y": y})
        out[split] = (x, y)
    return out


# -- MNIST ---------------------------------------------------------------------------------------------------

def test_mnist_round_trips_plain_and_gz(tmp_path):
    arrays = fake_mnist(tmp_path)
    data = load_mnist(tmp_path)
    assert data.train_x.shape == (5, 1, 28, 28) and data.test_x.shape == (3, 1, 28, 28)
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float()[:, None] / 255
    assert torch.equal(data.train_x, expected)
    assert torch.equal(data.test_x, torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float()[:, None] / 255)
    assert data.train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert data.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert float(data.train_x.min()) >= 0 and float(data.train_x.max()) <= 1
    assert data.channels == 1 and data.size == (28, 28)


def test_mnist_torchvision_layout_and_env_var(tmp_path, monkeypatch):
    arrays = fake_mnist(tmp_path, folder="mnist/MNIST/raw", gz=(True,) * 4)
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path))
    data = load_images("mnist")
    assert data.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


@pytest.mark.parametrize("code, dtype", [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32),
                                         (0x0D, np.float32), (0x0E, np.float64)])
def test_read_idx_dtypes_are_big_endian(tmp_path, code, dtype):
    array = (np.arange(24).reshape(2, 3, 4) * (3 if dtype != np.uint8 else 1) - (7 if dtype != np.uint8 else 0))
    array = array.astype(dtype)
    out = read_idx(write(tmp_path / "a.idx", idx_bytes(array, code)))
    assert out.dtype == dtype and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, array)


def malformed_cases():
    good = idx_bytes(np.zeros((2, 4, 4), np.uint8))
    return {
        "bad magic": b"\x01\x00" + good[2:],
        "unknown dtype": good[:2] + b"\x07" + good[3:],
        "truncated data": good[:-5],
        "too long": good + b"\x00",
        "truncated header": good[:9],
        "empty": b"",
    }


@pytest.mark.parametrize("case", list(malformed_cases()))
@pytest.mark.parametrize("gz", [False, True])
def test_malformed_idx_is_a_user_error(tmp_path, case, gz):
    path = write(tmp_path / "bad-idx3-ubyte", malformed_cases()[case], gz=gz)
    with pytest.raises(UserError) as err:
        read_idx(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "IDX" in message or "truncated" in message or "too long" in message


def test_corrupt_gzip_and_inconsistent_mnist_are_user_errors(tmp_path):
    path = tmp_path / "x-idx1-ubyte.gz"
    path.write_bytes(b"\x1f\x8b this is not gzip")
    with pytest.raises(UserError, match="gzip"):
        read_idx(path)
    fake_mnist(tmp_path, gz=(False,) * 4)
    write(tmp_path / "mnist" / "train-labels-idx1-ubyte", idx_bytes(np.zeros(4, np.uint8)))  # 5 images
    with pytest.raises(UserError, match="5 images but .* 4 labels"):
        load_mnist(tmp_path)
    write(tmp_path / "mnist" / "train-labels-idx1-ubyte", idx_bytes(np.full(5, 12, np.uint8)))
    with pytest.raises(UserError, match="labels must lie in 0..9"):
        load_mnist(tmp_path)
    write(tmp_path / "mnist" / "train-images-idx3-ubyte", idx_bytes(np.zeros((5, 28, 28), np.int32), 0x0C))
    with pytest.raises(UserError, match="expected IDX ubyte images"):
        load_mnist(tmp_path)


def test_damaged_compressed_data_in_a_gz_is_a_user_error(tmp_path):
    """zlib.error is no OSError: a .gz whose deflate data is damaged (a flipped bit on disk or in transit) escaped
    read_idx and check_idx, a traceback from `nodebench run` instead of one line."""
    fake_mnist(tmp_path, gz=(False, False, True, False))
    path = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    data = bytearray(gzip.compress(gzip.decompress(path.read_bytes())))  # a 10-byte header: no file name
    data[10] = 0x07  # the first deflate block: final, of the reserved type 3
    path.write_bytes(data)
    for read in (read_idx, check_idx, lambda _: load_mnist(tmp_path)):
        with pytest.raises(UserError, match="invalid block type; expected an IDX file, plain or gzipped") as err:
            read(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("loader, names", [
    (load_mnist, ["mnist/train-images-idx3-ubyte[.gz]", "mnist/t10k-labels-idx1-ubyte[.gz]"]),
    (load_cifar10, ["cifar10/cifar-10-batches-py/data_batch_1", "cifar10/cifar-10-batches-py/test_batch"]),
    (load_svhn, ["svhn/train_32x32.mat", "svhn/test_32x32.mat"]),
])
def test_missing_files_name_paths_directory_and_readme(tmp_path, loader, names):
    with pytest.raises(UserError) as err:
        loader(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    for name in names:
        assert name in message
    assert str(tmp_path) in message and "datasets/README.md" in message and "NODEBENCH_DATA" in message


def test_partly_missing_mnist_names_only_the_missing_file(tmp_path):
    fake_mnist(tmp_path)
    os.remove(tmp_path / "mnist" / "t10k-labels-idx1-ubyte")
    with pytest.raises(UserError) as err:
        load_mnist(tmp_path)
    assert "t10k-labels-idx1-ubyte" in str(err.value) and "train-images" not in str(err.value)


# -- CIFAR-10 ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol, str_keys", [(2, False), (4, True)])
def test_cifar10_round_trips(tmp_path, protocol, str_keys):
    batches = fake_cifar(tmp_path, protocol=protocol, str_keys=str_keys)
    data = load_cifar10(tmp_path)
    assert data.train_x.shape == (20, 3, 32, 32) and data.test_x.shape == (4, 3, 32, 32)
    train = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    expected = torch.from_numpy(train).float().reshape(-1, 3, 32, 32) / 255
    assert torch.equal(data.train_x, expected)
    # row layout: the first 1024 values are the red plane, row-major
    assert data.train_x[0, 0, 0, 1] == train[0, 1] / np.float32(255)
    assert data.train_x[0, 2, 31, 31] == train[0, 3071] / np.float32(255)
    assert data.train_y.tolist() == [v for i in range(1, 6) for v in batches[f"data_batch_{i}"][1]]
    assert data.test_y.tolist() == batches["test_batch"][1]
    assert data.train_y.dtype == torch.int64


def test_cifar_pickles_naming_numpy_core_load(tmp_path):
    """Batches pickled by NumPy < 2 (the real files) name numpy.core.multiarray, renamed in NumPy 2."""
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    raw = pickle.dumps({b"data": data, b"labels": [3, 4]}, protocol=2)
    raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert b"numpy.core.multiarray\n" in raw
    (tmp_path / "b").write_bytes(raw)
    images, labels = read_cifar_batch(tmp_path / "b")
    np.testing.assert_array_equal(images.reshape(2, 3072), data)
    assert labels.tolist() == [3, 4]


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_cifar_unpickler_refuses_code_and_bad_contents(tmp_path):
    target = tmp_path / "pwned"
    (tmp_path / "evil").write_bytes(pickle.dumps({b"data": _Evil(str(target)), b"labels": []}))
    with pytest.raises(UserError, match="not allowed"):
        read_cifar_batch(tmp_path / "evil")
    assert not target.exists()
    (tmp_path / "keys").write_bytes(pickle.dumps({b"pixels": np.zeros((1, 3072), np.uint8)}))
    with pytest.raises(UserError, match="expected keys data and labels"):
        read_cifar_batch(tmp_path / "keys")
    (tmp_path / "shape").write_bytes(pickle.dumps({b"data": np.zeros((1, 100), np.uint8), b"labels": [0]}))
    with pytest.raises(UserError, match=r"\(N, 3072\)"):
        read_cifar_batch(tmp_path / "shape")
    (tmp_path / "junk").write_bytes(b"not a pickle at all")
    with pytest.raises(UserError, match="cannot read CIFAR batch"):
        read_cifar_batch(tmp_path / "junk")
    # a tampered codec name in the _codecs.encode call that protocol 2 pickles bytes with: a LookupError escaped
    raw = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}, protocol=2)
    assert raw.count(b"latin1") >= 1
    (tmp_path / "codec").write_bytes(raw.replace(b"latin1", b"latWn1"))
    with pytest.raises(UserError, match="cannot read CIFAR batch .*unknown encoding: latWn1"):
        read_cifar_batch(tmp_path / "codec")


# -- SVHN ----------------------------------------------------------------------------------------------------

def test_svhn_round_trips_and_maps_10_to_0(tmp_path):
    raw = fake_svhn(tmp_path)
    data = load_svhn(tmp_path)
    x, y = raw["train"]
    assert data.train_x.shape == (6, 3, 32, 32) and data.test_x.shape == (4, 3, 32, 32)
    expected = torch.from_numpy(np.transpose(x, (3, 2, 0, 1)).copy()).float() / 255
    assert torch.equal(data.train_x, expected)
    i, c, h, w = 4, 2, 5, 17
    assert data.train_x[i, c, h, w] == x[h, w, c, i] / np.float32(255)
    labels = y.reshape(-1).astype(np.int64)
    labels[labels == 10] = 0
    assert data.train_y.tolist() == labels.tolist() and data.train_y[0] == 0
    assert data.train_y.dtype == torch.int64 and int(data.train_y.max()) <= 9
    assert data.test_y[0] == 0


def test_svhn_malformed_is_a_user_error(tmp_path):
    fake_svhn(tmp_path)
    scipy.io.savemat(tmp_path / "svhn" / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8)})
    with pytest.raises(UserError, match="expected variables X and y"):
        load_svhn(tmp_path)
    scipy.io.savemat(tmp_path / "svhn" / "test_32x32.mat", {"X": np.zeros((28, 28, 3, 2), np.uint8),
                                                             "y": np.ones((2, 1), np.uint8)})
    with pytest.raises(UserError, match=r"\(32, 32, 3, N\)"):
        load_svhn(tmp_path)
    (tmp_path / "svhn" / "test_32x32.mat").write_bytes(b"garbage" * 40)
    with pytest.raises(UserError, match="cannot read"):
        load_svhn(tmp_path)


def test_svhn_damaged_inside_a_variable_is_a_user_error(tmp_path):
    """scipy's MATLAB reader fails on a damaged variable with errors such as UnboundLocalError or ZeroDivisionError,
    which escaped read_svhn_mat as a traceback."""
    fake_svhn(tmp_path)
    path = tmp_path / "svhn" / "train_32x32.mat"
    data = bytearray(path.read_bytes())
    # MATLAB v5 (uncompressed): a 128-byte header, X's miMATRIX tag (8 bytes), then its array-flags subelement
    # (an 8-byte tag, then 8 bytes whose first, byte 144, is the array class: 9 = uint8); 79 is no class
    assert data[136:144] == b"\x06\x00\x00\x00\x08\x00\x00\x00" and data[144] == 9
    data[144] = 79
    path.write_bytes(data)
    with pytest.raises(UserError, match="cannot read .*UnboundLocalError.*expected an SVHN MATLAB file with X and y"):
        read_svhn_mat(path)


# -- digits --------------------------------------------------------------------------------------------------

def test_digits_split_is_seeded_stratified_and_scaled():
    a, b, c = load_digits(0), load_digits(0), load_digits(1)
    assert a.train_x.shape == (1437, 1, 8, 8) and a.test_x.shape == (360, 1, 8, 8)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.test_x, c.test_x)
    assert float(a.train_x.min()) == 0.0 and float(a.train_x.max()) == 1.0
    values = torch.unique(a.train_x * 16)
    assert torch.equal(values, values.round())  # 0..16 divided by 16, exactly
    counts = torch.bincount(a.test_y, minlength=10)
    assert int(counts.min()) >= 35 and int(counts.max()) <= 37  # stratified: 360 of 1797 ≈ 36 per class


# -- model ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels, size, state, n_params, n_field", [
    (1, 28, (10, 11, 11), 93_682, 31_610),   # MNIST: the counts derived from the official code (sheet §7)
    (3, 32, (10, 13, 13), 117_866, 31_610),  # CIFAR-10 / SVHN
    (1, 8, (10, 4, 4), None, 31_610),        # digits: our padded encoder
])
def test_state_shapes_and_parameter_counts(channels, size, state, n_params, n_field):
    torch.manual_seed(0)
    model = ImageODEModel(channels, (size, size))
    z = model.encoder(torch.rand(3, channels, size, size))
    assert tuple(z.shape) == (3, *state) == (3, *model.state_shape)
    assert tuple(model.field(torch.tensor(0.0), z).shape) == tuple(z.shape)
    if n_params is not None:
        assert sum(p.numel() for p in model.parameters()) == n_params
    assert sum(p.numel() for p in model.field.parameters()) == n_field


def test_layers_compose_as_in_the_official_code():
    F = torch.nn.functional
    torch.manual_seed(0)
    model = ImageODEModel(1, (28, 28), width=6).eval()
    with torch.no_grad():
        model.encoder.norm.running_mean.fill_(0.2)
        model.encoder.norm.running_var.fill_(0.5)
    x = torch.rand(2, 1, 28, 28)
    enc, f = model.encoder, model.field
    h = F.relu((x - 0.2) / math.sqrt(0.5 + enc.norm.eps) * enc.norm.weight.view(1, -1, 1, 1)
               + enc.norm.bias.view(1, -1, 1, 1))
    h = F.conv2d(F.relu(F.max_pool2d(F.conv2d(h, enc.conv1.weight, enc.conv1.bias), 2)), enc.conv2.weight,
                 enc.conv2.bias)
    torch.testing.assert_close(enc(x), h)
    out = F.softplus(F.conv2d(h, f.conv1.weight, f.conv1.bias, padding=1))
    out = F.softplus(F.conv2d(out, f.conv2.weight, f.conv2.bias, padding=1))
    out = F.conv2d(out, f.conv3.weight, f.conv3.bias, padding=1)
    torch.testing.assert_close(f(torch.tensor(0.3), h), out)
    torch.testing.assert_close(f(torch.tensor(0.9), h), out)  # no time input
    logits = model(x, lambda func, z0, t: torch.stack([z0, func(t[0], z0)]))  # a fake one-output "solve"
    fc1, fc2 = model.decoder[1], model.decoder[3]
    torch.testing.assert_close(logits, fc2(F.relu(fc1(out.flatten(1)))))


def test_dynamics_run_under_vmap():
    torch.manual_seed(0)
    field = ConvDynamics(10, 6)
    taus = torch.tensor([0.1, 0.5, 0.9])
    zs = torch.randn(3, 2, 10, 5, 5)
    batched = torch.func.vmap(field)(taus, zs)
    looped = torch.stack([field(t, z) for t, z in zip(taus, zs)])
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-6)


# -- task ----------------------------------------------------------------------------------------------------

def test_registry_and_defaults():
    for name in ("images_digits", "images_mnist", "images_cifar10", "images_svhn"):
        task = TASKS[name]()
        assert task.paper == "gq_adjoint" and task.metrics[:2] == ("test_accuracy", "test_loss")
    hp = get_task("images_mnist").hparams()
    assert (hp["width"], hp["batch_size"], hp["lr"], hp["eval_batch_size"]) == (50, 32, 1e-3, 500)
    assert hp["dtype"] == "float32" and hp["n_train"] is None and hp["n_test"] is None
    with pytest.raises(UserError):
        get_task("images_digits").build(seed=0, device=CPU, hparams={"n_train": 0})
    with pytest.raises(UserError):
        get_task("images_digits").build(seed=0, device=CPU, hparams={"encoder_padding": 2})
    with pytest.raises(UserError):
        get_task("images_digits").build(seed=0, device=CPU, hparams={"kernel": 5})


@pytest.mark.parametrize("method", ["direct", "gq", "gq_batched"])
def test_digits_trains_with_finite_metrics(single_thread, method):
    problem = get_task("images_digits").build(seed=0, device=CPU, hparams=SMALL)
    assert tuple(problem.model.field.conv1.weight.shape) == (8, 10, 3, 3)
    result = train(problem, get_method(method), device=CPU, iters=2, solver_options={"rtol": 1e-3, "atol": 1e-3})
    assert result.iters == 2
    assert all(math.isfinite(v) for v in result.curves["loss"])
    assert set(result.metrics) == {"test_accuracy", "test_loss", "reference_nfe"}
    assert all(math.isfinite(v) for v in result.metrics.values())
    assert 0.0 <= result.metrics["test_accuracy"] <= 1.0
    assert result.metrics["test_loss"] > 0 and result.metrics["reference_nfe"] >= 8
    assert all(n > 0 for n in result.curves["nfe_forward"])
    if method != "direct":
        assert all(n > 0 for n in result.curves["nfe_backward"])
    assert not problem.model.training  # evaluated in eval mode


def test_gq_gradients_match_direct_backprop(single_thread):
    """All parameters (encoder, dynamics, decoder) get the backprop gradient from the GQ methods."""
    hp = SMALL | {"dtype": "float64", "n_train": 16, "batch_size": 16}
    grads = {}
    for method in ("direct", "gq", "gq_batched"):
        problem = get_task("images_digits").build(seed=3, device=CPU, hparams=hp)
        params = list(problem.model.parameters())
        solve = get_method(method).make_solve(params, rtol=1e-9, atol=1e-9, gtol=0.5)
        loss = problem.loss_fixed(solve)
        grads[method] = torch.autograd.grad(loss, params)
    for method in ("gq", "gq_batched"):
        for g, ref in zip(grads[method], grads["direct"]):
            assert g is not None
            assert float((g - ref).norm()) <= 1e-5 * float(ref.norm()) + 1e-10


def test_batches_use_a_local_generator_and_bn_modes():
    state = torch.random.get_rng_state()
    problem = get_task("images_digits").build(seed=5, device=CPU, hparams=SMALL)
    other = get_task("images_digits").build(seed=5, device=CPU, hparams=SMALL)
    first = [problem._next_batch()[1] for _ in range(5)]  # more than one epoch of 64 // 16 batches
    assert all(torch.equal(a, other._next_batch()[1]) for a in first)
    assert torch.equal(torch.random.get_rng_state(), state)
    bn = problem.model.encoder.norm
    before = bn.running_mean.clone()
    solve = get_method("direct").make_solve(list(problem.model.parameters()), rtol=1e-3, atol=1e-3)
    problem.loss(solve)
    assert problem.model.training and not torch.equal(bn.running_mean, before)
    after_loss = bn.running_mean.clone()
    problem.evaluate(solve)
    assert not problem.model.training and torch.equal(bn.running_mean, after_loss)
    problem.loss(solve)  # back to train mode after an evaluation
    assert problem.model.training and not torch.equal(bn.running_mean, after_loss)
    assert torch.equal(torch.random.get_rng_state(), state)
    reseeded = get_task("images_digits").build(seed=6, device=CPU, hparams=SMALL)
    assert not torch.equal(reseeded.data.test_x, problem.data.test_x)  # the seed picks the digits split


def test_file_task_builds_from_the_data_directory(single_thread, tmp_path, monkeypatch):
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path))
    with pytest.raises(UserError, match="MNIST data not found"):
        get_task("images_mnist").build(seed=0, device=CPU, hparams={})
    fake_mnist(tmp_path, n_train=8, n_test=4)
    problem = get_task("images_mnist").build(seed=0, device=CPU, hparams={"width": 4, "batch_size": 4})
    assert problem.model.state_shape == (10, 11, 11)
    result = train(problem, get_method("gq"), device=CPU, iters=1, solver_options={"rtol": 1e-3, "atol": 1e-3})
    assert 0.0 <= result.metrics["test_accuracy"] <= 1.0 and math.isfinite(result.metrics["test_loss"])
    fake_svhn(tmp_path, n_train=4, n_test=2)
    problem = get_task("images_svhn").build(seed=0, device=CPU, hparams={"width": 4, "batch_size": 4})
    assert problem.model.state_shape == (10, 13, 13)
