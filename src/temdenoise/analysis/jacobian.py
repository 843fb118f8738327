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

A network that is a plain stack of local layers (same-size convolutions, per-channel
normalisations, ReLUs: DnCNN, BF-DnCNN, an ``nn.Sequential`` of them) takes a cheaper exact route,
:func:`jacobian_cone`. Row ``i`` is back-propagated through the layers of the stack only inside the
light cone of output pixel ``i``: a window around ``i`` that grows by the kernel radius at each
convolution, from one pixel at the output to the field of view at the input. The ReLU masks and
normalisation scales of the one forward pass are read inside each window. A ``D``-layer stack of
3x3 convolutions then spends ``sum_k (2k+1)^2`` (about ``(2D)^3 / 6``) window pixels per row instead
of ``D`` whole images: for the quick DnCNN (7 layers) on a 40x40 patch, 455 pixels instead of
11,200.
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from temdenoise.models.dncnn import DnCNN
from temdenoise.models.layers import BiasFreeBatchNorm2d

Denoiser = Callable[[torch.Tensor], torch.Tensor]
"""A map from a ``(1, 1, H, W)`` image to a ``(1, 1, H, W)`` image."""


def _as_batch(image: torch.Tensor | np.ndarray, device: str | torch.device | None = None) -> torch.Tensor:
    """``(H, W)`` array -> ``(1, 1, H, W)`` float32 tensor, detached."""
    tensor = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    if tensor.ndim != 2:
        raise ValueError(f"expected an (H, W) image, got shape {tuple(tensor.shape)}")
    return tensor.detach().to(device=device, dtype=torch.float32)[None, None]


