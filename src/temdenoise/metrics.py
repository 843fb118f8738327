"""Image-quality metrics with an explicit data range (scikit-image implementations).

Conventions (repeated in every table header, see :data:`CONVENTION` and :data:`TEM_PSNR`):

* natural images, values in [0, 1]: the estimate is clamped to [0, 1] and ``data_range = 1``;
* TEM images, normalised intensity (vacuum = 1), under named PSNR conventions (the first listed
  is the primary one: column ``psnr``, rankings, paired Δ):

  - ``range``: ``data_range = max(clean) - min(clean)`` of each clean image, no clamping;
  - ``seed_counts``: the convention of Mohan et al., "Deep denoising for scientific discovery"
    (IEEE TCI 2022), as their code scores at every dose: ``train.py`` holds clean images in
    expected counts per pixel at the test dose and calls ``psnr(clean / noise_scale, denoised /
    noise_scale)``, ``noise_scale`` = test dose / base dose, and ``psnr`` (``utils/metrics.py``)
    scales both by 255, clamps them to [0, 255] in float32 and uses ``data_range = 255``. That is:
    clean and estimate in counts per pixel at the *base* dose (intensity x the dataset's
    ``reference_counts``, the counts of a vacuum pixel there: 0.45 in the paper), clamped to
    [0, 1] count, data range 1, whatever the dose of the condition (so also under Gaussian noise).

Both TEM conventions are capped at :data:`PSNR_CEILING` in the tables (:func:`psnr_columns`): an
estimate equal to the clean image (or, under ``seed_counts``, equal to it once both are clamped)
has no error and would score ``inf``, which no mean or paired difference survives.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

TEM_PSNR = {
    "range": "normalised intensity (vacuum=1), data_range=max(clean)-min(clean) per image",
    "seed_counts": "expected electron counts per pixel at the dataset's base dose (intensity x reference_counts, "
    "whatever the condition's dose), clean and estimate clamped to [0,1] count, data_range=1 (the TEM paper's code)",
}

PSNR_CEILING = 20 * math.log10(2**23)
"""The highest TEM PSNR (dB) of a table, about 138.5 dB: the PSNR of an error of one float32
rounding step (2^-23) of the data range. Estimates are stored in float32, so a smaller error is
below their precision; a perfect estimate scores this instead of ``inf``."""

CONVENTION = {
    "unit": "PSNR and SSIM per image; natural: estimate clamped to [0,1], data_range=1; "
    "TEM: normalised intensity (vacuum=1), data_range=max(clean)-min(clean) per image",
}


def _skimage_metrics():
    """scikit-image's metrics module, imported on first use (SSIM only): importing it costs about
    1 s, which the many jobs that import this module without scoring (denoise, fit) should not pay."""
    from skimage import metrics as skimage_metrics

    return skimage_metrics


def peak_signal_noise_ratio(reference: np.ndarray, estimate: np.ndarray, data_range: float) -> float:
    """``10 log10(data_range^2 / MSE)`` in float64: scikit-image's ``peak_signal_noise_ratio``
    (equal to it, tests/test_metrics.py), written out because importing it pulls in scipy.stats
    (~1.4 s of every one of the quick run's ~65 evaluate jobs)."""
    error = np.mean((np.asarray(reference, dtype=np.float64) - np.asarray(estimate, dtype=np.float64)) ** 2)
    with np.errstate(divide="ignore"):
        return float(10 * np.log10(data_range**2 / error))


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


def seed_counts_psnr(clean: np.ndarray, estimate: np.ndarray, reference_counts: float) -> float:
    """PSNR in dB of the TEM paper's code (module docstring, ``seed_counts``) of normalised-intensity
    images, vacuum = ``reference_counts`` counts per pixel (the base dose, whatever the condition's):
    counts per pixel, x255, clamped to [0, 255] in float32, ``data_range = 255`` (videos: over all
    frames)."""

    def to_byte_scale(image: np.ndarray) -> np.ndarray:
        counts = np.asarray(image, dtype=np.float64) * reference_counts
        return np.clip(counts * 255, 0, 255).astype(np.float32)

    return float(peak_signal_noise_ratio(to_byte_scale(clean), to_byte_scale(estimate), data_range=255))


def psnr_columns(
    clean: np.ndarray,
    estimate: np.ndarray,
    domain: str,
    conventions: Sequence[str],
    reference_counts: float,
) -> dict[str, float]:
    """PSNR columns of one item: ``psnr`` under the primary (first) convention and ``psnr_<name>``
    for every TEM convention of ``conventions``, each at most :data:`PSNR_CEILING`; natural images
    have ``psnr`` only. ``reference_counts``: the dataset's counts per vacuum pixel at the base dose
    (``seed_counts``)."""
    if domain != "tem":
        return {"psnr": psnr(clean, estimate, domain)}
    unknown = set(conventions) - set(TEM_PSNR)
    if unknown or not conventions:
        raise ValueError(f"unknown TEM PSNR convention(s) {sorted(unknown)} (known: {list(TEM_PSNR)})")
    scores = {}
    for name in conventions:
        if name == "range":
            score = psnr(clean, estimate, domain)
        else:
            score = seed_counts_psnr(clean, estimate, reference_counts)
        scores[name] = min(score, PSNR_CEILING)  # no error: a finite cell, so means and paired differences stay defined
    return {"psnr": scores[conventions[0]]} | {f"psnr_{name}": score for name, score in scores.items()}


def psnr_header(conventions: Sequence[str]) -> str:
    """The table-header sentence naming the TEM PSNR columns of ``conventions`` (primary first)."""
    named = "; ".join(f"psnr_{name}: {TEM_PSNR[name]}" for name in conventions)
    return (f"TEM PSNR columns: {named}; psnr (rankings, paired differences) = psnr_{conventions[0]}; "
            f"each capped at {PSNR_CEILING:.1f} dB (an estimate with no error)")


def table_convention(conventions: Sequence[str]) -> str:
    """The convention sentence of a table header whose TEM rows carry the PSNR columns of
    ``conventions`` (:func:`psnr_header`); :data:`CONVENTION` when there are none."""
    if not conventions:
        return CONVENTION["unit"]
    return ("PSNR and SSIM per image; natural: estimate clamped to [0,1], data_range=1; TEM SSIM: normalised "
            f"intensity (vacuum=1), data_range=max(clean)-min(clean) per image; {psnr_header(conventions)}")


def tem_psnr_conventions(columns: Sequence[str]) -> list[str]:
    """The TEM PSNR conventions scored in a metric table with ``columns`` (its ``psnr_<name>``
    columns, in column order: the primary one first, as :func:`psnr_columns` writes them)."""
    return [name for column in columns if column.startswith("psnr_") and (name := column[5:]) in TEM_PSNR]


def format_psnr_mean(value: float) -> str:
    """A mean PSNR cell of a Markdown/LaTeX table: two decimals, "–" where the convention is
    undefined (NaN: a TEM convention on natural images)."""
    return "–" if np.isnan(value) else f"{value:.2f}"


def ssim(clean: np.ndarray, estimate: np.ndarray, domain: str) -> float:
    """SSIM of ``estimate`` against ``clean``; videos are averaged frame by frame."""
    clean = np.asarray(clean, dtype=np.float64)
    estimate = _prepare(estimate, domain)
    rng = data_range(clean, domain)
    if clean.ndim == 3:
        return float(np.mean([_skimage_metrics().structural_similarity(c, e, data_range=rng) for c, e in zip(clean, estimate)]))
    return float(_skimage_metrics().structural_similarity(clean, estimate, data_range=rng))
