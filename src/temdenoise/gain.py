"""The detector's gain and zero level, estimated from a recording itself, and whether its values
are Poisson counts once they are applied.

A detector stores ``y = o + g N (+ read noise)`` for ``N ~ Poisson`` electrons per pixel: gain ``g``
(stored units per electron), zero level ``o``. Its noise variance is linear in the mean,
``Var y = g (E y - o) + sigma_read^2``. The noise is measured where the image is nearly constant:
over non-overlapping 2 x 2 blocks, the diagonal Haar detail ``D = (a - b - c + d) / 2`` removes the
block's mean and gradients and keeps the noise variance (``Var D = Var y`` for white noise), beside
the block mean ``A``. Three estimates follow (docs/thinning.md, "Detector gain"):

* the **ratio** ``mean(D^2) / mean(A)``: the gain when the zero level is 0 (precise: relative
  standard error about ``sqrt(2 / blocks)``);
* the **slope** of ``D^2`` on ``A`` over the blocks, with its intercept (zero level): for scaled
  Poisson noise the block's own noise leaves the slope unbiased (its third cumulant compensates
  the noise in ``A``), which read noise, not being Poisson, does not: it lowers the slope;
* the **quantum**: the spacing of the stored values when they lie on a lattice (counts times an
  integer or exact gain).

The values are Poisson counts after ``(y - o) / g`` when the gain is the values' quantum (checked
against the ratio with zero level 0, else against the slope, within their precision), the zero level
lies on the lattice and is determined to a fraction of a count, and the noise is white:
neighbouring blocks' details are uncorrelated (a detector MTF or any smoothing correlates them).
Otherwise :attr:`GainEstimate.reason` says why not, and binomial thinning is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_BLOCKS = 256
"""Fewest 2 x 2 blocks (a 32 x 32 image) the gain is estimated from."""
MAX_RELATIVE_ERROR = 0.15
"""Largest relative standard error of the slope for the gain to count as determined."""
AGREEMENT = 0.10
"""Relative tolerance (or three standard errors, if larger) for the quantum to match an estimate."""
MAX_OFFSET_ERROR = 0.2
"""Largest standard error of the zero level, in counts, for it to be placed on the lattice."""
MAX_CORRELATION = 0.05
"""Largest correlation of neighbouring blocks' details (or four standard errors) for white noise."""


@dataclass(frozen=True)
class GainEstimate:
    """What :func:`estimate_gain` found; ``(values - offset) / gain`` are the counts."""

    gain: float  # stored units per electron
    gain_error: float  # relative standard error of the estimate it came from (0 when the quantum)
    offset: float  # zero level: the stored value of no electron
    quantum: float | None  # spacing of the stored values on their lattice, None when they are on none
    correlation: float  # of neighbouring blocks' noise details (0 for white noise)
    blocks: int
    method: str  # quantum | slope
    poisson_like: bool
    reason: str = ""  # why the values are not Poisson counts after the gain ("" when they are)

    def counts(self, values: np.ndarray) -> np.ndarray:
        """``(values - offset) / gain``."""
        return (np.asarray(values, dtype=np.float64) - self.offset) / self.gain


class GainError(ValueError):
    """The gain cannot be estimated from the recording (the message says why)."""


