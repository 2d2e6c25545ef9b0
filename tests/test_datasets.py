"""Tests for nodebench.datasets on tiny files in the real formats (no downloads)."""

import hashlib
import io
import logging
import tarfile

import numpy as np
import pandas as pd
import pytest

from nodebench.datasets import (
    MAF_NAMES,
    SKLEARN_NAMES,
    TOY_NAMES,
    data_root,
    load_density,
    load_gas,
    load_hepmass,
    load_miniboone,
    load_power,
    sample_toy,
)
from nodebench.datasets import fetch as fetch_module
from nodebench.datasets.catalog import status
from nodebench.datasets.fetch import fetch
from nodebench.datasets import storage
from nodebench.errors import UserError

HEPMASS_HEADER = ["# label"] + [f"f{i}" for i in range(27)] + ["mass"]


def check_splits(splits, n_train, n_val, n_test, dim):
    assert splits.train.shape == (n_train, dim)
    assert splits.val.shape == (n_val, dim)
    assert splits.test.shape == (n_test, dim)
    for part in (splits.train, splits.val, splits.test):
        assert part.dtype == np.float64 and np.isfinite(part).all()


def write_manifest(path, entries):
    lines = []
    for dataset, rel, sha in entries:
        lines += ["[[files]]", f'dataset = "{dataset}"', f'path = "{rel}"']
        lines += ['url = "https://example.invalid/data.tar.gz"', f'sha256 = "{sha}"', ""]
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def miniboone_root(tmp_path, rng):
    (tmp_path / "miniboone").mkdir()
    np.save(tmp_path / "miniboone" / "data.npy", rng.normal(size=(100, 5)))
    return tmp_path


def test_power(tmp_path, rng):
    raw = rng.uniform(0, 5, size=(200, 8))
    (tmp_path / "power").mkdir()
    np.save(tmp_path / "power" / "data.npy", raw)
    splits = load_power(tmp_path)
    check_splits(splits, 162, 18, 20, 6)
    both = np.vstack([splits.train, splits.val])
    np.testing.assert_allclose(both.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(both.std(axis=0), 1, atol=1e-12)
    # rows are shuffled by RandomState(42); the time column (last) gets no jitter
    order = np.arange(200)
    np.random.RandomState(42).shuffle(order)
    time = np.vstack([splits.train, splits.val, splits.test])[:, -1]
    assert np.corrcoef(time, raw[order, 7])[0, 1] == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(load_power(tmp_path).test, splits.test)


def test_power_rejects_wrong_columns(tmp_path, rng):
    (tmp_path / "power").mkdir()
    np.save(tmp_path / "power" / "data.npy", rng.normal(size=(50, 6)))
    with pytest.raises(UserError, match=r"expected a real \(N, 8\) array"):
        load_power(tmp_path)


def test_gas(tmp_path, rng):
    sensors = rng.normal(size=(300, 7))
    copies = sensors[:, :3] + 1e-3 * rng.normal(size=(300, 3))  # correlation > 0.98 with sensors 0-2
    frame = pd.DataFrame(np.hstack([sensors, copies]), columns=[f"S{i}" for i in range(10)])
    frame.insert(0, "Time", np.arange(300.0))
    frame["Meth"], frame["Eth"] = rng.uniform(size=300), rng.uniform(size=300)
    (tmp_path / "gas").mkdir()
    frame.to_pickle(tmp_path / "gas" / "ethylene_CO.pickle")
    splits = load_gas(tmp_path, trust_unverified=True)
    check_splits(splits, 243, 27, 30, 7)
    whole = np.vstack([splits.train, splits.val, splits.test])
    np.testing.assert_allclose(whole.std(axis=0, ddof=1), 1, atol=1e-12)
    assert np.abs(np.corrcoef(whole, rowvar=False) - np.eye(7)).max() < 0.98


def test_gas_rejects_non_pickle(tmp_path):
    (tmp_path / "gas").mkdir()
    (tmp_path / "gas" / "ethylene_CO.pickle").write_text("not a pickle")
    with pytest.raises(UserError, match="not a readable pandas pickle"):
        load_gas(tmp_path, trust_unverified=True)


def test_gas_unpickles_only_a_verified_or_trusted_file(tmp_path, monkeypatch):
    """A pickle that would run code (here: create a file) is never loaded unless its sha256 is pinned and
    matches, or the user vouches for it."""
    import pickle

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "ran"), "w"))

    (tmp_path / "gas").mkdir()
    path = tmp_path / "gas" / "ethylene_CO.pickle"
    path.write_bytes(pickle.dumps(Payload()))
    monkeypatch.delenv("NODEBENCH_TRUST_UNVERIFIED", raising=False)
    unpinned = write_manifest(tmp_path / "m.toml", [("gas", "gas/ethylene_CO.pickle", "")])
    with pytest.raises(UserError, match="refusing to unpickle .* --trust-unverified"):
        load_gas(tmp_path, manifest=unpinned)
    wrong = write_manifest(tmp_path / "wrong.toml", [("gas", "gas/ethylene_CO.pickle", "0" * 64)])
    with pytest.raises(UserError, match="checksum mismatch"):
        load_gas(tmp_path, manifest=wrong, trust_unverified=True)
    assert not (tmp_path / "ran").exists()
    monkeypatch.setenv("NODEBENCH_TRUST_UNVERIFIED", "1")
    with pytest.raises(UserError, match="pandas"):
        load_gas(tmp_path, manifest=unpinned)  # trusted: loaded (and the payload ran)
    assert (tmp_path / "ran").exists()


