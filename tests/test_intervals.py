"""Medians over seeds with order-statistic intervals, and bootstrap intervals of ratios of medians."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nodebench.intervals import median_interval, ratio_interval


def test_one_seed_has_no_interval_and_says_so():
    iv = median_interval([2.0])
    assert (iv.value, iv.low, iv.high, iv.n) == (2.0, 2.0, 2.0, 1)
    assert iv.text() == "2 (1 seed)"


def test_few_seeds_give_the_range_with_its_actual_coverage():
    iv = median_interval([3.0, 1.0, 2.0])
    assert (iv.value, iv.low, iv.high) == (2.0, 1.0, 3.0)
    assert iv.coverage == pytest.approx(0.75)  # 1 - 2 * 0.5**3
    assert iv.text() == "2 [1, 3] (3 seeds, 75%)"


def test_many_seeds_give_the_narrowest_interval_with_95_percent_coverage():
    values = np.arange(1.0, 21.0)
    iv = median_interval(values)
    assert iv.coverage >= 0.95 and (iv.low, iv.high) == (6.0, 15.0)  # sign-test interval for n = 20
    # the coverage is a real one: the interval of standard-normal samples covers 0 about 95% of the time
    rng = np.random.default_rng(0)
    intervals = [median_interval(rng.normal(size=20)) for _ in range(2000)]
    hits = [i.low <= 0 <= i.high for i in intervals]
    assert 0.94 <= np.mean(hits) <= 0.985


def test_unreached_seeds_count_as_infinitely_slow_and_nans_are_dropped():
    iv = median_interval([1.0, math.inf, math.inf, math.nan])
    assert iv.n == 3 and math.isinf(iv.value) and iv.text().startswith("∞")


def test_ratio_of_medians_with_a_bootstrap_interval():
    one = ratio_interval([4.0], [2.0])
    assert one.value == 2.0 and one.text() == "2 (1 seed)"
    rng = np.random.default_rng(1)
    iv = ratio_interval(rng.normal(10, 1, 15), rng.normal(5, 0.5, 15))
    assert iv.low < iv.value < iv.high and 1.6 < iv.low and iv.high < 2.4 and iv.n == 15
