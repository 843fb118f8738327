"""Image-quality metrics with an explicit data range (scikit-image implementations).

Conventions (repeated in every table header, see :data:`CONVENTION`):

* natural images, values in [0, 1]: the estimate is clamped to [0, 1] and ``data_range = 1``;
* TEM images, normalised intensity (vacuum = 1): ``data_range = max(clean) - min(clean)`` of each
  clean image, no clamping.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

CONVENTION = {
    "unit": "PSNR and SSIM per image; natural: estimate clamped to [0,1], data_range=1; "
    "TEM: normalised intensity (vacuum=1), data_range=max(clean)-min(clean) per image",
}


def data_range(clean: np.ndarray, domain: str) -> float:
    """The data range of ``clean`` under the convention of ``domain`` (``natural`` or ``tem``)."""
    if domain == "natural":
        return 1.0
    if domain == "tem":
        return float(np.max(clean) - np.min(clean))
    raise ValueError(f"unknown image domain {domain!r} (expected 'natural' or 'tem')")


def _prepare(estimate: np.ndarray, domain: str) -> np.ndarray:
    estimate = np.asarray(estimate, dtype=np.float64)
    return np.clip(estimate, 0.0, 1.0) if domain == "natural" else estimate


def psnr(clean: np.ndarray, estimate: np.ndarray, domain: str) -> float:
    """PSNR in dB of ``estimate`` against ``clean`` (videos: over all frames)."""
    clean = np.asarray(clean, dtype=np.float64)
    return float(peak_signal_noise_ratio(clean, _prepare(estimate, domain), data_range=data_range(clean, domain)))


def ssim(clean: np.ndarray, estimate: np.ndarray, domain: str) -> float:
    """SSIM of ``estimate`` against ``clean``; videos are averaged frame by frame."""
    clean = np.asarray(clean, dtype=np.float64)
    estimate = _prepare(estimate, domain)
    rng = data_range(clean, domain)
    if clean.ndim == 3:
        return float(np.mean([structural_similarity(c, e, data_range=rng) for c, e in zip(clean, estimate)]))
    return float(structural_similarity(clean, estimate, data_range=rng))
