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

**Repeats of one seed** (the same case in two experiments of a run, or in two runs) are one seed, not two:
a seed fixes the initialisation and the data, so its repeats differ only by the machine's timing noise and
are not independent draws of the spread over seeds that the intervals describe. Counting them as seeds
would claim a coverage the data do not have (50 % for "2 seeds" that are one seed twice) and weigh that
seed double. Given the seeds (``seeds=``), each seed's repeats are pooled by their median first (as the
regression gate's centre: the median over seeds of each seed's median), and the text says so: ``"2 runs of
1 seed"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
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
    runs: int = 0

    @property
    def seeds(self) -> str:
        """``"1 seed"``, ``"3 seeds"``; where ``runs`` (the values before each seed's repeats were pooled) is
        more than ``n``: ``"2 runs of 1 seed"``."""
        seeds = f"{self.n} seed" if self.n == 1 else f"{self.n} seeds"
        return f"{self.runs} runs of {seeds}" if self.runs > self.n else seeds

    def text(self, fmt: str = "{:.3g}") -> str:
        """``"1.2 [0.9, 1.5] (3 seeds, 75%)"``; ``"1.2 (1 seed)"``; ``"–"`` without values."""
        if self.n == 0:
            return "–"
        value = _value(self.value, fmt)
        if self.n == 1 or self.low == self.high:
            return f"{value} ({self.seeds})"
        return (f"{value} [{_value(self.low, fmt)}, {_value(self.high, fmt)}] "
                f"({self.seeds}, {self.coverage:.0%})")


def ok_count_text(ok: int, runs: int, seeds: int) -> str:
    """Cases that finished ok out of all, ``"1/3"``; where a seed ran more than once (``runs`` cases of
    ``seeds`` distinct seeds), ``"2/2 runs of 1 seed"``."""
    return f"{ok}/{runs}" + (f" runs of {seeds} seed{'' if seeds == 1 else 's'}" if runs > seeds else "")


def _value(x: float, fmt: str) -> str:
    return "∞" if math.isinf(x) and x > 0 else fmt.format(x)


def per_seed(values, seeds=None) -> tuple[np.ndarray, int]:
    """``(one value per distinct seed, how many values there were)``: NaNs dropped, then each seed's repeats
    pooled by their median (module docstring); ``values`` as they are where ``seeds`` is None."""
    x = pd.Series(np.asarray(values, dtype=float).ravel())
    keep = x.notna().to_numpy()
    if seeds is None:
        return x[keep].to_numpy(), int(keep.sum())
    return x[keep].groupby(np.asarray(seeds).ravel()[keep]).median().to_numpy(), int(keep.sum())


def median_interval(values, level: float = LEVEL, *, seeds=None) -> Interval:
    """The median of ``values`` (NaNs dropped; with ``seeds``, each seed's repeats pooled first:
    :func:`per_seed`) with its order-statistic interval over the seeds (module docstring)."""
    pooled, runs = per_seed(values, seeds)
    x = np.sort(pooled)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan)
    median = float(np.median(x))
    if n == 1:
        return Interval(median, median, median, 1, math.nan, runs)
    j = 1
    for candidate in range(n // 2, 0, -1):  # narrowest first
        if _coverage(n, candidate) >= level:
            j = candidate
            break
    return Interval(median, float(x[j - 1]), float(x[n - j]), n, _coverage(n, j), runs)


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
