"""One entry point for every density data set: MAF benchmarks, 2-D toys, bundled sklearn sets, user files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from sklearn import datasets as skdatasets

from nodebench.datasets.splits import Splits, Standardization, cast_to_model_dtype, split_permuted, standardize
from nodebench.datasets.storage import read_npy
from nodebench.datasets.tabular import MAF_NAMES, load_maf
from nodebench.datasets.toy import TOY_NAMES, sample_toy
from nodebench.errors import UserError

SKLEARN_LOADERS: dict[str, Callable] = {
    "digits": skdatasets.load_digits,
    "wine": skdatasets.load_wine,
    "breast_cancer": skdatasets.load_breast_cancer,
    "iris": skdatasets.load_iris,
}
SKLEARN_NAMES = tuple(f"sklearn:{name}" for name in SKLEARN_LOADERS)
DEFAULT_TOY_SIZES = (20000, 2000, 2000)


def _valid_names() -> str:
    return ", ".join((*MAF_NAMES, *TOY_NAMES, *SKLEARN_NAMES)) + ", or a path to an N×D .npy file"


def load_sklearn(name: str, *, seed: int) -> Splits:
    """A data set bundled with scikit-learn, as a density benchmark (features only, labels dropped).

    Constant columns are dropped. Every other column is dequantised with uniform noise ``U[0, δ)``, where
    ``δ`` is its resolution (the smallest gap between its distinct values: 1 for the integer pixels of
    ``digits``, 0.1 for ``iris``, tiny for continuous columns), so that repeated values do not form point
    masses (cf. Theis et al. 2016, arXiv 1511.01844). Rows are split 80/10/10 by a seeded permutation
    and z-scored with train+validation statistics.

    Args:
        name: ``"digits"``, ``"wine"``, ``"breast_cancer"`` or ``"iris"`` (with or without ``sklearn:``).
        seed: Seeds both the permutation and the dequantisation noise.
    """
    key = name.removeprefix("sklearn:")
    if key not in SKLEARN_LOADERS:
        raise UserError(f"unknown sklearn data set {name!r}; valid: {', '.join(SKLEARN_NAMES)}")
    data = np.asarray(SKLEARN_LOADERS[key]().data, dtype=np.float64)
    data = data[:, data.min(axis=0) < data.max(axis=0)]
    resolution = np.array([np.diff(np.unique(column)).min() for column in data.T])
    rng = np.random.default_rng(seed)
    splits = split_permuted(data, rng)
    parts = (splits.train, splits.val, splits.test)
    return standardize(Splits(*(part + resolution * rng.uniform(size=part.shape) for part in parts)))


def read_npy_file(path: str | os.PathLike) -> np.ndarray:
    """A user's ``.npy`` file holding a finite real ``(N, D)`` array with ``N ≥ 10``, as stored.

    Raises:
        UserError: The file is missing or a folder, is not a ``.npy`` array, is not 2-D and numeric, has too
            few rows, contains NaN or infinity, or has a constant column: its density is a point mass, so the
            likelihood is unbounded and a reported NLL means nothing (:func:`load_sklearn` drops such columns;
            the MAF preprocessing removes features with repeated values, :func:`~.tabular.load_hepmass`).
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"data file {str(path)!r} is a folder; give an N×D .npy file")
    if not path.is_file():
        raise UserError(f"data file not found: {path}; give an existing N×D .npy file")
    data = read_npy(path)
    if data.dtype.kind not in "iuf":  # booleans are two point masses, as unbounded as a constant column
        raise UserError(f"{path} holds {data.dtype} data; expected a real (integer or float) N×D array")
    if data.ndim != 2:
        raise UserError(f"{path} holds an array of shape {data.shape}; expected 2-D (N samples × D features)")
    if data.shape[0] < 10 or data.shape[1] < 1:
        raise UserError(f"{path} holds an array of shape {data.shape}; need at least 10 rows and 1 column")
    if not np.isfinite(data).all():
        raise UserError(f"{path} contains NaN or infinite values; all entries must be finite")
    constant = _constant_columns(data)
    if constant:
        raise UserError(f"{path} has {constant}; a constant feature has no density (its NLL is unbounded): drop it")
    return data


def _constant_columns(data: np.ndarray) -> str:
    """The columns of ``data`` holding a single value, as a phrase for an error (empty when there are none)."""
    constant = np.flatnonzero(data.min(axis=0) == data.max(axis=0))
    if not len(constant):
        return ""
    listed = ", ".join(str(i + 1) for i in constant[:10]) + (", ..." if len(constant) > 10 else "")
    return f"{len(constant)} constant column(s) (zero variance): {listed}, counting from 1"


