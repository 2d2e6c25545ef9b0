"""The loaders on the real MNIST and PhysioNet 2012 files, checked against figures computed here straight from
the raw files (not through the loaders) and against published facts.

The files are looked for in ``$NODEBENCH_DATA``, else in ``shared/data`` beside the checkout or one level
further up (``../shared/data`` of a clone, ``../../shared/data`` of a worktree). Without them every test here
skips with a one-line reason; nothing is downloaded.
"""

from __future__ import annotations

import gzip
import os
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from nodebench.datasets import catalog, physionet
from nodebench.datasets.images import load_mnist
from nodebench.tasks import get_task

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path | None:
    if os.environ.get("NODEBENCH_DATA"):
        return Path(os.environ["NODEBENCH_DATA"])
    return next((p for p in (REPO.parent / "shared" / "data", REPO.parent.parent / "shared" / "data") if p.is_dir()),
                None)


DATA = _data_dir()


def _need(folder: str) -> Path:
    if DATA is None or not (DATA / folder).is_dir():
        pytest.skip(f"real {folder} files not found (set NODEBENCH_DATA or provide ../shared/data/{folder})")
    return DATA


# -- MNIST -------------------------------------------------------------------------------------------------

#: Published class counts of MNIST's training and test sets (digits 0…9).
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def raw_idx(folder: Path, name: str) -> tuple[tuple[int, ...], np.ndarray]:
    """An IDX file (plain or .gz) read with struct: its dimensions and its bytes after the header."""
    path = folder / name if (folder / name).is_file() else folder / f"{name}.gz"
    data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return dims, np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)


@pytest.fixture(scope="module")
def mnist():
    root = _need("mnist")
    return root, load_mnist(root)


