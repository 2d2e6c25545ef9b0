"""Data loaders on bad files in the real formats (written into tmp_path; nothing is read from shared data):
each is one clear line naming what is wrong and what is valid, exit code 2 from the CLI, a UserError from
the Python API."""

from __future__ import annotations

import gzip
import io
import tarfile

import numpy as np
import pandas as pd
import pytest

from nodebench.cli import main
from nodebench.datasets import load_hepmass, load_miniboone, load_power
from nodebench.datasets import catalog, physionet
from nodebench.datasets.images import load_mnist
from nodebench.errors import UserError

HEPMASS_HEADER = ["# label"] + [f"f{i}" for i in range(27)] + ["mass"]
RECORD = "Time,Parameter,Value\n00:00,RecordID,{rid}\n00:00,Age,54\n00:00,Weight,-1\n00:07,HR,73\n00:40,HR,77\n"
OUTCOMES_HEADER = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n"


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def _physionet(root, ids=("132539", "132540", "132541"), outcome_ids=None):
    """A set-a folder of tiny records and its outcomes file (``outcome_ids``, default one line per record)."""
    folder = root / "physionet" / "set-a"
    folder.mkdir(parents=True)
    for rid in ids:
        (folder / f"{rid}.txt").write_text(RECORD.format(rid=rid))
    lines = [f"{rid},6,1,5,-1,0\n" for rid in (ids if outcome_ids is None else outcome_ids)]
    (root / "physionet" / "Outcomes-a.txt").write_text(OUTCOMES_HEADER + "".join(lines))
    return folder


# -- the data directory is a file ---------------------------------------------------------------------------

def test_a_data_directory_that_is_a_file_is_named_with_its_source(tmp_path, monkeypatch, capsys):
    """$NODEBENCH_DATA pointing at a file: the run gate said "not found in FILE/mnist", `data fetch` blamed
    --root, which was not given, and the loaders said "not found"."""
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path / "a_file"))
    expected = f"$NODEBENCH_DATA '{tmp_path / 'a_file'}' is a file; give a folder"
    out = tmp_path / "run"
    assert main(["run", "--task", "mnist_ode", "--method", "adjoint", "--iters", "1", "--out", str(out)]) == 2
    assert expected in _one_line(capsys) and not out.exists()
    assert main(["data", "fetch", "mnist", "--no-progress"]) == 2
    assert expected in _one_line(capsys)
    for load in (load_mnist, lambda: physionet.load_physionet(n_records=1), load_power):
        with pytest.raises(UserError, match=r"\$NODEBENCH_DATA .* is a file; give a folder"):
            load()


# -- a folder where a file should be ----------------------------------------------------------------------

def test_a_folder_where_a_file_should_be_is_said_so(tmp_path, capsys):
    """A folder at a file's path was reported as "not found", which sends the user looking for nothing."""
    (tmp_path / "mnist" / "train-images-idx3-ubyte").mkdir(parents=True)
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte is a folder, not a file"):
        load_mnist(tmp_path)
    assert main(["data", "verify", "mnist", "--root", str(tmp_path)]) == 1
    assert "train-images-idx3-ubyte is a folder, not a file" in capsys.readouterr().out
    (tmp_path / "power" / "data.npy").mkdir(parents=True)
    with pytest.raises(UserError, match=r"data\.npy is a folder, not a file"):
        load_power(tmp_path)
    (tmp_path / "physionet" / "set-a.tar.gz").mkdir(parents=True)
    with pytest.raises(UserError, match=r"set-a\.tar\.gz is a folder, not a file"):
        physionet.load_physionet(tmp_path)


def test_the_run_gate_says_which_path_is_a_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").mkdir(parents=True)
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path))
    out = tmp_path / "run"
    assert main(["run", "--task", "mnist_ode", "--method", "adjoint", "--iters", "1", "--out", str(out)]) == 2
    err = _one_line(capsys)
    assert "t10k-labels-idx1-ubyte.gz is a folder, not a file" in err and "nodebench data fetch mnist" in err
    assert not out.exists()


def test_a_folder_named_like_a_record_file_is_one_line(tmp_path, capsys):
    """It was ``Is a directory: '…'`` (an OSError's text), saying nothing of what is expected."""
    folder = _physionet(tmp_path)
    (folder / "132599.txt").mkdir()
    assert main(["data", "verify", "physionet", "--root", str(tmp_path)]) == 2
    err = _one_line(capsys)
    assert str(folder / "132599.txt") in err and "expected" in err and "<RecordID>.txt" in err


# -- PhysioNet tarballs -----------------------------------------------------------------------------------------