def _require_eval(denoiser: Denoiser) -> None:
    """A module must be in eval mode: batch statistics would couple the rows."""
    if isinstance(denoiser, nn.Module) and denoiser.training:
        raise ValueError("jacobian: put the network in eval mode first (model.eval())")


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
    ``pixels`` (row-major indices) only those rows are computed, in that order. A plain stack of
    local layers goes through :func:`jacobian_cone` (``field_of_view`` is then not needed); any
    other denoiser through :func:`jacobian_vjp`. Both are exact.
    """
    if _conv_stack(denoiser) is not None:
        return jacobian_cone(denoiser, image, chunk_size, pixels)
    return jacobian_vjp(denoiser, image, chunk_size, pixels, field_of_view)


def _wanted_rows(pixels: Sequence[int] | None, size: int, device: torch.device) -> torch.Tensor:
    """Row-major indices of the rows to compute (all of them without ``pixels``), validated."""
    wanted = torch.arange(size) if pixels is None else torch.as_tensor(list(pixels), dtype=torch.long)
    if len(wanted) == 0 or wanted.min() < 0 or wanted.max() >= size:
        raise ValueError(f"jacobian: pixel indices must lie in [0, {size}), got {list(pixels or [])}")
    return wanted.to(device)


def jacobian_vjp(
    denoiser: Denoiser,
    image: torch.Tensor | np.ndarray,
    chunk_size: int = 64,
    pixels: Sequence[int] | None = None,
    field_of_view: int | None = None,
) -> torch.Tensor:
    """:func:`jacobian` of any denoiser from batched vector-Jacobian products. One forward pass,
    then batched vector-Jacobian products (``torch.autograd.grad`` with ``is_grads_batched``, i.e.
    vmap over the backward pass), ``chunk_size`` cotangents at a time; memory grows with
    ``chunk_size`` times the activations of one image. With ``field_of_view`` (the side in pixels
    of the denoiser's FoV, e.g. :func:`temdenoise.models.fov.measure_fov`), rows more than a FoV
    apart share a cotangent (see the module docstring). A module must be in eval mode (batch
    statistics would couple the products).
    """
    _require_eval(denoiser)
    y = _as_batch(image, _device_of(denoiser)).requires_grad_(True)
    output = denoiser(y)
    if output.shape != y.shape:
        raise ValueError(f"jacobian: the denoiser maps {tuple(y.shape)} to {tuple(output.shape)}; expected the same shape")
    height, width = y.shape[-2:]
    wanted = _wanted_rows(pixels, y.numel(), y.device)
    if field_of_view is not None and field_of_view < 1:
        raise ValueError(f"jacobian: field_of_view must be a positive number of pixels, got {field_of_view}")
    # Half-width of the window that holds a row's support wherever the FoV box sits around its
    # pixel (an even FoV is off-centre by one pixel, in a direction the caller need not know).
    half = max(height, width) if field_of_view is None else field_of_view // 2
    rows = _coloured_rows(output, y, wanted, half, chunk_size)
    if half < max(height, width) and not _agrees_with_jvp(denoiser, y, rows, wanted):
        warnings.warn(
            f"jacobian: rows reach beyond the given field of view of {field_of_view} px; recomputing uncompressed",
            stacklevel=2,
        )
        rows = _coloured_rows(output, y, wanted, max(height, width), chunk_size)
    return rows


def _conv_stack(denoiser: Denoiser) -> tuple[list[nn.Module], float, bool] | None:
    """``(layers, offset, residual)`` when ``denoiser`` is a plain stack of local layers, else None.

    The denoiser computes ``o + s(y - o)`` (``nn.Sequential``: ``o = 0``) or, residual,
    ``y - s(y - o)`` (a residual DnCNN), with ``s`` the layers in order: same-size convolutions (odd kernel,
    stride 1, zero padding of the kernel radius), per-channel normalisations, ReLUs. Hooks (e.g.
    GainTuning's gains) change what a layer computes, so a hooked network is not a plain stack."""
    if isinstance(denoiser, DnCNN):
        stack, offset, residual = denoiser.body, denoiser.offset, denoiser.residual
    elif isinstance(denoiser, nn.Sequential):
        stack, offset, residual = denoiser, 0.0, False
    else:
        return None
    if denoiser._forward_hooks or denoiser._forward_pre_hooks:
        return None
    layers: list[nn.Module] = []
    pending: list[nn.Module] = [stack]
    while pending:
        module = pending.pop(0)
        if module._forward_hooks or module._forward_pre_hooks:
            return None
        if isinstance(module, nn.Sequential):
            pending[:0] = list(module)
        elif isinstance(module, (nn.ReLU, nn.BatchNorm2d, BiasFreeBatchNorm2d)) or _same_size_conv(module):
            layers.append(module)
        else:
            return None
    return layers, offset, residual


def _same_size_conv(module: nn.Module) -> bool:
    if type(module) is not nn.Conv2d:
        return False
    kernel = module.kernel_size
    return (
        kernel[0] == kernel[1]
        and kernel[0] % 2 == 1
        and module.stride == (1, 1)
        and module.dilation == (1, 1)
        and module.groups == 1
        and module.padding == (kernel[0] // 2, kernel[0] // 2)
        and module.padding_mode == "zeros"
    )


def _window_index(rows: torch.Tensor, cols: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices, into an image padded by ``radius``, of the ``(2r+1)``-sided windows
    centred at pixels ``(rows, cols)``: shapes ``(N, 2r+1, 1)`` and ``(N, 1, 2r+1)``."""
    offsets = torch.arange(2 * radius + 1, device=rows.device)
    return (rows[:, None] + offsets)[:, :, None], (cols[:, None] + offsets)[:, None, :]


def _windows(field: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, radius: int) -> torch.Tensor:
    """``(N, C, 2r+1, 2r+1)`` windows of a ``(C, H, W)`` field centred at pixels ``(rows, cols)``,
    zero outside the image."""
    padded = F.pad(field, (radius, radius, radius, radius))
    window_rows, window_cols = _window_index(rows, cols, radius)
    return padded[:, window_rows, window_cols].transpose(0, 1)


def jacobian_cone(
    denoiser: nn.Module,
    image: torch.Tensor | np.ndarray,
    chunk_size: int = 64,
    pixels: Sequence[int] | None = None,
) -> torch.Tensor:
    """:func:`jacobian` of a plain stack of local layers (DnCNN, BF-DnCNN, an ``nn.Sequential``),
    back-propagated inside each output pixel's light cone (module docstring), ``chunk_size`` rows
    at a time. Exact: the same products as autograd's backward pass, restricted to where they are
    not zero."""
    structure = _conv_stack(denoiser)
    if structure is None:
        raise ValueError(f"jacobian_cone: {type(denoiser).__name__} is not a plain stack of convolutions, normalisations and ReLUs")
    _require_eval(denoiser)
    layers, offset, residual = structure
    y = _as_batch(image, _device_of(denoiser))
    height, width = y.shape[-2:]
    wanted = _wanted_rows(pixels, y.numel(), y.device)
    # One forward pass linearises every layer: a convolution is its weights, a normalisation its
    # per-channel scale (output for ones minus output for zeros), a ReLU its mask of active units.
    linear: list[tuple[str, torch.Tensor]] = []
    with torch.no_grad():
        activation = y - offset
        for layer in layers:
            if isinstance(layer, nn.Conv2d):
                linear.append(("conv", layer.weight))
            elif isinstance(layer, nn.ReLU):
                linear.append(("mask", (activation > 0).to(y.dtype)[0]))
            else:
                probe = torch.ones(2, activation.shape[1], 1, 1, device=y.device, dtype=y.dtype)
                probe[1] = 0.0
                scale = layer(probe)
                linear.append(("scale", (scale[0] - scale[1])[None]))
            activation = F.relu(activation) if isinstance(layer, nn.ReLU) else layer(activation)
    if activation.shape != y.shape:
        raise ValueError(f"jacobian: the denoiser maps {tuple(y.shape)} to {tuple(activation.shape)}; expected the same shape")
    reach = sum(weight.shape[-1] // 2 for kind, weight in linear if kind == "conv")
    inside = torch.ones(1, height, width, device=y.device, dtype=y.dtype)
    result = torch.empty(len(wanted), height * width, device=y.device, dtype=y.dtype)
    with torch.no_grad():
        for first in range(0, len(wanted), chunk_size):
            chunk = wanted[first : first + chunk_size]
            rows, cols = chunk // width, chunk % width
            cotangent = torch.ones(len(chunk), 1, 1, 1, device=y.device, dtype=y.dtype)
            radius = 0
            for kind, value in reversed(linear):
                if kind == "conv":
                    # The adjoint of a same-size convolution, on a window one kernel radius wider;
                    # positions outside the image are zero padding and take no gradient.
                    cotangent = F.conv_transpose2d(cotangent, value)
                    radius += value.shape[-1] // 2
                    cotangent = cotangent * _windows(inside, rows, cols, radius)
                elif kind == "mask":
                    cotangent = cotangent * _windows(value, rows, cols, radius)
                else:
                    cotangent = cotangent * value
            # Place each window at its pixel in an image padded by the reach, then crop the padding.
            placed = torch.zeros(len(chunk), height + 2 * reach, width + 2 * reach, device=y.device, dtype=y.dtype)
            window_rows, window_cols = _window_index(rows, cols, reach)
            placed[torch.arange(len(chunk), device=y.device)[:, None, None], window_rows, window_cols] = cotangent[:, 0]
            block = placed[:, reach : reach + height, reach : reach + width].reshape(len(chunk), -1)
            if residual:
                block = -block
                block[torch.arange(len(chunk), device=y.device), chunk] += 1.0
            result[first : first + len(chunk)] = block
    return result


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
