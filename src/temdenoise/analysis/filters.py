"""Equivalent filters: the adaptive linear filter a denoiser applies at chosen pixels, per noise level.

Mohan, Kadkhodaie, Simoncelli & Fernandez-Granda (ICLR 2020), figure 4: row ``i`` of the Jacobian
``A_y`` is the weighting of the noisy input that gives output pixel ``i`` (for a bias-free network
exactly, since ``f(y) = A_y y``). Filters adapt to the image (they follow an edge, stay wide in a
flat region) and widen as the noise grows. On TEM images a large-field-of-view UNet spreads its
filter over equivalent atomic columns of the lattice (Mohan et al., IEEE TCI 2022).

Pixels are chosen automatically on the clean image, away from the border: ``edge`` (largest
gradient magnitude), ``flat`` (smallest local standard deviation), ``column`` (strongest blob of
the Laplacian of Gaussian: an atomic column on TEM images).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from scipy import ndimage  # noqa: E402
from torch import nn  # noqa: E402

from temdenoise.analysis.jacobian import filters_at  # noqa: E402
from temdenoise.analysis.net_bias import central_crop  # noqa: E402
from temdenoise.noise import apply_condition, parse_condition  # noqa: E402
from temdenoise.plots import save_figure  # noqa: E402
from temdenoise.runtime import derive_seed  # noqa: E402

PIXEL_KINDS = ("edge", "flat", "column")
MARKER_COLOURS = {"edge": "tab:red", "flat": "tab:cyan", "column": "tab:orange"}


def choose_pixel(clean: np.ndarray, kind: str, margin: int, scale: float = 1.5) -> tuple[int, int]:
    """The ``(row, col)`` of ``clean`` that best represents ``kind``, at least ``margin`` from the border."""
    image = np.asarray(clean, dtype=np.float64)
    if kind == "edge":
        score = ndimage.gaussian_gradient_magnitude(image, scale)
    elif kind == "flat":
        mean = ndimage.uniform_filter(image, 7)
        score = -np.sqrt(np.clip(ndimage.uniform_filter(image**2, 7) - mean**2, 0, None))
    elif kind == "column":
        score = np.abs(ndimage.gaussian_laplace(image, 2 * scale))
    else:
        raise ValueError(f"unknown pixel kind {kind!r} (expected one of {', '.join(PIXEL_KINDS)})")
    height, width = image.shape
    margin = min(margin, (min(height, width) - 1) // 2)
    inner = np.full_like(score, -np.inf)
    inner[margin : height - margin, margin : width - margin] = score[margin : height - margin, margin : width - margin]
    row, col = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return int(row), int(col)


def filter_panels(
    model: nn.Module,
    clean: np.ndarray,
    pixel_size: float,
    conditions: Sequence[str],
    kinds: Sequence[str],
    crop: int,
    seed: int,
) -> tuple[np.ndarray, dict[str, tuple[int, int]], list[dict[str, Any]]]:
    """Clean crop, chosen pixels and, per condition, the noisy and denoised crops and the filters."""
    model = model.eval()
    device = next(model.parameters()).device
    frame = clean[0] if clean.ndim == 3 else clean
    x = central_crop(np.asarray(frame, dtype=np.float32), crop, getattr(model, "size_multiple", 1))
    pixels = {kind: choose_pixel(x, kind, margin=min(x.shape) // 6) for kind in kinds}
    panels = []
    for name in conditions:
        rng = np.random.default_rng(derive_seed(seed, "filters", name))
        y = apply_condition(x, parse_condition(name), rng, pixel_size)
        with torch.no_grad():
            denoised = model(torch.from_numpy(y).to(device)[None, None])[0, 0].cpu().numpy()
        filters = filters_at(model, y, list(pixels.values()))
        panels.append({"noise": name, "noisy": y, "denoised": denoised, "filters": dict(zip(kinds, filters))})
    return x, pixels, panels


def _window(image: np.ndarray, centre: tuple[int, int], side: int) -> np.ndarray:
    """A ``side``-sided window of ``image`` centred on ``centre`` (zero outside the image)."""
    half = side // 2
    padded = np.pad(image, half)
    row, col = centre
    return padded[row : row + 2 * half + 1, col : col + 2 * half + 1]


def plot_filters(
    clean: np.ndarray,
    pixels: Mapping[str, tuple[int, int]],
    panels: Sequence[Mapping[str, Any]],
    window: int,
    title: str,
    png: str,
    svg: str,
) -> None:
    """Rows = noise levels; columns = noisy, denoised (chosen pixels marked), then one filter per pixel."""
    low, high = np.percentile(clean, [0.5, 99.5])
    columns = 2 + len(pixels)
    figure, axes = plt.subplots(len(panels), columns, figsize=(2.3 * columns, 2.4 * len(panels)), squeeze=False)
    for axes_row, panel in zip(axes, panels):
        for axis, key in zip(axes_row[:2], ("noisy", "denoised")):
            axis.imshow(panel[key], cmap="gray", vmin=low, vmax=high)
            for kind, (row, col) in pixels.items():
                axis.plot(col, row, "o", mfc="none", mec=MARKER_COLOURS[kind], ms=6, mew=1.5)
            axis.set_title(f"{key} ({panel['noise']})", fontsize=8)
        for axis, (kind, centre) in zip(axes_row[2:], pixels.items()):
            weights = _window(panel["filters"][kind], centre, window)
            scale = float(np.abs(weights).max()) or 1.0
            axis.imshow(weights, cmap="RdBu_r", vmin=-scale, vmax=scale)
            axis.set_title(f"{kind} filter (max {scale:.2g})", fontsize=8, color=MARKER_COLOURS[kind])
        for axis in axes_row:
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle(title, fontsize=10)
    save_figure(figure, png, svg)


def write_filter_figure(
    entry: Mapping[str, Any],
    weights: str,
    clean_path: str,
    metadata_path: str,
    settings: Mapping[str, Any],
    title: str,
    seed: int,
    device: str,
    png: str,
    svg: str,
) -> None:
    """Rule body: the equivalent-filter figure of one trained network on one test image."""
    from temdenoise.io import StackReader
    from temdenoise.models import load_trained
    from temdenoise.noise import item_pixel_sizes

    index = settings["image"]
    with StackReader(clean_path) as stack:  # the one image analysed, not the split
        if index >= len(stack):
            raise ValueError(f"equivalent filters: image {index} requested, the test split has {len(stack)}")
        pixel_size = float(item_pixel_sizes(pd.read_csv(metadata_path), len(stack))[index])
        image = stack[index]
    model = load_trained(weights, dict(entry), device)
    x, pixels, panels = filter_panels(
        model, image, pixel_size, settings["noise"], settings["pixels"], settings["crop"], seed
    )
    plot_filters(x, pixels, panels, settings["window"], title, png, svg)
