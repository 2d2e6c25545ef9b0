"""Medians over seeds with a distribution-free interval, and the ratio of two such medians.

**Median interval** (order statistics): for n seeds sorted x₍₁₎ ≤ … ≤ x₍ₙ₎, the interval
[x₍ⱼ₎, x₍ₙ₋ⱼ₊₁₎] covers the population median with probability Σᵢ₌ⱼ^{n−j} C(n, i) / 2ⁿ (the binomial
sign-test interval, no distributional assumption). We take the narrowest such interval whose coverage is
at least ``level`` (95 %); below 6 seeds none reaches 95 % and the interval is the range [min, max] with
its actual coverage (1 − 2¹⁻ⁿ: 50 % with 2 seeds, 75 % with 3, 87.5 % with 4 and 93.8 % with 5). One
seed has no interval, and every figure built on it says "1 seed".

**Ratio of medians**: a percentile bootstrap (seeds resampled within each side, a fixed generator so that
a report is reproducible).

Values may be ``inf`` ("never reached the target" counts as infinitely slow); NaNs are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

LEVEL = 0.95
BOOTSTRAP_SAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A statistic over ``n`` seeds, ``value`` (a median, a ratio of medians, or the olympic mean of
    :func:`nodebench.target.seed_interval`), with its interval [``low``, ``high``] of coverage ``coverage``."""

    value: float
    low: float
    high: float
    n: int
    coverage: float

    @property
    def seeds(self) -> str:
        """``"1 seed"``, ``"3 seeds"``."""
        return f"{self.n} seed" if self.n == 1 else f"{self.n} seeds"

    def text(self, fmt: str = "{:.3g}") -> str:
        """``"1.2 [0.9, 1.5] (3 seeds, 75%)"``; ``"1.2 (1 seed)"``; ``"–"`` without values."""
        if self.n == 0:
            return "–"
        value = _value(self.value, fmt)
        if self.n == 1 or self.low == self.high:
            return f"{value} ({self.seeds})"
        return (f"{value} [{_value(self.low, fmt)}, {_value(self.high, fmt)}] "
                f"({self.seeds}, {self.coverage:.0%})")


def _value(x: float, fmt: str) -> str:
    return "∞" if math.isinf(x) and x > 0 else fmt.format(x)


def median_interval(values, level: float = LEVEL) -> Interval:
    """The median of ``values`` (NaNs dropped) with its order-statistic interval (module docstring)."""
    x = np.sort(np.asarray([v for v in np.asarray(values, dtype=float).ravel() if not math.isnan(v)]))
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan)
    median = float(np.median(x))
    if n == 1:
        return Interval(median, median, median, 1, math.nan)
    j = 1
    for candidate in range(n // 2, 0, -1):  # narrowest first
        if _coverage(n, candidate) >= level:
            j = candidate
            break
    return Interval(median, float(x[j - 1]), float(x[n - j]), n, _coverage(n, j))


def _coverage(n: int, j: int) -> float:
    """P(x₍ⱼ₎ ≤ median ≤ x₍ₙ₋ⱼ₊₁₎) = P(j ≤ B ≤ n − j), B ~ Binomial(n, ½)."""
    return float(binom.cdf(n - j, n, 0.5) - binom.cdf(j - 1, n, 0.5))


def ratio_interval(numerator, denominator, level: float = LEVEL, seed: int = 0) -> Interval:
    """median(numerator) / median(denominator) with a percentile-bootstrap interval; ``n`` is the smaller
    seed count of the two sides (a ratio from one seed on either side says "1 seed")."""
    a = np.asarray([v for v in np.asarray(numerator, dtype=float).ravel() if not math.isnan(v)])
    b = np.asarray([v for v in np.asarray(denominator, dtype=float).ravel() if not math.isnan(v)])
    n = min(len(a), len(b))
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan)
    ratio = float(np.median(a) / np.median(b))
    if n == 1:
        return Interval(ratio, ratio, ratio, 1, math.nan)
    rng = np.random.default_rng(seed)
    ra = np.median(rng.choice(a, (BOOTSTRAP_SAMPLES, len(a))), axis=1)
    rb = np.median(rng.choice(b, (BOOTSTRAP_SAMPLES, len(b))), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = np.nanquantile(ra / rb, [(1 - level) / 2, (1 + level) / 2])
    return Interval(ratio, float(low), float(high), n, level)
