"""The learned Wiener filter (Wiener 1950): a k x k linear convolution fitted by least squares.

The kernel ``h`` and offset ``c`` minimise ``sum_i ||h * y_i + c - x_i||^2`` over training pairs
(noisy ``y_i``, clean ``x_i``). With periodic boundaries every shifted copy of an image has the
same mean and the Gram matrix of shifted copies is the (Toeplitz) autocorrelation of the noisy
images, so the normal equations are built exactly from FFT auto- and cross-correlations of the
mean-centred images: a k^2 x k^2 solve, independent of the number of pixels. This equals training
a single convolution layer (with bias, circular padding) to minimise the MSE.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from scipy import linalg, ndimage

from temdenoise.classical import map_frames
from temdenoise.noise import NoiseCondition
from temdenoise.registry import register


def kernel_offsets(kernel_size: int) -> np.ndarray:
    """The (dy, dx) offsets of a k x k kernel in row-major order, centred on 0."""
    radius = kernel_size // 2
    grid = np.arange(-radius, radius + 1)
    return np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)


def frame_pairs(noisy: Sequence[np.ndarray], clean: Sequence[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The (noisy, clean) frames of a stack's items (videos split), one item read at a time."""
    for y, x in zip(noisy, clean):
        if np.ndim(y) == 3:
            yield from zip(y, x)
        else:
            yield y, x


def normal_equations(
    noisy: Sequence[np.ndarray], clean: Sequence[np.ndarray], kernel_size: int
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Gram matrix, right-hand side and the two means of the Wiener least-squares problem.

    ``gram[i, j] = sum_p y(p + d_i) y(p + d_j)`` is the noisy autocorrelation at lag ``d_j - d_i``
    and ``rhs[i] = sum_p x(p) y(p + d_i)`` the clean-noisy cross-correlation at lag ``d_i``, both
    on mean-centred images with periodic boundaries, accumulated over all training images
    (``noisy`` and ``clean``: images or videos). Two passes over the pairs, the means then the
    correlations, each holding one pair: a stack read from disk (:class:`temdenoise.io.StackReader`)
    is never in memory whole.
    """
    sums, pixels = np.zeros(2), 0
    for y, x in frame_pairs(noisy, clean):
        sums += np.sum(y, dtype=np.float64), np.sum(x, dtype=np.float64)
        pixels += np.size(y)
    mean_noisy, mean_clean = (float(total) for total in sums / pixels)
    offsets = kernel_offsets(kernel_size)
    lags = offsets[None, :, :] - offsets[:, None, :]
    gram = np.zeros((len(offsets), len(offsets)))
    rhs = np.zeros(len(offsets))
    for y, x in frame_pairs(noisy, clean):
        y_hat = np.fft.fft2(np.asarray(y, dtype=np.float64) - mean_noisy)
        x_hat = np.fft.fft2(np.asarray(x, dtype=np.float64) - mean_clean)
        # sum_p y(p) y(p + s) and sum_p x(p) y(p + s), indexed by the lag s (mod image size)
        autocorrelation = np.fft.ifft2(np.conj(y_hat) * y_hat).real
        crosscorrelation = np.fft.ifft2(np.conj(x_hat) * y_hat).real
        gram += autocorrelation[lags[..., 0], lags[..., 1]]
        rhs += crosscorrelation[offsets[:, 0], offsets[:, 1]]
    return gram, rhs, mean_noisy, mean_clean


def fit_wiener(
    noisy: Sequence[np.ndarray], clean: Sequence[np.ndarray], kernel_size: int
) -> tuple[np.ndarray, float]:
    """Least-squares k x k kernel and offset (see module docstring) from training images or videos."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    gram, rhs, mean_noisy, mean_clean = normal_equations(noisy, clean, kernel_size)
    weights = linalg.solve(gram, rhs, assume_a="pos")
    kernel = weights.reshape(kernel_size, kernel_size)
    return kernel, mean_clean - kernel.sum() * mean_noisy


def apply_wiener(image: np.ndarray, kernel: np.ndarray, offset: float) -> np.ndarray:
    """``sum_d h(d) y(p + d) + c`` with periodic boundaries."""
    filtered = ndimage.correlate(np.asarray(image, dtype=np.float64), kernel, mode="wrap")
    return (filtered + offset).astype(np.float32)


@register("wiener")
class WienerFilter:
    """Learned Wiener filter: one k x k kernel per noise condition (``kernel_size`` odd)."""

    kind = "classical"

    def __init__(self, kernel_size: int = 11) -> None:
        self.kernel_size = kernel_size

    def fit(self, noisy: Sequence[np.ndarray], clean: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        kernel, offset = fit_wiener(noisy, clean, self.kernel_size)
        return {"kernel": kernel, "offset": np.array(offset)}

    def denoise(
        self, image: np.ndarray, state: dict[str, np.ndarray], condition: NoiseCondition, pixel_size: float
    ) -> np.ndarray:
        return map_frames(image, lambda frame: apply_wiener(frame, state["kernel"], float(state["offset"])))

