"""Bring your own system-identification data: ``--task trajectories:PATH.npz``.

The file holds ``t`` (T,) strictly increasing, ``y`` (N, T, D) and optionally controls ``u`` (N, T, M),
all finite and of an integer or float dtype, and all still so once cast to the model's ``dtype`` (float32 by
default); other arrays in the file are ignored, unread. Missing values are not supported (NaN is refused, and
``np.savez`` drops a masked array's mask). Trajectories are
split into train and test sets by a seeded permutation (``test_fraction``, at least one of each); the model
is an MLP field ``f(x, u)``; ``test_mse`` is measured by simulating the learned model from the test initial
conditions (see :mod:`nodebench.tasks.trajectory`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from nodebench.datasets.catalog import provenance
from nodebench.datasets.splits import cast_to_model_dtype, dtype_remedy
from nodebench.errors import UserError
from nodebench.tasks.base import Task, dtype_from_name
from nodebench.tasks.trajectory import MLPField, TrajectoryProblem


def _read_member(data: np.lib.npyio.NpzFile, name: str, path: Path, expected: str) -> np.ndarray:
    """Array ``name`` of an open ``.npz``; an object array (it needs unpickling) or a corrupt member is a
    one-line :class:`UserError`. Only ``t``, ``y`` and ``u`` are read: other arrays are ignored, unread."""
    try:
        return np.asarray(data[name])
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise UserError(f"array {name!r} in {str(path)!r} is unreadable or an object array "
                        f"({' '.join(str(err).split())}); {expected}") from None


def load_trajectories(path: str | Path) -> dict[str, np.ndarray]:
    """Read and validate a trajectories ``.npz``; any problem is a one-line :class:`UserError`."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"trajectory file {str(path)!r} is a folder; give an .npz file with arrays t (T,), "
                        "y (N, T, D) and optional u (N, T, M)")
    if not path.is_file():
        raise UserError(f"trajectory file {str(path)!r} does not exist; expected an .npz with arrays t (T,), "
                        "y (N, T, D) and optional u (N, T, M)")
    expected = "expected an .npz with arrays t (T,), y (N, T, D), optional u (N, T, M)"
    with open(path, "rb") as handle:
        is_npy = handle.read(6) == b"\x93NUMPY"
    if not is_npy and not zipfile.is_zipfile(path):  # else NumPy reads it as pickled data and says so
        raise UserError(f"{str(path)!r} is not a readable .npz file (not a zip archive); {expected}")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise UserError(f"{str(path)!r} is not a readable .npz file ({err}); {expected}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise UserError(f"{str(path)!r} holds a single array (an .npy), not an .npz archive; {expected}")
    with data:
        if "t" not in data.files or "y" not in data.files:
            raise UserError(f"{str(path)!r} holds arrays {sorted(data.files)}; it needs 't' (T,) and 'y' (N, T, D)")
        arrays = {name: _read_member(data, name, path, expected) for name in ("t", "y", "u") if name in data.files}
    t, y, u = arrays["t"], arrays["y"], arrays.get("u")
    for name, arr in (("t", t), ("y", y), ("u", u)):
        if arr is not None and arr.dtype.kind not in "iuf":  # not bool, complex, datetime64 or timedelta64
            raise UserError(f"array {name!r} in {str(path)!r} has dtype {arr.dtype}; it must be real (int or float)")
    if t.ndim != 1 or t.shape[0] < 2:
        raise UserError(f"array 't' has shape {t.shape}; it must be 1-D with at least 2 times")
    if y.ndim != 3 or y.shape[1] != t.shape[0]:
        raise UserError(f"array 'y' has shape {y.shape}; it must be (N, T, D) with T = len(t) = {t.shape[0]}")
    if y.shape[2] < 1:
        raise UserError(f"array 'y' has shape {y.shape}; its state dimension D must be at least 1")
    if y.shape[0] < 2:
        raise UserError(f"array 'y' holds {y.shape[0]} trajectory; at least 2 are needed to split train/test")
    if u is not None and (u.ndim != 3 or u.shape[:2] != y.shape[:2]):
        raise UserError(f"array 'u' has shape {u.shape}; it must be (N, T, M) with N, T = {y.shape[:2]}")
    for name, arr in (("t", t), ("y", y), ("u", u)):
        if arr is not None and not np.all(np.isfinite(arr)):
            raise UserError(f"array {name!r} in {str(path)!r} contains NaN or inf values; all must be finite")
    if np.any(t[1:] <= t[:-1]):  # not np.diff, which wraps around for unsigned integers
        raise UserError(f"array 't' in {str(path)!r} must be strictly increasing")
    return {"t": t, "y": y, "u": u}


def check_in_dtype(data: dict[str, np.ndarray], path: Path, dtype: str) -> None:
    """Refuse arrays that :func:`load_trajectories` accepted but the model would not see as valid: cast to
    ``dtype`` (``float32`` or ``float64``), values beyond its range become inf and times closer than its
    resolution become equal. Any problem is a one-line :class:`UserError`."""
    cast = {name: cast_to_model_dtype(data[name], dtype, f"array {name!r} in {str(path)!r}")
            for name in ("t", "y", "u") if data[name] is not None}
    if np.any(np.diff(cast["t"]) <= 0):
        raise UserError(f"array 't' in {str(path)!r} is not strictly increasing once cast to {dtype}, the model's "
                        f"dtype: some times are closer than its resolution; {dtype_remedy(dtype)}")


class TrajectoryFile(Task):
    """Trajectories from a user's .npz file (see module docstring)."""

    paper = None
    full_state = True
    metrics = ("test_mse", "train_mse")
    description = "your own data: trajectories:PATH.npz with t (T,), y (N, T, D), optional u (N, T, M)"
    defaults = {"hidden": 64, "lr": 1e-2, "dtype": "float32", "test_fraction": 0.2, "batch_size": None}

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = f"trajectories:{path}"
        self.data = load_trajectories(self.path)

    def check_hparams(self, hp):
        if hp["test_fraction"] >= 1:  # a positive finite number already (its Param)
            raise UserError(f"task {self.name}: test_fraction must lie strictly between 0 and 1, "
                            f"got {hp['test_fraction']!r}")
        check_in_dtype(self.data, self.path, hp["dtype"])

    def time_span(self, hp):
        return float(self.data["t"][-1] - self.data["t"][0])

    def build(self, *, seed, device, hparams):
        hp = self.hparams(hparams)
        fraction = float(hp["test_fraction"])
        t, y, u = self.data["t"], self.data["y"], self.data["u"]
        n = y.shape[0]
        n_test = min(max(1, round(fraction * n)), n - 1)
        order = np.random.default_rng(seed).permutation(n)
        test, train = order[:n_test], order[n_test:]
        move = dict(device=device, dtype=dtype_from_name(hp["dtype"]))
        as_tensor = lambda a: None if a is None else torch.as_tensor(a).to(**move)  # noqa: E731
        torch.manual_seed(seed)
        field = MLPField(y.shape[2], int(hp["hidden"]), control_dim=0 if u is None else u.shape[2]).to(**move)
        batch = hp["batch_size"]
        problem = TrajectoryProblem(field, as_tensor(t), as_tensor(y[train]), as_tensor(y[test]),
                                    None if u is None else as_tensor(u[train]),
                                    None if u is None else as_tensor(u[test]),
                                    batch_size=None if batch is None else int(batch), seed=seed, lr=float(hp["lr"]))
        problem.provenance = provenance(str(self.path), len(train), 0, len(test))
        return problem
