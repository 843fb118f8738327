"""Self-supervised losses for test-time adaptation (no clean image needed).

The losses of GainTuning (Mohan et al., NeurIPS 2021, "Adaptive denoising via GainTuning"):

* :func:`sure_loss` - Stein's unbiased risk estimate (Stein 1981) with the Monte-Carlo divergence of
  Ramani, Blu & Unser (2008). With a per-pixel noise variance it is also the first-order Poisson
  unbiased risk estimate (PURE, Luisier, Vonesch, Blu & Unser 2010) for dose-limited data
  ``y = Poisson(a x) / a``: plug in the unbiased variance estimate ``y / a``
  (:func:`poisson_variance`); the estimate is exact for denoisers that are linear in ``y``.
* :func:`noise_resampling_loss` - denoise once, add fresh noise of the known model to the estimate
  and fit the estimate back.
* :func:`blind_spot_loss` - MSE to the noisy (centre) frame, unbiased for zero-mean noise when the
  network never sees the pixel it predicts (UDVD and other blind-spot nets).

Every loss is a callable ``loss(net, noisy) -> scalar tensor``, normalised per pixel, built by
:func:`make_loss` from a noise condition. Tensors are ``(N, C, H, W)``; a network whose input has more
channels than its output (``C`` video frames in, the centre frame out) is scored on the centre input
channels.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from temdenoise.noise import NoiseCondition

Loss = Callable[[nn.Module, torch.Tensor], torch.Tensor]

LOSSES = ("sure", "resample", "blind_spot")


def centre_channels(noisy: torch.Tensor, out_channels: int) -> slice:
    """The input channels a network with ``out_channels`` outputs estimates (the centre frames)."""
    start = (noisy.shape[1] - out_channels) // 2
    return slice(start, start + out_channels)


def gaussian_variance(condition: NoiseCondition) -> float:
    """Noise variance of a Gaussian condition on the clean scale (sigma is given on 0..255)."""
    return (condition.level / 255.0) ** 2


def poisson_variance(noisy: torch.Tensor, scale: float) -> torch.Tensor:
    """Unbiased per-pixel estimate ``y / a`` of the variance ``x / a`` of ``y = Poisson(a x) / a``."""
    return noisy.clamp(min=0) / scale


def sure_loss(
    net: nn.Module,
    noisy: torch.Tensor,
    variance: float | Callable[[torch.Tensor], torch.Tensor],
    epsilon: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SURE of the per-pixel MSE of ``net(noisy)`` under noise of (per-pixel) ``variance``.

    ``SURE = |f(y) - y|^2 / n - mean(var) + 2 / n * sum_i var_i df_i/dy_i``; the divergence is the
    Monte-Carlo estimate ``b . var * (f(y + eps b) - f(y)) / eps`` with ``b ~ N(0, I)``.
    ``epsilon`` defaults to ``1e-3 * max|y|`` (Ramani et al. 2008). ``variance`` is a constant or a
    function of the observed (centre) channels giving per-pixel variances (e.g. :func:`poisson_variance`).
    """
    estimate = net(noisy)
    target = centre_channels(noisy, estimate.shape[1])
    observed = noisy[:, target]
    variance = variance(observed) if callable(variance) else torch.as_tensor(variance, dtype=noisy.dtype)
    if epsilon is None:
        epsilon = 1e-3 * float(noisy.detach().abs().max().clamp(min=1e-6))
    probe = torch.randn(observed.shape, generator=generator, dtype=noisy.dtype, device=noisy.device)
    perturbed = noisy.clone()
    perturbed[:, target] = observed + epsilon * probe
    divergence = (probe * variance * (net(perturbed) - estimate)).sum() / epsilon
    return ((estimate - observed) ** 2).mean() - variance.mean() + 2.0 * divergence / observed.numel()


def noise_resampling_loss(
    net: nn.Module, noisy: torch.Tensor, reference: torch.Tensor, resample: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``|f(x_ref + fresh noise) - x_ref|^2`` with ``x_ref`` the pre-trained estimate of ``noisy``.

    ``resample`` draws a new noisy copy of its argument under the known noise model. Video inputs
    get fresh noise on every frame of the reference (the pre-trained estimate of the centre frame
    stands in for each neighbour, so this loss is meant for single-frame networks).
    """
    if reference.shape[1] != noisy.shape[1]:
        raise ValueError("noise resampling needs a network with as many output as input channels")
    return ((net(resample(reference)) - reference) ** 2).mean()


def blind_spot_loss(net: nn.Module, noisy: torch.Tensor) -> torch.Tensor:
    """MSE between a blind-spot net's output and the noisy (centre) frame it never sees."""
    estimate = net(noisy)
    return ((estimate - noisy[:, centre_channels(noisy, estimate.shape[1])]) ** 2).mean()


def resampler(condition: NoiseCondition, pixel_size: float, generator: torch.Generator | None) -> Callable:
    """A function drawing fresh noise of ``condition`` around a clean-scale tensor."""
    if condition.kind == "gaussian":
        sigma = condition.level / 255.0

        def gaussian(clean: torch.Tensor) -> torch.Tensor:
            return clean + sigma * torch.randn(clean.shape, generator=generator, dtype=clean.dtype, device=clean.device)

        return gaussian
    scale = condition.level * pixel_size**2

    def poisson(clean: torch.Tensor) -> torch.Tensor:
        return torch.poisson(clean.clamp(min=0) * scale, generator=generator) / scale

    return poisson


def make_loss(
    name: str,
    condition: NoiseCondition,
    *,
    pixel_size: float = 1.0,
    reference: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Loss:
    """The adaptation loss ``name`` (one of :data:`LOSSES`) for data under ``condition``.

    ``pixel_size`` (A) converts a Poisson dose to counts per pixel; ``reference`` is the pre-trained
    estimate that noise resampling fits (required for ``resample``).
    """
    if name == "sure":
        if condition.kind == "gaussian":
            variance = gaussian_variance(condition)
            return lambda net, noisy: sure_loss(net, noisy, variance, generator=generator)
        scale = condition.level * pixel_size**2
        return lambda net, noisy: sure_loss(
            net, noisy, lambda observed: poisson_variance(observed, scale), generator=generator
        )
    if name == "resample":
        if reference is None:
            raise ValueError("loss 'resample' needs the pre-trained estimate as `reference`")
        draw = resampler(condition, pixel_size, generator)
        return lambda net, noisy: noise_resampling_loss(net, noisy, reference, draw)
    if name == "blind_spot":
        return blind_spot_loss
    raise ValueError(f"unknown adaptation loss {name!r}; expected one of {', '.join(LOSSES)}")
