"""Train/validation/test splits, the normalisation helpers shared by the density loaders, and the check that a
user's array survives the cast to the model's dtype (density and trajectory files)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from nodebench.errors import UserError


@dataclass(frozen=True)
class Splits:
    """A density data set split into training, validation and test arrays of shape ``(N_i, D)``."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def dim(self) -> int:
        """The number of features ``D``."""
        return self.train.shape[1]

    @property
    def sizes(self) -> tuple[int, int, int]:
        """The rows of the training, validation and test arrays."""
        return len(self.train), len(self.val), len(self.test)


class Standardization(NamedTuple):
    """The per-column affine map back to the data's units: ``x_data = x_model · scale + shift``."""

    shift: np.ndarray
    scale: np.ndarray

    @property
    def nll_offset(self) -> float:
        """``Σ log scale_j``: added to an NLL of the model's values, it is the NLL in the data's units."""
        return float(np.log(self.scale).sum())

    def to_data(self, x: np.ndarray) -> np.ndarray:
        """Points ``(N, D)`` of the model's space in the data's units."""
        return x * self.scale + self.shift


def split_tail(data: np.ndarray) -> Splits:
    """Split as the MAF loaders do: the last 10% is the test set, the last 10% of the rest validation.

    No shuffling happens here (Papamakarios et al. 2017, arXiv 1705.07057; POWER shuffles beforehand).
    """
    n_test = int(0.1 * len(data))
    rest, test = data[: len(data) - n_test], data[len(data) - n_test :]
    n_val = int(0.1 * len(rest))
    return Splits(rest[: len(rest) - n_val], rest[len(rest) - n_val :], test)


def split_permuted(data: np.ndarray, rng: np.random.Generator) -> Splits:
    """Split 80/10/10 after a random permutation of the rows (validation and test get ``int(0.1·N)``)."""
    n_hold = int(0.1 * len(data))
    data = data[rng.permutation(len(data))]
    return Splits(data[2 * n_hold :], data[:n_hold], data[n_hold : 2 * n_hold])


def standardize(splits: Splits) -> Splits:
    """Z-score every split with the mean and (population) standard deviation of train+validation.

    This is the MAF normalisation of POWER and MINIBOONE (``np.std``, i.e. ``ddof=0``).
    """
    both = np.vstack([splits.train, splits.val])
    mean, std = both.mean(axis=0), both.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):  # a constant column's NaN: require_finite refuses it
        return Splits(*((part - mean) / std for part in (splits.train, splits.val, splits.test)))


def require_finite(splits: Splits, what: str) -> Splits:
    """Raise :class:`UserError` if any split of ``what`` is empty or holds NaN or infinity."""
    for part, array in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if len(array) == 0:
            raise UserError(f"{what}: the {part} split is empty ({'/'.join(map(str, splits.sizes))} train/val/test "
                            "rows); the data file holds too few rows")
        if not np.isfinite(array).all():
            raise UserError(f"{what}: the {part} split contains NaN or infinite values; the data file holds NaN or "
                            "infinity, or a constant column (z-scoring divides it by 0); expected finite values in "
                            "non-constant columns")
    return splits


def dtype_remedy(dtype: str) -> str:
    """What a user can do about data the model's ``dtype`` cannot hold."""
    return "rescale the data" + ("" if dtype == "float64" else " or use --hparam dtype=float64")


def cast_to_model_dtype(array: np.ndarray, dtype: str, what: str, when: str = "") -> np.ndarray:
    """``array`` cast to the model's ``dtype`` (``float32`` or ``float64``).

    Raises:
        UserError: A value overflows ``dtype`` (becomes infinite); the line names ``what``, the largest
            magnitude ``dtype`` holds, ``when`` (e.g. " after standardization") and the remedy.
    """
    with np.errstate(over="ignore"):  # overflow to inf is what the check looks for
        cast = array.astype(dtype)
    if not np.isfinite(cast).all():
        raise UserError(f"{what} holds values beyond the range of {dtype}, the model's dtype (magnitude at most "
                        f"{np.finfo(dtype).max:.3g}){when}; {dtype_remedy(dtype)}")
    return cast
