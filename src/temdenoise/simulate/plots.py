"""Figures of a simulated dataset: a montage of clean images, or a strip of one video's frames."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from temdenoise.io import StackReader, atomic_path  # noqa: E402


def _label(row: pd.Series) -> str:
    return f"{row['shape']} {row['size_nm']:g} nm\n{row['defocus']:.0f} A, {row['contrast_class']}"


def plot_dataset(npz_path: str | os.PathLike, csv_path: str | os.PathLike, png_path: str | os.PathLike,
                 svg_path: str | os.PathLike, max_images: int = 12) -> None:
    """Montage of up to ``max_images`` clean images of an image dataset (one per row of the
    metadata, in order, with shape, size, defocus and contrast class), or the frames of the first
    video of a video dataset with its true displacement. Reads those items only, not the split."""
    with StackReader(npz_path) as stack:
        arrays = stack[:max_images]
    table = pd.read_csv(csv_path)
    if arrays and arrays[0].ndim == 3:
        frames = arrays[0]
        rows = table[table["item"] == 0].sort_values("frame")
        fig, axes = plt.subplots(1, len(frames), figsize=(2.0 * len(frames), 2.5), squeeze=False)
        for ax, frame, (_, row) in zip(axes[0], frames, rows.iterrows()):
            ax.imshow(frame, cmap="gray")
            ax.set_title(f"t={row['frame']}  d=({row['displacement_row_px']:.2f}, "
                         f"{row['displacement_col_px']:.2f}) px", fontsize=7)
        fig.suptitle(f"{rows.iloc[0]['structure_id']}: {_label(rows.iloc[0]).replace(chr(10), ', ')}", fontsize=8)
    else:
        shown = min(max_images, len(arrays))
        columns = min(4, max(shown, 1))
        grid_rows = max(1, int(np.ceil(shown / columns)))
        fig, axes = plt.subplots(grid_rows, columns, figsize=(2.2 * columns, 2.5 * grid_rows), squeeze=False)
        for index, ax in enumerate(axes.flat):
            if index < shown:
                ax.imshow(arrays[index], cmap="gray")
                ax.set_title(_label(table.iloc[index]), fontsize=7)
    for ax in fig.axes:
        ax.axis("off")
    fig.tight_layout()
    for path in (png_path, svg_path):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format=str(path).rsplit(".", 1)[-1])
    plt.close(fig)
