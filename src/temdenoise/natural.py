"""Natural grayscale images for the natural-image track: scikit-image samples or a folder.

The default config needs nothing outside the package, so its natural dataset is built from
scikit-image's bundled sample images (held-out ones for validation and test). Users and CI point
``source: folder`` at any folder (e.g. BSD400 for training and Set12 for testing).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from skimage import color, data
from skimage.util import img_as_float32

from temdenoise.io import read_image_folder

SKIMAGE_SPLITS = {
    "train": ("astronaut", "brick", "chelsea", "coffee", "grass", "gravel", "page", "rocket", "cell"),
    "validation": ("clock",),
    "test": ("camera", "coins", "moon", "text"),
}


def skimage_image(name: str) -> np.ndarray:
    """A bundled scikit-image sample as grayscale float32 in [0, 1]."""
    image = getattr(data, name)()
    if image.ndim == 3:
        image = color.rgb2gray(image[..., :3])
    return img_as_float32(image)


def natural_split(entry: dict[str, Any], split: str) -> tuple[list[np.ndarray], pd.DataFrame]:
    """Images and metadata of one split of a ``natural``-domain dataset config entry."""
    if entry["source"] == "skimage":
        names = list(SKIMAGE_SPLITS[split])
        images = [skimage_image(name) for name in names]
    elif entry["source"] == "folder":
        held_out = entry.get("validation_count", 2)
        if split == "test":
            images = read_image_folder(entry["test_folder"], limit=entry.get("max_images"))
            names = [f"test-{i:04d}" for i in range(len(images))]
        else:
            pool = read_image_folder(entry["train_folder"], limit=entry.get("max_images"))
            if len(pool) <= held_out:
                raise ValueError(
                    f"train_folder {entry['train_folder']!r} has {len(pool)} images, "
                    f"not more than validation_count={held_out}"
                )
            images = pool[-held_out:] if split == "validation" else pool[:-held_out]
            names = [f"{split}-{i:04d}" for i in range(len(images))]
    else:
        raise ValueError(f"source {entry['source']!r} is not an image source (skimage or folder)")
    metadata = pd.DataFrame(
        {"item": range(len(images)), "name": names, "height": [i.shape[0] for i in images],
         "width": [i.shape[1] for i in images], "pixel_size": 1.0, "split": split}
    )
    return images, metadata
