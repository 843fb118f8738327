"""Jacobian analysis of a denoiser at a noisy image: adaptive filters, net bias, subspace.

Mohan, Kadkhodaie, Simoncelli & Fernandez-Granda, "Robust and interpretable blind image denoising
via bias-free convolutional neural networks" (ICLR 2020). Any denoiser ``f`` can be written locally
as ``f(y) = A_y y + b_y`` with ``A_y`` its Jacobian at ``y``. For a bias-free ReLU network the map
is piecewise linear and homogeneous, so the *net bias* ``b_y`` is exactly zero and row ``i`` of
``A_y`` is the adaptive linear filter that produces output pixel ``i`` (its *equivalent filter*).
The singular values of ``A_y`` describe the subspace the denoiser projects onto; its effective
dimensionality (sum of squared singular values) falls as the noise grows.

The Jacobian is built from vector-Jacobian products, batched over chunks of cotangents
(``is_grads_batched``: vmap over one backward graph, one forward pass); :func:`jacobian_looped` is
the one-backward-pass-per-pixel reference of the authors' code. Given the denoiser's field of view,
rows whose supports cannot overlap share one product (a *coloured* or compressed Jacobian, Curtis,
Powell & Reid 1974): output pixels on a grid of the FoV's pitch get one cotangent, and each row is
cut back out of the summed gradient by its FoV window. For a FoV of ``F`` px on an ``H x W`` patch
this takes ``min(F, H) * min(F, W)`` products instead of ``H * W``; the result is checked against
one Jacobian-vector product along a random direction, and recomputed uncompressed if the FoV given
was too small.
"""

from __future__ import annotations

import warnings
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
    field_of_view: int | None = None,
) -> torch.Tensor:
    """The Jacobian ``A_y`` of ``denoiser`` at ``image`` (``(H, W)``), as an ``(H*W, H*W)`` tensor.

    Row ``i`` is the gradient of output pixel ``i`` (row-major) with respect to the input; with
    ``pixels`` (row-major indices) only those rows are computed, in that order. One forward pass,
    then batched vector-Jacobian products (``torch.autograd.grad`` with ``is_grads_batched``, i.e.
    vmap over the backward pass), ``chunk_size`` cotangents at a time; memory grows with
    ``chunk_size`` times the activations of one image. With ``field_of_view`` (the side in pixels
    of the denoiser's FoV, e.g. :func:`temdenoise.models.fov.measure_fov`), rows more than a FoV
    apart share a cotangent (see the module docstring). A module must be in eval mode (batch
    statistics would couple the products).
    """
    if isinstance(denoiser, nn.Module) and denoiser.training:
        raise ValueError("jacobian: put the network in eval mode first (model.eval())")
    y = _as_batch(image, _device_of(denoiser)).requires_grad_(True)
    output = denoiser(y)
    if output.shape != y.shape:
        raise ValueError(f"jacobian: the denoiser maps {tuple(y.shape)} to {tuple(output.shape)}; expected the same shape")
    height, width = y.shape[-2:]
    size = y.numel()
    wanted = torch.arange(size) if pixels is None else torch.as_tensor(list(pixels), dtype=torch.long)
    if len(wanted) == 0 or wanted.min() < 0 or wanted.max() >= size:
        raise ValueError(f"jacobian: pixel indices must lie in [0, {size}), got {list(pixels or [])}")
    if field_of_view is not None and field_of_view < 1:
        raise ValueError(f"jacobian: field_of_view must be a positive number of pixels, got {field_of_view}")
    # Half-width of the window that holds a row's support wherever the FoV box sits around its
    # pixel (an even FoV is off-centre by one pixel, in a direction the caller need not know).
    half = max(height, width) if field_of_view is None else field_of_view // 2
    wanted = wanted.to(y.device)
    rows = _coloured_rows(output, y, wanted, half, chunk_size)
    if half < max(height, width) and not _agrees_with_jvp(denoiser, y, rows, wanted):
        warnings.warn(
            f"jacobian: rows reach beyond the given field of view of {field_of_view} px; recomputing uncompressed",
            stacklevel=2,
        )
        rows = _coloured_rows(output, y, wanted, max(height, width), chunk_size)
    return rows


def _coloured_rows(output: torch.Tensor, y: torch.Tensor, wanted: torch.Tensor, half: int, chunk_size: int) -> torch.Tensor:
    """Rows ``wanted`` of the Jacobian of ``output`` w.r.t. ``y``, assuming each row is zero outside
    the ``(2 half + 1)``-sided window around its pixel: pixels congruent modulo that pitch in both
    axes share a one-hot-sum cotangent, and each row is the summed gradient inside its window."""
    height, width = y.shape[-2:]
    pitch = 2 * half + 1
    pixel_rows, pixel_cols = wanted // width, wanted % width
    colours = (pixel_rows % pitch) * pitch + pixel_cols % pitch
    _, colour_index = torch.unique(colours, return_inverse=True)
    grid_rows = torch.arange(height, device=y.device)
    grid_cols = torch.arange(width, device=y.device)
    result = torch.empty(len(wanted), height * width, device=y.device, dtype=output.dtype)
    for first in range(0, int(colour_index.max()) + 1, chunk_size):
        members = torch.nonzero((colour_index >= first) & (colour_index < first + chunk_size)).flatten()
        slot = colour_index[members] - first
        count = int(slot.max()) + 1
        cotangents = torch.zeros(count, height * width, device=y.device, dtype=output.dtype)
        cotangents[slot, wanted[members]] = 1.0
        (grads,) = torch.autograd.grad(
            output, y, cotangents.view(count, *y.shape), retain_graph=True, is_grads_batched=True
        )
        inside_rows = (grid_rows[None, :] - pixel_rows[members, None]).abs() <= half
        inside_cols = (grid_cols[None, :] - pixel_cols[members, None]).abs() <= half
        window = inside_rows[:, :, None] & inside_cols[:, None, :]
        result[members] = (grads.detach().reshape(count, height, width)[slot] * window).reshape(len(members), -1)
    return result


def _agrees_with_jvp(denoiser: Denoiser, y: torch.Tensor, rows: torch.Tensor, wanted: torch.Tensor) -> bool:
    """Whether ``rows`` times a random direction equals the Jacobian-vector product along it, per
    row to within float32 rounding of the product (so a leak far smaller than the row is caught)."""
    direction = torch.randn(y.shape, generator=torch.Generator().manual_seed(0)).to(y).reshape(-1)
    _, exact = torch.func.jvp(denoiser, (y.detach(),), (direction.view(y.shape),))
    exact = exact.reshape(-1)[wanted]
    rounding = 256 * torch.finfo(rows.dtype).eps * (rows.abs() @ direction.abs() + exact.abs())
    return bool(((rows @ direction - exact).abs() <= rounding).all())


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
