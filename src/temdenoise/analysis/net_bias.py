"""Net bias and effective dimensionality of trained denoisers across noise levels.

Mohan, Kadkhodaie, Simoncelli & Fernandez-Granda (ICLR 2020), figures 2 and 6: at a noisy patch
``y`` the denoiser is ``f(y) = A_y y + b_y``. The norm of the net bias ``b_y`` stays small inside the
training range and grows outside it for a network with biases; it is exactly zero for a bias-free
network. The effective dimensionality of ``A_y`` (sum of squared singular values) falls roughly
as ``1 / sigma``: the denoiser projects onto a smaller signal subspace as the noise grows.

Both are computed from one full Jacobian per (model, noise level, patch), on central crops of the
test images with seeded noise.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from temdenoise.analysis.jacobian import effective_dimensionality, jacobian, singular_values  # noqa: E402
from temdenoise.io import save_table  # noqa: E402
from temdenoise.models.fov import measure_fov  # noqa: E402
from temdenoise.noise import apply_condition, parse_condition  # noqa: E402
from temdenoise.plots import save_figure  # noqa: E402
from temdenoise.runtime import derive_seed  # noqa: E402

STATISTICS = ["noise_norm", "residual_norm", "net_bias_norm", "effective_dim"]


def central_crop(image: np.ndarray, side: int, multiple: int = 1) -> np.ndarray:
    """The central ``side x side`` crop (``side`` rounded down to ``multiple``; smaller images: whole)."""
    height, width = image.shape[-2:]
    crop_h = max(multiple, min(side, height) // multiple * multiple)
    crop_w = max(multiple, min(side, width) // multiple * multiple)
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return image[..., top : top + crop_h, left : left + crop_w]


def jacobian_statistics(
    model: nn.Module,
    clean: Sequence[np.ndarray],
    pixel_sizes: Sequence[float],
    conditions: Sequence[str],
    patch: int,
    seed: int,
    chunk_size: int = 64,
) -> pd.DataFrame:
    """One row per (condition, image): norms of the noise ``y - x``, the residual ``y - f(y)`` and
    the net bias ``f(y) - A_y y``, and the effective dimensionality of ``A_y``, at a central
    ``patch``-sided crop of each clean image (video: its first frame) with seeded noise.

    For a model with an ``offset`` level ``o`` the net bias is taken about it,
    ``f(y) - o - A_y (y - o)``: the constant the network adds beyond its fixed reference level."""
    model = model.eval()
    device = next(model.parameters()).device
    multiple = getattr(model, "size_multiple", 1)
    field_of_view = measure_fov(model)
    level = float(getattr(model, "offset", 0.0))
    rows = []
    for name in conditions:
        condition = parse_condition(name)
        for index, (image, pixel_size) in enumerate(zip(clean, pixel_sizes)):
            frame = image[0] if image.ndim == 3 else image
            x = central_crop(np.asarray(frame, dtype=np.float32), patch, multiple)
            rng = np.random.default_rng(derive_seed(seed, "jacobian", name, index))
            y = apply_condition(x, condition, rng, float(pixel_size))
            jac = jacobian(model, y, chunk_size=chunk_size, field_of_view=field_of_view)
            y_t = torch.from_numpy(y).to(device)
            with torch.no_grad():
                out = model(y_t[None, None])[0, 0]
            bias = (out - level).reshape(-1) - jac @ (y_t - level).reshape(-1)
            rows.append(
                {
                    "noise": name,
                    "level": condition.level,
                    "image": index,
                    "pixels": y.size,
                    "noise_norm": float(np.linalg.norm(y - x)),
                    "residual_norm": float((y_t - out).norm()),
                    "net_bias_norm": float(bias.norm()),
                    "output_norm": float(out.norm()),
                    "effective_dim": effective_dimensionality(singular_values(jac)),
                }
            )
    return pd.DataFrame(rows)


def write_jacobian_statistics(
    entry: Mapping[str, Any],
    weights: str,
    clean_path: str,
    metadata_path: str,
    conditions: Sequence[str],
    settings: Mapping[str, Any],
    model_name: str,
    seed: int,
    device: str,
    out: str,
) -> None:
    """Rule body: load a trained network and write :func:`jacobian_statistics` of its test crops."""
    from temdenoise.models import load_trained
    from temdenoise.train.supervised import load_split

    clean, sizes = load_split(clean_path, metadata_path, settings["images"])  # the items analysed, not the split
    model = load_trained(weights, dict(entry), device)
    table = jacobian_statistics(model, clean, sizes, conditions, settings["patch"], seed, settings["chunk_size"])
    table.insert(0, "method", model_name)
    save_table(out, table)


def _level_axis(axis: plt.Axes, kind: str) -> None:
    axis.set_xlabel("dose (e/Å²)" if kind == "poisson" else "σ (0..255 scale)")
    if kind == "poisson":
        axis.set_xscale("log")


def _shade(axis: plt.Axes, noise_range: Mapping[str, Any] | None, levels: np.ndarray, kind: str) -> None:
    if noise_range:
        low, high = noise_range["range"]
        axis.axvspan(max(low, levels.min() / 2) if kind == "poisson" else low, high, color="0.9")


def plot_net_bias(
    table: pd.DataFrame, train_noise: Mapping[str, Mapping[str, Any]], dataset: str, png: str, svg: str
) -> None:
    """Mean norms of noise, residual and net bias vs noise level, one panel per model."""
    kind = parse_condition(table["noise"].iloc[0]).kind
    means = table.groupby(["method", "level"], sort=False)[STATISTICS].mean().reset_index()
    models = list(dict.fromkeys(table["method"]))
    figure, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models), 3.2), squeeze=False, sharey=True)
    for axis, model in zip(axes[0], models):
        part = means[means["method"] == model].sort_values("level")
        _shade(axis, train_noise.get(model), part["level"].to_numpy(), kind)
        axis.plot(part["level"], part["noise_norm"], "k--", label="‖noise‖")
        axis.plot(part["level"], part["residual_norm"], "s-", label="‖y − f(y)‖")
        axis.plot(part["level"], part["net_bias_norm"], "o-", color="tab:red", label="‖net bias‖")
        axis.set_title(model, fontsize=9)
        _level_axis(axis, kind)
    axes[0][0].set_ylabel(f"mean ℓ2 norm over {table['pixels'].iloc[0]}-pixel patches")
    axes[0][-1].legend(fontsize=7)
    figure.suptitle(f"{dataset}: net bias b_y = f(y) − A_y y (grey: training range)", fontsize=10, y=1.04)
    save_figure(figure, png, svg)


def plot_effective_dimensionality(
    table: pd.DataFrame, train_noise: Mapping[str, Mapping[str, Any]], dataset: str, png: str, svg: str
) -> None:
    """Mean effective dimensionality of ``A_y`` vs noise level, one line per model (log-log)."""
    kind = parse_condition(table["noise"].iloc[0]).kind
    means = table.groupby(["method", "level"], sort=False)["effective_dim"].mean().reset_index()
    figure, axis = plt.subplots(figsize=(4.4, 3.4))
    for model in dict.fromkeys(table["method"]):
        part = means[means["method"] == model].sort_values("level")
        axis.plot(part["level"], part["effective_dim"], "o-", label=model)
    _level_axis(axis, kind)
    axis.set_yscale("log")
    if kind == "gaussian":
        axis.set_xscale("log")
    axis.set_ylabel("effective dimensionality Σ s_i²")
    axis.set_title(f"{dataset}: subspace of A_y ({table['pixels'].iloc[0]}-pixel patches)", fontsize=9)
    axis.legend(fontsize=7)
    save_figure(figure, png, svg)


def run_jacobian_plots(
    stat_paths: Sequence[str],
    train_noise: Mapping[str, Mapping[str, Any]],
    dataset: str,
    outputs: Mapping[str, str],
) -> pd.DataFrame:
    """Merge per-model statistics into one CSV and draw the net-bias and dimensionality plots."""
    table = pd.concat([pd.read_csv(path) for path in stat_paths], ignore_index=True)
    save_table(outputs["csv"], table)
    plot_net_bias(table, train_noise, dataset, outputs["net_bias_png"], outputs["net_bias_svg"])
    plot_effective_dimensionality(table, train_noise, dataset, outputs["dim_png"], outputs["dim_svg"])
    return table
