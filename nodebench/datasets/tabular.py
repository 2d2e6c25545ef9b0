"""Loaders for the five tabular density benchmarks of MAF: POWER, GAS, HEPMASS, MINIBOONE and BSDS300.

The preprocessing follows the data-set code released with "Masked Autoregressive Flow for Density
Estimation" (Papamakarios et al. 2017, arXiv 1705.07057), which FFJORD (Grathwohl et al. 2019,
arXiv 1810.01367) and Onken & Ruthotto 2020 (arXiv 2005.13420, §5) reuse unchanged. It is written anew
here (no code copied); points where we were unsure are flagged "Uncertain" in the docstrings.

All loaders return :class:`~nodebench.datasets.splits.Splits` of float64 arrays. The sizes reported for
the standard splits (train/val/test, dimension) are POWER 1,659,917/184,435/204,928 (6), GAS
852,174/94,685/105,206 (8), HEPMASS 315,123/35,013/174,987 (21), MINIBOONE 29,556/3,284/3,648 (43) and
BSDS300 1,000,000/50,000/250,000 (63); they have not been checked against the real files here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

from nodebench.datasets.splits import Splits, require_finite, split_tail, standardize
from nodebench.datasets.storage import dataset_files, npy_header, read_manifest, read_npy
from nodebench.errors import UserError

PathArg = Optional[str | os.PathLike]
#: set to 1 to unpickle data files whose checksum the manifest does not pin (``--trust-unverified``).
TRUST_ENV = "NODEBENCH_TRUST_UNVERIFIED"


def _check_npy_shape(path: Path, dtype: np.dtype, shape: tuple[int, ...], columns: Optional[int] = None) -> None:
    if len(shape) != 2 or dtype.kind not in "biuf" or (columns and shape[1] != columns) or not shape[0]:
        want = f"(N, {columns})" if columns else "(N, D)"
        raise UserError(f"{path} holds a {dtype} array of shape {shape}; expected a real {want} array "
                        "with N > 0 rows")


def _read_npy(path: Path, columns: Optional[int] = None) -> np.ndarray:
    data = read_npy(path)
    _check_npy_shape(path, data.dtype, data.shape, columns)
    return data.astype(np.float64)


#: The ``.npy`` files of the MAF sets and the number of columns each must have (None: any).
NPY_COLUMNS = {"power/data.npy": 8, "miniboone/data.npy": None}
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def check_maf_file(relative: str, path: Path) -> None:
    """Cheap structure check of a MAF data file (``relative`` as in the data manifest) without loading it: a
    ``.npy`` file's header against its length and the shape its loader needs, the GAS pickle's framing, a
    HEPMASS CSV's first line, BSDS300's HDF5 signature.

    Raises:
        UserError: one line naming the file, what is wrong and what was expected.
    """
    from nodebench.datasets.images import check_pickle_frame

    if relative.endswith(".npy"):
        dtype, shape = npy_header(path)
        _check_npy_shape(path, dtype, shape, NPY_COLUMNS.get(relative))
    elif relative.endswith(".pickle"):
        check_pickle_frame(path, "a pickled pandas DataFrame (the MAF GAS file)")
    elif relative.endswith(".csv"):
        try:
            with open(path, encoding="utf-8") as handle:
                first = handle.readline()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{path} is not a readable HEPMASS CSV: {exc}") from None
        if first.count(",") < 2:
            raise UserError(f"{path} is not a HEPMASS CSV: its first line {first.strip()[:60]!r} has "
                            f"{first.count(',') + 1 if first.strip() else 0} comma-separated fields; expected a "
                            "label column and at least two feature columns")
    elif relative.endswith(".hdf5"):
        try:  # the signature is at offset 0, or 512, 1024, 2048, ... after a user block
            with open(path, "rb") as handle:
                size, offsets, found = path.stat().st_size, [0], False
                while offsets[-1] * 2 < size:
                    offsets.append(max(512, offsets[-1] * 2))
                for offset in offsets:
                    handle.seek(offset)
                    if handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                        found = True
                        break
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc}; expected an HDF5 file") from None
        if not found:
            raise UserError(f"{path} is not an HDF5 file (no HDF5 signature); expected the MAF BSDS300 file with "
                            "train, validation and test arrays")


def _count_of_smallest(column: np.ndarray) -> int:
    """How often a column's smallest value occurs (MAF's repeated-value test; see :func:`load_hepmass`)."""
    return int(np.count_nonzero(column == column.min()))


def load_power(root: PathArg = None, *, manifest: PathArg = None) -> Splits:
    """UCI household electric power consumption, as preprocessed by MAF (6 features).

    ``power/data.npy`` holds 8 columns (global active power, global reactive power, voltage, global
    intensity, three sub-meterings, time). With one ``RandomState(42)`` the rows are shuffled, the
    reactive-power and intensity columns (1 and 3) dropped, and uniform jitter added: ``0.001·U`` to active
    power, ``0.01·U`` to voltage, ``U`` to the sub-meterings, none to time (drawn in the order voltage,
    active power, sub-meterings, as in the MAF code). Then split with :func:`split_tail` and z-scored with
    train+validation statistics.
    """
    data = _read_npy(dataset_files("power", root, manifest)["power/data.npy"], columns=8)
    rng = np.random.RandomState(42)
    rng.shuffle(data)
    data = np.delete(data, [1, 3], axis=1)
    n = len(data)
    voltage = 0.01 * rng.rand(n, 1)
    active_power = 0.001 * rng.rand(n, 1)
    sub_metering = rng.rand(n, 3)
    data = data + np.hstack([active_power, voltage, sub_metering, np.zeros((n, 1))])
    return require_finite(standardize(split_tail(data)), "POWER")


def load_gas(root: PathArg = None, *, manifest: PathArg = None, trust_unverified: bool = False) -> Splits:
    """UCI gas sensor array under dynamic gas mixtures (ethylene + CO), as preprocessed by MAF (8 features).

    ``gas/ethylene_CO.pickle`` is a pickled pandas DataFrame. The ``Meth``, ``Eth`` and ``Time`` columns are
    dropped; then, while some column has a Pearson correlation above 0.98 with another, the first such
    column is removed. The whole set is z-scored (pandas ``std``, ``ddof=1``) before the
    :func:`split_tail` split, so the test statistics leak into the normalisation exactly as in MAF.

    Unpickling runs code from the file, so it is only read when its sha256 matches the one pinned in the
    data manifest (:func:`~nodebench.datasets.storage.dataset_files` checks it), or when the user vouches for
    an unpinned copy: ``trust_unverified=True``, ``--trust-unverified`` or ``NODEBENCH_TRUST_UNVERIFIED=1``.

    Uncertain: the pickle was written by a 2017 pandas (likely under Python 2); whether current pandas
    still reads it has not been checked here. If it fails, re-save it as a DataFrame with an older pandas.
    """
    name = "gas/ethylene_CO.pickle"
    path = dataset_files("gas", root, manifest)[name]  # a pinned checksum is verified here
    pinned = any(entry.sha256 for entry in read_manifest(manifest).files_of("gas") if entry.path == name)
    if not (pinned or trust_unverified or os.environ.get(TRUST_ENV) == "1"):
        raise UserError(f"refusing to unpickle {path}: the data manifest pins no sha256 for it and a pickle runs "
                        f"code when loaded; pin its sha256 in the manifest, or pass --trust-unverified "
                        f"({TRUST_ENV}=1) for a copy you trust")
    try:
        frame = pd.read_pickle(path)
    except Exception as exc:  # an unreadable pickle can fail in many ways; all mean "malformed file"
        raise UserError(f"{path} is not a readable pandas pickle ({type(exc).__name__}: {exc})") from None
    needed = {"Meth", "Eth", "Time"}
    if not isinstance(frame, pd.DataFrame) or not needed <= set(frame.columns):
        raise UserError(f"{path} must hold a pandas DataFrame with columns Meth, Eth, Time and the sensor columns")
    try:
        data = frame.drop(columns=sorted(needed)).to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: sensor columns are not numeric ({exc})") from None
    while True:
        correlated = (np.corrcoef(data, rowvar=False) > 0.98).sum(axis=1) > 1
        if not correlated.any():
            break
        data = np.delete(data, np.flatnonzero(correlated)[0], axis=1)
    data = (data - data.mean(axis=0)) / data.std(axis=0, ddof=1)
    return require_finite(split_tail(data), "GAS")


def _read_hepmass_csv(path: Path) -> np.ndarray:
    try:
        data = pd.read_csv(path, index_col=False).to_numpy(dtype=np.float64)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a numeric HEPMASS CSV: {exc}") from None
    if data.ndim != 2 or data.shape[1] < 3:
        raise UserError(f"{path} must have a label column and at least two feature columns")
    bad = np.argwhere(~np.isfinite(data))
    if len(bad):  # also in rows and columns dropped below (a NaN label would silently drop its row)
        row, column = bad[0]
        raise UserError(f"{path} holds {len(bad)} NaN or infinite value(s), the first in data row {row + 1}, column "
                        f"{column + 1}; expected finite numbers")
    return data


def load_hepmass(root: PathArg = None, *, manifest: PathArg = None) -> Splits:
    """UCI HEPMASS (mass 1000 subset), as preprocessed by MAF (21 features).

    Reads ``hepmass/1000_train.csv`` and ``hepmass/1000_test.csv`` (header ``# label, f0, …, f26, mass``),
    keeps the signal rows (label 1) and drops the label; the test file also loses its last column, as in
    MAF ("the data set is messed up"). Both are z-scored with the training mean and ``ddof=1`` standard
    deviation, and features in which too many values repeat are removed. Validation is the last 10% of
    the training rows; the test file is the test set.

    Uncertain:
        * MAF's repeated-value test counts how often a feature's *smallest* value occurs (sorted
          ``Counter`` items, first count) and removes it when that exceeds 5. We reproduce that quirk.
        * We run the test on the raw training features rather than the z-scored ones. The result is the
          same except for a constant column, which MAF would turn into NaN (0/0) and keep; we remove it.
        * Columns are matched by position. The test data may have fewer columns than the training data
          only if every extra training column is removed by the repeated-value test; otherwise the files
          are rejected.
    """
    paths = dataset_files("hepmass", root, manifest)
    train = _read_hepmass_csv(paths["hepmass/1000_train.csv"])
    test = _read_hepmass_csv(paths["hepmass/1000_test.csv"])
    train = train[train[:, 0] == 1, 1:]
    test = test[test[:, 0] == 1, 1:-1]
    if len(train) < 10 or len(test) == 0:
        raise UserError("HEPMASS: too few signal rows (label 1) in the CSV files")
    removed = {i for i, column in enumerate(train.T) if _count_of_smallest(column) > 5}
    keep_train = [i for i in range(train.shape[1]) if i not in removed]
    keep_test = [i for i in range(test.shape[1]) if i not in removed]
    if keep_train != keep_test:
        raise UserError(
            f"HEPMASS: the test file has {test.shape[1]} features after dropping its last column, "
            f"which does not match the {train.shape[1]} training features"
        )
    train, test = train[:, keep_train], test[:, keep_test]
    mean, std = train.mean(axis=0), train.std(axis=0, ddof=1)
    train, test = (train - mean) / std, (test - mean) / std
    n_val = int(0.1 * len(train))
    splits = Splits(train[: len(train) - n_val], train[len(train) - n_val :], test)
    return require_finite(splits, "HEPMASS")


def load_miniboone(root: PathArg = None, *, manifest: PathArg = None) -> Splits:
    """UCI MiniBooNE particle identification, as preprocessed by MAF (43 features).

    ``miniboone/data.npy`` already is the cleaned array: MAF removed outliers (first feature < -100) and
    features in which too many values repeat *before* saving it, so the loader only applies
    :func:`split_tail` and z-scores with train+validation statistics.
    """
    data = _read_npy(dataset_files("miniboone", root, manifest)["miniboone/data.npy"])
    return require_finite(standardize(split_tail(data)), "MINIBOONE")


def load_bsds300(root: PathArg = None, *, manifest: PathArg = None) -> Splits:
    """BSDS300 8×8 natural-image patches with the last pixel dropped, as released by MAF (63 features).

    ``BSDS300/BSDS300.hdf5`` holds the ready-made ``train``, ``validation`` and ``test`` arrays; no further
    preprocessing. Needs the optional dependency ``h5py``.
    """
    try:
        import h5py
    except ImportError:
        raise UserError("BSDS300 needs the optional package h5py; install it with "
                        "`pip install 'nodebench[bsds300]'` (or `pip install h5py`)") from None
    path = dataset_files("bsds300", root, manifest)["BSDS300/BSDS300.hdf5"]
    try:
        with h5py.File(path, "r") as handle:
            parts = [np.asarray(handle[key], dtype=np.float64) for key in ("train", "validation", "test")]
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise UserError(f"{path} is not an HDF5 file with train, validation and test arrays: {exc}") from None
    if any(p.ndim != 2 or p.shape[1] != parts[0].shape[1] for p in parts):
        raise UserError(f"{path}: train, validation and test must be 2-D arrays with the same number of columns")
    return require_finite(Splits(*parts), "BSDS300")


MAF_LOADERS: dict[str, Callable[..., Splits]] = {
    "power": load_power,
    "gas": load_gas,
    "hepmass": load_hepmass,
    "miniboone": load_miniboone,
    "bsds300": load_bsds300,
}
MAF_NAMES = tuple(MAF_LOADERS)


def load_maf(name: str, root: PathArg = None, *, manifest: PathArg = None) -> Splits:
    """Load one of :data:`MAF_NAMES` (case-insensitive)."""
    loader = MAF_LOADERS.get(name.lower())
    if loader is None:
        raise UserError(f"unknown MAF data set {name!r}; valid: {', '.join(MAF_NAMES)}")
    return loader(root, manifest=manifest)
