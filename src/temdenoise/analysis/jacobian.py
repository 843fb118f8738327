"""Jacobian analysis of a denoiser at a noisy image: adaptive filters, net bias, subspace.

Mohan, Kadkhodaie, Simoncelli & Fernandez-Granda, "Robust and interpretable blind image denoising
via bias-free convolutional neural networks" (ICLR 2020). Any denoiser ``f`` can be written locally
as ``f(y) = A_y y + b_y`` with ``A_y`` its Jacobian at ``y``. For a bias-free ReLU network the map
is piecewise linear and homogeneous, so the *net bias* ``b_y`` is exactly zero and row ``i`` of
``A_y`` is the adaptive linear filter that produces output pixel ``i`` (its *equivalent filter*).
The singular values of ``A_y`` describe the subspace the denoiser projects onto; its effective
dimensionality (sum of squared singular values) falls as the noise grows.

The Jacobian is built from vector-Jacobian products with the one-hot output images as cotangents,
batched over chunks of pixels (``is_grads_batched``: vmap over one backward graph, one forward pass);
:func:`jacobian_looped` is the one-backward-pass-per-pixel reference of the authors' code.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

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


def jacobian(
    denoiser: Denoiser,
    image: torch.Tensor | np.ndarray,
    chunk_size: int = 64,
    pixels: Sequence[int] | None = None,
) -> torch.Tensor:
    """The Jacobian ``A_y`` of ``denoiser`` at ``image`` (``(H, W)``), as an ``(H*W, H*W)`` tensor.

    Row ``i`` is the gradient of output pixel ``i`` (row-major) with respect to the input; with
    ``pixels`` (row-major indices) only those rows are computed, in that order. One
    forward pass, then batched vector-Jacobian products (``torch.autograd.grad`` with
    ``is_grads_batched``, i.e. vmap over the backward pass) with ``chunk_size`` one-hot cotangents
    at a time; memory grows with ``chunk_size`` times the activations of one image. A module must
    be in eval mode (batch statistics would couple the products).
    """
    if isinstance(denoiser, nn.Module) and denoiser.training:
        raise ValueError("jacobian: put the network in eval mode first (model.eval())")
    y = _as_batch(image, _device_of(denoiser)).requires_grad_(True)
    output = denoiser(y)
    if output.shape != y.shape:
        raise ValueError(f"jacobian: the denoiser maps {tuple(y.shape)} to {tuple(output.shape)}; expected the same shape")
    size = y.numel()
    wanted = torch.arange(size) if pixels is None else torch.as_tensor(list(pixels), dtype=torch.long)
    if len(wanted) == 0 or wanted.min() < 0 or wanted.max() >= size:
        raise ValueError(f"jacobian: pixel indices must lie in [0, {size}), got {list(pixels or [])}")
    rows = []
    for chunk in torch.split(wanted.to(y.device), chunk_size):
        cotangents = torch.zeros(len(chunk), size, device=y.device, dtype=output.dtype)
        cotangents[torch.arange(len(chunk), device=y.device), chunk] = 1.0
        (grads,) = torch.autograd.grad(
            output, y, cotangents.view(len(chunk), *y.shape), retain_graph=True, is_grads_batched=True
        )
        rows.append(grads.detach().reshape(len(chunk), size))
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


def net_bias_jvp(denoiser: nn.Module, image: np.ndarray) -> torch.Tensor:
    """Net bias ``b_y = f(y) - A_y y`` of ``denoiser`` at the ``(H, W)`` ``image``, as an ``(H, W)`` tensor.

    ``A_y y`` is the Jacobian-vector product along ``y`` itself (one forward-mode pass), so the bias
    of every pixel of an image of any size costs about two forward passes; it equals
    :func:`net_bias`, which builds the whole ``(HW, HW)`` Jacobian.
    """
    y = torch.as_tensor(np.asarray(image, dtype=np.float32))[None, None]
    with torch.no_grad():
        output, along = torch.func.jvp(denoiser, (y,), (y,))
    return (output - along)[0, 0]


def flat_indices(shape: tuple[int, int], pixels: Sequence[tuple[int, int]]) -> list[int]:
    """Row-major indices of ``(row, col)`` pixels of an image of ``shape``."""
    height, width = shape
    for row, col in pixels:
        if not (0 <= row < height and 0 <= col < width):
            raise ValueError(f"pixel {(row, col)} outside the {shape} image")
    return [row * width + col for row, col in pixels]


def equivalent_filters(jac: torch.Tensor, shape: tuple[int, int], pixels: Sequence[tuple[int, int]]) -> np.ndarray:
    """Rows of a full ``jac`` for the ``(row, col)`` output ``pixels``, each reshaped to the image ``shape``."""
    indices = flat_indices(shape, pixels)
    return jac[indices].reshape(len(indices), *shape).detach().cpu().numpy()


def filters_at(
    denoiser: Denoiser, image: torch.Tensor | np.ndarray, pixels: Sequence[tuple[int, int]]
) -> np.ndarray:
    """Equivalent filters of ``pixels`` computed directly (only those rows: cheap on large images)."""
    shape = tuple(np.shape(image))
    rows = jacobian(denoiser, image, pixels=flat_indices(shape, pixels))
    return rows.reshape(len(pixels), *shape).cpu().numpy()


def singular_values(jac: torch.Tensor) -> np.ndarray:
    """Singular values of the Jacobian, largest first (float64)."""
    return torch.linalg.svdvals(jac.detach().double()).cpu().numpy()


def effective_dimensionality(values: np.ndarray) -> float:
    """Sum of squared singular values: the dimension of the subspace when ``A_y`` is a projection."""
    return float(np.sum(np.square(values)))
