"""Figures of the benchmark (matplotlib + seaborn), saved as PNG and SVG."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from mpl_toolkits.axes_grid1.inset_locator import inset_axes, mark_inset  # noqa: E402

from temdenoise.io import atomic_path  # noqa: E402
from temdenoise.noise import parse_condition  # noqa: E402


def save_figure(figure: plt.Figure, png: str, svg: str | None = None) -> None:
    """Save ``figure`` atomically as PNG (and SVG) and close it."""
    for path in filter(None, (png, svg)):
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=Path(path).suffix[1:], dpi=150, bbox_inches="tight")
    plt.close(figure)


def psnr_vs_noise(tidy: pd.DataFrame, png: str, svg: str) -> None:
    """PSNR (mean and 95% interval over images) against noise level, one panel per dataset and noise kind."""
    parsed = tidy["noise"].map(parse_condition)
    data = tidy.assign(kind=parsed.map(lambda c: c.kind), level=parsed.map(lambda c: c.level))
    data["panel"] = data["dataset"] + " (" + data["kind"] + ")"
    grid = sns.relplot(
        data=data, x="level", y="psnr", hue="method", style="method", col="panel", kind="line",
        markers=True, dashes=False, facet_kws={"sharex": False, "sharey": False}, height=3.2,
    )
    for panel, axis in grid.axes_dict.items():
        kind = panel.rsplit("(", 1)[1].rstrip(")")
        axis.set_xlabel("dose (e/Å²)" if kind == "poisson" else "σ (0..255 scale)")
        if kind == "poisson":
            axis.set_xscale("log")
    grid.set_ylabels("PSNR (dB)")
    save_figure(grid.figure, png, svg)


def example_panel(
    images: Sequence[tuple[str, np.ndarray]], png: str, svg: str, inset_fraction: float = 0.25
) -> None:
    """Clean / noisy / each method side by side with a zoomed inset, one shared grey scale."""
    reference = images[0][1]
    low, high = np.percentile(reference, [0.5, 99.5])
    figure, axes = plt.subplots(1, len(images), figsize=(2.6 * len(images), 2.9))
    height, width = reference.shape
    side = max(4, int(inset_fraction * min(height, width)))
    top, left = (height - side) // 2, (width - side) // 2
    for axis, (title, image) in zip(np.atleast_1d(axes), images):
        axis.imshow(image, cmap="gray", vmin=low, vmax=high)
        axis.set_title(title, fontsize=9)
        axis.set_axis_off()
        inset = inset_axes(axis, width="40%", height="40%", loc="lower right", borderpad=0.3)
        inset.imshow(image, cmap="gray", vmin=low, vmax=high)
        inset.set_xlim(left, left + side)
        inset.set_ylim(top + side, top)
        inset.set_xticks([])
        inset.set_yticks([])
        for spine in inset.spines.values():
            spine.set_edgecolor("yellow")
        mark_inset(axis, inset, loc1=2, loc2=4, edgecolor="yellow", linewidth=0.8)
    save_figure(figure, png, svg)
