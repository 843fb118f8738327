"""UDVD analyses: spatio-temporal equivalent filters, implicit motion compensation, single-video study.

Equivalent filters (Sheth, Mohan et al., ICCV 2021, section 6): the gradient of one output pixel
with respect to every input frame. For a bias-free network the output is exactly the sum over
frames of these filters applied to the input (f(y) = A_y y), so each frame's filter says where the
network takes its evidence from. If the content moved by ``d`` pixels between the centre frame
and frame ``t + k``, a motion-compensating network centres its frame-``t + k`` filter ``d``
pixels away from the output pixel: the filter centroid tracks the motion without optical flow.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from temdenoise.metrics import CONVENTION, psnr
from temdenoise.models.udvd import denoise_video, frame_windows
from temdenoise.train.engine import TrainSettings
from temdenoise.train.self_supervised import fit_single_video

log = logging.getLogger("temdenoise")


def equivalent_filters(
    model: nn.Module, window: np.ndarray, pixels: Sequence[tuple[int, int]], device: str = "cpu"
) -> np.ndarray:
    """Gradients of the output at ``pixels`` w.r.t. a ``(frames, H, W)`` input window: (P, frames, H, W)."""
    model.eval()
    source = torch.as_tensor(np.asarray(window, dtype=np.float32))[None].to(device).requires_grad_(True)
    output = model(source)[0, 0]
    rows = torch.as_tensor([p[0] for p in pixels])
    cols = torch.as_tensor([p[1] for p in pixels])
    # one-hot cotangents, all pixels in one batched backward pass
    cotangents = torch.zeros(len(pixels), *output.shape, device=output.device)
    cotangents[torch.arange(len(pixels)), rows, cols] = 1.0
    (grads,) = torch.autograd.grad(output, source, cotangents, is_grads_batched=True)
    return grads[:, 0].detach().cpu().numpy()


def filter_centroids(filters: np.ndarray, pixels: Sequence[tuple[int, int]], radius: int) -> np.ndarray:
    """Centroid of the positive part of each frame's filter within ``radius`` of its pixel,
    relative to the pixel: (P, frames, 2) as (rows down, columns right); NaN for a frame whose
    filter has no positive weight there."""
    out = np.zeros((len(pixels), filters.shape[1], 2))
    for p, (row, col) in enumerate(pixels):
        top, left = max(row - radius, 0), max(col - radius, 0)
        crop = np.clip(filters[p, :, top : row + radius + 1, left : col + radius + 1], 0, None)
        rr, cc = np.mgrid[top : top + crop.shape[1], left : left + crop.shape[2]]
        mass = crop.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[p, :, 0] = (crop * rr).sum(axis=(1, 2)) / mass - row
            out[p, :, 1] = (crop * cc).sum(axis=(1, 2)) / mass - col
        out[p, mass <= 0] = np.nan
    return out


def grid_pixels(height: int, width: int, margin: int, count: int) -> list[tuple[int, int]]:
    """``count`` x ``count`` pixels on a regular grid at least ``margin`` pixels from the border."""
    rows = np.linspace(margin, height - 1 - margin, count).round().astype(int)
    cols = np.linspace(margin, width - 1 - margin, count).round().astype(int)
    return [(int(r), int(c)) for r in rows for c in cols]


def motion_compensation(
    model: nn.Module,
    noisy_video: np.ndarray,
    displacement: np.ndarray,
    centre_frames: Sequence[int],
    pixels: Sequence[tuple[int, int]],
    radius: int,
    device: str = "cpu",
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Filter-centroid shift vs true displacement for every (centre frame, input frame, pixel).

    ``displacement``: (T, 2) true position of the content in each frame (rows down, columns
    right, pixels). The true shift of input frame ``t + k`` for centre frame ``t`` is
    ``displacement[t + k] - displacement[t]``. Returns the table (one row per centre frame, offset
    ``k`` and pixel, with ``error_px`` the Euclidean distance) and the filters of the first centre
    frame and pixel for the figure.
    """
    half = model.frames // 2
    records, example = [], {}
    for t in centre_frames:
        if not half <= t < len(noisy_video) - half:
            raise ValueError(f"centre frame {t} needs {half} frames on each side (video of {len(noisy_video)})")
        window = frame_windows(noisy_video, model.frames, [t])[0]
        filters = equivalent_filters(model, window, pixels, device)
        centroids = filter_centroids(filters, pixels, radius)
        if not example:
            example = {"filters": filters[0], "pixel": np.asarray(pixels[0]), "centroids": centroids[0],
                       "true": displacement[t - half : t + half + 1] - displacement[t]}
        for k in range(-half, half + 1):
            true = displacement[t + k] - displacement[t]
            for p, pixel in enumerate(pixels):
                est = centroids[p, k + half]
                records.append({"centre_frame": t, "offset": k, "row": pixel[0], "col": pixel[1],
                                "true_drow": true[0], "true_dcol": true[1], "est_drow": est[0], "est_dcol": est[1],
                                "error_px": float(np.hypot(*(est - true)))})
    return pd.DataFrame(records), example


