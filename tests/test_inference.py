"""Tiled inference equals whole-image inference when tiles overlap by the field of view (issue 20, section 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_models import randomise_norms

from temdenoise.models.dncnn import DnCNN
from temdenoise.models.inference import _apply, blend_tiles, denoise_image, field_of_view, tile_spans
from temdenoise.models.udvd import UDVD, frame_windows
from temdenoise.models.unet import UNet

UDVD_POOLING_MULTIPLE = 4  # the blind UNet core pools twice


def input_sensitive(model: torch.nn.Module) -> torch.nn.Module:
    """Random norms and He-initialised convolutions: with PyTorch's default init the signal shrinks
    about 1.7x per convolution, so a random deep UNet's output hardly depends on its input (its std
    is then ~1% of its level) and neither seams nor their absence would show."""
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return randomise_norms(model)


def shift_equivariant(model: torch.nn.Module) -> torch.nn.Module:
    """A UNet with the authors' bilinear ``align_corners=True`` upsampling is not shift-equivariant:
    a tile's upsampling grid depends on the tile's size, so no tiling equals whole-image inference
    (measured: max |tiled - whole| about half the output std; docs/training.md). The tiling itself
    is tested on the same UNet with ``align_corners=False``, which is equivariant on the pooling grid."""
    if isinstance(model, UNet):
        model.up = torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    return model


def structured_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Vacuum-like level 1 with smooth structure, an edge and noise: every network layer sees non-trivial input."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:height, :width]
    image = 1 + 0.3 * np.sin(rows / 7.0) * np.cos(cols / 11.0) - 0.4 * (rows + 0.6 * cols > height)
    return (image + 0.2 * rng.standard_normal((height, width))).astype(np.float32)


def tiling_for(fov: int, multiple: int) -> tuple[int, int, int]:
    """(tile, overlap, image side) with the overlap equal to the FoV, at least three tiles per side, and an
    image side divisible neither by the tile nor by the pooling multiple."""
    step = -(-fov // (2 * multiple)) * multiple
    tile = fov + step
    side = tile + 2 * step + 3
    assert side % tile and (multiple == 1 or side % multiple) and len(tile_spans(side, tile, step, multiple)) >= 3
    return tile, fov, side


def test_tile_spans_start_on_the_grid_cover_the_image_and_overlap():
    for length, tile, step, multiple in [(180, 128, 32, 8), (1000, 256, 160, 16), (97, 40, 20, 4), (50, 64, 32, 8)]:
        spans = tile_spans(length, tile, step, multiple)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(start % multiple == 0 for start, _ in spans)
        assert all(end - start == tile for start, end in spans[:-1])
        assert tile <= spans[-1][1] - spans[-1][0] < tile + multiple or len(spans) == 1
        assert all(end - next_start >= tile - step for (_, end), (next_start, _) in zip(spans, spans[1:]))


TILED_ARCHITECTURES = {
    "dncnn": lambda: DnCNN(depth=7, channels=8),
    "unet2": lambda: UNet(scales=2, base_channels=8),
    "unet3": lambda: UNet(scales=3, base_channels=8),
    "unet4": lambda: UNet(scales=4, base_channels=8),
}


@pytest.mark.parametrize("architecture", list(TILED_ARCHITECTURES))
def test_tiled_equals_whole_image_inference_when_the_overlap_covers_the_fov(architecture: str):
    # Seeded here, not at collection: the default init and the norms drawn for the FoV probe would
    # otherwise depend on what earlier tests drew (a thin random UNet's ReLUs can then all die at the
    # centre pixel, and the probe is degenerate).
    torch.manual_seed(0)
    model = TILED_ARCHITECTURES[architecture]()
    # the FoV of the architecture, measured at the default init (a He-initialised random net's ReLUs
    # gate its gradient support, which then under-measures the FoV on some runs)
    fov = field_of_view(randomise_norms(model).eval())
    model = shift_equivariant(input_sensitive(model)).eval()
    multiple = getattr(model, "size_multiple", 1)
    tile, overlap, side = tiling_for(fov, multiple)
    image = structured_image(side, side - 6)  # non-square, and neither side divisible by tile or multiple
    whole = denoise_image(model, image)
    tiled = denoise_image(model, image, tile=tile, overlap=overlap)
    # float32 rounding alone reaches ~1e-4 of the std in the deepest random net: the exactness of the
    # blend is checked in float64, the float32 path against a rounding-level bound
    assert np.abs(tiled - whole).max() <= 1e-3 * whole.std()
    source = torch.from_numpy(image)[None, None].double()
    model = model.double()
    whole64 = _apply(model, source)
    tiled64 = blend_tiles(lambda patch: _apply(model, patch), source, tile, overlap, multiple, fov)
    assert (tiled64 - whole64).abs().max().item() <= 1e-4 * whole64.std().item()


@pytest.mark.parametrize("frames", [1, 3])
def test_tiled_udvd_equals_whole_frames_when_the_overlap_covers_the_fov(frames: int):
    torch.manual_seed(0)
    model = UDVD(frames=frames, channels=4, window_channels=4, offset=1.0).eval()
    fov = field_of_view(model)
    tile, overlap, side = tiling_for(fov, UDVD_POOLING_MULTIPLE)
    # square frames: UDVD pads a frame to a square, which tiles of a square frame reproduce at the border
    video = np.stack([structured_image(side, side, seed) for seed in range(frames)])
    windows = torch.from_numpy(frame_windows(video, frames, [frames // 2]))
    with torch.no_grad():
        whole = model(windows)
        tiled = blend_tiles(model, windows, tile, overlap, UDVD_POOLING_MULTIPLE, fov)
    assert np.abs((tiled - whole).numpy()).max() <= 1e-4 * whole.std().item()


def test_an_overlap_below_the_fov_warns_and_shows_seams():
    model = shift_equivariant(input_sensitive(UNet(scales=2, base_channels=8))).eval()  # FoV 52 px
    image = structured_image(130, 118)
    whole = denoise_image(model, image)
    with pytest.warns(UserWarning, match="below the field of view"):
        short = denoise_image(model, image, tile=64, overlap=16)
    assert np.abs(short - whole).max() > 1e-2 * whole.std()
