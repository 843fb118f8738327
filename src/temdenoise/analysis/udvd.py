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

from temdenoise.metrics import psnr
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
    relative to the pixel: (P, frames, 2) as (rows down, columns right)."""
    out = np.zeros((len(pixels), filters.shape[1], 2))
    for p, (row, col) in enumerate(pixels):
        top, left = max(row - radius, 0), max(col - radius, 0)
        crop = np.clip(filters[p, :, top : row + radius + 1, left : col + radius + 1], 0, None)
        rr, cc = np.mgrid[top : top + crop.shape[1], left : left + crop.shape[2]]
        mass = crop.sum(axis=(1, 2)) + 1e-12
        out[p, :, 0] = (crop * rr).sum(axis=(1, 2)) / mass - row
        out[p, :, 1] = (crop * cc).sum(axis=(1, 2)) / mass - col
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