def test_mnist_counts_shapes_values_and_labels_match_the_raw_files(mnist):
    root, splits = mnist
    for prefix, x, y, counts in (("train", splits.train_x, splits.train_y, TRAIN_COUNTS),
                                 ("t10k", splits.test_x, splits.test_y, TEST_COUNTS)):
        dims, pixels = raw_idx(root / "mnist", f"{prefix}-images-idx3-ubyte")
        label_dims, labels = raw_idx(root / "mnist", f"{prefix}-labels-idx1-ubyte")
        assert dims == (len(y), 28, 28) and label_dims == (len(y),)
        assert x.shape == (dims[0], 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert float(x.min()) == 0.0 and float(x.max()) == 1.0
        np.testing.assert_array_equal((x.numpy() * 255).round().astype(np.uint8).reshape(-1), pixels)
        np.testing.assert_array_equal(y.numpy(), labels)
        assert np.bincount(labels, minlength=10).tolist() == counts
    assert len(splits.train_x) + len(splits.test_x) == 70000


def test_mnist_hand_checked_first_images(mnist):
    _, splits = mnist
    # The first training image is the well-known "5"; the first test image a "7". Checked by eye on an ASCII
    # rendering of the raw bytes: ink in rows 5-24 only, the 5's top bar in row 5 at columns 12-23, its
    # bottom stroke in row 24 from column 4.
    assert int(splits.train_y[0]) == 5 and int(splits.test_y[0]) == 7 and int(splits.train_y[1]) == 0
    five = (splits.train_x[0, 0] * 255).round().to(torch.int64)
    assert int(five[:5].sum()) == 0 and int(five[25:].sum()) == 0
    assert five[5].gt(0).nonzero().flatten().tolist() == list(range(12, 24))
    assert int(five[24, :4].sum()) == 0 and int(five[24, 4]) > 127
    assert int(five.sum()) == 27525 and int(five.gt(0).sum()) == 166


def test_mnist_verifies_and_the_task_records_its_provenance(mnist, monkeypatch):
    root, _ = mnist
    assert catalog.status("mnist", root).verified
    monkeypatch.setenv("NODEBENCH_DATA", str(root))
    problem = get_task("mnist_ode").build(seed=0, device=torch.device("cpu"), hparams={})
    assert problem.provenance == {"dataset": "mnist", "n_train": 60000, "n_val": 0, "n_test": 10000,
                                  "data_verified": True}


# -- PhysioNet 2012 ----------------------------------------------------------------------------------------

class RawSet:
    """One set's record files split by hand into one row per line: record index, minutes, parameter, value."""

    def __init__(self, root: Path, name: str):
        folder, tarball = root / "physionet" / name, root / "physionet" / f"{name}.tar.gz"
        if folder.is_dir():
            texts = {p.stem: p.read_text() for p in folder.glob("*.txt")}
        else:
            with tarfile.open(tarball) as tar:
                texts = {m.name.split("/")[-1][:-4]: tar.extractfile(m).read().decode() for m in tar
                         if m.isfile() and m.name.endswith(".txt")}
        self.ids = sorted(texts)
        bodies = [texts[rid].split("\n", 1)[1].strip("\n") for rid in self.ids]
        self.record = np.repeat(np.arange(len(bodies)), [body.count("\n") + 1 if body else 0 for body in bodies])
        fields = "\n".join(b for b in bodies if b).replace("\n", ",").split(",")
        clock = np.fromiter(map(int, ",".join(fields[0::3]).replace(":", ",").split(",")), dtype=np.int64)
        self.minutes = clock[0::2] * 60 + clock[1::2]
        self.parameter = np.array(fields[1::3])
        self.value = np.fromiter(map(float, fields[2::3]), dtype=np.float64)


@pytest.fixture(scope="module")
def physionet_raw():
    root = _need("physionet")
    sets = physionet.available_sets(root)
    return root, sets, {name: RawSet(root, name) for name in sets}


@pytest.fixture(scope="module")
def physionet_records(physionet_raw):
    root, sets, _ = physionet_raw
    return physionet.load_physionet(root, sets=sets)


#: Published facts: distinct (record, time) pairs of each set (the challenge's counts) and set A's deaths.
PAIRS = {"set-a": 299264, "set-b": 299068}


def test_physionet_sets_counts_and_published_facts(physionet_raw, physionet_records):
    root, sets, raw = physionet_raw
    assert sets[:2] == ["set-a", "set-b"]
    for name in sets:
        assert len(raw[name].ids) == 4000
        if name in PAIRS:
            assert np.unique(raw[name].record * 10_000 + raw[name].minutes).size == PAIRS[name]
    assert len(physionet_records) == 4000 * len(sets)
    assert [r.record_id for r in physionet_records] == [rid for name in sets for rid in raw[name].ids]
    outcomes = physionet.load_outcomes(root, sets=sets[:2])
    set_a = set(raw["set-a"].ids)
    assert set(outcomes) == set_a | set(raw["set-b"].ids)
    assert sum(o["In-hospital_death"] for rid, o in outcomes.items() if rid in set_a) == 554
    assert catalog.status("physionet", root).verified


def test_physionet_observation_counts_value_ranges_and_time_grid(physionet_raw, physionet_records):
    _, sets, raw = physionet_raw
    # independent figures at the loader's 1-hour bins (halves to even): per parameter, the distinct
    # (set, record, bin) triples observed and the min and max of the bin means
    keys, values, names = [], [], []
    for k, name in enumerate(sets):
        r = raw[name]
        series = ~np.isin(r.parameter, physionet.STATIC_DESCRIPTORS)
        assert np.isin(r.parameter[series], physionet.PARAMETERS).all()
        assert r.minutes.max() <= 48 * 60
        bins = np.round(r.minutes[series] / 60).astype(np.int64)
        keys.append((k * 10_000 + r.record[series]) * 100 + bins)
        values.append(r.value[series])
        names.append(r.parameter[series])
    parameter_of = {p: i for i, p in enumerate(physionet.PARAMETERS)}
    codes = np.array([parameter_of[p] for p in np.concatenate(names)])
    cells, inverse = np.unique(np.concatenate(keys) * 37 + codes, return_inverse=True)
    means = np.bincount(inverse, np.concatenate(values)) / np.bincount(inverse)
    cell_code = cells % 37
    mask = np.stack([r.mask.sum(axis=0) for r in physionet_records]).sum(axis=0)
    np.testing.assert_array_equal(mask, np.bincount(cell_code, minlength=37))
    lo, hi = physionet.channel_range(physionet_records)
    np.testing.assert_allclose(lo, [means[cell_code == i].min() for i in range(37)])
    np.testing.assert_allclose(hi, [means[cell_code == i].max() for i in range(37)])
    # the traits the loader documents: outliers stay; Weight -1 ("unknown", the t = 0 descriptor) stays an
    # observation, and in the official binning it is averaged with a real weight measured in the same hour
    c = physionet.CHANNEL
    assert hi[c["pH"]] == 735.0 and lo[c["Temp"]] == -17.8 and lo[c["Weight"]] == -1.0
    a = raw["set-a"]
    first_bin = (a.parameter == "Weight") & (np.round(a.minutes / 60) == 0)
    unknown = set(a.record[first_bin & (a.value == -1)])
    known = set(a.record[first_bin & (a.value != -1)])
    set_a = physionet_records[:4000]
    only_unknown = [r for r in set_a if r.mask[0, c["Weight"]] and r.values[0, c["Weight"]] == -1]
    assert len(unknown) == 326 and len(only_unknown) == len(unknown - known) == 310
    # the time grid: hourly bins 0…48, every record starting at t = 0, sorted
    union = np.unique(np.concatenate([r.times for r in physionet_records]))
    np.testing.assert_array_equal(union, np.union1d([0], np.concatenate(keys) % 100))
    np.testing.assert_array_equal(union, np.arange(49.0))
    assert all(r.times[0] == 0 and np.all(np.diff(r.times) > 0) for r in physionet_records)
    assert all(r.values.shape == r.mask.shape == (len(r.times), 37) for r in physionet_records)


def test_physionet_hand_checked_record(physionet_raw):
    root, _, _ = physionet_raw
    # set-a/132539.txt, read by eye: Weight -1 at 00:00 (the descriptor, kept); HR 73 at 00:07 (bin 0 h),
    # 77 at 00:37 (bin 1 h), 60 at 01:37 (bin 2 h); GCS 15 at 00:07 and next at 03:37; Urine 900 at 00:07, 60 at
    # 00:37; NIMAP 92.33 at 00:07. Age 54, Gender 0, Height -1 and ICUType 4 are dropped.
    record = next(r for r in physionet.load_physionet(root, sets=["set-a"], n_records=1) if r.record_id == "132539")
    c = physionet.CHANNEL
    assert record.times[:3].tolist() == [0.0, 1.0, 2.0]
    assert record.values[0, c["Weight"]] == -1 and record.mask[0, c["Weight"]] == 1
    assert record.values[0, c["HR"]] == 73 and record.values[1, c["HR"]] == 77 and record.values[2, c["HR"]] == 60
    assert record.values[0, c["GCS"]] == 15 and record.mask[1, c["GCS"]] == 0
    assert record.values[0, c["Urine"]] == 900 and record.values[1, c["Urine"]] == 60
    assert record.values[0, c["NIMAP"]] == pytest.approx(92.33)


def test_physionet_task_records_8000_patients_and_its_provenance(physionet_raw, physionet_records, monkeypatch):
    root, sets, _ = physionet_raw
    monkeypatch.setenv("NODEBENCH_DATA", str(root))
    # the loader is checked above; the task is given its (already parsed) records to keep this test fast
    monkeypatch.setattr(physionet, "load_physionet", lambda **kw: physionet_records[:8000])
    problem = get_task("latent_ode_physionet").build(seed=0, device=torch.device("cpu"), hparams={})
    assert problem.provenance == {"dataset": "physionet", "n_train": 6400, "n_val": 0, "n_test": 1600,
                                  "data_verified": True}
    values = torch.cat([s.values[s.mask > 0] for s in problem.train])
    assert float(values.min()) == 0.0 and float(values.max()) == 1.0  # min-max over the training split
