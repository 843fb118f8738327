"""Paired differences and their confidence intervals (temdenoise.stats)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from temdenoise.stats import PairedDifference, paired_difference, paired_table


def test_interval_matches_the_paired_t_test():
    rng = np.random.default_rng(0)
    a = rng.normal(30, 2, size=12)
    b = a - 0.3 + rng.normal(0, 0.2, size=12)
    result = paired_difference(a, b)
    # The interval excludes 0 exactly when the two-sided paired t-test rejects at 5%.
    p_value = stats.ttest_rel(a, b).pvalue
    assert result.resolved == (p_value < 0.05)
    assert result.low < result.mean < result.high
    assert result.mean == pytest.approx(np.mean(a - b))
    # Half-width from the t quantile, checked against scipy's own interval.
    low, high = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (result.low, result.high) == pytest.approx((low, high))


def test_pairing_resolves_what_the_spread_hides():
    # Image-to-image spread of 5 dB, a constant 0.1 dB gain: unpaired means overlap, pairs do not.
    base = np.array([20.0, 25.0, 30.0, 35.0])
    result = paired_difference(base + 0.1 + np.array([0.01, -0.01, 0.02, -0.02]), base)
    assert result.resolved and result.verdict("A", "B") == "A > B"


def test_small_or_noisy_differences_are_not_resolved():
    assert not paired_difference([30.0], [29.0]).resolved  # one item: no interval
    assert paired_difference([1.0, 2.0, 3.0], [1.5, 1.5, 3.5]).verdict() == "not resolved"


def test_paired_table_matches_items_not_rows():
    tidy = pd.DataFrame({
        "noise": ["n"] * 6,
        "image": [0, 1, 2, 2, 1, 0],  # b's rows in another order
        "method": ["a"] * 3 + ["b"] * 3,
        "psnr": [10.0, 20.0, 30.0, 29.0, 19.0, 9.0],
    })
    table = paired_table(tidy, [("a", "b"), ("a", "missing")])
    assert len(table) == 1
    row = table.iloc[0]
    assert row["diff_mean"] == pytest.approx(1.0) and row["diff_items"] == 3 and row["verdict"] == "a > b"


def test_a_difference_survives_a_table_row():
    result = paired_difference([3.0, 2.5, 4.0], [1.0, 1.5, 1.0])
    row = pd.Series(result.as_dict("delta"))
    assert PairedDifference.from_record(row, "delta") == result