def augmentation_study(
    entry: dict[str, Any],
    clean_videos: Sequence[np.ndarray],
    noisy_videos: Sequence[np.ndarray],
    settings: TrainSettings,
    variants: Sequence[dict[str, Any]],
    domain: str,
    validation_frames: int,
    device: str = "cpu",
    seed: int = 0,
) -> pd.DataFrame:
    """Train one UDVD per (video, variant) on that noisy video alone; PSNR of the denoised video.

    ``variants``: dicts with ``name``, ``flips``, ``time_reversal`` and ``early_stopping`` (bool).
    The clean video is read only to score the result, never for training or selection.
    """
    records = []
    for index, (clean, noisy) in enumerate(zip(clean_videos, noisy_videos)):
        for variant in variants:
            model, result = fit_single_video(
                entry, noisy, settings, bool(variant["flips"]), bool(variant["time_reversal"]),
                bool(variant["early_stopping"]), validation_frames, device, seed + index,
            )
            score = psnr(clean, denoise_video(model, noisy, device), domain)
            log.info("video %d %s: %.2f dB (%d epochs)", index, variant["name"], score, len(result.history))
            records.append({"video": index, "variant": variant["name"], "flips": variant["flips"],
                            "time_reversal": variant["time_reversal"], "early_stopping": variant["early_stopping"],
                            "epochs": len(result.history), "best_epoch": result.best_epoch, "psnr": score,
                            "noisy_psnr": psnr(clean, noisy, domain)})
    return pd.DataFrame(records)


# -- workflow entry points (one per rule of the UDVD section of workflow/rules/analyze.smk) ----

AUGMENTATION_VARIANTS = tuple(
    {"name": f"{aug}{' + ES' if es else ''}", "flips": flips, "time_reversal": reverse, "early_stopping": es}
    for es in (False, True)
    for aug, flips, reverse in (("no aug", False, False), ("F", True, False), ("F + TR", True, True))
)
"""The seed's six single-video settings: no augmentation / flips / flips + time reversal, x early stopping."""


