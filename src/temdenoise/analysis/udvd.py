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


def augmentation_estimates(
    entry: dict[str, Any],
    noisy_videos: Sequence[np.ndarray],
    settings: TrainSettings,
    variants: Sequence[dict[str, Any]],
    validation_frames: int,
    device: str = "cpu",
    seed: int = 0,
) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Train one UDVD per (video, variant) on that noisy video alone and denoise it.

    ``variants``: dicts with ``name``, ``flips``, ``time_reversal`` and ``early_stopping`` (bool).
    Returns one row per run (``estimate``: its index in the list of denoised videos) and the
    denoised videos. Only the noisy videos are read: scoring is :func:`score_augmentation`'s job.
    """
    records, estimates = [], []
    for index, noisy in enumerate(noisy_videos):
        for variant in variants:
            model, result = fit_single_video(
                entry, noisy, settings, bool(variant["flips"]), bool(variant["time_reversal"]),
                bool(variant["early_stopping"]), validation_frames, device, seed + index,
            )
            log.info("video %d %s: %d epochs, best %s", index, variant["name"], len(result.history), result.best_epoch)
            records.append({"video": index, "variant": variant["name"], "flips": variant["flips"],
                            "time_reversal": variant["time_reversal"], "early_stopping": variant["early_stopping"],
                            "epochs": len(result.history), "best_epoch": result.best_epoch,
                            "estimate": len(estimates)})
            estimates.append(denoise_video(model, noisy, device))
    return pd.DataFrame(records), estimates


def score_augmentation(
    runs: pd.DataFrame,
    estimates: Sequence[np.ndarray],
    clean_videos: Sequence[np.ndarray],
    noisy_videos: Sequence[np.ndarray],
    domain: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PSNR of every run of :func:`augmentation_estimates` against the clean video.

    Returns the runs with ``psnr`` (over the whole video) and ``noisy_psnr``, and a tidy per-frame
    table (``video``, ``frame``, ``variant``, ``psnr``) for paired comparisons over frames.
    """
    if len(clean_videos) != len(noisy_videos) or runs["video"].max() >= len(clean_videos):
        raise ValueError(f"{len(clean_videos)} clean and {len(noisy_videos)} noisy videos for runs on "
                         f"{runs['video'].nunique()} videos")
    scored, frames = runs.copy(), []
    for row in runs.itertuples():
        clean, estimate = clean_videos[row.video], estimates[row.estimate]
        if estimate.shape != clean.shape:
            raise ValueError(f"estimate {row.estimate} has shape {estimate.shape}, its clean video {clean.shape}")
        scored.loc[row.Index, "psnr"] = psnr(clean, estimate, domain)
        scored.loc[row.Index, "noisy_psnr"] = psnr(clean, noisy_videos[row.video], domain)
        frames += [{"video": row.video, "frame": t, "variant": row.variant, "psnr": psnr(c, e, domain)}
                   for t, (c, e) in enumerate(zip(clean, estimate))]
    return scored, pd.DataFrame(frames)


# -- workflow entry points (one per rule of the UDVD section of workflow/rules/analyze.smk) ----

AUGMENTATION_VARIANTS = tuple(
    {"name": f"{aug}{' + ES' if es else ''}", "flips": flips, "time_reversal": reverse, "early_stopping": es}
    for es in (False, True)
    for aug, flips, reverse in (("no aug", False, False), ("F", True, False), ("F + TR", True, True))
)
"""The seed's six single-video settings: no augmentation / flips / flips + time reversal, x early stopping."""


def write_udvd_table(metric_paths: Sequence[str], csv: str, summary_csv: str, markdown: str, latex: str) -> None:
    """The UDVD table: PSNR mean +- std of every method on every condition of the video dataset."""
    from temdenoise.benchmark import collect_metrics, write_tables

    write_tables(collect_metrics(metric_paths), csv, summary_csv, markdown, latex)


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


AUGMENTATION_PAIRS = (("F", "no aug"), ("F + TR", "F"), ("no aug + ES", "no aug"), ("F + ES", "F"),
                      ("F + TR + ES", "F + TR"))
"""Paired comparisons of the augmentation table: each augmentation added, and early stopping added."""


def run_augmentation_study(
    entry: dict[str, Any],
    recipe: dict[str, Any],
    noisy_path: str,
    section: dict[str, Any],
    device: str,
    seed: int,
    runs_csv: str,
    estimates_path: str,
) -> None:
    """Single-video UDVD with/without augmentation and early stopping (``section``:
    experiments.udvd.augmentation): the denoised videos and the runs, from the noisy videos only."""
    from temdenoise.io import load_stack, save_stack, save_table

    noisy = _short_videos(load_stack(noisy_path), section.get("videos", 1), section.get("frames", 0),
                          section.get("crop", 0))
    runs, estimates = augmentation_estimates(entry, noisy, TrainSettings.from_config(recipe), AUGMENTATION_VARIANTS,
                                             section.get("validation_frames", 2), device, seed)
    save_stack(estimates_path, estimates)
    save_table(runs_csv, runs)


def write_augmentation_table(
    runs_csv: str,
    estimates_path: str,
    clean_path: str,
    noisy_path: str,
    section: dict[str, Any],
    domain: str,
    csv: str,
    markdown: str,
) -> None:
    """Score the single-video runs of :func:`run_augmentation_study` against the clean test videos
    (the same videos, frames and crop): per-run CSV and a Markdown table with paired differences."""
    from temdenoise.io import load_stack, save_table, save_text
    from temdenoise.stats import PairedDifference, paired_table

    videos, frames, crop = section.get("videos", 1), section.get("frames", 0), section.get("crop", 0)
    clean = _short_videos(load_stack(clean_path), videos, frames, crop)
    noisy = _short_videos(load_stack(noisy_path), videos, frames, crop)
    table, per_frame = score_augmentation(pd.read_csv(runs_csv), load_stack(estimates_path), clean, noisy, domain)
    save_table(csv, table)
    order = [v["name"] for v in AUGMENTATION_VARIANTS]
    summary = (table.groupby("variant")["psnr"].agg(["mean", "std"]).reindex(order).fillna(0.0)
               .rename(columns={"mean": "PSNR mean (dB)", "std": "PSNR std (dB)"}))
    pairs = paired_table(per_frame, AUGMENTATION_PAIRS, by=(), item=("video", "frame"), method="variant")
    pairs = pairs.assign(**{"difference (dB) [95% CI]": [
        PairedDifference(r.diff_mean, r.diff_low, r.diff_high, r.diff_items).format() for r in pairs.itertuples()
    ]})[["a", "b", "difference (dB) [95% CI]", "diff_items", "verdict"]].rename(columns={"diff_items": "frames"})
    save_text(markdown, "# UDVD trained on a single noisy video\n\n"
              f"{len(clean)} video(s) of {clean[0].shape[0]} frames of {clean[0].shape[1]} x {clean[0].shape[2]} px, "
              f"noisy input {table.drop_duplicates('video')['noisy_psnr'].mean():.2f} dB. F = spatial flips, "
              "TR = time reversal, ES = early stopping on held-out noisy frames. Each net is trained on the noisy "
              "video alone; the clean video is read only here, to score. PSNR over the whole video, convention: "
              f"{CONVENTION['unit']}.\n\n" + summary.to_markdown(floatfmt=".2f") + "\n\n"
              "Paired per-frame PSNR difference a - b with a Student-t 95% interval over frames (one trained net "
              "per variant: the interval covers frame-to-frame spread, not training-seed spread); an ordering "
              "holds only where the interval excludes 0.\n\n" + pairs.to_markdown(index=False) + "\n")


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
