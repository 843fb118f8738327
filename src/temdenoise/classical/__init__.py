"""Classical denoisers: the learned Wiener filter and wavelet thresholding.

Both work on single frames; these helpers let them take videos ``(T, H, W)`` as well.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def frames_of(stack: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The images of a stack, videos split into their frames."""
    return [frame for item in stack for frame in (item if item.ndim == 3 else [item])]


def map_frames(image: np.ndarray, function: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``function`` to an image, or to every frame of a video."""
    if image.ndim == 3:
        return np.stack([function(frame) for frame in image])
    return function(image)
