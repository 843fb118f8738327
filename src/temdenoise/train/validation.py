"""Validation during training: mean PSNR on fixed noisy copies of validation images.

The noisy copies are drawn once, at levels spread over the training range, with their own
generator, so validation consumes no training randomness (needed for exact resumption).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from torch import nn

from temdenoise.metrics import psnr
from temdenoise.models.inference import denoise_image
from temdenoise.train.data import NoiseRange


def psnr_validation(
    clean_images: Sequence[np.ndarray],
    noise: NoiseRange,
    domain: str,
    device: str = "cpu",
    seed: int = 0,
    pixel_sizes: Sequence[float] | None = None,
    tile: int | None = None,
) -> Callable[[nn.Module], float]:
    """``validate(model) -> mean PSNR`` (convention of :mod:`temdenoise.metrics` for ``domain``)."""
    rng = np.random.default_rng(seed)
    clean = [np.asarray(image, dtype=np.float32) for image in clean_images]
    if not clean:
        raise ValueError("no validation images")
    sizes = [1.0] * len(clean) if pixel_sizes is None else list(pixel_sizes)
    levels = noise.spread(len(clean))
    noisy = [noise.add(image, level, rng, size) for image, level, size in zip(clean, levels, sizes)]

    def validate(model: nn.Module) -> float:
        scores = [psnr(c, denoise_image(model, n, device, tile), domain) for c, n in zip(clean, noisy)]
        return float(np.mean(scores))

    return validate
