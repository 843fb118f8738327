"""Noise models: Poisson counts follow the dose, Gaussian std, seeds, names, Anscombe."""

import numpy as np
import pytest

from temdenoise.noise import (
    NoiseCondition,
    anscombe,
    condition_name,
    expected_counts,
    inverse_anscombe,
    noisy_items,
    parse_condition,
    poisson_noise,
)


def test_poisson_counts_mean_and_variance_follow_dose_and_pixel_area():
    intensity = np.full((400, 500), 0.8)
    dose, pixel_size = 30.0, 0.25  # 30 e/A^2 on 0.0625 A^2 pixels: 1.5 expected counts
    rng = np.random.default_rng(0)
    counts = poisson_noise(intensity, dose, pixel_size, rng) * dose * pixel_size**2
    expected = 0.8 * dose * pixel_size**2
    assert np.allclose(expected_counts(intensity, dose, pixel_size), expected)
    n = counts.size
    # standard errors: mean sqrt(lambda/n); variance ~ sqrt(2 lambda^2 / n + lambda / n)
    assert abs(counts.mean() - expected) < 5 * np.sqrt(expected / n)
    assert abs(counts.var() - expected) < 5 * np.sqrt((2 * expected**2 + expected) / n)
    assert np.allclose(counts, np.round(counts), atol=1e-4)  # integer counts
    # twice the dose, twice the counts: the test would fail if dose or area were ignored
    doubled = poisson_noise(intensity, 2 * dose, pixel_size, rng) * 2 * dose * pixel_size**2
    assert abs(doubled.mean() - 2 * expected) < 5 * np.sqrt(2 * expected / n)


def test_gaussian_std_is_sigma_over_255():
    clean = np.zeros((300, 300))
    noisy = next(noisy_items([clean], [1.0], NoiseCondition("gaussian", 25), seed=3))
    assert noisy.std() == pytest.approx(25 / 255, rel=0.02)
    assert abs(noisy.mean()) < 5 * (25 / 255) / 300


def test_same_seed_same_noise_other_seed_other_noise():
    clean = [np.full((32, 32), 0.5), np.full((16, 16), 1.0)]
    condition = parse_condition("poisson-5")
    first = list(noisy_items(clean, [0.5, 0.5], condition, seed=7))
    again = list(noisy_items(clean, [0.5, 0.5], condition, seed=7))
    other = list(noisy_items(clean, [0.5, 0.5], condition, seed=8))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])


def test_condition_names_round_trip():
    assert condition_name("poisson", 5.0) == "poisson-5"
    assert condition_name("poisson", 0.5) == "poisson-0.5"
    assert parse_condition("gaussian-25") == NoiseCondition("gaussian", 25.0)
    with pytest.raises(ValueError):
        parse_condition("salt-3")
    with pytest.raises(ValueError):
        condition_name("poisson", -1)


def test_anscombe_stabilises_variance_and_inverts():
    rng = np.random.default_rng(0)
    for rate in (5.0, 20.0):
        stabilised = anscombe(rng.poisson(rate, 200_000).astype(float))
        assert stabilised.var() == pytest.approx(1.0, abs=0.05)
        assert inverse_anscombe(np.mean(stabilised)) == pytest.approx(rate, rel=0.02)
