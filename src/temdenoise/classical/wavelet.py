"""Wavelet thresholding (BayesShrink; Chang, Yu & Vetterli 2000) via scikit-image.

For Poisson (dose-limited) data the counts are first mapped to unit-variance Gaussian noise by the
generalised Anscombe transform, denoised with a known sigma of 1, and mapped back with the
closed-form unbiased inverse (Makitalo & Foi 2011):
:func:`temdenoise.classical.variance_stabilised`.
"""

from __future__ import annotations

import numpy as np
from skimage.restoration import denoise_wavelet

from temdenoise.classical import map_frames, variance_stabilised
from temdenoise.noise import NoiseCondition
from temdenoise.registry import register


@register("wavelet")
class WaveletThresholding:
    """BayesShrink soft thresholding of a ``levels``-level ``wavelet`` decomposition."""

    kind = "classical"
    fits = False  # BayesShrink estimates its thresholds from each test image: nothing to learn

    def __init__(self, wavelet: str = "db4", levels: int | None = None, mode: str = "soft") -> None:
        self.wavelet = wavelet
        self.levels = levels
        self.mode = mode

    def _shrink(self, image: np.ndarray, sigma: float | None) -> np.ndarray:
        return denoise_wavelet(
            image,
            sigma=sigma,
            wavelet=self.wavelet,
            mode=self.mode,
            wavelet_levels=self.levels,
            method="BayesShrink",
            rescale_sigma=True,
        )

    def denoise(
        self, image: np.ndarray, state: dict[str, np.ndarray], condition: NoiseCondition, pixel_size: float
    ) -> np.ndarray:
        return map_frames(image, lambda frame: variance_stabilised(frame, condition, pixel_size, self._shrink))