def udvd_claim_pairs(entries: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """The UDVD table's named comparisons: each UDVD vs every UDVD with fewer frames (same training
    noise), then each UDVD vs the supervised (biased) DnCNNs and vs the Wiener filters."""
    def of(family: str) -> list[str]:
        return [m for m, e in entries.items() if e["family"] == family and not e.get("params", {}).get("bias_free")]

    frames = {m: entries[m].get("params", {}).get("frames", 1) for m in of("udvd")}
    fewer = [(a, b) for a in frames for b in frames
             if frames[a] > frames[b] and entries[a].get("train_noise") == entries[b].get("train_noise")]
    return fewer + [(u, other) for u in frames for other in (*of("dncnn"), *of("wiener"))]


def write_udvd_table(
    metric_paths: Sequence[str],
    frame_paths: Sequence[str],
    entries: dict[str, dict[str, Any]],
    csv: str,
    summary_csv: str,
    markdown: str,
    latex: str,
    pairs_csv: str,
) -> None:
    """The UDVD table: PSNR mean +- std over test videos of every method on every condition of the
    video dataset, and paired differences over test frames (each method vs the next-ranked one and
    :func:`udvd_claim_pairs`). Frames of one video are not independent, so the intervals are
    narrower than over independent images."""
    from temdenoise.benchmark import collect_metrics, write_tables

    write_tables(collect_metrics(metric_paths), csv, summary_csv, markdown, latex, pairs_csv,
                 items=collect_metrics(frame_paths), named=udvd_claim_pairs(entries))


def _short_videos(stack: Sequence[np.ndarray], videos: int, frames: int, crop: int) -> list[np.ndarray]:
    """The first ``videos`` videos, their first ``frames`` frames (0 = all), central ``crop`` (0 = all)."""
    out = []
    for video in stack[: videos or len(stack)]:
        video = video[: frames or len(video)]
        if crop:
            top, left = (video.shape[1] - crop) // 2, (video.shape[2] - crop) // 2
            video = video[:, top : top + crop, left : left + crop]
        out.append(np.ascontiguousarray(video))
    return out


def run_augmentation_study(
    entry: dict[str, Any],
    recipe: dict[str, Any],
    clean_path: str,
    noisy_path: str,
    section: dict[str, Any],
    domain: str,
    device: str,
    seed: int,
    csv: str,
    markdown: str,
) -> None:
    """Single-video UDVD with/without augmentation and early stopping (``section``: experiments.udvd.augmentation)."""
    from temdenoise.io import load_stack, save_table, save_text

    videos, frames, crop = section.get("videos", 1), section.get("frames", 0), section.get("crop", 0)
    clean = _short_videos(load_stack(clean_path), videos, frames, crop)
    noisy = _short_videos(load_stack(noisy_path), videos, frames, crop)
    settings = TrainSettings.from_config(recipe)
    table = augmentation_study(entry, clean, noisy, settings, AUGMENTATION_VARIANTS, domain,
                               section.get("validation_frames", 2), device, seed)
    save_table(csv, table)
    order = [v["name"] for v in AUGMENTATION_VARIANTS]
    summary = (table.groupby("variant")["psnr"].agg(["mean", "std"]).reindex(order).fillna(0.0)
               .rename(columns={"mean": "PSNR mean (dB)", "std": "PSNR std (dB)"}))
    noisy_psnr = table.drop_duplicates("video")["noisy_psnr"].mean()
    save_text(markdown, "# UDVD trained on a single noisy video\n\n"
              f"{len(clean)} video(s) of {clean[0].shape[0]} frames of {clean[0].shape[1]} x {clean[0].shape[2]} px, "
              f"noisy input {noisy_psnr:.2f} dB. F = spatial flips, TR = time reversal, ES = early stopping on "
              f"held-out noisy frames (no clean data). PSNR convention: {CONVENTION['unit']}.\n\n" + summary.to_markdown(floatfmt=".2f") + "\n")


def video_displacement(metadata: pd.DataFrame, item: int) -> np.ndarray:
    """(T, 2) true displacement (rows down, columns right, px) of video ``item`` from its metadata."""
    columns = ["displacement_row_px", "displacement_col_px"]
    missing = [c for c in ["item", "frame", *columns] if c not in metadata]
    if missing:
        raise KeyError(f"video metadata lacks the column(s) {missing}")
    rows = metadata[metadata["item"] == item].sort_values("frame")
    if rows.empty:
        raise ValueError(f"no metadata rows for video {item}")
    return rows[columns].to_numpy(dtype=float)


def run_motion_study(
    entry: dict[str, Any],
    weights: str,
    noisy_path: str,
    metadata_path: str,
    section: dict[str, Any],
    device: str,
    csv: str,
    markdown: str,
    figure_path: str,
) -> None:
    """Equivalent filters of a trained multi-frame UDVD on one noisy test video vs the true drift."""
    from temdenoise.io import load_stack, save_table, save_text
    from temdenoise.models import load_trained

    model = load_trained(weights, entry, device)
    if model.frames < 3:
        raise ValueError(f"experiments.udvd.motion.model must be a multi-frame UDVD, got {model.frames} frame(s)")
    item = section.get("video", 0)
    video = load_stack(noisy_path)[item]
    displacement = video_displacement(pd.read_csv(metadata_path), item)
    half = model.frames // 2
    pixels = grid_pixels(video.shape[1], video.shape[2], section.get("margin", 16), section.get("pixels", 3))
    table, example = motion_compensation(model, video, displacement, range(half, len(video) - half), pixels,
                                         section.get("radius", 6), device)
    save_table(csv, table)
    moving = table[table["offset"] != 0]
    moving = moving.assign(true_shift_px=np.hypot(moving["true_drow"], moving["true_dcol"]))
    summary = moving.groupby("offset").agg(true_shift_px=("true_shift_px", "mean"),
                                           error_px_mean=("error_px", "mean"), error_px_median=("error_px", "median"))
    save_text(markdown, "# UDVD implicit motion compensation\n\n"
              f"Centroid (positive part, radius {section.get('radius', 6)} px) of the equivalent filter of each "
              f"input frame vs the true displacement of the content, {len(pixels)} pixels x "
              f"{len(video) - 2 * half} centre frames of test video {item}. Overall error: "
              f"{moving['error_px'].mean():.3f} px mean, {moving['error_px'].median():.3f} px median.\n\n"
              + summary.to_markdown(floatfmt=".3f") + "\n")
    _motion_figure(example, moving, figure_path)


def _motion_figure(example: dict[str, np.ndarray], moving: pd.DataFrame, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from temdenoise.io import atomic_path

    filters, (row, col) = example["filters"], example["pixel"]
    frames, radius = filters.shape[0], 8
    figure, axes = plt.subplots(1, frames + 1, figsize=(2.6 * (frames + 1), 2.8))
    for k, axis in enumerate(axes[:frames]):
        crop = filters[k, max(row - radius, 0) : row + radius + 1, max(col - radius, 0) : col + radius + 1]
        limit = np.abs(filters).max() or 1.0
        axis.imshow(crop, cmap="RdBu_r", vmin=-limit, vmax=limit,
                    extent=(-radius - 0.5, radius + 0.5, radius + 0.5, -radius - 0.5))
        true, est = example["true"][k], example["centroids"][k]
        axis.plot(true[1], true[0], "k+", markersize=10, label="true shift")
        axis.plot(est[1], est[0], "gx", markersize=8, label="filter centroid")
        axis.set_title(f"frame t{k - frames // 2:+d}" if k != frames // 2 else "frame t")
        axis.set_xticks([]), axis.set_yticks([])
    axes[0].legend(loc="lower left", fontsize=7)
    scatter = axes[-1]
    for name, true, est in (("rows", "true_drow", "est_drow"), ("columns", "true_dcol", "est_dcol")):
        scatter.scatter(moving[true], moving[est], s=8, alpha=0.6, label=name)
    span = np.nanmax(np.abs(moving[["true_drow", "true_dcol", "est_drow", "est_dcol"]].to_numpy())) + 0.5
    scatter.plot([-span, span], [-span, span], "k--", linewidth=0.8)
    scatter.set(xlabel="true shift (px)", ylabel="centroid shift (px)",
                title=f"error {moving['error_px'].mean():.2f} px")
    scatter.legend(fontsize=7)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=str(path).rsplit(".", 1)[-1], dpi=120)
    plt.close(figure)
