"""UNet (Ronneberger, Fischer & Brox, MICCAI 2015) as used for TEM denoising by Mohan, Manzorro,
Vincent, Tang, Sheth, Simoncelli, Matteson, Crozier & Fernandez-Granda, "Deep denoising for
scientific discovery: a case study in electron microscopy" (IEEE TCI 2022), and its bias-free
version (Mohan et al., ICLR 2020).

``scales`` max-poolings; DoubleConv blocks ([3x3 conv with zero padding, BatchNorm, ReLU] x 2) with
``base_channels`` x 1, 2, 4, ... channels (capped at ``max_channels``), bilinear upsampling, skip
concatenations and a 1x1 output convolution; ``residual`` makes it predict the noise, as DnCNN
does (output ``y - net(y)``), which trains faster from scratch on a few CPU minutes. The field of view grows about 4x per added scale
(measured: see :mod:`temdenoise.models.fov`). Inputs must have sides divisible by ``2**scales``;
:mod:`temdenoise.models.inference` pads and crops back. The bias-free version drops every bias and
uses :class:`BiasFreeBatchNorm2d`; max-pooling and bilinear upsampling are already homogeneous.
``offset`` is a constant level the network works about (see :mod:`~temdenoise.models.layers`;
TEM: 1, the vacuum).
"""

from __future__ import annotations

import torch
from torch import nn

from temdenoise.models.layers import conv_norm_relu, start_near_identity
from temdenoise.registry import register


def double_conv(in_channels: int, out_channels: int, bias_free: bool) -> nn.Sequential:
    """Two [3x3 conv, BatchNorm, ReLU] blocks."""
    return nn.Sequential(
        conv_norm_relu(in_channels, out_channels, bias_free), conv_norm_relu(out_channels, out_channels, bias_free)
    )


@register("unet")
class UNet(nn.Module):
    """UNet with ``scales`` poolings and ``base_channels`` channels at full resolution."""

    kind = "network"

    def __init__(
        self,
        scales: int = 4,
        base_channels: int = 32,
        bias_free: bool = False,
        max_channels: int | None = None,
        residual: bool = False,
        offset: float = 0.0,
        in_channels: int = 1,
        out_channels: int = 1,
    ) -> None:
        super().__init__()
        if scales < 1:
            raise ValueError(f"unet: scales must be >= 1, got {scales}")
        widths = [base_channels * 2**level for level in range(scales + 1)]
        if max_channels is not None:
            widths = [min(width, max_channels) for width in widths]
        self.encoders = nn.ModuleList(
            [double_conv(in_channels, widths[0], bias_free)]
            + [double_conv(widths[level - 1], widths[level], bias_free) for level in range(1, scales + 1)]
        )
        self.decoders = nn.ModuleList(
            [double_conv(widths[level] + widths[level + 1], widths[level], bias_free) for level in range(scales)]
        )
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
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
