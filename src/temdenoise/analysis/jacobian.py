"""Jacobian analysis of a denoiser at a noisy image: adaptive filters, net bias, subspace.

Mohan, Kadkhodaie, Simoncelli & Fernandez-Granda, "Robust and interpretable blind image denoising
via bias-free convolutional neural networks" (ICLR 2020). Any denoiser ``f`` can be written locally
as ``f(y) = A_y y + b_y`` with ``A_y`` its Jacobian at ``y``. For a bias-free ReLU network the map
is piecewise linear and homogeneous, so the *net bias* ``b_y`` is exactly zero and row ``i`` of
``A_y`` is the adaptive linear filter that produces output pixel ``i`` (its *equivalent filter*).
The singular values of ``A_y`` describe the subspace the denoiser projects onto; its effective
dimensionality (sum of squared singular values) falls as the noise grows.

The Jacobian is built from vector-Jacobian products with the one-hot output images as cotangents,
batched with ``torch.func.vmap`` over chunks of pixels (one forward pass in all);
:func:`jacobian_looped` is the one-backward-pass-per-pixel reference of the authors' code.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import vjp, vmap

Denoiser = Callable[[torch.Tensor], torch.Tensor]
"""A map from a ``(1, 1, H, W)`` image to a ``(1, 1, H, W)`` image."""


def _as_batch(image: torch.Tensor | np.ndarray, device: str | torch.device | None = None) -> torch.Tensor:
    """``(H, W)`` array -> ``(1, 1, H, W)`` float32 tensor, detached."""
    tensor = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    if tensor.ndim != 2:
        raise ValueError(f"expected an (H, W) image, got shape {tuple(tensor.shape)}")
    return tensor.detach().to(device=device, dtype=torch.float32)[None, None]


def _device_of(denoiser: Denoiser) -> torch.device | None:
    if isinstance(denoiser, nn.Module):
        parameter = next(denoiser.parameters(), None)
        return parameter.device if parameter is not None else None
    return None


def jacobian(denoiser: Denoiser, image: torch.Tensor | np.ndarray, chunk_size: int = 256) -> torch.Tensor:
    """The Jacobian ``A_y`` of ``denoiser`` at ``image`` (``(H, W)``), as an ``(H*W, H*W)`` tensor.

    Row ``i`` is the gradient of output pixel ``i`` (row-major) with respect to the input. One
    forward pass, then batched vector-Jacobian products with ``chunk_size`` one-hot cotangents at
    a time (memory grows with ``chunk_size`` times the activations of one image). A module is
    used in eval mode (batch statistics would couple the batched products).
    """
    if isinstance(denoiser, nn.Module) and denoiser.training:
        raise ValueError("jacobian: put the network in eval mode first (model.eval())")
    y = _as_batch(image, _device_of(denoiser))
    size = y.numel()
    output, pullback = vjp(denoiser, y)
    if output.shape != y.shape:
        raise ValueError(f"jacobian: the denoiser maps {tuple(y.shape)} to {tuple(output.shape)}; expected the same shape")
    batched_pullback = vmap(pullback)
    rows = []
    for start in range(0, size, chunk_size):
        pixels = torch.arange(start, min(start + chunk_size, size), device=y.device)
        cotangents = torch.zeros(len(pixels), size, device=y.device, dtype=output.dtype)
        cotangents[torch.arange(len(pixels)), pixels] = 1.0
        (grads,) = batched_pullback(cotangents.view(len(pixels), *y.shape))
        rows.append(grads.detach().reshape(len(pixels), size))
    return torch.cat(rows)


def jacobian_looped(denoiser: Denoiser, image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Reference for :func:`jacobian`: one backward pass per output pixel (the authors' method)."""
    y = _as_batch(image, _device_of(denoiser)).requires_grad_(True)
    output = denoiser(y).reshape(-1)
    rows = [torch.autograd.grad(output[i], y, retain_graph=True)[0].detach().reshape(-1) for i in range(output.numel())]
    return torch.stack(rows)


def net_bias(denoiser: Denoiser, image: torch.Tensor | np.ndarray, jac: torch.Tensor | None = None) -> torch.Tensor:
    """The net bias ``b_y = f(y) - A_y y`` as an ``(H, W)`` tensor (zero for bias-free networks)."""
    y = _as_batch(image, _device_of(denoiser))
    jac = jacobian(denoiser, image) if jac is None else jac
    with torch.no_grad():
        output = denoiser(y).reshape(-1)
        return (output - jac.to(output) @ y.reshape(-1)).reshape(y.shape[-2:])


def equivalent_filters(jac: torch.Tensor, shape: tuple[int, int], pixels: Sequence[tuple[int, int]]) -> np.ndarray:
    """Rows of ``jac`` for the ``(row, col)`` output ``pixels``, each reshaped to the image ``shape``."""
    height, width = shape
    for row, col in pixels:
        if not (0 <= row < height and 0 <= col < width):
            raise ValueError(f"pixel {(row, col)} outside the {shape} image")
    indices = [row * width + col for row, col in pixels]
    return jac[indices].reshape(len(indices), height, width).detach().cpu().numpy()


def singular_values(jac: torch.Tensor) -> np.ndarray:
    """Singular values of the Jacobian, largest first (float64)."""
    return torch.linalg.svdvals(jac.detach().double()).cpu().numpy()


def effective_dimensionality(values: np.ndarray) -> float:
    """Sum of squared singular values: the dimension of the subspace when ``A_y`` is a projection."""
    return float(np.sum(np.square(values)))
