"""UDVD: unsupervised deep video denoising with blind-spot networks.

Implements the blind-spot video denoiser of Sheth, Mohan, Vincent, Manzorro, Crozier, Khapra,
Simoncelli and Fernandez-Granda, "Unsupervised Deep Video Denoising", ICCV 2021, built on the
rotation blind-spot construction of Laine, Karras, Lehtinen and Aila, "High-Quality Self-Supervised
Deep Image Denoising", NeurIPS 2019.

Construction (see docs/ARCHITECTURE.md and the reference notes, section 3):

* every convolution sees only the *upper half-plane including its own row*: the input is shifted
  down one row (zero row on top), padded, convolved 3x3 and the extra last row cropped; pooling is
  shifted the same way, so every feature at row ``r`` depends on input rows ``<= r`` only;
* the input is processed in 4 rotations stacked on the batch axis; after the core network each
  branch is shifted down one more row (now rows ``< r`` only: the pixel itself is excluded),
  rotated back, the 4 branches concatenated on the channel axis and fused by 1x1 convolutions with
  LeakyReLU(0.1). The output pixel therefore never depends on its own value in any input frame;
* 1- and 3-frame nets: one blind UNet core (17 convolutions) over all frames; 5-frame net: a
  first-stage blind UNet shared over the overlapping 3-frame windows, and a second-stage blind
  UNet fusing them (the authors' depth and structure; see :class:`UDVD`).

Input convention: ``(B, T, H, W)`` frames (T = ``frames``) -> ``(B, 1, H, W)`` denoised centre
frame. Bias-free by default (every map is then homogeneous of degree 1).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from temdenoise.models.inference import blend_tiles
from temdenoise.models.layers import start_near_identity
from temdenoise.registry import register

_NEGATIVE_SLOPE = 0.1
_OUTPUT_INIT_SCALE = 0.1  # the output convolution starts scaled down (see UDVD.__init__)
_POOLINGS = 2  # the UNet core pools twice: inputs are padded to a multiple of 2**_POOLINGS


def shift_down(x: torch.Tensor, rows: int = 1) -> torch.Tensor:
    """Shift a (B, C, H, W) map down by ``rows`` (zeros enter on top, bottom rows drop out)."""
    return F.pad(x, (0, 0, rows, 0))[:, :, : x.shape[2], :]


class ShiftedConv(nn.Module):
    """3x3 convolution (+ LeakyReLU if ``activation``) whose output at row r sees input rows <= r only."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool, activation: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, bias=bias)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # shift down one row, replicate-pad by 1, 3x3 valid conv: rows r-2..r of the input
        x = F.pad(x, (0, 0, 1, 0))
        x = F.pad(x, (1, 1, 1, 1), mode="replicate")
        x = self.conv(x)
        if self.activation:
            x = F.leaky_relu(x, _NEGATIVE_SLOPE)
        return x[:, :, :-1, :]


class ShiftedPool(nn.Module):
    """2x2 max-pooling shifted down one row, so pooled row k sees input rows <= 2k only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(shift_down(x), 2)


def shifted_convs(widths: Sequence[int], bias: bool, linear_last: bool = False) -> nn.Sequential:
    """Shifted convolutions from ``widths[0]`` through each following width (the last one linear if asked)."""
    last = len(widths) - 2
    return nn.Sequential(
        *[
            ShiftedConv(a, b, bias, activation=not (linear_last and index == last))
            for index, (a, b) in enumerate(zip(widths[:-1], widths[1:]))
        ]
    )


class BlindUNet(nn.Module):
    """Two-pooling UNet core of 17 shifted convolutions (upper half-plane receptive field).

    The authors' ``Blind_UNet`` (udvd ``models/udvd.py``) with ``c = channels`` (theirs: 48):
    two encoder blocks of 3 convolutions of ``c`` channels, each followed by a shifted pooling; a
    bottom block ``c -> 2c -> 2c -> c``; a decoder block of 4 convolutions of ``2c`` on the
    upsampled bottom beside the first pooled map; a last block of 4 convolutions on the upsampled
    result beside the input, ending in ``out_channels``; nearest upsampling.

    One deviation: the output convolution is linear (theirs has a LeakyReLU like every other):
    the outputs are signed features about the offset level (dark and bright deviations alike). A
    rectified output squashed every negative deviation by 0.1, which in the multi-frame net is
    the narrow (``window_channels``) hand-over from the first to the second stage: the quick
    5-frame net then fell below the 1-frame net.
    """

    def __init__(self, in_channels: int, out_channels: int, channels: int, bias: bool) -> None:
        super().__init__()
        c, d = channels, 2 * channels
        self.enc1 = shifted_convs([in_channels, c, c, c], bias)
        self.enc2 = shifted_convs([c, c, c, c], bias)
        self.bottom = shifted_convs([c, d, d, c], bias)
        self.dec2 = shifted_convs([2 * c, d, d, d, d], bias)
        self.dec1 = shifted_convs([d + in_channels, d, d, d, out_channels], bias, linear_last=True)
        self.pool = ShiftedPool()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip1 = self.pool(self.enc1(x))
        y = self.bottom(self.pool(self.enc2(skip1)))
        y = self.dec2(torch.cat([F.interpolate(y, scale_factor=2, mode="nearest"), skip1], dim=1))
        return self.dec1(torch.cat([F.interpolate(y, scale_factor=2, mode="nearest"), x], dim=1))


def rotations(x: torch.Tensor) -> torch.Tensor:
    """Stack the 0/90/180/270 degree rotations of a square (B, C, S, S) map on the batch axis."""
    return torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)], dim=0)


def unrotate(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rotations`: rotate each branch back and concatenate them on channels."""
    branches = torch.chunk(x, 4, dim=0)
    return torch.cat([torch.rot90(b, -k, dims=(2, 3)) for k, b in enumerate(branches)], dim=1)


