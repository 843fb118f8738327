"""Self-supervised losses for test-time adaptation (no clean image needed).

The losses of GainTuning (Mohan et al., NeurIPS 2021, "Adaptive denoising via GainTuning"):

* :func:`sure_loss` - Stein's unbiased risk estimate (Stein 1981) with the Monte-Carlo divergence of
  Ramani, Blu & Unser (2008). With a per-pixel noise variance it is also the first-order Poisson
  unbiased risk estimate (PURE, Luisier, Vonesch, Blu & Unser 2010) for dose-limited data
  ``y = Poisson(a x) / a``: plug in the unbiased variance estimate ``y / a``
  (:func:`poisson_variance`); the estimate is exact for denoisers that are linear in ``y``.
* :func:`noise_resampling_loss` - denoise once, add fresh noise of the known model to the estimate
  and fit the estimate back.
* :func:`thinning_loss` - Poisson data only: binomial thinning of the counts into two independent
  Poisson images, one the input and one the target (the Poisson form of Recorrupted-to-Recorrupted);
  unbiased for the risk at the thinned dose, for any network.
* :func:`pure_exact_loss` - Poisson data only: PURE without linearisation (Hudson's identity), the
  one-count decrements evaluated exactly on sparse pixel grids; unbiased for any network whose
  receptive field is smaller than the grid step.
* :func:`blind_spot_loss` - MSE to the noisy (centre) frame, unbiased for zero-mean noise when the
  network never sees the pixel it predicts (UDVD and other blind-spot nets).

Which loss for which data (measured on the quick TEM models, docs/gaintuning.md): below about one
count per pixel the first-order PURE is badly biased (the denoiser is far from linear on the scale of
one count, ``1 / a``) and GainTuning with it *lowers* PSNR; the two exact Poisson estimates are
unbiased but so noisy on one image of a few hundred counts that they barely move PSNR; noise
resampling (biased towards the pre-trained estimate, but low-variance) is the one that helps.

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

LOSSES = ("sure", "resample", "blind_spot", "thinning", "pure_exact")


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


def poisson_counts(noisy: torch.Tensor, scale: float) -> torch.Tensor:
    """Electron counts ``z = a y`` of ``y = Poisson(a x) / a`` (rounded: ``y`` holds them up to float error)."""
    return torch.round(noisy.clamp(min=0) * scale)


def thinning_loss(
    net: nn.Module,
    noisy: torch.Tensor,
    scale: float,
    keep: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Unbiased risk estimate by binomial (Poisson) thinning of the counts, for ``y = Poisson(a x) / a``.

    The counts ``z = a y`` are split into ``z1 ~ Binomial(z, keep)`` and ``z2 = z - z1``, which are
    *independent* Poisson variables of means ``keep * a x`` and ``(1 - keep) * a x``. The network sees
    ``y1 = z1 / (keep a)`` (the same image at the lower dose ``keep * a``) and is scored against
    ``y2 = z2 / ((1 - keep) a)``, an unbiased and independent copy of ``x``; subtracting the unbiased
    estimate ``z2 / ((1 - keep) a)^2`` of the variance of ``y2`` makes
    ``E[loss] = E|f(y1) - x|^2 / n`` exactly, for any network (the Poisson form of
    Recorrupted-to-Recorrupted, Pang et al. 2021; Monroy, Bacca & Tachella 2024). A fresh split is
    drawn at every call. The risk is that of the lower dose ``keep * a``; ``keep`` close to 1 keeps
    the input dose close to the test dose at the price of a noisier target. All input channels
    (video frames) are thinned; the target is the held-out part of the centre channels.
    """
    if not 0.0 < keep < 1.0:
        raise ValueError(f"thinning: keep must lie in (0, 1), got {keep}")
    counts = poisson_counts(noisy, scale)
    kept = torch.binomial(counts, torch.full_like(counts, keep), generator=generator)
    estimate = net(kept / (keep * scale))
    target = centre_channels(noisy, estimate.shape[1])
    held_out = (counts - kept)[:, target]
    target_scale = (1.0 - keep) * scale
    return ((estimate - held_out / target_scale) ** 2).mean() - (held_out / target_scale**2).mean()