def hepmass_frame(rng, n):
    """Rows alternating background (label 0) and signal (label 1), laid out like the HEPMASS CSVs."""
    label = np.arange(n) % 2
    features = rng.normal(size=(n, 27))
    features[:, 3] = rng.integers(0, 3, size=n)  # discrete features: their smallest value repeats
    features[:, 10] = rng.integers(0, 2, size=n)
    mass = np.where(label == 1, 1000.0, rng.choice([500.0, 1500.0], size=n))
    return pd.DataFrame(np.column_stack([label, features, mass]), columns=HEPMASS_HEADER)


def test_hepmass(tmp_path, rng):
    (tmp_path / "hepmass").mkdir()
    hepmass_frame(rng, 400).to_csv(tmp_path / "hepmass" / "1000_train.csv", index=False)
    hepmass_frame(rng, 100).to_csv(tmp_path / "hepmass" / "1000_test.csv", index=False)
    splits = load_hepmass(tmp_path)
    check_splits(splits, 180, 20, 50, 25)  # 28 features minus 2 discrete ones and the constant mass
    np.testing.assert_allclose(np.vstack([splits.train, splits.val]).mean(axis=0), 0, atol=1e-12)


def test_hepmass_rejects_mismatched_columns(tmp_path, rng):
    (tmp_path / "hepmass").mkdir()
    hepmass_frame(rng, 400).to_csv(tmp_path / "hepmass" / "1000_train.csv", index=False)
    test = hepmass_frame(rng, 100).drop(columns="mass")  # dropping the last column now removes f26
    test.to_csv(tmp_path / "hepmass" / "1000_test.csv", index=False)
    with pytest.raises(UserError, match="does not match"):
        load_hepmass(tmp_path)


def test_miniboone(miniboone_root):
    splits = load_miniboone(miniboone_root)
    check_splits(splits, 81, 9, 10, 5)
    np.testing.assert_allclose(np.vstack([splits.train, splits.val]).std(axis=0), 1, atol=1e-12)
    np.testing.assert_array_equal(load_density("MINIBOONE", seed=0, root=miniboone_root).val, splits.val)


def test_miniboone_rejects_nan(tmp_path, rng):
    data = rng.normal(size=(100, 5))
    data[95, 2] = np.nan
    (tmp_path / "miniboone").mkdir()
    np.save(tmp_path / "miniboone" / "data.npy", data)
    with pytest.raises(UserError, match="MINIBOONE: the test split contains NaN"):
        load_miniboone(tmp_path)


