"""``nodebench run --no-verify`` checks each needed data file's structure before the sweep (no checksum, no full
load): a malformed file stops the command with one line naming it, exit code 2, and nothing written; well-formed
files still run. Every file is written here, in the real formats, into tmp_path (nothing is read from shared
data)."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from nodebench.cli import main

RECORD = "Time,Parameter,Value\n00:00,RecordID,{rid}\n00:00,Age,54\n00:00,Weight,-1\n00:07,HR,73\n00:40,HR,77\n"
OUTCOMES = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n{rid},6,1,5,-1,0\n"
METHOD = {"mnist_ode": "adjoint", "latent_ode_physionet": "adjoint", "cnf_power": "adjoint", "cnf_miniboone": "adjoint",
          "cnf_gas": "adjoint", "images_cifar10": "adjoint", "images_svhn": "adjoint"}


def _idx(array: np.ndarray, code: int = 0x08) -> bytes:
    return (bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
            + array.astype(">u1").tobytes())


def _mnist(root: Path) -> Path:
    folder = root / "mnist"
    folder.mkdir(parents=True)
    for prefix, n in (("train", 6), ("t10k", 3)):
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(np.zeros((n, 28, 28))))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(np.arange(n) % 10)))
    return folder


def _tarball(path: Path, records: dict[str, str]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in records.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{path.name.removesuffix('.tar.gz')}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _physionet(root: Path) -> Path:
    folder = root / "physionet"
    (folder / "set-b").mkdir(parents=True)
    _tarball(folder / "set-a.tar.gz", {"132539.txt": RECORD.format(rid=132539)})
    (folder / "set-b" / "142539.txt").write_text(RECORD.format(rid=142539))
    (folder / "Outcomes-a.txt").write_text(OUTCOMES.format(rid=132539))
    (folder / "Outcomes-b.txt").write_text(OUTCOMES.format(rid=142539))
    return folder


def _cifar(root: Path) -> Path:
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batch = {b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0, 1]}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return folder


def _svhn(root: Path) -> Path:
    import scipy.io

    folder = root / "svhn"
    folder.mkdir(parents=True)
    for name in ("train_32x32.mat", "test_32x32.mat"):
        scipy.io.savemat(folder / name, {"X": np.zeros((32, 32, 3, 2), dtype=np.uint8),
                                         "y": np.array([[1], [10]], dtype=np.uint8)})
    return folder


def _power(root: Path) -> Path:
    (root / "power").mkdir(parents=True)
    np.save(root / "power" / "data.npy", np.zeros((20, 8)))
    return root / "power" / "data.npy"


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory):
    """A finished sweep (a task that needs no data files) that a refused run must leave byte for byte as it was."""
    out = tmp_path_factory.mktemp("existing") / "run"
    assert main(["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "1", "--no-progress",
                 "--out", str(out)]) == 0
    return out


def _run(task: str, out: Path, *extra: str) -> int:
    return main(["run", "--no-verify", "--task", task, "--method", METHOD[task], "--iters", "1", "--no-progress",
                 "--out", str(out), *extra])


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _mnist_case(corrupt):
    def make(root: Path) -> Path:
        return corrupt(_mnist(root))
    return "mnist_ode", make


def _truncated_images(folder: Path) -> Path:
    _truncate(folder / "train-images-idx3-ubyte", 1000)
    return folder / "train-images-idx3-ubyte"


def _wrong_magic(folder: Path) -> Path:
    path = folder / "t10k-images-idx3-ubyte"
    path.write_bytes(b"\x08\x03\x00\x00" + path.read_bytes()[4:])
    return path


def _dims_disagree(folder: Path) -> Path:  # the header says 6 images, the file holds 7
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes() + bytes(28 * 28))
    return path


def _not_gzip(folder: Path) -> Path:
    path = folder / "train-labels-idx1-ubyte.gz"
    path.write_bytes(b"this is not gzip at all")
    return path


def _truncated_gzip(folder: Path) -> Path:
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_idx(np.arange(3000) % 10))[:-20])
    return path


def _damaged_deflate(folder: Path) -> Path:  # zlib.error, which is no OSError: it was a traceback
    path = folder / "train-labels-idx1-ubyte.gz"
    data = bytearray(gzip.compress(_idx(np.arange(6) % 10)))
    data[10] = 0x07  # the first deflate block after the 10-byte gzip header: final, of the reserved type 3
    path.write_bytes(data)
    return path


def _labels_disagree(folder: Path) -> Path:
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_idx(np.arange(4) % 10)))
    return path


def _physionet_not_tar(root: Path) -> Path:
    folder = _physionet(root)
    (folder / "set-a.tar.gz").write_bytes(gzip.compress(b"not a tar archive, only text " * 40))
    return folder / "set-a.tar.gz"


def _physionet_damaged_tar(root: Path) -> Path:  # the set was read short, without an error
    folder = _physionet(root)
    path = folder / "set-a.tar.gz"
    _tarball(path, {f"{rid}.txt": RECORD.format(rid=rid) for rid in (132539, 132540)})
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[raw.index(b"set-a/132540.txt")] ^= 0xFF  # the second member's header fails its checksum
    path.write_bytes(gzip.compress(bytes(raw)))
    return path


def _physionet_bad_outcomes(root: Path) -> Path:
    folder = _physionet(root)
    (folder / "Outcomes-b.txt").write_text("RecordID;SAPS-I\n142539;6\n")
    return folder / "Outcomes-b.txt"


def _power_not_array(root: Path) -> Path:
    path = _power(root)
    path.write_bytes(b"\x80\x04not numpy")
    return path


def _power_truncated(root: Path) -> Path:
    path = _power(root)
    _truncate(path, 300)
    return path


def _power_wrong_columns(root: Path) -> Path:
    path = _power(root)
    np.save(path, np.zeros((20, 5)))
    return path


def _miniboone_object_array(root: Path) -> Path:
    (root / "miniboone").mkdir(parents=True)
    np.save(root / "miniboone" / "data.npy", np.array([object()] * 4, dtype=object), allow_pickle=True)
    return root / "miniboone" / "data.npy"


def _gas_truncated_pickle(root: Path) -> Path:
    (root / "gas").mkdir(parents=True)
    path = root / "gas" / "ethylene_CO.pickle"
    path.write_bytes(pickle.dumps({"Meth": [1.0] * 50}, protocol=2)[:-10])
    return path


def _cifar_truncated(root: Path) -> Path:
    path = _cifar(root) / "data_batch_3"
    _truncate(path, 100)
    return path


def _svhn_not_mat(root: Path) -> Path:
    path = _svhn(root) / "test_32x32.mat"
    path.write_bytes(b"this is not a MATLAB file" * 10)
    return path


def _svhn_wrong_shape(root: Path) -> Path:
    import scipy.io

    path = _svhn(root) / "train_32x32.mat"
    scipy.io.savemat(path, {"X": np.zeros((28, 28, 1, 2), dtype=np.uint8), "y": np.array([[1], [2]])})
    return path


BAD = {
    "mnist truncated IDX": (*_mnist_case(_truncated_images), "is truncated"),
    "mnist wrong magic": (*_mnist_case(_wrong_magic), "is not an IDX file: magic number 0x08030000"),
    "mnist dims disagree with length": (*_mnist_case(_dims_disagree), "is too long: IDX header declares shape"),
    "mnist not gzip": (*_mnist_case(_not_gzip), "expected an IDX file, plain or gzipped"),
    "mnist truncated gzip": (*_mnist_case(_truncated_gzip), "expected an IDX file, plain or gzipped"),
    "mnist damaged deflate data": (*_mnist_case(_damaged_deflate), "expected an IDX file, plain or gzipped"),
    "mnist labels disagree": (*_mnist_case(_labels_disagree), "holds 3 images but"),
    "physionet not a tar": ("latent_ode_physionet", _physionet_not_tar, "cannot read PhysioNet set"),
    "physionet damaged tar": ("latent_ode_physionet", _physionet_damaged_tar, "cannot read PhysioNet set"),
    "physionet bad outcomes": ("latent_ode_physionet", _physionet_bad_outcomes, "is not a PhysioNet 2012 outcomes"),
    "power not an array": ("cnf_power", _power_not_array, "is not a .npy file"),
    "power truncated npy": ("cnf_power", _power_truncated, "is truncated: its .npy header declares"),
    "power wrong columns": ("cnf_power", _power_wrong_columns, "expected a real (N, 8) array"),
    "miniboone object array": ("cnf_miniboone", _miniboone_object_array, "holds an object array"),
    "gas truncated pickle": ("cnf_gas", _gas_truncated_pickle, "is a truncated pickle"),
    "cifar truncated batch": ("images_cifar10", _cifar_truncated, "is a truncated pickle"),
    "svhn not a mat file": ("images_svhn", _svhn_not_mat, "expected an SVHN MATLAB file"),
    "svhn wrong shape": ("images_svhn", _svhn_wrong_shape, "expected X of uint8 and shape (32, 32, 3, N)"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_a_malformed_file_stops_a_no_verify_run_before_any_case(case, existing_run, tmp_path, monkeypatch, capsys):
    task, make, why = BAD[case]
    bad = make(tmp_path / "data")
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path / "data"))
    before = _snapshot(existing_run)
    capsys.readouterr()
    assert _run(task, existing_run) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith("nodebench: error: ") and str(bad) in err and why in err, err
    assert _snapshot(existing_run) == before
    fresh = tmp_path / "fresh"
    assert _run(task, fresh) == 2 and not fresh.exists()


GOOD = {"mnist_ode": _mnist, "latent_ode_physionet": _physionet, "cnf_power": _power, "images_cifar10": _cifar,
        "images_svhn": _svhn}


@pytest.mark.parametrize("task", list(GOOD))
def test_well_formed_files_pass_the_structure_check(task, tmp_path, monkeypatch, capsys):
    GOOD[task](tmp_path / "data")
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path / "data"))
    assert _run(task, tmp_path / "out", "--dry-run") == 0, capsys.readouterr().err
    assert "nothing was run" in capsys.readouterr().out


def test_with_verification_on_the_checksum_still_decides(tmp_path, monkeypatch, capsys):
    """The default path is unchanged: a malformed MNIST file is refused for its checksum, not its structure."""
    bad = _truncated_images(_mnist(tmp_path / "data"))
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path / "data"))
    assert main(["run", "--task", "mnist_ode", "--method", "adjoint", "--iters", "1", "--no-progress",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "not verified" in err and "--no-verify" in err and "is truncated" not in err
    assert bad.is_file() and not (tmp_path / "out").exists()
