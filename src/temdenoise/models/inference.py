"""Apply a trained network to images of any size: whole image, or overlapping tiles blended.

Sizes not divisible by the network's ``size_multiple`` (``2**scales`` for a UNet) are padded by
reflection and cropped back. Tiling bounds the memory for large images: each tile of side ``tile``
is denoised alone and tiles overlapping by ``overlap`` pixels are blended with weights that are
negligible near a tile border and ramp up linearly towards its inside, so the pixels a tile sees
least context for count least. Tiles
should overlap by at least the field of view for the result to match whole-image inference (the
seed's large UNet lost 4 dB with too little overlap).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm


def pad_to_multiple(image: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad the last two axes up to multiples of ``multiple``; returns the padded image and original size."""
    height, width = image.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        image = F.pad(image, (0, pad_w, 0, pad_h), mode=mode)
    return image, (height, width)


@torch.inference_mode()
def _apply(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    padded, (height, width) = pad_to_multiple(image, getattr(model, "size_multiple", 1))
    return model(padded)[..., :height, :width]


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _ramp(length: int, overlap: int) -> torch.Tensor:
    """1-D blending weights: ~0 on the outer quarter of the overlap (least context), rising linearly to 1
    across its middle half, so that two overlapping tiles cross-fade around the overlap's centre."""
    position = torch.arange(length, dtype=torch.float32)
    distance = torch.minimum(position + 0.5, length - position - 0.5)
    return torch.clamp((distance - overlap / 4) / max(overlap / 2, 1), 1e-3, 1.0)


def denoise_image(
    model: nn.Module, image: np.ndarray, device: str = "cpu", tile: int | None = None, overlap: int = 64
) -> np.ndarray:
    """Denoise one ``(H, W)`` image (or a ``(T, H, W)`` video frame by frame) with ``model`` in eval mode.

    ``tile=None`` denoises the whole image at once; otherwise tiles of side ``tile`` overlapping by
    ``overlap`` pixels are denoised one by one and blended.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3:
        return np.stack([denoise_image(model, frame, device, tile, overlap) for frame in image])
    if image.ndim != 2:
        raise ValueError(f"expected an (H, W) image or (T, H, W) video, got shape {image.shape}")
    model.eval()
    source = torch.from_numpy(image)[None, None]
    height, width = image.shape
    if tile is None or (height <= tile and width <= tile):
        return _apply(model, source.to(device))[0, 0].float().cpu().numpy()
    if overlap >= tile:
        raise ValueError(f"tile overlap ({overlap}) must be smaller than the tile ({tile})")
    total = torch.zeros(height, width)
    weights = torch.zeros(height, width)
    step = tile - overlap
    for top in _starts(height, tile, step):
        for left in _starts(width, tile, step):
            patch = source[..., top : top + tile, left : left + tile]
            out = _apply(model, patch.to(device))[0, 0].float().cpu()
            weight = _ramp(out.shape[0], overlap)[:, None] * _ramp(out.shape[1], overlap)[None, :]
            total[top : top + out.shape[0], left : left + out.shape[1]] += weight * out
            weights[top : top + out.shape[0], left : left + out.shape[1]] += weight
    return (total / weights).numpy()


def denoise_stack(
    model: nn.Module,
    images: Sequence[np.ndarray],
    device: str = "cpu",
    tile: int | None = None,
    overlap: int = 64,
    progress: bool = True,
) -> list[np.ndarray]:
    """Denoise every image (or video) of a stack; see :func:`denoise_image`."""
    model = model.to(device).eval()
    return [
        denoise_image(model, image, device, tile, overlap)
        for image in tqdm(images, desc="denoise", disable=not progress)
    ]
