"""Synthetic piecewise-constant images: the training set of the distribution-shift experiment.

GainTuning (Mohan et al., NeurIPS 2021) adapts a denoiser trained on piecewise-constant images
(overlapping rectangles of random grey levels) to natural test images. The images are in [0, 1]
(domain ``natural``) and fully determined by the seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def piecewise_constant(size: int, rng: np.random.Generator, rectangles: int = 6) -> np.ndarray:
    """One ``size`` x ``size`` image: a random background and ``rectangles`` random rectangles."""
    image = np.full((size, size), rng.uniform(0.2, 0.8), dtype=np.float32)
    for _ in range(rectangles):
        top, bottom = np.sort(rng.integers(0, size, 2))
        left, right = np.sort(rng.integers(0, size, 2))
        image[top : bottom + 1, left : right + 1] = rng.uniform(0.0, 1.0)
    return image


def piecewise_split(count: int, size: int, rectangles: int, seed: int) -> tuple[list[np.ndarray], pd.DataFrame]:
    """``count`` images and their metadata (one row per image, its seed; pixel size 1)."""
    images = [piecewise_constant(size, np.random.default_rng([seed, i]), rectangles) for i in range(count)]
    metadata = pd.DataFrame({"item": range(count), "seed": [f"{seed}-{i}" for i in range(count)], "pixel_size": 1.0})
    return images, metadata
