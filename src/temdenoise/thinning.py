"""Ground-truth-free PSNR of a denoiser on Poisson count data by binomial thinning.

A recording ``y ~ Poisson(lambda)`` (counts per pixel, ``lambda = s * x`` for the clean normalised
intensity ``x`` and ``s = D p^2`` counts per unit intensity) is split into
``y1 ~ Binomial(y, f)`` and ``y2 = y - y1``: two *independent* Poisson images with means
``f * lambda`` and ``(1 - f) * lambda`` (the thinning property of the Poisson law). On the clean
scale, ``z1 = y1 / (f s)`` is a recording at dose ``f D`` and ``t = y2 / ((1 - f) s)`` an
independent unbiased estimate of ``x`` with variance ``x / ((1 - f) s)``. For any estimate
``g(z1)`` computed from ``z1`` alone, independence gives

    E mean((g - t)^2) = E mean((g - x)^2) + mean(x) / ((1 - f) s),

and ``mean(y2) / ((1 - f) s)^2`` is an unbiased estimate of the last term, so

    MSE_hat = mean((g - t)^2) - mean(y2) / ((1 - f) s)^2

is an unbiased estimate of the true MSE of the denoiser at dose ``f D`` (Batson & Royer's
Noise2Self splitting argument applied to Poisson thinning; see docs/thinning.md). At low dose the
noise term dwarfs the MSE of a good denoiser and one image's estimate is often negative: estimates
are averaged over images before the logarithm (:func:`psnr_from_mse` is never floored), and two
models are compared by the paired difference of their estimates, in which the noise term cancels.
PSNR needs a peak: the project's TEM convention is the clean image's range, unknown here, so the
estimated PSNR uses an estimate of it common to every model (:func:`estimate_data_range`): it
scales every model's MSE on an image by the same amount, so rankings do not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

@dataclass(frozen=True)
class ThinnedSplit:
    """The two halves of a thinned recording (an image or a ``(T, H, W)`` movie) on the clean
    (normalised intensity) scale."""

    input: np.ndarray  # z1 = y1 / (f s): the recording at dose f D, what a denoiser sees
    target: np.ndarray  # t = y2 / h: the independent unbiased target
    held_scale: float  # h = (1 - f) s: counts of y2 per unit intensity
    fraction: float

    @property
    def noise_variance(self) -> float:
        """Unbiased estimate of the target's mean noise variance, ``mean(y2) / h^2 = mean(t) / h``."""
        return float(np.mean(self.target, dtype=np.float64) / self.held_scale)

    def frame(self, index: int) -> "ThinnedSplit":
        """The split of frame ``index`` of a thinned movie."""
        return ThinnedSplit(self.input[index], self.target[index], self.held_scale, self.fraction)


def thin(counts: np.ndarray, counts_per_unit: float, fraction: float, rng: np.random.Generator) -> ThinnedSplit:
    """Split integer ``counts`` (``s = counts_per_unit`` counts per unit intensity) by binomial
    thinning with probability ``fraction``; see the module doc."""
    if not 0 < fraction < 1:
        raise ValueError(f"thinning fraction must lie in (0, 1), got {fraction}")
    counts = np.asarray(counts)
    if np.any(counts < 0) or not np.allclose(counts, np.round(counts)):
        raise ValueError("binomial thinning needs non-negative integer counts")
    counts = np.round(counts).astype(np.int64)
    kept = rng.binomial(counts, fraction)
    held_scale = (1 - fraction) * counts_per_unit
    return ThinnedSplit(
        input=(kept / (fraction * counts_per_unit)).astype(np.float32),
        target=((counts - kept) / held_scale).astype(np.float32),
        held_scale=held_scale,
        fraction=fraction,
    )


def estimated_mse(estimate: np.ndarray, split: ThinnedSplit) -> float:
    """Unbiased estimate of the MSE of ``estimate`` (computed from ``split.input`` only) to the
    clean image; it may be slightly negative for a near-perfect estimate."""
    error = np.asarray(estimate, dtype=np.float64) - split.target
    return float(np.mean(error**2) - split.noise_variance)


def psnr_from_mse(mse: float, data_range: float) -> float:
    """PSNR in dB from an MSE and a peak ``data_range``; NaN when the MSE (an estimate, which may
    be negative) is not positive: no floor decides a ranking."""
    return float(10 * np.log10(data_range**2 / mse)) if mse > 0 else float("nan")


def estimate_data_range(normalised: np.ndarray, sigma: float = 1.0) -> float:
    """Ground-truth-free stand-in for the TEM PSNR peak ``max(clean) - min(clean)``: the range of
    the whole recording (clean scale) after a Gaussian filter of ``sigma`` pixels, which removes
    most of the noise's excursions (measured against the clean range in docs/thinning.md)."""
    smooth = ndimage.gaussian_filter(np.asarray(normalised, dtype=np.float64), sigma)
    return float(smooth.max() - smooth.min())
