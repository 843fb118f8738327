"""Classical denoisers: the learned Wiener filter, wavelet thresholding, BM3D / BM4D and the
self-calibrated non-local means and total variation.

They work on single frames; these helpers let them take videos ``(T, H, W)`` as well, and give the
Gaussian denoisers their Poisson route (:func:`variance_stabilised`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from temdenoise.noise import NoiseCondition, anscombe, inverse_anscombe


def frames_of(stack: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The images of a stack, videos split into their frames."""
    return [frame for item in stack for frame in (item if item.ndim == 3 else [item])]


def map_frames(image: np.ndarray, function: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``function`` to an image, or to every frame of a video."""
    if image.ndim == 3:
        return np.stack([function(frame) for frame in image])
    return function(image)


def variance_stabilised(
    frame: np.ndarray,
    condition: NoiseCondition,
    pixel_size: float,
    gaussian_denoiser: Callable[[np.ndarray, float], np.ndarray],
) -> np.ndarray:
    """Apply a Gaussian denoiser ``gaussian_denoiser(image, sigma)`` to one frame of ``condition``.

    Gaussian noise: the frame with its known sigma (``level / 255``). Poisson noise: the counts
    (``frame * dose * pixel area``) are mapped to unit-variance Gaussian noise by the Anscombe
    transform, denoised with sigma 1 and mapped back by the exact unbiased inverse (Makitalo & Foi
    2011, closed-form approximation), which is unbiased down to about one count per pixel where the
    algebraic inverse ``(z / 2)^2 - 3/8`` is not.
    """
    frame = np.asarray(frame, dtype=np.float64)
    if condition.kind == "poisson":
        scale = condition.level * pixel_size**2
        stabilised = anscombe(frame * scale)
        return (inverse_anscombe(gaussian_denoiser(stabilised, 1.0)) / scale).astype(np.float32)
    return np.asarray(gaussian_denoiser(frame, condition.level / 255.0), dtype=np.float32)
