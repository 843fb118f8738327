"""Non-local means (Buades, Coll & Morel 2005) and total-variation denoising (Chambolle 2004),
each self-calibrated on the noisy image it denoises (Batson & Royer 2019, Noise2Self).

The strength of either denoiser is chosen per image by J-invariant calibration
(:func:`skimage.restoration.calibrate_denoiser`): the denoiser is run on the image with a grid of
pixels replaced by their neighbours' mean, and the loss on exactly those pixels, which their own
noisy values did not influence, estimates the error to the clean image up to a constant. Nothing
clean is read, so both are self-supervised baselines. The candidate strengths are multiples of
the known noise sigma; Poisson data go through the Anscombe route with sigma 1
(:func:`temdenoise.classical.variance_stabilised`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Sequence

import numpy as np
from skimage.restoration import calibrate_denoiser, denoise_nl_means, denoise_tv_chambolle

from temdenoise.classical import map_frames, variance_stabilised
from temdenoise.noise import NoiseCondition
from temdenoise.registry import register


def calibrated(
    image: np.ndarray, denoiser: Callable[..., np.ndarray], candidates: dict[str, Sequence[float]]
) -> np.ndarray:
    """``image`` denoised by ``denoiser`` with the keyword values among ``candidates`` (one list
    per keyword, all combinations) that minimise the J-invariant loss on ``image`` itself.

    The chosen values are applied to the plain denoiser, not to the J-invariant version that
    ``calibrate_denoiser`` returns (which denoises each pixel from its masked neighbourhood, a
    weaker estimate); the loss only ranks the candidates.
    """
    grid = {key: list(values) for key, values in candidates.items()}
    _, (tested, losses) = calibrate_denoiser(image, denoiser, denoise_parameters=grid, extra_output=True)
    return denoiser(image, **tested[int(np.argmin(losses))])


class SelfCalibrated(ABC):
    """A Gaussian denoiser whose strength (multiples ``factors`` of sigma) is calibrated per image."""

    kind = "classical"
    fits = False

    def __init__(self, factors: Sequence[float]) -> None:
        self.factors = [float(f) for f in factors]

    @abstractmethod
    def candidates(self, sigma: float) -> dict[str, list[float]]:
        """The keyword grid tried on an image of noise level ``sigma``."""

    @abstractmethod
    def denoiser(self, image: np.ndarray, **strength: float) -> np.ndarray:
        """The denoiser at one strength."""

    def denoise(
        self, image: np.ndarray, state: dict[str, np.ndarray], condition: NoiseCondition, pixel_size: float
    ) -> np.ndarray:
        def gaussian(frame: np.ndarray, sigma: float) -> np.ndarray:
            return calibrated(frame, self.denoiser, self.candidates(sigma))

        return map_frames(image, lambda frame: variance_stabilised(frame, condition, pixel_size, gaussian))


@register("nlm")
class CalibratedNonLocalMeans(SelfCalibrated):
    """Non-local means (``patch_size``, ``patch_distance``) with its filtering strength ``h``
    (``factors`` x sigma) calibrated per image; skimage's fast mode with the known sigma."""

    def __init__(
        self, patch_size: int = 5, patch_distance: int = 6, factors: Sequence[float] = (0.4, 0.6, 0.8, 1.0, 1.2)
    ) -> None:
        super().__init__(factors)
        self.patch_size = patch_size
        self.patch_distance = patch_distance

    def candidates(self, sigma: float) -> dict[str, list[float]]:
        return {"h": [f * sigma for f in self.factors], "sigma": [sigma]}

    def denoiser(self, image: np.ndarray, **strength: float) -> np.ndarray:
        return denoise_nl_means(
            image, patch_size=self.patch_size, patch_distance=self.patch_distance, fast_mode=True, **strength
        )


@register("tv")
class CalibratedTotalVariation(SelfCalibrated):
    """Chambolle total variation with its ``weight`` (``factors`` x sigma) calibrated per image."""

    def __init__(self, factors: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0)) -> None:
        super().__init__(factors)

    def candidates(self, sigma: float) -> dict[str, list[float]]:
        return {"weight": [f * sigma for f in self.factors]}

    def denoiser(self, image: np.ndarray, **strength: float) -> np.ndarray:
        return denoise_tv_chambolle(image, **strength)
