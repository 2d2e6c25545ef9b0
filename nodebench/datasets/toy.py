"""Two-dimensional toy densities in the style of FFJORD's toy experiments.

The names and shapes follow the toy set of FFJORD (Grathwohl et al. 2019, arXiv 1810.01367, §5.1), which
Onken & Ruthotto 2020 (arXiv 2005.13420, §5) use for their 2-D CNF (``8gaussians``). The samplers are our
own implementations of the same distributions: they draw from the same kind of density but are not
bit-identical to FFJORD's samples. Every sampler returns exactly ``n`` rows in random order.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn import datasets as skdatasets

from nodebench.errors import UserError


def _sklearn_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


def _counts(n: int, parts: int) -> list[int]:
    """Split ``n`` into ``parts`` near-equal counts."""
    return [n // parts + (i < n % parts) for i in range(parts)]


def _eight_gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    angles = 2 * np.pi * rng.integers(8, size=n) / 8
    centers = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return (centers + 0.5 * rng.standard_normal((n, 2))) / 1.414


def _moons(n: int, rng: np.random.Generator) -> np.ndarray:
    x, _ = skdatasets.make_moons(n, noise=0.1, random_state=_sklearn_seed(rng))
    return 2.0 * x + np.array([-1.0, -0.2])


def _circles(n: int, rng: np.random.Generator) -> np.ndarray:
    x, _ = skdatasets.make_circles(n, factor=0.5, noise=0.08, random_state=_sklearn_seed(rng))
    return 3.0 * x


def _rings(n: int, rng: np.random.Generator) -> np.ndarray:
    radii = np.repeat([1.0, 0.75, 0.5, 0.25], _counts(n, 4))
    angles = rng.uniform(0, 2 * np.pi, size=n)
    x = 3.0 * radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return x + 0.08 * rng.standard_normal((n, 2))


def _checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    x1 = rng.uniform(-2, 2, size=n)
    x2 = rng.uniform(0, 1, size=n) - 2 * rng.integers(2, size=n) + np.floor(x1) % 2
    return 2.0 * np.stack([x1, x2], axis=1)


def _pinwheel(n: int, rng: np.random.Generator) -> np.ndarray:
    arms, rate = 5, 0.25
    arm = rng.integers(arms, size=n)
    radial = 1.0 + 0.3 * rng.standard_normal(n)
    tangential = 0.1 * rng.standard_normal(n)
    angle = 2 * np.pi * arm / arms + rate * np.exp(radial)
    cos, sin = np.cos(angle), np.sin(angle)
    return 2.0 * np.stack([cos * radial - sin * tangential, sin * radial + cos * tangential], axis=1)


def _two_spirals(n: int, rng: np.random.Generator) -> np.ndarray:
    turn = np.sqrt(rng.uniform(size=n)) * 3 * np.pi
    arm = np.where(rng.integers(2, size=n) == 0, 1.0, -1.0)[:, None]
    spiral = np.stack([-np.cos(turn) * turn, np.sin(turn) * turn], axis=1)
    x = arm * (spiral + 0.5 * rng.uniform(size=(n, 2)))
    return x / 3.0 + 0.1 * rng.standard_normal((n, 2))


def _swissroll(n: int, rng: np.random.Generator) -> np.ndarray:
    x, _ = skdatasets.make_swiss_roll(n, noise=1.0, random_state=_sklearn_seed(rng))
    return x[:, [0, 2]] / 5.0


TOY_SAMPLERS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "8gaussians": _eight_gaussians,
    "moons": _moons,
    "circles": _circles,
    "checkerboard": _checkerboard,
    "pinwheel": _pinwheel,
    "2spirals": _two_spirals,
    "swissroll": _swissroll,
    "rings": _rings,
}
TOY_NAMES = tuple(TOY_SAMPLERS)


def sample_toy(name: str, n: int, *, seed: int) -> np.ndarray:
    """Draw ``n`` points of the 2-D toy density ``name`` as a float64 array of shape ``(n, 2)``.

    Args:
        name: One of :data:`TOY_NAMES`.
        n: Number of samples (positive).
        seed: Seed of the sampler's own generator; the same seed gives the same samples.

    Raises:
        UserError: Unknown ``name`` or non-positive ``n``.
    """
    sampler = TOY_SAMPLERS.get(name)
    if sampler is None:
        raise UserError(f"unknown toy data set {name!r}; valid: {', '.join(TOY_NAMES)}")
    if n < 1:
        raise UserError(f"number of toy samples must be positive, got {n}")
    rng = np.random.default_rng(seed)
    x = np.asarray(sampler(n, rng), dtype=np.float64)
    return x[rng.permutation(n)]
