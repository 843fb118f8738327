"""Apply a trained network to images of any size: whole image, or overlapping tiles blended.

Sizes not divisible by the network's ``size_multiple`` (``2**scales`` for a UNet) are padded by
reflection and cropped back. Tiling bounds the memory for large images: each tile is denoised
alone and the tiles are blended so that the result equals whole-image inference (up to float
rounding) whenever the tiles overlap by at least the network's field of view (FoV):

* tile starts are multiples of ``size_multiple``, so every tile sees the pooling grid of the whole
  image (a UNet's max-pooling windows, and so its output, depend on where the grid starts);
* the last tile of a row or column ends on the image border (it may be up to ``size_multiple - 1``
  pixels longer than ``tile``), so it is padded exactly as the whole image is;
* only edges cut inside the image are tapered: a tile's weight is 0 within half a FoV of such an
  edge (those pixels miss part of their FoV) and ramps linearly up to 1 across the rest of the
  overlap; an edge on the image border keeps weight 1, since whole-image inference sees that
  very border there.

With an overlap below the FoV no tile sees the whole FoV of the pixels midway between two tile
starts; they are then blended from truncated FoVs (a warning says by how much), the cause of the
seed's 4 dB loss of a large UNet tiled with too little overlap.
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from temdenoise.models.fov import measure_fov


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


def tile_spans(length: int, tile: int, step: int, multiple: int = 1) -> list[tuple[int, int]]:
    """``(start, end)`` of tiles covering ``[0, length)``: starts are multiples of ``multiple``
    ``step`` apart (``step`` itself a multiple of it), every tile is ``tile`` long except the
    last, which ends at ``length`` and starts at the last multiple of ``multiple`` that leaves it
    at least ``tile`` long (so it overlaps its neighbour by at least ``tile - step``)."""
    if step <= 0 or step % multiple:
        raise ValueError(f"tile step {step} must be a positive multiple of {multiple}")
    last = max(length - tile, 0) // multiple * multiple
    return [(start, start + tile) for start in range(0, last, step)] + [(last, length)]


def _edge_taper(length: int, margin: float, width: float) -> torch.Tensor:
    """Weights of the pixels of a tile side of ``length`` by distance from one tapered edge: 0 up to
    ``margin`` (the pixels whose FoV the edge cuts), rising linearly to 1 over the next ``width``."""
    distance = torch.arange(length, dtype=torch.float32) + 0.5
    return torch.clamp((distance - margin) / width, 0.0, 1.0)


def _taper(length: int, overlap: int, taper_head: bool, taper_tail: bool, fov: int | None) -> torch.Tensor:
    """1-D blending weights of a tile side of ``length`` whose head and/or tail edge is cut inside
    the image. Without a known ``fov`` the zero zone is the outer quarter of the overlap. The
    taper ends at ``overlap - margin``, so two tiles overlapping by ``overlap`` cross-fade, and
    at least one of them has a positive weight at every pixel (``margin < overlap / 2``)."""
    margin = overlap / 4 if fov is None else min(fov, overlap - 1) / 2
    width = max(overlap - 2 * margin, 1.0)
    weight = torch.ones(length)
    if taper_head:
        weight = weight * _edge_taper(length, margin, width)
    if taper_tail:
        weight = weight * _edge_taper(length, margin, width).flip(0)
    return weight


def blend_tiles(
    apply: Callable[[torch.Tensor], torch.Tensor],
    source: torch.Tensor,
    tile: int,
    overlap: int,
    multiple: int = 1,
    fov: int | None = None,
) -> torch.Tensor:
    """``apply(source)`` computed tile by tile on a ``(B, C, H, W)`` tensor and blended (module docstring).

    ``apply`` maps a ``(B, C, h, w)`` crop to a ``(B, C_out, h, w)`` output; the blend is
    accumulated on the device of its outputs. ``tile`` is rounded down and the step between
    tiles (``tile - overlap``) rounded down to multiples of ``multiple``, so the overlap may grow.
    ``fov`` (the measured field of view) sets the zero zone at cut edges; an ``overlap`` below
    it warns, since the result then differs from whole-image inference near the seams.
    """
    height, width = source.shape[-2:]
    tile = tile // multiple * multiple
    if overlap >= tile:
        raise ValueError(f"tile overlap ({overlap}) must be smaller than the tile ({tile}, a multiple of {multiple})")
    if fov is not None and overlap < fov:
        warnings.warn(
            f"tile overlap {overlap} px is below the field of view {fov} px: pixels within "
            f"{(fov - overlap) / 2:.0f} px of the middle of a tile overlap miss part of their field of view, "
            "so tiled inference differs from whole-image inference there",
            stacklevel=2,
        )
    step = max((tile - overlap) // multiple * multiple, multiple)
    total = weights = None
    rows, cols = tile_spans(height, tile, step, multiple), tile_spans(width, tile, step, multiple)
    for top, bottom in rows:
        row_weight = _taper(bottom - top, overlap, top > 0, bottom < height, fov)
        for left, right in cols:
            out = apply(source[..., top:bottom, left:right])
            if total is None:
                total = torch.zeros(*out.shape[:2], height, width, device=out.device)
                weights = torch.zeros(height, width, device=out.device)
            col_weight = _taper(right - left, overlap, left > 0, right < width, fov)
            weight = (row_weight[:, None] * col_weight[None, :]).to(out.device)
            total[..., top:bottom, left:right] += weight * out
            weights[top:bottom, left:right] += weight
    return total / weights


def field_of_view(model: nn.Module) -> int:
    """The measured FoV of ``model`` (:func:`~temdenoise.models.fov.measure_fov`), cached on the
    model as ``measured_fov`` since it depends on the architecture, not on the image."""
    if getattr(model, "measured_fov", None) is None:
        # the probe differentiates the model: allowed even when called under no_grad / inference mode
        with torch.inference_mode(False), torch.enable_grad():
            model.measured_fov = measure_fov(model)
    return model.measured_fov


def denoise_image(
    model: nn.Module,
    image: np.ndarray,
    device: str = "cpu",
    tile: int | None = None,
    overlap: int = 64,
    fov: int | None = None,
) -> np.ndarray:
    """Denoise one ``(H, W)`` image (or a ``(T, H, W)`` video frame by frame) with ``model`` in eval mode.

    ``tile=None`` denoises the whole image at once; otherwise tiles of side ``tile`` overlapping by
    ``overlap`` pixels are denoised one by one and blended (:func:`blend_tiles`); ``fov`` defaults
    to the model's measured field of view.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3:
        return np.stack([denoise_image(model, frame, device, tile, overlap, fov) for frame in image])
    if image.ndim != 2:
        raise ValueError(f"expected an (H, W) image or (T, H, W) video, got shape {image.shape}")
    model.eval()
    source = torch.from_numpy(image)[None, None]
    height, width = image.shape
    if tile is None or (height <= tile and width <= tile):
        return _apply(model, source.to(device))[0, 0].float().cpu().numpy()
    blended = blend_tiles(
        lambda patch: _apply(model, patch.to(device)).float().cpu(),
        source,
        tile,
        overlap,
        getattr(model, "size_multiple", 1),
        field_of_view(model) if fov is None else fov,
    )
    return blended[0, 0].numpy()


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
