"""UNet (Ronneberger, Fischer & Brox, MICCAI 2015) as used for TEM denoising by Mohan, Manzorro,
Vincent, Tang, Sheth, Simoncelli, Matteson, Crozier & Fernandez-Granda, "Deep denoising for
scientific discovery: a case study in electron microscopy" (IEEE TCI 2022), and its bias-free
version (Mohan et al., ICLR 2020).

The architecture is the authors' (electron-microscopy-denoising ``models/unet.py``, bilinear
version): ``scales`` max-poolings; DoubleConv blocks ([replication pad 1, 3x3 conv, BatchNorm,
ReLU] x 2); bilinear upsampling (``align_corners=True``); skip concatenations; a 1x1 output
convolution. Their widths do not double at every level (:func:`encoder_widths`); each decoder
block halves its input width in its first convolution (their ``Up(in, out, mid=in // 2)``). With
biases, scales / base 2/32, 4/32, 4/64, 4/128, 6/32, 6/128 have 102,657, 352,737, 1,405,889,
5,613,441, 4,412,961 and 70,514,817 parameters, as their code (tests/test_models.py).

``residual`` makes it predict the noise (output ``y - net(y)``), as their ``residual`` flag. The
field of view grows about 4x per two added scales (measured: :mod:`temdenoise.models.fov`).
Inputs must have sides divisible by ``2**scales``; :mod:`temdenoise.models.inference` pads and
crops back. The bias-free version drops every bias and uses :class:`BiasFreeBatchNorm2d`;
replication padding, max-pooling and bilinear upsampling are already homogeneous. ``offset`` is a
constant level the network works about (see :mod:`~temdenoise.models.layers`).
"""

from __future__ import annotations

import torch
from torch import nn

from temdenoise.models.layers import conv_norm_relu, start_near_identity
from temdenoise.registry import register


def encoder_widths(scales: int, base_channels: int) -> list[int]:
    """Channels of the encoder levels 0..``scales`` in the authors' schedule.

    Their code fixes 2 scales: b, b, b; 4 scales: b, b, b, 2b, 2b; 6 scales: b, b, b, 2b, 4b, 8b,
    8b. One rule gives all three: level ``l < scales`` has ``b * 2**max(0, l - 2)`` channels and the
    bottom level repeats the one above it (their ``16b // 2`` with bilinear upsampling). The same
    rule defines the scales their code lacks (1: b, b; 3: b, b, b, b; 5: b, b, b, 2b, 4b, 4b).
    """
    widths = [base_channels * 2 ** max(0, level - 2) for level in range(scales)]
    return widths + [widths[-1]]


def double_conv(in_channels: int, out_channels: int, bias_free: bool, mid_channels: int | None = None) -> nn.Sequential:
    """Two [replication pad, 3x3 conv, BatchNorm, ReLU] blocks (the authors' ``DoubleConv``)."""
    mid = mid_channels or out_channels
    return nn.Sequential(
        conv_norm_relu(in_channels, mid, bias_free, padding_mode="replicate"),
        conv_norm_relu(mid, out_channels, bias_free, padding_mode="replicate"),
    )


@register("unet")
class UNet(nn.Module):
    """The authors' TEM UNet with ``scales`` poolings and ``base_channels`` channels at full resolution."""

    kind = "network"

    def __init__(
        self,
        scales: int = 4,
        base_channels: int = 32,
        bias_free: bool = False,
        residual: bool = False,
        offset: float = 0.0,
        in_channels: int = 1,
        out_channels: int = 1,
    ) -> None:
        super().__init__()
        if scales < 1:
            raise ValueError(f"unet: scales must be >= 1, got {scales}")
        widths = encoder_widths(scales, base_channels)
        self.encoders = nn.ModuleList(
            [double_conv(in_channels, widths[0], bias_free)]
            + [double_conv(widths[level - 1], widths[level], bias_free) for level in range(1, scales + 1)]
        )
        # decoder of level l: the upsampled level l + 1 (w_l channels) beside the skip (w_l), halved
        # to w_l by the first conv and handed on with the width of the level above (w_{l-1})
        self.decoders = nn.ModuleList(
            [
                double_conv(2 * widths[level], widths[max(level - 1, 0)], bias_free, mid_channels=widths[level])
                for level in range(scales)
            ]
        )
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=1, bias=not bias_free)
        if residual:
            start_near_identity(self.head)
        self.bias_free = bias_free
        self.residual = residual
        self.offset = float(offset)
        self.scales = scales
        self.size_multiple = 2**scales

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.size_multiple or x.shape[-2] % self.size_multiple:
            raise ValueError(
                f"unet: input size {tuple(x.shape[-2:])} not divisible by 2**scales = {self.size_multiple}; "
                "pad it (temdenoise.models.inference.pad_to_multiple)"
            )
        x = x - self.offset
        skips = []
        features = x
        for level, encoder in enumerate(self.encoders):
            features = encoder(features if level == 0 else self.pool(features))
            skips.append(features)
        features = skips.pop()
        for decoder in reversed(self.decoders):
            features = decoder(torch.cat([skips.pop(), self.up(features)], dim=1))
        output = self.head(features)
        return (x - output if self.residual else output) + self.offset