def pure_exact_loss(
    net: nn.Module,
    noisy: torch.Tensor,
    scale: float,
    spacing: int = 8,
    probes: int = 4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Exact Poisson unbiased risk estimate (PURE without linearisation) on sparse pixel grids.

    For ``z ~ Poisson(lambda)`` and any ``g``, ``E[lambda g(z)] = E[z g(z - 1)]`` (Hudson 1978; Luisier,
    Vonesch, Blu & Unser 2010). With ``y = z / a`` and ``x = lambda / a`` the per-pixel MSE is
    ``E|f(y) - x|^2 = E[f_i(y)^2 - 2 y_i f_i(y - e_i / a) + y_i^2 - y_i / a]``, where ``y - e_i / a``
    removes one count from pixel ``i`` only. The first-order PURE of :func:`sure_loss` replaces
    ``f_i(y - e_i / a)`` by a Taylor expansion, hopeless below a few counts per pixel (one count
    is a jump of ``1 / a`` in intensity). Here the jump is taken exactly: one count is removed at
    every pixel of a grid of step ``spacing`` (random offset, ``probes`` grids per call, one batched
    forward pass), so pixel ``i``'s output sees only its own decrement as long as ``spacing``
    exceeds the network's receptive-field radius (7 for a 7-layer DnCNN of 3x3 convolutions; for a
    larger field of view the estimate is approximate). The cross term is averaged over the grid
    pixels (uniform random offset: unbiased for the image mean), the other terms over all pixels.
    """
    estimate = net(noisy)
    target = centre_channels(noisy, estimate.shape[1])
    observed = noisy[:, target]
    offsets = torch.randint(0, spacing * spacing, (probes,), generator=generator).tolist()
    masks = torch.zeros(probes, *observed.shape[1:], dtype=noisy.dtype, device=noisy.device)
    for k, offset in enumerate(offsets):
        masks[k, :, offset // spacing :: spacing, offset % spacing :: spacing] = 1.0
    # (probes * N, C_in, H, W): every probe grid applied to every input of the batch
    decremented = noisy.unsqueeze(0).repeat(probes, *([1] * noisy.ndim))
    decremented[:, :, target] = (observed.unsqueeze(0) - masks.unsqueeze(1) / scale).clamp(min=0)
    shifted = net(decremented.flatten(0, 1)).view(probes, *estimate.shape)
    weights = masks.unsqueeze(1) * observed.unsqueeze(0)
    cross = (weights * shifted).sum() / masks.unsqueeze(1).expand_as(shifted).sum()
    return (estimate**2).mean() - 2.0 * cross + (observed**2 - observed / scale).mean()


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
    options: dict | None = None,
) -> Loss:
    """The adaptation loss ``name`` (one of :data:`LOSSES`) for data under ``condition``.

    ``pixel_size`` (A) converts a Poisson dose to counts per pixel; ``reference`` is the pre-trained
    estimate that noise resampling fits (required for ``resample``). ``options`` are keyword
    arguments of the loss (``keep`` of ``thinning``; ``spacing`` and ``probes`` of ``pure_exact``);
    keys another loss does not take are ignored, so one set of options can serve every case.
    """
    options = dict(options or {})
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
    if name in ("thinning", "pure_exact"):
        if condition.kind != "poisson":
            raise ValueError(f"loss {name!r} needs Poisson (count) data, got a {condition.kind} condition")
        scale = condition.level * pixel_size**2
        function, keys = (thinning_loss, ("keep",)) if name == "thinning" else (pure_exact_loss, ("spacing", "probes"))
        kwargs = {key: options[key] for key in keys if options.get(key) is not None}
        return lambda net, noisy: function(net, noisy, scale, generator=generator, **kwargs)
    raise ValueError(f"unknown adaptation loss {name!r}; expected one of {', '.join(LOSSES)}")