@register("udvd")
class UDVD(nn.Module):
    """Blind-spot denoiser of the centre frame of ``frames`` consecutive frames (1, 3 or 5).

    As the authors' nets (udvd ``models/udvd.py``): ``frames`` 1 or 3 is one blind UNet core over
    all frames (their ``BlindSpotNet`` and ``BlindVideoNetD1``); ``frames >= 5`` is a first-stage
    core shared by the ``frames - 2`` overlapping 3-frame windows (``window_channels`` outputs
    each, theirs 32), then a second-stage core fusing their concatenation (``BlindVideoNet``).
    ``channels`` is the encoder width (theirs 48; decoder twice); the head fuses the 4 rotated
    branches with 1x1 convolutions (8c -> 8c -> 2c -> 1). At ``channels=48, window_channels=32``
    the 1 / 3 / 5-frame nets have 1,118,832 / 1,121,424 / 2,123,664 parameters, as theirs with one
    channel per frame and one output (tests/test_udvd.py).
    ``tile`` (0 = whole frames) is the side of the overlapping tiles :func:`denoise_video` works
    on: the half-plane receptive fields reach far upwards, so a net trained on small patches
    should see patch-sized context at inference too (set it to the training patch size).
    ``offset`` is a constant level subtracted from the input and added back to the output
    (TEM normalised intensity: 1, the vacuum level). Without it the zero padding of the tiles and
    the zero rows of the shifted convolutions are black edges against a background near 1, and the
    bias-free net must carry that background through every layer: trained on TEM intensities it
    then learns little more than the mean in a quick recipe. A constant never breaks the blind
    spot; a bias-free net stays homogeneous about ``offset`` instead of 0.
    """

    # Consumes windows of (T, H, W) videos and learns from noisy frames only (self-supervised).
    video_input = True

    kind = "network"

    def __init__(
        self,
        frames: int = 5,
        channels: int = 48,
        window_channels: int = 32,
        bias_free: bool = True,
        tile: int = 0,
        offset: float = 0.0,
    ) -> None:
        super().__init__()
        if frames < 1 or frames % 2 == 0:
            raise ValueError(f"udvd: frames must be a positive odd number, got {frames}")
        self.frames = frames
        self.bias_free = bias_free
        self.tile = tile
        self.offset = float(offset)
        bias = not bias_free
        branch = 2 * channels
        if frames <= 3:
            self.first_stage = None
            self.core = BlindUNet(frames, branch, channels, bias)
        else:
            self.first_stage = BlindUNet(3, window_channels, channels, bias)
            self.core = BlindUNet((frames - 2) * window_channels, branch, channels, bias)
        self.fuse_a = nn.Conv2d(4 * branch, 4 * branch, 1, bias=bias)
        self.fuse_b = nn.Conv2d(4 * branch, branch, 1, bias=bias)
        self.fuse_out = nn.Conv2d(branch, 1, 1, bias=bias)
        # He initialisation for LeakyReLU: without normalisation layers, torch's default init
        # shrinks the signal at every one of the ~37 (5 frames) convolutions and the deep
        # multi-frame net starts with a vanishing output and vanishing gradients
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=_NEGATIVE_SLOPE, nonlinearity="leaky_relu")
        # ... but the output must start small: He-initialised, the deep stack leaves the initial
        # output at a seed-dependent 0.4-3 times the input deviations, and from a large initial
        # loss the first Adam steps of a narrow net silence whole layers and the net collapses to
        # the constant offset for good (quick udvd3 at the workflow seed: 18.1 dB on poisson-100,
        # the PSNR of a constant image). Scaled down, every seed starts near the constant output
        # and learns its deviations from there.
        start_near_identity(self.fuse_out, _OUTPUT_INIT_SCALE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.frames:
            raise ValueError(f"udvd: expected input (B, {self.frames}, H, W), got {tuple(x.shape)}")
        height, width = x.shape[2:]
        # zero padding (never replicate/reflect, which would copy a pixel into its own blind spot)
        # to a square whose side the two poolings divide, so the 4 rotations share one batch
        side = -(-max(height, width) // 2**_POOLINGS) * 2**_POOLINGS
        x = rotations(F.pad(x - self.offset, (0, side - width, 0, side - height)))
        if self.first_stage is None:
            y = self.core(x)
        else:
            # the shared first stage runs once on all 3-frame windows stacked on the batch axis
            windows = torch.cat([x[:, t : t + 3] for t in range(self.frames - 2)], dim=0)
            y = self.core(torch.cat(torch.chunk(self.first_stage(windows), self.frames - 2, dim=0), dim=1))
        # the final one-row shift removes the pixel's own row: the blind spot
        y = unrotate(shift_down(y))
        y = F.leaky_relu(self.fuse_a(y), _NEGATIVE_SLOPE)
        y = F.leaky_relu(self.fuse_b(y), _NEGATIVE_SLOPE)
        return self.fuse_out(y)[:, :, :height, :width] + self.offset


def window_frames(length: int, frames: int, centre: int) -> np.ndarray:
    """Frame indices of the ``frames``-long window centred on frame ``centre`` of a ``length``-frame video.

    Past an end of the video, offset ``o`` takes the frame at ``-o`` (a mirror about the centre
    frame: at frame 1 of a 5-frame window, ``(3, 0, 1, 2, 3)``). A mirror about the video's first
    frame, ``(1, 0, 1, 2, 3)``, would put the centre frame, with its very noise, beside itself and
    open the blind spot. Needs ``length >= frames``.
    """
    if length < frames:
        raise ValueError(f"video of {length} frames is too short for {frames}-frame windows")
    offsets = np.arange(frames) - frames // 2
    inside = (centre + offsets >= 0) & (centre + offsets < length)
    return np.where(inside, centre + offsets, centre - offsets)


def frame_windows(video: np.ndarray, frames: int, indices: Sequence[int] | None = None) -> np.ndarray:
    """The ``frames``-long windows centred on the frames ``indices`` (default: all) of a
    (T, H, W) video: (len(indices), frames, H, W); edge frames as in :func:`window_frames`."""
    video = np.asarray(video, dtype=np.float32)
    centres = range(video.shape[0]) if indices is None else indices
    return np.stack([video[window_frames(video.shape[0], frames, t)] for t in centres])


def _apply_tiled(model: UDVD, windows: torch.Tensor) -> torch.Tensor:
    """``model(windows)`` on overlapping ``model.tile`` tiles (whole frames if 0), blended by
    :func:`~temdenoise.models.inference.blend_tiles`: the tiles limit the context to the training
    patch size on purpose (class docstring), so the overlap is a quarter tile, not the FoV."""
    height, width = windows.shape[-2:]
    tile = model.tile
    if not tile or (height <= tile and width <= tile):
        return model(windows)
    return blend_tiles(model, windows, tile, tile // 4)  # pads each tile itself: no pooling grid to keep


@torch.no_grad()
def denoise_video(
    model: UDVD,
    video: np.ndarray,
    device: str | torch.device = "cpu",
    batch: int = 4,
    indices: Sequence[int] | None = None,
) -> np.ndarray:
    """Denoise the frames ``indices`` (default: all) of a (T, H, W) video: (len, H, W) float32.

    Frames are processed whole, or in overlapping tiles when the model has a ``tile`` size.
    """
    model.eval()
    centres = list(range(video.shape[0]) if indices is None else indices)
    out = []
    for start in range(0, len(centres), batch):
        windows = torch.from_numpy(frame_windows(video, model.frames, centres[start : start + batch]))
        out.append(_apply_tiled(model, windows.to(device))[:, 0].cpu().numpy())
    return np.concatenate(out).astype(np.float32)