def test_bsds300(tmp_path, rng):
    h5py = pytest.importorskip("h5py")
    (tmp_path / "BSDS300").mkdir()
    with h5py.File(tmp_path / "BSDS300" / "BSDS300.hdf5", "w") as handle:
        for key, n in (("train", 50), ("validation", 10), ("test", 20)):
            handle[key] = rng.normal(size=(n, 63)).astype(np.float32)
    check_splits(load_density("bsds300", seed=0, root=tmp_path), 50, 10, 20, 63)


@pytest.mark.parametrize("name", MAF_NAMES)
def test_missing_maf_file_names_expected_path(tmp_path, name):
    with pytest.raises(UserError) as info:
        load_density(name, seed=0, root=tmp_path)
    message = str(info.value)
    if name == "bsds300" and "h5py" in message:
        return  # h5py is checked before the file
    assert str(tmp_path) in message and "NODEBENCH_DATA" in message and f"`nodebench data fetch {name}`" in message
    assert "\n" not in message


def test_checksums(miniboone_root, caplog):
    path = miniboone_root / "miniboone" / "data.npy"
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest = write_manifest(miniboone_root / "m.toml", [("miniboone", "miniboone/data.npy", good)])
    load_miniboone(miniboone_root, manifest=manifest)
    manifest = write_manifest(miniboone_root / "m.toml", [("miniboone", "miniboone/data.npy", "0" * 64)])
    with pytest.raises(UserError, match="checksum mismatch"):
        load_miniboone(miniboone_root, manifest=manifest)
    manifest = write_manifest(miniboone_root / "m.toml", [("miniboone", "miniboone/data.npy", "")])
    with caplog.at_level(logging.WARNING, logger=storage.__name__):
        load_miniboone(miniboone_root, manifest=manifest)
    assert "no sha256 pinned" in caplog.text


def test_repository_manifest_lists_every_maf_file():
    manifest = storage.read_manifest()
    for name in MAF_NAMES:
        assert manifest.files_of(name)
    assert {f.url for f in manifest.files} == {"https://zenodo.org/record/1161203/files/data.tar.gz"}
    assert set(manifest.archives) == {"https://zenodo.org/record/1161203/files/data.tar.gz"}


def test_fetch_extracts_from_present_archive(tmp_path, rng, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("fetch must not download when the archive is present")

    monkeypatch.setattr(fetch_module, "_open", no_network)
    payload = io.BytesIO()
    np.save(payload, rng.normal(size=(100, 5)))
    with tarfile.open(tmp_path / "data.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("data/miniboone/data.npy")
        info.size = payload.getbuffer().nbytes
        payload.seek(0)
        tar.addfile(info, payload)
    manifest = write_manifest(tmp_path / "m.toml", [("miniboone", "miniboone/data.npy", "")])
    assert fetch("miniboone", tmp_path, manifest=manifest, progress=False) == [tmp_path / "miniboone" / "data.npy"]
    check_splits(load_miniboone(tmp_path, manifest=manifest), 81, 9, 10, 5)


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("NODEBENCH_DATA", raising=False)
    assert data_root() == storage.DEFAULT_DATA_DIR
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"


@pytest.mark.parametrize("name", TOY_NAMES)
def test_toy_samplers(name):
    x = sample_toy(name, 1001, seed=3)
    assert x.shape == (1001, 2) and x.dtype == np.float64 and np.isfinite(x).all()
    np.testing.assert_array_equal(x, sample_toy(name, 1001, seed=3))
    assert not np.array_equal(x, sample_toy(name, 1001, seed=4))
    assert np.abs(x).max() < 10


def test_toy_errors_and_load_density():
    with pytest.raises(UserError, match="valid: 8gaussians, moons") as info:
        sample_toy("spiral", 10, seed=0)
    assert "\n" not in str(info.value)
    splits = load_density("8gaussians", seed=0, toy_sizes=(300, 20, 10))
    check_splits(splits, 300, 20, 10, 2)
    check_splits(load_density("moons", seed=0), 20000, 2000, 2000, 2)


@pytest.mark.parametrize("name", SKLEARN_NAMES)
def test_sklearn_sets(name):
    splits = load_density(name, seed=0)
    n = sum(len(p) for p in (splits.train, splits.val, splits.test))
    assert len(splits.val) == len(splits.test) == int(0.1 * n)
    assert np.isfinite(splits.train).all()
    np.testing.assert_allclose(np.vstack([splits.train, splits.val]).std(axis=0), 1, atol=1e-9)
    assert len(np.unique(splits.train[:, 0])) == len(splits.train)  # dequantised: no repeated values


def test_unknown_names():
    with pytest.raises(UserError, match="valid: power, gas, hepmass, miniboone, bsds300, 8gaussians"):
        load_density("mnist", seed=0)
    with pytest.raises(UserError, match="sklearn:digits"):
        load_density("sklearn:mnist", seed=0)


def test_user_npy(tmp_path, rng):
    data = rng.normal(size=(100, 3))
    np.save(tmp_path / "x.npy", data)
    splits = load_density(str(tmp_path / "x.npy"), seed=1)
    check_splits(splits, 80, 10, 10, 3)
    rows = np.vstack([splits.train, splits.val, splits.test])
    np.testing.assert_array_equal(np.sort(rows, axis=0), np.sort(data, axis=0))
    np.testing.assert_array_equal(load_density(tmp_path / "x.npy", seed=1).test, splits.test)
    assert not np.array_equal(load_density(tmp_path / "x.npy", seed=2).test, splits.test)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "data file not found"),
        (np.full((20, 2), np.nan), "NaN or infinite"),
        (np.array([[np.inf] * 2] * 20), "NaN or infinite"),
        (np.zeros(20), "expected 2-D"),
        (np.zeros((20, 2, 2)), "expected 2-D"),
        (np.zeros((5, 2)), "at least 10 rows"),
        (np.array([["a", "b"]] * 20), "expected a real"),
        ("text", "is not a .npy file"),
        (np.array([None] * 20, dtype=object), "not a readable .npy array"),
    ],
)
def test_user_npy_errors(tmp_path, content, message):
    path = tmp_path / "bad.npy"
    if isinstance(content, str):
        path.write_text("1,2\n3,4\n")
    elif content is not None:
        np.save(path, content)
    with pytest.raises(UserError, match=message) as info:
        load_density(str(path), seed=0)
    assert "\n" not in str(info.value)


