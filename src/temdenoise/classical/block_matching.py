"""BM3D (Dabov, Foi, Katkovnik & Egiazarian 2007) for images and BM4D (Maggioni, Katkovnik,
Egiazarian & Foi 2013) for videos as (T, H, W) volumes, through Tampere University's PyPI packages
``bm3d`` / ``bm4d`` (Makinen, Azzari & Foi 2020).

The packages are free for non-commercial use only, so they are the optional extra ``bm3d`` of
this package (``pip install -e ".[bm3d]"``); they are imported when a frame is denoised, and a
config listing either family without them fails before any job runs
(:func:`temdenoise.families.missing_extra`). Both get the known noise sigma; Poisson data go
through the Anscombe route with sigma 1 (:func:`temdenoise.classical.variance_stabilised`).
"""

from __future__ import annotations

import numpy as np

from temdenoise.classical import map_frames, variance_stabilised
from temdenoise.noise import NoiseCondition
from temdenoise.registry import register


def bm3d_gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D (both stages: hard thresholding, then Wiener) of a 2-D image with white noise ``sigma``."""
    import bm3d

    return np.asarray(bm3d.bm3d(image, sigma_psd=sigma, stage_arg=bm3d.BM3DStages.ALL_STAGES))


def bm4d_gaussian(volume: np.ndarray, sigma: float) -> np.ndarray:
    """BM4D (both stages) of a volume (a video's frames stacked) with white noise ``sigma``."""
    import bm4d

    return np.asarray(bm4d.bm4d(volume, sigma_psd=sigma, stage_arg=bm4d.BM4DStages.ALL_STAGES))


@register("bm3d")
class BM3D:
    """BM3D frame by frame with the known noise level."""

    kind = "classical"
    fits = False

    def denoise(
        self, image: np.ndarray, state: dict[str, np.ndarray], condition: NoiseCondition, pixel_size: float
    ) -> np.ndarray:
        return map_frames(image, lambda frame: variance_stabilised(frame, condition, pixel_size, bm3d_gaussian))


@register("bm4d")
class BM4D:
    """BM4D on a whole video (block matching across frames too); videos only (a UDVD-table row)."""

    kind = "classical"
    fits = False

    def denoise(
        self, image: np.ndarray, state: dict[str, np.ndarray], condition: NoiseCondition, pixel_size: float
    ) -> np.ndarray:
        if image.ndim != 3:
            raise ValueError(f"BM4D denoises (T, H, W) videos, got an item of shape {image.shape}; use bm3d for images")
        return variance_stabilised(image, condition, pixel_size, bm4d_gaussian)
