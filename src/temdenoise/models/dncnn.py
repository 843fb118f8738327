"""DnCNN (Zhang, Zuo, Chen, Meng & Zhang, IEEE TIP 2017) and its bias-free version BF-DnCNN
(Mohan, Kadkhodaie, Simoncelli & Fernandez-Granda, ICLR 2020).

``depth`` 3x3 convolutions of ``channels`` channels: conv + ReLU, ``depth - 2`` x [conv, BatchNorm,
ReLU], conv. Residual (the paper's form, the default): the network predicts the noise and the output
is ``y - net(y)``; the last convolution starts near zero
(:func:`~temdenoise.models.layers.start_near_identity`). ``residual=False`` predicts the clean image
instead, as the UNets do by default: at a few counts per pixel the noise is several times the
signal, and a residual net must reproduce it almost exactly (quick TEM set, 960 steps, dose 20:
19.79 dB predicting the image against 18.68 dB predicting the noise; docs/training.md). The
bias-free version drops every conv bias and uses :class:`BiasFreeBatchNorm2d`. ``offset`` is a
constant level the network works about (see :mod:`~temdenoise.models.layers`; TEM: 1, the vacuum).
20 x 64 gives 668,225 parameters (DnCNN) and 665,856 (BF-DnCNN; the authors' code counts 667,008,
with the BatchNorm biases its bias-free layers keep and never use).
"""

from __future__ import annotations

import torch
from torch import nn

from temdenoise.models.layers import conv3x3, conv_norm_relu, start_near_identity
from temdenoise.registry import register


@register("dncnn")
class DnCNN(nn.Module):
    """DnCNN with ``depth`` layers of ``channels`` channels; ``bias_free`` removes every additive constant."""

    kind = "network"

    def __init__(
        self,
        depth: int = 20,
        channels: int = 64,
        bias_free: bool = False,
        residual: bool = True,
        offset: float = 0.0,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"dncnn: depth must be >= 2, got {depth}")
        bias = not bias_free
        layers: list[nn.Module] = [conv3x3(in_channels, channels, bias), nn.ReLU(inplace=True)]
        layers += [conv_norm_relu(channels, channels, bias_free) for _ in range(depth - 2)]
        layers.append(conv3x3(channels, in_channels, bias))
        if residual:
            start_near_identity(layers[-1])
        self.body = nn.Sequential(*layers)
        self.bias_free = bias_free
        self.residual = residual
        self.offset = float(offset)
        # Inputs of any size work: no pooling.
        self.size_multiple = 1

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        output = self.body(noisy - self.offset)
        # Residual: (y - offset) - body(y - offset) + offset, so the offset cancels; image: offset + body.
        return noisy - output if self.residual else output + self.offset
