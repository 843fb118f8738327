"""The learned Wiener filter: closed form = brute-force least squares; it beats the identity."""

import numpy as np
import pytest
from scipy import ndimage

from temdenoise.classical.wiener import apply_wiener, fit_wiener, kernel_offsets


def stationary_pairs(count=3, size=40, sigma=0.3, seed=0):
    """Smooth stationary random fields (clean) plus white Gaussian noise (noisy)."""
    rng = np.random.default_rng(seed)
    clean = [ndimage.gaussian_filter(rng.standard_normal((size, size)), 2.0, mode="wrap") + 0.5 for _ in range(count)]
    noisy = [x + sigma * rng.standard_normal(x.shape) for x in clean]
    return noisy, clean


def brute_force(noisy, clean, kernel_size):
    """Least squares on every (periodically wrapped) k x k patch, with an intercept column."""
    offsets = kernel_offsets(kernel_size)
    rows, targets = [], []
    for y, x in zip(noisy, clean):
        shifted = [np.roll(y, shift=(-dy, -dx), axis=(0, 1)).ravel() for dy, dx in offsets]
        rows.append(np.column_stack([*shifted, np.ones(y.size)]))
        targets.append(x.ravel())
    solution, *_ = np.linalg.lstsq(np.vstack(rows), np.concatenate(targets), rcond=None)
    return solution[:-1].reshape(kernel_size, kernel_size), solution[-1]


@pytest.mark.parametrize("kernel_size", [3, 7])
def test_closed_form_equals_brute_force(kernel_size):
    noisy, clean = stationary_pairs()
    kernel, offset = fit_wiener(noisy, clean, kernel_size)
    reference_kernel, reference_offset = brute_force(noisy, clean, kernel_size)
    np.testing.assert_allclose(kernel, reference_kernel, rtol=1e-6, atol=1e-9 * np.abs(reference_kernel).max())
    assert offset == pytest.approx(reference_offset, rel=1e-6)


def test_kernel_is_the_optimal_linear_filter():
    """No perturbation of the fitted kernel lowers the training MSE, and it beats the identity."""
    noisy, clean = stationary_pairs(seed=1)
    kernel, offset = fit_wiener(noisy, clean, 5)

    def mse(k, c):
        return np.mean([np.mean((apply_wiener(y, k, c) - x) ** 2) for y, x in zip(noisy, clean)])

    best = mse(kernel, offset)
    identity = np.mean([np.mean((y - x) ** 2) for y, x in zip(noisy, clean)])
    assert best < 0.5 * identity
    rng = np.random.default_rng(2)
    for _ in range(5):
        assert mse(kernel + 1e-3 * rng.standard_normal(kernel.shape), offset) > best


def test_even_kernel_rejected():
    noisy, clean = stationary_pairs(count=1)
    with pytest.raises(ValueError, match="kernel_size"):
        fit_wiener(noisy, clean, 4)