def test_file_splits_check_the_standardized_values_in_the_model_dtype(tmp_path, rng):
    from nodebench.datasets import file_splits, read_npy_file

    data = rng.normal(size=(40, 2))
    splits, back = file_splits(data * 10.0, seed=0, standardize=True, dtype="float32", what="x.npy")
    check_splits(splits, 32, 4, 4, 2)
    both = np.vstack([splits.train, splits.val])
    np.testing.assert_allclose(both.std(axis=0), 1.0)
    raw, identity = file_splits(data * 10.0, seed=0, standardize=False, dtype="float32", what="x.npy")
    assert identity.nll_offset == 0.0 and np.array_equal(identity.to_data(raw.test), raw.test)
    assert back.nll_offset == pytest.approx(np.log(np.vstack([raw.train, raw.val]).std(axis=0)).sum())
    np.testing.assert_allclose(back.to_data(splits.test), raw.test)  # the map back to the file's units
    raw, _ = file_splits(data * 1e100, seed=0, standardize=False, dtype="float64", what="x.npy")
    assert np.abs(raw.train).max() > 1e99
    with pytest.raises(UserError, match=r"x.npy holds values beyond the range of float32, .*3.4e\+38"):
        file_splits(data * 1e100, seed=0, standardize=False, dtype="float32", what="x.npy")
    with pytest.raises(UserError, match="x.npy holds values too large to standardize"):
        file_splits(data * 1e300, seed=0, standardize=True, dtype="float64", what="x.npy")
    with pytest.raises(UserError, match="is a folder"):
        read_npy_file(tmp_path)


def test_an_unpinned_maf_file_is_reported_without_naming_a_checksum_the_manifest_has_no_field_for(tmp_path, rng):
    (tmp_path / "power").mkdir()
    np.save(tmp_path / "power" / "data.npy", rng.normal(size=(10, 3)))
    manifest = write_manifest(tmp_path / "m.toml", [("power", "power/data.npy", "")])
    (state,) = status("power", tmp_path, manifest=manifest).files
    assert (state.state, state.detail) == ("unpinned", "no sha256 checksum pinned")
