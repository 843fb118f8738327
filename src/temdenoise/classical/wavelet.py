"""Wavelet thresholding (BayesShrink; Chang, Yu & Vetterli 2000) via scikit-image.

For Poisson (dose-limited) data the counts are first mapped to unit-variance Gaussian noise by the
generalised Anscombe transform, denoised with a known sigma of 1, and mapped back with the
closed-form unbiased inverse (Makitalo & Foi).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from skimage.restoration import denoise_wavelet

from temdenoise.classical import map_frames
from temdenoise.noise import NoiseCondition, anscombe, inverse_anscombe
from temdenoise.registry import register


@register("wavelet")
class WaveletThresholding:
    """BayesShrink soft thresholding of a ``levels``-level ``wavelet`` decomposition."""

    kind = "classical"

    def __init__(self, wavelet: str = "db4", levels: int | None = None, mode: str = "soft") -> None:
        self.wavelet = wavelet
        self.levels = levels
        self.mode = mode

    def fit(self, noisy: Sequence[np.ndarray], clean: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        # BayesShrink estimates its thresholds from each test image: nothing to learn.
        return {}

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
        def denoise_frame(frame: np.ndarray) -> np.ndarray:
            frame = np.asarray(frame, dtype=np.float64)
            if condition.kind == "poisson":
                scale = condition.level * pixel_size**2
                stabilised = anscombe(frame * scale)
                return (inverse_anscombe(self._shrink(stabilised, sigma=1.0)) / scale).astype(np.float32)
            return self._shrink(frame, sigma=condition.level / 255.0).astype(np.float32)

        return map_frames(image, denoise_frame)