def load_npy(path: str | os.PathLike, *, seed: int) -> Splits:
    """A user's ``.npy`` file (:func:`read_npy_file`), split 80/10/10 by a seeded permutation.

    The values are used as they are (no normalisation). ``N`` must be at least 10 so that every split is
    non-empty.
    """
    return split_permuted(read_npy_file(path).astype(np.float64), np.random.default_rng(seed))


def _zscore(splits: Splits, what: str) -> tuple[Splits, Standardization]:
    """Z-score with train+validation statistics (columns constant there only centred); returns the map back."""
    both = np.vstack([splits.train, splits.val])
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused just below
        mean, std = both.mean(axis=0), both.std(axis=0)
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        raise UserError(f"{what} holds values too large to standardize (their mean or variance overflows "
                        "float64); rescale the data")
    std = np.where(std > 0, std, 1.0)
    parts = ((part - mean) / std for part in (splits.train, splits.val, splits.test))
    return Splits(*parts), Standardization(mean, std)


def file_splits(data: np.ndarray, *, seed: int, standardize: bool, dtype: str,
                what: str) -> tuple[Splits, Standardization]:
    """A ``density:PATH`` file's array (:func:`read_npy_file`) as the model sees it, checked.

    Rows are split 80/10/10 by a permutation seeded by ``seed``; with ``standardize`` every column is
    z-scored with train+validation statistics. The values must stay finite once cast to ``dtype``
    (``float32`` or ``float64``), the model's dtype.

    Returns:
        The splits (float64) and the map back to the file's units (the identity without ``standardize``),
        whose ``nll_offset`` ``Σ log σ_j`` turns an NLL of the splits into one in the file's units.

    Raises:
        UserError: A column is constant in the train and validation rows (only test rows differ), or a value
            overflows the standardisation or ``dtype``; ``what`` names the file.
    """
    splits = split_permuted(data.astype(np.float64), np.random.default_rng(seed))
    constant = _constant_columns(np.vstack([splits.train, splits.val]))
    if constant:  # the model would fit a point mass (unbounded likelihood) that only the test rows contradict
        raise UserError(f"{what}: the train and validation rows of seed {seed}'s split have {constant} (the values "
                        "differ only in test rows); a feature with a single value where the model is fitted has no "
                        "density: drop it")
    back = Standardization(np.zeros(data.shape[1]), np.ones(data.shape[1]))
    if standardize:
        splits, back = _zscore(splits, what)
    for part in (splits.train, splits.val, splits.test):
        cast_to_model_dtype(part, dtype, what, " after standardization" if standardize else "")
    return splits, back


def load_toy(name: str, *, seed: int, sizes: tuple[int, int, int] = DEFAULT_TOY_SIZES) -> Splits:
    """Sample ``sum(sizes)`` points of a 2-D toy density and split them in order into train/val/test."""
    n_train, n_val, n_test = sizes
    data = sample_toy(name, n_train + n_val + n_test, seed=seed)
    return Splits(data[:n_train], data[n_train : n_train + n_val], data[n_train + n_val :])


def _looks_like_path(name: str) -> bool:
    return os.sep in name or "/" in name or Path(name).suffix != ""


def load_density(
    name_or_path: str | os.PathLike,
    *,
    seed: int,
    root: Optional[str | os.PathLike] = None,
    manifest: Optional[str | os.PathLike] = None,
    toy_sizes: tuple[int, int, int] = DEFAULT_TOY_SIZES,
) -> Splits:
    """Load a density data set by name or path.

    Args:
        name_or_path: A MAF benchmark (``power``, ``gas``, ``hepmass``, ``miniboone``, ``bsds300``; any case),
            a 2-D toy (:data:`~nodebench.datasets.toy.TOY_NAMES`), ``sklearn:<name>``
            (:data:`SKLEARN_NAMES`), or a path to an ``N×D`` ``.npy`` file (anything with a path separator or
            a file suffix is treated as a path).
        seed: Seeds toy sampling, sklearn dequantisation and permutation splits. The MAF splits are fixed
            by their published preprocessing and ignore it.
        root: Data directory for the MAF files (default ``$NODEBENCH_DATA``, else ``<repo>/datasets``).
        manifest: Checksum manifest (default ``nodebench/datasets/manifest.toml``).
        toy_sizes: Train/validation/test sizes of a toy data set.

    Raises:
        UserError: An unknown name, or a missing or malformed file.
    """
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(name_or_path):
        return load_npy(name_or_path, seed=seed)
    name = name_or_path
    if name.lower() in MAF_NAMES:
        return load_maf(name, root, manifest=manifest)
    if name in TOY_NAMES:
        return load_toy(name, seed=seed, sizes=toy_sizes)
    if name.startswith("sklearn:"):
        return load_sklearn(name, seed=seed)
    raise UserError(f"unknown density data set {name!r}; valid: {_valid_names()}")