def _set_a_tar(ids=("132539", "132540", "132541")) -> bytes:
    """An uncompressed tar of ``set-a/<RecordID>.txt`` records, as the challenge's set-a.tar.gz holds them."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for rid in ids:
            data = RECORD.format(rid=rid).encode()
            info = tarfile.TarInfo(f"set-a/{rid}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _damaged_tar_header() -> bytes:
    raw = bytearray(_set_a_tar())
    raw[raw.index(b"set-a/132540.txt")] ^= 0xFF  # the second member's header no longer matches its checksum
    return gzip.compress(bytes(raw))  # a sound gzip stream around a damaged tar


def _damaged_gzip_payload() -> bytes:
    data = bytearray(gzip.compress(_set_a_tar(), compresslevel=0))  # stored blocks: the tar's bytes appear as is
    data[data.index(b"set-a/132540.txt")] ^= 0xFF  # a flipped byte that only the gzip CRC reveals
    return bytes(data)


@pytest.mark.parametrize("damage", [_damaged_tar_header, _damaged_gzip_payload])
def test_a_damaged_set_tarball_is_refused_not_read_short(tmp_path, damage):
    """tarfile ends its listing silently at a damaged header after the first member, and the gzip CRC is never
    reached: the loader returned 1 of the 3 records, and the --no-verify structure check passed."""
    tarball = tmp_path / "physionet" / "set-a.tar.gz"
    tarball.parent.mkdir()
    tarball.write_bytes(gzip.compress(_set_a_tar()))
    assert [r.record_id for r in physionet.load_physionet(tmp_path, sets=["set-a"])] == ["132539", "132540", "132541"]
    tarball.write_bytes(damage())
    for read in (lambda: physionet.load_physionet(tmp_path, sets=["set-a"]), lambda: physionet.check_set(tarball)):
        with pytest.raises(UserError, match=r"cannot read PhysioNet set .*set-a\.tar\.gz: .*expected a folder or a "
                                            r"\.tar\.gz of <RecordID>\.txt files") as err:
            read()
        assert "\n" not in str(err.value)
    with pytest.raises(UserError, match=r"cannot read archive .*set-a\.tar\.gz: .*delete it and fetch it again"):
        catalog.members_digest(tarball)


# -- PhysioNet outcomes join ----------------------------------------------------------------------------------

def test_outcomes_join_the_records_one_line_each(tmp_path):
    _physionet(tmp_path)
    outcomes = physionet.load_outcomes(tmp_path, sets=["set-a"])
    assert sorted(outcomes) == [r.record_id for r in physionet.load_physionet(tmp_path, sets=["set-a"])]
    assert outcomes["132540"] == {"SAPS-I": 6, "SOFA": 1, "Length_of_stay": 5, "Survival": -1,
                                  "In-hospital_death": 0}


def test_an_outcomes_file_missing_a_record_is_refused(tmp_path):
    """It returned the outcomes it had, so a join silently lost the record."""
    _physionet(tmp_path, outcome_ids=("132539", "132541"))
    with pytest.raises(UserError, match=r"Outcomes-a\.txt does not match the 3 record files of set-a: no line for "
                                        r"record\(s\) 132540; expected exactly one outcomes line per"):
        physionet.load_outcomes(tmp_path, sets=["set-a"])


def test_an_outcomes_line_without_a_record_or_twice_is_refused(tmp_path):
    _physionet(tmp_path, outcome_ids=("132539", "132540", "132541", "140000"))
    with pytest.raises(UserError, match=r"lines for record\(s\) 140000 that .*set-a does not hold"):
        physionet.load_outcomes(tmp_path, sets=["set-a"])
    path = tmp_path / "physionet" / "Outcomes-a.txt"
    path.write_text(OUTCOMES_HEADER + "132539,6,1,5,-1,0\n132540,6,1,5,-1,0\n132539,7,1,5,-1,1\n132541,6,1,5,-1,0\n")
    with pytest.raises(UserError, match=r"Outcomes-a\.txt:4: RecordID 132539 has a second outcomes line"):
        physionet.load_outcomes(tmp_path, sets=["set-a"])


# -- MAF tabular sets ---------------------------------------------------------------------------------------

def _hepmass(root, rng, edit=None):
    frames = []
    for n in (400, 100):
        label = np.arange(n) % 2
        features = rng.normal(size=(n, 27))
        features[:, 3] = rng.integers(0, 3, size=n)
        mass = np.where(label == 1, 1000.0, 500.0)
        frames.append(pd.DataFrame(np.column_stack([label, features, mass]), columns=HEPMASS_HEADER))
    if edit:
        edit(frames[0])
    (root / "hepmass").mkdir()
    frames[0].to_csv(root / "hepmass" / "1000_train.csv", index=False)
    frames[1].to_csv(root / "hepmass" / "1000_test.csv", index=False)


@pytest.mark.parametrize("row, column", [(4, 0), (5, 7), (6, 28)])
def test_hepmass_nan_anywhere_in_a_file_is_refused(tmp_path, row, column):
    """A NaN label silently dropped its row, and a NaN in a background row or in a dropped column passed."""
    _hepmass(tmp_path, np.random.default_rng(0), lambda frame: frame.iloc.__setitem__((row, column), np.nan))
    with pytest.raises(UserError, match=rf"1000_train\.csv holds 1 NaN or infinite value\(s\), the first in data row "
                                        rf"{row + 1}, column {column + 1}; expected finite numbers"):
        load_hepmass(tmp_path)


@pytest.mark.parametrize("rows, message", [(0, r"shape \(0, 5\); expected a real \(N, D\) array with N > 0 rows"),
                                           (5, r"MINIBOONE: the val split is empty \(5/0/0 train/val/test rows\)")])
def test_a_tabular_set_too_small_to_split_is_refused(tmp_path, rows, message):
    """It returned empty validation and test splits (and NumPy warnings for an empty file)."""
    (tmp_path / "miniboone").mkdir()
    np.save(tmp_path / "miniboone" / "data.npy", np.random.default_rng(0).normal(size=(rows, 5)))
    with pytest.raises(UserError, match=message):
        load_miniboone(tmp_path)


def test_a_constant_column_is_not_blamed_on_nan_in_the_file(tmp_path):
    data = np.random.default_rng(0).normal(size=(100, 5))
    data[:, 2] = 1.0
    (tmp_path / "miniboone").mkdir()
    np.save(tmp_path / "miniboone" / "data.npy", data)
    with pytest.raises(UserError, match="or a constant column"):
        load_miniboone(tmp_path)
