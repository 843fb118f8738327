"""Measured field of view: the support of the gradient of the centre output pixel.

The field of view (FoV) of a denoiser is the set of input pixels that can change the centre output
pixel. It is *measured* with random weights on a non-degenerate input (uniform noise): the
gradient of the centre output with respect to the input is non-zero exactly on the pixels the
output depends on there. We report the side of its bounding box (FoV is then ``side x side``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def gradient_support(model: nn.Module, size: int, seed: int = 0) -> torch.Tensor:
    """Boolean ``(size, size)`` map of input pixels with a non-zero gradient of the centre output."""
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    # a video model takes its frames as channels; otherwise the first convolution says how many
    in_channels = getattr(model, "frames", None) or next(p for p in model.parameters() if p.dim() == 4).shape[1]
    image = torch.rand(1, in_channels, size, size, generator=generator).to(device).requires_grad_(True)
    output = model(image)
    output[0, 0, size // 2, size // 2].backward()
    return (image.grad[0].abs().sum(dim=0) > 0).cpu()


def measure_fov(model: nn.Module, start_size: int = 64, max_size: int = 4096, seed: int = 0, tries: int = 3) -> int:
    """Side in pixels of the measured field of view of ``model`` (a copy in eval mode is probed).

    The probe image grows (doubling) until the support no longer touches its border; raises
    ValueError if that needs more than ``max_size``. A probe whose centre output ignores every input
    (all ReLUs dead there, possible in very thin random networks) is degenerate: up to ``tries``
    input draws are used before giving up.
    """
    probe = copy.deepcopy(model).eval()
    multiple = getattr(probe, "size_multiple", 1)
    size = -(-start_size // multiple) * multiple
    while size <= max_size:
        for attempt in range(tries):
            support = gradient_support(probe, size, seed + attempt)
            if support.any():
                break
        else:
            raise ValueError(f"degenerate probe: the centre output depends on no input pixel ({tries} inputs tried)")
        rows = torch.nonzero(support.any(dim=1)).flatten()
        cols = torch.nonzero(support.any(dim=0)).flatten()
        if rows[0] > 0 and cols[0] > 0 and rows[-1] < size - 1 and cols[-1] < size - 1:
            return int(max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1)
        size *= 2
    raise ValueError(f"field of view larger than the largest probe ({max_size} px)")
