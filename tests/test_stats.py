"""Paired differences and their confidence intervals (temdenoise.stats)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from temdenoise.stats import PairedDifference, across_seeds, count_units, holm, paired_difference, paired_table


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


def test_standard_error_is_the_scale_of_the_interval():
    rng = np.random.default_rng(1)
    a = rng.normal(30, 2, size=9)
    b = a - 0.3 + rng.normal(0, 0.2, size=9)
    result = paired_difference(a, b)
    assert result.standard_error == pytest.approx(np.std(a - b, ddof=1) / np.sqrt(9))
    assert result.high - result.mean == pytest.approx(stats.t.ppf(0.975, 8) * result.standard_error)
    assert paired_difference(a, a).standard_error == 0.0 and np.isnan(paired_difference(a[:1], b[:1]).standard_error)
    row = pd.Series(result.as_dict())
    assert PairedDifference.from_record(row).standard_error == pytest.approx(result.standard_error)


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


def test_correlated_frames_count_as_one_video():
    # 3 videos of 20 frames: each video has its own offset (the frames of a video share it) and
    # frame noise is small. Per frame, 60 "independent" items resolve the difference; per video,
    # 3 units do not, and the verdict follows the videos.
    rng = np.random.default_rng(1)
    video = np.repeat(np.arange(3), 20)
    offsets = np.array([1.2, -0.4, 0.6])
    b = rng.normal(25, 2, size=60)
    a = b + offsets[video] + rng.normal(0, 0.1, size=60)
    per_frame = paired_difference(a, b)
    per_video = paired_difference(a, b, video, unit="video")
    assert (per_frame.units, per_video.units, per_video.items) == (60, 3, 60)
    assert per_video.high - per_video.low > 5 * (per_frame.high - per_frame.low)
    assert per_frame.resolved and not per_video.resolved
    assert per_video.verdict("a", "b") == "not resolved" and per_video.unit == "video"
    # The interval over units is scipy's paired t interval over the unit means.
    means_a, means_b = (np.array([x[video == v].mean() for v in range(3)]) for x in (a, b))
    assert (per_video.low, per_video.high) == pytest.approx(stats.ttest_rel(means_a, means_b).confidence_interval())


def test_holm_adjustment_matches_the_step_down_rule():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): x4, x3, x2, x1, made non-decreasing
    assert holm(p)[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and np.isnan(holm(p)[4])
    assert holm([0.9, 0.3]) == pytest.approx([0.9, 0.6])  # monotone: the larger p never below the smaller's
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_a_family_of_comparisons_resolves_less_than_each_alone():
    # Two differences each with unadjusted p just under 0.05: alone both resolve, as a family of
    # two neither does (Holm: the smaller p is doubled).
    rng = np.random.default_rng(3)
    tidy = []
    for noise in ("n1", "n2"):
        base = rng.normal(20, 3, size=10)
        spread = rng.normal(0, 1, size=10)
        spread = (spread - spread.mean()) / spread.std(ddof=1)
        gain = 0.7 + 0.92 * spread  # mean 0.7, standard error 0.29: t = 2.4, p = 0.04
        tidy += [{"noise": noise, "image": i, "method": "a", "psnr": base[i] + gain[i]} for i in range(10)]
        tidy += [{"noise": noise, "image": i, "method": "b", "psnr": base[i]} for i in range(10)]
    tidy = pd.DataFrame(tidy)
    alone = paired_table(tidy, [("a", "b")], family=["noise"])
    family = paired_table(tidy, [("a", "b")])
    assert (alone["diff_p"] < 0.05).all() and alone["diff_resolved"].all()
    assert (family["diff_p_holm"] > 0.05).all() and not family["diff_resolved"].any()
    assert (family["verdict"] == "not resolved").all() and (family["diff_low"] > 0).all()  # unadjusted CI beside


def test_paired_table_reads_units_from_the_rows():
    tidy = pd.DataFrame({
        "noise": "n", "image": [0, 1, 2, 3] * 2, "method": ["a"] * 4 + ["b"] * 4,
        "unit": ["s0", "s0", "s1", "s1"] * 2, "unit_kind": "structure",
        "psnr": [11.0, 13.0, 21.0, 23.0, 10.0, 10.0, 20.0, 20.0],
    })
    row = paired_table(tidy, [("a", "b")]).iloc[0]
    assert (row["unit"], row["n_units"], row["diff_items"]) == ("structure", 2, 4)
    assert row["diff_mean"] == pytest.approx(2.0) and row["verdict"] == "a > b"  # both structures +2: no spread


def test_an_ordering_over_training_seeds_needs_every_seed_in_the_same_direction():
    def row(seed, a, mean, resolved):
        return {"training_seed": seed, "a": a, "b": "ref", "diff_mean": mean, "diff_resolved": resolved,
                "unit": "structure", "n_units": 10}

    pairs = pd.DataFrame([row(0, "steady", 1.0, True), row(1, "steady", 0.8, True), row(2, "steady", 1.2, True),
                          row(0, "flips", 1.0, True), row(1, "flips", 1.1, True), row(2, "flips", -0.2, True),
                          row(0, "weak", 1.0, True), row(1, "weak", 0.9, False), row(2, "weak", 1.1, True)])
    summary = across_seeds(pairs).set_index("a")
    assert summary.loc["steady", "verdict"] == "steady > ref" and summary.loc["steady", "seed_min"] == 0.8
    assert summary.loc["flips", "verdict"] == "not resolved" and summary.loc["flips", "resolved_seeds"] == 3
    assert summary.loc["weak", "verdict"] == "not resolved" and summary.loc["weak", "resolved_seeds"] == 2
    assert (summary["seeds"] == 3).all() and summary.loc["steady", "seed_mean"] == pytest.approx(1.0)


def test_unit_counts_read_in_the_singular_for_one():
    assert count_units(1, "structure") == "1 structure" and count_units(8, "video") == "8 videos"
