"""UDVD analyses: spatio-temporal equivalent filters, implicit motion compensation, single-video study.

Equivalent filters (Sheth, Mohan et al., ICCV 2021, section 6): the gradient of one output pixel
with respect to every input frame. For a bias-free network the output is exactly the sum over
frames of these filters applied to the input (f(y) = A_y y), so each frame's filter says where the
network takes its evidence from. If the content moved by ``d`` pixels between the centre frame
and frame ``t + k``, a motion-compensating network centres its frame-``t + k`` filter ``d``
pixels away from the output pixel: the filter centroid tracks the motion without optical flow.
The motion study scores that estimate against the simulator's true per-pixel motion beside zero
motion and a classical optical flow (``run_motion_study``).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from temdenoise.metrics import psnr_columns, table_convention, tem_psnr_conventions
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
    tem_psnr: Sequence[str],
    reference_counts: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PSNR of every run of :func:`augmentation_estimates` against the clean video, scored by
    :func:`temdenoise.metrics.psnr_columns` as the ``evaluate`` rule scores (``seed_counts`` at the
    dataset's ``reference_counts``).

    Returns the runs with ``psnr`` (over the whole video, primary convention), for TEM
    ``psnr_<name>`` per convention of ``tem_psnr``, and ``noisy_psnr``; and a tidy per-frame table
    (``video``, ``frame``, ``unit``, ``unit_kind``, ``variant``, ``psnr``) for paired comparisons,
    whose independent unit is the video.
    """
    if len(clean_videos) != len(noisy_videos) or runs["video"].max() >= len(clean_videos):
        raise ValueError(f"{len(clean_videos)} clean and {len(noisy_videos)} noisy videos for runs on "
                         f"{runs['video'].nunique()} videos")
    scores, frames = [], []
    for row in runs.itertuples():
        clean, estimate = clean_videos[row.video], estimates[row.estimate]
        if estimate.shape != clean.shape:
            raise ValueError(f"estimate {row.estimate} has shape {estimate.shape}, its clean video {clean.shape}")

        def score(reference: np.ndarray, image: np.ndarray) -> dict[str, float]:
            return psnr_columns(reference, image, domain, tem_psnr, reference_counts)

        scores.append(score(clean, estimate) | {"noisy_psnr": score(clean, noisy_videos[row.video])["psnr"]})
        frames += [{"video": row.video, "frame": t, "unit": str(row.video), "unit_kind": "video", "variant": row.variant,
                    "psnr": score(c, e)["psnr"]}
                   for t, (c, e) in enumerate(zip(clean, estimate))]
    return pd.concat([runs, pd.DataFrame(scores, index=runs.index)], axis=1), pd.DataFrame(frames)


# -- workflow entry points (one per rule of the UDVD section of workflow/rules/analyze.smk) ----

AUGMENTATION_VARIANTS = tuple(
    {"name": f"{aug}{' + ES' if es else ''}", "flips": flips, "time_reversal": reverse, "early_stopping": es}
    for es in (False, True)
    for aug, flips, reverse in (("no aug", False, False), ("F", True, False), ("F + TR", True, True))
)
"""The seed's six single-video settings: no augmentation / flips / flips + time reversal, x early stopping."""


def _biased(entries: dict[str, dict[str, Any]], family: str) -> list[str]:
    return [m for m, e in entries.items() if e["family"] == family and not e.get("params", {}).get("bias_free")]