def noise_blocks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal Haar details ``D`` and means ``A`` of the non-overlapping 2 x 2 blocks of an image
    ``(H, W)`` or of every frame of a movie ``(T, H, W)``, each ``(T, H // 2, W // 2)``."""
    data = np.asarray(values, dtype=np.float64)
    data = data[None] if data.ndim == 2 else data
    data = data[:, : data.shape[1] // 2 * 2, : data.shape[2] // 2 * 2]
    a, b, c, d = data[:, 0::2, 0::2], data[:, 0::2, 1::2], data[:, 1::2, 0::2], data[:, 1::2, 1::2]
    return (a - b - c + d) / 2, (a + b + c + d) / 4


def value_quantum(values: np.ndarray) -> float | None:
    """The spacing ``q`` of a lattice ``min + q k`` holding every value (the smallest gap between
    distinct values, checked), None when there is no such lattice (or a single value)."""
    distinct = np.unique(np.asarray(values, dtype=np.float64))
    if distinct.size < 2:
        return None
    quantum = float(np.diff(distinct).min())
    steps = (distinct - distinct[0]) / quantum
    return quantum if np.abs(steps - np.round(steps)).max() < 1e-3 else None


def _neighbour_correlation(detail: np.ndarray) -> float:
    """Mean correlation of horizontally and vertically neighbouring blocks' details."""
    pairs = [(detail[:, :, :-1], detail[:, :, 1:]), (detail[:, :-1, :], detail[:, 1:, :])]
    return float(np.mean([np.corrcoef(u.ravel(), v.ravel())[0, 1] for u, v in pairs]))


def _agrees(estimate: float, error: float, quantum: float) -> bool:
    """``estimate`` (relative standard error ``error``) is the quantum within tolerance."""
    return abs(estimate / quantum - 1) <= max(AGREEMENT, 3 * error)


def estimate_gain(values: np.ndarray) -> GainEstimate:
    """Gain and zero level of a recording's stored values, and whether they are Poisson counts
    after them (see the module doc). Raises :class:`GainError` when the image is too small or the
    mean-variance slope is not determined to :data:`MAX_RELATIVE_ERROR`."""
    detail, mean = noise_blocks(values)
    power, level = (detail**2).ravel(), mean.ravel()
    blocks = power.size
    if blocks < MIN_BLOCKS:
        raise GainError(f"{blocks} blocks of 2 x 2 pixels, fewer than {MIN_BLOCKS}")
    correlation = _neighbour_correlation(detail)
    white = bool(abs(correlation) <= max(MAX_CORRELATION, 4 / np.sqrt(blocks)))
    quantum = value_quantum(values)
    not_white = (f"the noise of neighbouring pixels is correlated (r = {correlation:+.2f}: a detector MTF or "
                 "smoothing), so thinned halves would not be independent")

    ratio = power.mean() / level.mean() if level.mean() > 0 else np.nan
    ratio_error = power.std() / power.mean() / np.sqrt(blocks)
    minimum = float(np.min(values))
    if quantum is not None and np.isfinite(ratio) and _agrees(ratio, ratio_error, quantum) \
            and abs(minimum / quantum - round(minimum / quantum)) < 1e-3:
        return GainEstimate(quantum, 0.0, 0.0, quantum, correlation, blocks, "quantum", white,
                            "" if white else not_white)

    slope, intercept = np.polyfit(level, power, 1)
    residual = power - (slope * level + intercept)
    slope_error = residual.std() / (level.std() * np.sqrt(blocks)) / abs(slope) if slope else np.inf
    if not slope > 0 or slope_error > MAX_RELATIVE_ERROR:
        raise GainError(f"the variance-mean slope is not determined ({slope:.3g}, relative error {slope_error:.0%}): "
                        "too little signal range or too few pixels")
    offset = -intercept / slope
    if quantum is None or not _agrees(slope, slope_error, quantum):
        why = not_white if not white else (
            f"the values are not counts times the gain {slope:.3g} (their spacing is "
            f"{'none' if quantum is None else f'{quantum:.3g}'}): read noise or gain-normalised data")
        return GainEstimate(float(slope), float(slope_error), float(offset), quantum, correlation, blocks, "slope",
                            False, why)
    # the gain is the quantum; the zero level is the lattice point nearest its ratio estimate
    zero = level.mean() - power.mean() / quantum
    zero_error = np.sqrt(power.var() / blocks) / quantum**2
    lattice_zero = minimum - quantum * round((minimum - zero) / quantum)
    if zero_error > MAX_OFFSET_ERROR:
        why = f"the zero level is not determined to a count ({zero:.4g} +- {zero_error:.2g} counts)"
    elif lattice_zero > minimum:
        why = f"the zero level {lattice_zero:.4g} lies above the smallest value {minimum:.4g}"
    else:
        why = "" if white else not_white
    return GainEstimate(quantum, 0.0, float(lattice_zero if not why else zero), quantum, correlation,
                        blocks, "quantum", not why, why)