def udvd_frame_pairs(entries: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """Each UDVD vs every UDVD with fewer frames and the same training noise (the frames claim)."""
    frames = {m: entries[m].get("params", {}).get("frames", 1) for m in _biased(entries, "udvd")}
    return [(a, b) for a in frames for b in frames
            if frames[a] > frames[b] and entries[a].get("train_noise") == entries[b].get("train_noise")]


def udvd_claim_pairs(entries: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """The UDVD table's named comparisons: :func:`udvd_frame_pairs`, then each UDVD vs the
    supervised (biased) DnCNNs and vs the Wiener filters."""
    return udvd_frame_pairs(entries) + [(u, other) for u in _biased(entries, "udvd")
                                        for other in (*_biased(entries, "dncnn"), *_biased(entries, "wiener"))]


def write_udvd_table(
    metric_paths: Sequence[str],
    frame_paths: Sequence[str],
    entries: dict[str, dict[str, Any]],
    csv: str,
    summary_csv: str,
    markdown: str,
    latex: str,
    pairs_csv: str,
    main_seed: int = 0,
) -> None:
    """The UDVD table: PSNR mean +- std over test videos of every method on every condition of the
    video dataset (networks trained with the master seed ``main_seed``), and paired differences
    (each method vs the next-ranked one and :func:`udvd_claim_pairs`) over the test videos: the
    frames of one video are not independent, so each video's frames are averaged into one unit
    (:mod:`temdenoise.stats`). Networks also trained with other seeds (replicates among the metric
    files) are compared seed by seed, and the verdicts over the seeds close the Markdown."""
    from temdenoise.benchmark import collect_metrics, write_tables
    from temdenoise.claims import FRAMES
    from temdenoise.report.pairs import by_training_seed
    from temdenoise.stats import TRAINING_SEED

    videos = by_training_seed(collect_metrics(metric_paths), main_seed)
    main = videos[videos[TRAINING_SEED] == main_seed].drop(columns=TRAINING_SEED)
    write_tables(main, csv, summary_csv, markdown, latex, pairs_csv,
                 items=by_training_seed(collect_metrics(frame_paths), main_seed), named=udvd_claim_pairs(entries),
                 claims=dict.fromkeys(udvd_frame_pairs(entries), FRAMES))


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
    tem_psnr: Sequence[str],
    reference_counts: float,
    csv: str,
    markdown: str,
) -> None:
    """Score the single-video runs of :func:`run_augmentation_study` against the clean test videos
    (the same videos, frames and crop; ``seed_counts`` at the dataset's ``reference_counts``):
    per-run CSV and a Markdown table with the mean PSNR under every convention of ``tem_psnr``
    (TEM) and paired differences (primary convention)."""
    from temdenoise.io import load_stack, save_table, save_text
    from temdenoise.report.pairs import delta_note, pairs_display
    from temdenoise.stats import paired_table

    videos, frames, crop = section.get("videos", 1), section.get("frames", 0), section.get("crop", 0)
    clean = _short_videos(load_stack(clean_path), videos, frames, crop)
    noisy = _short_videos(load_stack(noisy_path), videos, frames, crop)
    table, per_frame = score_augmentation(pd.read_csv(runs_csv), load_stack(estimates_path), clean, noisy, domain,
                                          tem_psnr, reference_counts)
    save_table(csv, table)
    order = [v["name"] for v in AUGMENTATION_VARIANTS]
    conventions = tem_psnr_conventions(table.columns)
    summary = (table.groupby("variant")["psnr"].agg(["mean", "std"]).reindex(order).fillna(0.0)
               .rename(columns={"mean": "PSNR mean (dB)", "std": "PSNR std (dB)"}))
    for name in conventions:
        summary[f"psnr_{name} mean (dB)"] = table.groupby("variant")[f"psnr_{name}"].mean().reindex(order)
    pairs = paired_table(per_frame, AUGMENTATION_PAIRS, by=(), item=("video", "frame"), method="variant")
    pairs = pairs_display(pairs)
    save_text(markdown, "# UDVD trained on a single noisy video\n\n"
              f"{len(clean)} video(s) of {clean[0].shape[0]} frames of {clean[0].shape[1]} x {clean[0].shape[2]} px, "
              f"noisy input {table.drop_duplicates('video')['noisy_psnr'].mean():.2f} dB. F = spatial flips, "
              "TR = time reversal, ES = early stopping on held-out noisy frames. Each net is trained on the noisy "
              "video alone; the clean video is read only here, to score. PSNR over the whole video, convention: "
              f"{table_convention(conventions)}; PSNR mean/std and the noisy input: psnr.\n\n" + summary.to_markdown(floatfmt=".2f") + "\n\n"
              f"Paired PSNR difference a - b over the videos (one trained net per variant and video: the interval "
              f"covers video-to-video spread, not training-seed spread). {delta_note('this table')}.\n\n"
              + pairs.to_markdown(index=False) + "\n")


# -- implicit motion compensation against the true motion and classical baselines ---------------

UDVD_ESTIMATE = "UDVD filter centroid (noisy)"
ZERO_MOTION = "zero motion"
FLOW_NOISY = "TV-L1 flow (noisy)"
FLOW_CLEAN = "TV-L1 flow (clean, upper bound)"
MOTION_ITEM = ["centre_frame", "offset", "row", "col"]
DIFFERENCE = "udvd_minus_this"   # prefix of the paired-difference columns of the motion summary
"""One scored item of the motion study: a pixel of a centre frame and the offset of the other frame."""


def local_equivalent_filters(
    model: nn.Module, window: np.ndarray, pixels: Sequence[tuple[int, int]], side: int, device: str = "cpu"
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Equivalent filters of each pixel on a ``side`` x ``side`` crop of a ``(frames, H, W)`` window
    around it, the context a net that works in tiles sees: (P, frames, side, side), and each
    pixel's position in its crop. The crops form one batch; its items do not interact."""
    _, height, width = window.shape
    crops, local = [], []
    for row, col in pixels:
        top = int(np.clip(row - side // 2, 0, height - side))
        left = int(np.clip(col - side // 2, 0, width - side))
        crops.append(window[:, top : top + side, left : left + side])
        local.append((row - top, col - left))
    model.eval()
    source = torch.as_tensor(np.stack(crops).astype(np.float32)).to(device).requires_grad_(True)
    output = model(source)[:, 0]
    rows = torch.as_tensor([p[0] for p in local])
    cols = torch.as_tensor([p[1] for p in local])
    (grads,) = torch.autograd.grad(output[torch.arange(len(local)), rows, cols].sum(), source)
    return grads.detach().cpu().numpy(), local


def udvd_shifts(
    model: nn.Module,
    noisy_video: np.ndarray,
    centre_frames: Sequence[int],
    pixels: Sequence[tuple[int, int]],
    radius: int,
    device: str = "cpu",
    chunk: int = 64,
) -> np.ndarray:
    """The UDVD estimate of the motion: filter-centroid shift of every input frame of the window of
    each centre frame, at each pixel, (centres, frames, P, 2) as (rows down, columns right).

    A net with a ``tile`` size smaller than the frames is differentiated on a tile around each
    pixel (how it denoises), otherwise on whole frames; ``chunk`` pixels at a time.
    """
    half = model.frames // 2
    side = getattr(model, "tile", 0)
    out = np.full((len(centre_frames), model.frames, len(pixels), 2), np.nan)
    for i, t in enumerate(centre_frames):
        if not half <= t < len(noisy_video) - half:
            raise ValueError(f"centre frame {t} needs {half} frames on each side (video of {len(noisy_video)})")
        window = frame_windows(noisy_video, model.frames, [t])[0]
        for start in range(0, len(pixels), chunk):
            part = list(pixels[start : start + chunk])
            if side and side < min(window.shape[1:]):
                filters, local = local_equivalent_filters(model, window, part, side, device)
            else:
                filters, local = equivalent_filters(model, window, part, device), part
            out[i, :, start : start + len(part)] = filter_centroids(filters, local, radius).transpose(1, 0, 2)
    return out


def flow_shifts(
    video: np.ndarray,
    centre_frames: Sequence[int],
    offsets: Sequence[int],
    pixels: Sequence[tuple[int, int]],
    smoothing: float,
) -> np.ndarray:
    """TV-L1 optical flow (``skimage.registration.optical_flow_tvl1``, its default parameters) from
    each centre frame ``t`` to frame ``t + k``, read at ``pixels``: (centres, offsets, P, 2).

    Both frames are smoothed by a Gaussian of ``smoothing`` px (0: none) and scaled by the centre
    frame's 1-99 percentile range, the intensity scale the flow's data term is tuned for.
    """
    from scipy.ndimage import gaussian_filter
    from skimage.registration import optical_flow_tvl1

    def prepare(frame: np.ndarray) -> np.ndarray:
        frame = frame.astype(np.float64)
        return gaussian_filter(frame, smoothing) if smoothing > 0 else frame

    rows, cols = np.asarray(pixels).T
    out = np.zeros((len(centre_frames), len(offsets), len(pixels), 2))
    for i, t in enumerate(centre_frames):
        reference = prepare(video[t])
        low, high = np.percentile(reference, [1, 99])
        scale = (high - low) or 1.0
        for j, k in enumerate(offsets):
            flow = optical_flow_tvl1((reference - low) / scale, (prepare(video[t + k]) - low) / scale)
            out[i, j] = flow[:, rows, cols].T
    return out


def true_shifts(
    frames: Sequence[Mapping[str, float]],
    centre_frames: Sequence[int],
    offsets: Sequence[int],
    pixels: Sequence[tuple[int, int]],
) -> tuple[np.ndarray, np.ndarray]:
    """True displacement from each centre frame to frame ``t + k`` at ``pixels`` (centres, offsets,
    P, 2) and the content region of each pixel in its centre frame (centres, P); ``frames``: the
    video's metadata rows in frame order (:func:`video_motion_rows`)."""
    from temdenoise.simulate.motion import content_region, displacement_field

    truth = np.stack([np.stack([displacement_field(frames[t], frames[t + k], pixels) for k in offsets])
                      for t in centre_frames])
    regions = np.stack([content_region(frames[t], pixels) for t in centre_frames])
    return truth, regions


def motion_records(
    estimates: Mapping[str, np.ndarray],
    truth: np.ndarray,
    regions: np.ndarray,
    centre_frames: Sequence[int],
    offsets: Sequence[int],
    pixels: Sequence[tuple[int, int]],
) -> pd.DataFrame:
    """One row per estimator and :data:`MOTION_ITEM`: true and estimated shift, endpoint error
    ``epe_px``; ``estimates`` map a name to a (centres, offsets, P, 2) array like ``truth``."""
    c, k, p = np.meshgrid(np.arange(len(centre_frames)), np.arange(len(offsets)), np.arange(len(pixels)), indexing="ij")
    pixel = np.asarray(pixels)[p.ravel()]
    base = pd.DataFrame({"centre_frame": np.asarray(centre_frames)[c.ravel()], "offset": np.asarray(offsets)[k.ravel()],
                         "row": pixel[:, 0], "col": pixel[:, 1], "region": regions[c.ravel(), p.ravel()],
                         "true_drow": truth[..., 0].ravel(), "true_dcol": truth[..., 1].ravel()})
    tables = []
    for name, estimate in estimates.items():
        error = np.hypot(estimate[..., 0] - truth[..., 0], estimate[..., 1] - truth[..., 1]).ravel()
        tables.append(base.assign(estimator=name, est_drow=estimate[..., 0].ravel(), est_dcol=estimate[..., 1].ravel(),
                                  epe_px=error))
    return pd.concat(tables, ignore_index=True)[["estimator", *base.columns, "est_drow", "est_dcol", "epe_px"]]


def _slope_and_correlation(truth: np.ndarray, estimate: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of ``estimate`` on ``truth`` and their correlation (NaN for a constant)."""
    truth, estimate = truth - truth.mean(), estimate - estimate.mean()
    spread = float((truth**2).sum())
    slope = float((truth * estimate).sum() / spread) if spread > 0 else np.nan
    norm = np.sqrt(spread * float((estimate**2).sum()))
    return slope, float((truth * estimate).sum() / norm) if norm > 0 else np.nan


def motion_summary(records: pd.DataFrame, reference: str = UDVD_ESTIMATE) -> pd.DataFrame:
    """One row per estimator over the same items (pixels on the particle or the support, where every
    estimator is finite): endpoint error mean and median, slope and correlation of estimate vs
    truth per axis, and the paired difference ``epe(reference) - epe(estimator)``, columns
    ``udvd_minus_this_*`` (negative: the reference is closer to the truth). The items (pixels x
    frame pairs) all come from one test video, whose unit is the video: the verdict is over that one
    unit (never resolved), and the interval over the items is given as descriptive only
    (``udvd_minus_this_descriptive_low`` / ``_high``: neighbouring pixels and frame pairs share
    the particle, the motion and the noise of overlapping windows)."""
    from temdenoise.stats import paired_difference

    scored = records[records["region"] != "vacuum"]
    errors = scored.pivot_table(index=MOTION_ITEM, columns="estimator", values="epe_px", dropna=False).dropna()
    out = []
    for name in records["estimator"].unique():
        group = scored[scored["estimator"] == name].set_index(MOTION_ITEM).loc[errors.index]
        row = {"estimator": name, "pixels": len(group),
               "epe_mean_px": group["epe_px"].mean(), "epe_median_px": group["epe_px"].median()}
        for axis in ("row", "col"):
            row[f"slope_{axis}"], row[f"corr_{axis}"] = _slope_and_correlation(
                group[f"true_d{axis}"].to_numpy(), group[f"est_d{axis}"].to_numpy())
        if name != reference:
            one_video = np.zeros(len(errors))
            row.update(paired_difference(errors[reference], errors[name], one_video, unit="video").as_dict(DIFFERENCE))
            descriptive = paired_difference(errors[reference], errors[name])
            row.update({f"{DIFFERENCE}_descriptive_low": descriptive.low, f"{DIFFERENCE}_descriptive_high": descriptive.high})
        out.append(row)
    return pd.DataFrame(out)


def choose_flow_smoothing(
    video: np.ndarray,
    frames: Sequence[Mapping[str, float]],
    centre_frames: Sequence[int],
    offsets: Sequence[int],
    pixels: Sequence[tuple[int, int]],
    candidates: Sequence[float],
) -> tuple[float, dict[float, float]]:
    """The smoothing of :func:`flow_shifts` with the lowest mean endpoint error on the particle and
    support pixels of ``video`` (a validation video), and the error of every candidate."""
    truth, regions = true_shifts(frames, centre_frames, offsets, pixels)
    content = np.broadcast_to((regions != "vacuum")[:, None, :], truth.shape[:3])
    scores = {}
    for smoothing in candidates:
        estimate = flow_shifts(video, centre_frames, offsets, pixels, smoothing)
        scores[float(smoothing)] = float(np.hypot(*(estimate - truth)[content].T).mean())
    return min(scores, key=scores.get), scores


def video_motion_rows(metadata: pd.DataFrame, item: int) -> list[dict[str, float]]:
    """The metadata rows of video ``item`` in frame order, with the motion columns of
    :data:`temdenoise.simulate.motion.MOTION_COLUMNS`."""
    from temdenoise.simulate.motion import MOTION_COLUMNS

    missing = [c for c in ["item", "frame", *MOTION_COLUMNS] if c not in metadata]
    if missing:
        raise KeyError(f"video metadata lacks the column(s) {missing} (simulated before the motion truth was stored?)")
    rows = metadata[metadata["item"] == item].sort_values("frame")
    if rows.empty:
        raise ValueError(f"no metadata rows for video {item}")
    return rows.to_dict("records")


def run_motion_study(
    entry: dict[str, Any], inputs: Mapping[str, str], outputs: Mapping[str, str], section: dict[str, Any], device: str
) -> None:
    """UDVD's implicit motion estimate vs the true per-pixel motion and three baselines on one test video.

    ``inputs``: ``weights`` (a multi-frame UDVD), ``noisy``, ``clean`` and ``metadata`` of the test
    split, ``validation_noisy``, ``validation_clean``, ``validation_metadata``. The UDVD and the
    noisy flow read noisy frames only; the clean test frames feed only the labelled upper bound.
    Each flow's smoothing is chosen on validation video 0 at the same noise. ``outputs``: ``csv``
    (one row per estimator), ``pixels`` (every scored item), ``markdown``, ``png``.
    """
    from temdenoise.io import StackReader, save_table
    from temdenoise.models import load_trained

    model = load_trained(inputs["weights"], entry, device)
    if model.frames < 3:
        raise ValueError(f"experiments.udvd.motion.model must be a multi-frame UDVD, got {model.frames} frame(s)")
    item = section.get("video", 0)
    with StackReader(inputs["noisy"]) as noisy_stack, StackReader(inputs["clean"]) as clean_stack:  # one video each
        noisy, clean = noisy_stack[item], clean_stack[item]
    frames = video_motion_rows(pd.read_csv(inputs["metadata"]), item)
    half = model.frames // 2
    centre_frames = list(range(half, len(noisy) - half))
    offsets = [k for k in range(-half, half + 1) if k != 0]
    pixels = grid_pixels(noisy.shape[1], noisy.shape[2], section.get("margin", 16), section.get("pixels", 3))

    candidates = section.get("flow_smoothing", [0.0, 1.0, 2.0, 3.0])
    validation = {}
    for kind in ("noisy", "clean"):
        with StackReader(inputs[f"validation_{kind}"]) as stack:  # the first validation video only
            validation[kind] = stack[0]
    validation_frames = video_motion_rows(pd.read_csv(inputs["validation_metadata"]), 0)
    validation_centres = list(range(half, len(validation["noisy"]) - half))
    chosen = {kind: choose_flow_smoothing(video, validation_frames, validation_centres, offsets, pixels, candidates)
              for kind, video in validation.items()}
    for kind, (smoothing, scores) in chosen.items():
        log.info("flow on %s frames: smoothing %.1f px chosen on validation video 0 (%s)", kind, smoothing, scores)

    truth, regions = true_shifts(frames, centre_frames, offsets, pixels)
    centroids = udvd_shifts(model, noisy, centre_frames, pixels, section.get("radius", 6), device,
                            chunk=section.get("chunk", 64))
    estimates = {
        UDVD_ESTIMATE: centroids[:, [k + half for k in offsets]],
        ZERO_MOTION: np.zeros_like(truth),
        FLOW_NOISY: flow_shifts(noisy, centre_frames, offsets, pixels, chosen["noisy"][0]),
        FLOW_CLEAN: flow_shifts(clean, centre_frames, offsets, pixels, chosen["clean"][0]),
    }
    records = motion_records(estimates, truth, regions, centre_frames, offsets, pixels)
    summary = motion_summary(records)
    save_table(outputs["csv"], summary)
    save_table(outputs["pixels"], records)
    _motion_markdown(outputs["markdown"], summary, records, chosen, noisy.shape, item, section, pixels, offsets)
    _motion_figure(noisy[centre_frames[0]], records, centre_frames[0], max(offsets), outputs["png"])


def _motion_markdown(path: str, summary: pd.DataFrame, records: pd.DataFrame,
                     chosen: Mapping[str, tuple[float, dict[float, float]]], shape: tuple[int, ...], item: int,
                     section: Mapping[str, Any], pixels: Sequence[tuple[int, int]], offsets: Sequence[int]) -> None:
    from temdenoise.io import save_text

    items = records[records["estimator"] == UDVD_ESTIMATE]
    regions = items["region"].value_counts().to_dict()
    moving = items[items["region"] != "vacuum"]
    shift = np.hypot(moving["true_drow"], moving["true_dcol"])
    smoothing = "; ".join(
        f"{kind} frames: {value:g} px (validation EPE " + ", ".join(f"{s:g} px: {e:.3f}" for s, e in scores.items()) + ")"
        for kind, (value, scores) in chosen.items())
    shown = summary.assign(**{"EPE(UDVD) - EPE(this) (px) [descriptive 95% CI over items]": [
        "" if pd.isna(r.get(f"{DIFFERENCE}_mean")) else
        f"{r[f'{DIFFERENCE}_mean']:+.3f} [{r[f'{DIFFERENCE}_descriptive_low']:+.3f}, "
        f"{r[f'{DIFFERENCE}_descriptive_high']:+.3f}]" for r in summary.to_dict("records")]})
    shown = shown.drop(columns=[c for c in summary.columns if c.startswith(DIFFERENCE)] + ["unit", "n_units"])
    shown = shown.set_index("estimator")
    save_text(path, "# UDVD implicit motion compensation vs the true motion\n\n"
              f"Test video {item} ({shape[0]} frames of {shape[1]} x {shape[2]} px). Items: a "
              f"{section.get('pixels', 3)} x {section.get('pixels', 3)} pixel grid (margin {section.get('margin', 16)} px) "
              f"x every centre frame with a full window x frame offsets {list(offsets)}; pixels of the centre frame on "
              f"the particle ({regions.get('particle', 0)} items) or the support ({regions.get('support', 0)}) are "
              f"scored, vacuum ({regions.get('vacuum', 0)}) is not (no content, no observable motion). True shifts "
              f"there: {shift.mean():.2f} px mean, {shift.max():.2f} px max (the simulator's drift plus the particle's "
              "rotation, `temdenoise.simulate.motion.displacement_field`).\n\n"
              f"- {UDVD_ESTIMATE}: centroid of the positive part of the equivalent filter of each input frame within "
              f"{section.get('radius', 6)} px of the pixel, from the noisy window.\n"
              f"- {ZERO_MOTION}: 0 everywhere.\n"
              f"- {FLOW_NOISY} / {FLOW_CLEAN}: `skimage.registration.optical_flow_tvl1` (default parameters) on "
              f"Gaussian-smoothed frames; smoothing chosen on validation video 0 from {list(chosen['noisy'][1])}: "
              f"{smoothing}. The clean-frame flow reads clean test frames and is an upper bound, not a method.\n\n"
              "EPE: endpoint error (px); slope and correlation: of the estimated vs the true shift per axis. "
              "The paired difference is over the same items. Its interval is descriptive only: every item comes "
              "from one test video (one independent unit), and neighbouring pixels and frame pairs are correlated, "
              "so no ordering between estimators is claimed from this table. Negative: UDVD closer "
              "to the truth.\n\n" + shown.to_markdown(floatfmt=".3f") + "\n")


def _motion_figure(frame: np.ndarray, records: pd.DataFrame, centre: int, offset: int, path: str) -> None:
    """Top: true and estimated shifts from frame ``centre`` to ``centre + offset`` as arrows on the
    noisy centre frame; bottom: estimated vs true shift per axis over every scored item."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from temdenoise.io import atomic_path

    names = [n for n in records["estimator"].unique() if n != ZERO_MOTION]
    scale = 4.0   # arrows are drawn 4 times their length
    figure, axes = plt.subplots(2, len(names) + 1, figsize=(3.0 * (len(names) + 1), 6.2))
    pair = records[(records["centre_frame"] == centre) & (records["offset"] == offset)]
    panels = [("true", pair[pair["estimator"] == names[0]], "true_drow", "true_dcol", "yellow")]
    panels += [(name, pair[pair["estimator"] == name], "est_drow", "est_dcol", f"C{i}") for i, name in enumerate(names)]
    for axis, (title, data, drow, dcol, colour) in zip(axes[0], panels):
        axis.imshow(frame, cmap="gray")
        content = data[data["region"] != "vacuum"]
        axis.quiver(content["col"], content["row"], scale * content[dcol], scale * content[drow], color=colour,
                    angles="xy", scale_units="xy", scale=1, width=0.008)
        axis.set_title(f"{title}\nframe {centre} -> {centre + offset} (arrows x{scale:g})", fontsize=7)
        axis.set_xticks([]), axis.set_yticks([])
    scored = records[records["region"] != "vacuum"]
    span = float(np.nanmax(np.abs(scored[["true_drow", "true_dcol"]].to_numpy()))) + 1.0
    for axis, name in zip(axes[1], records["estimator"].unique()):
        data = scored[scored["estimator"] == name]
        for label, true, est in (("rows", "true_drow", "est_drow"), ("columns", "true_dcol", "est_dcol")):
            axis.scatter(data[true], data[est], s=5, alpha=0.5, label=label)
        axis.plot([-span, span], [-span, span], "k--", linewidth=0.8)
        axis.set(xlim=(-span, span), ylim=(-span, span), xlabel="true shift (px)", ylabel="estimate (px)")
        axis.set_title(f"{name}\nEPE {data['epe_px'].mean():.2f} px", fontsize=7)
    axes[1][0].legend(fontsize=7)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=str(path).rsplit(".", 1)[-1], dpi=120)
    plt.close(figure)
