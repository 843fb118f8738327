"""Self-supervised (blind-spot) training of UDVD on noisy recordings only.

The loss is the MSE between the blind-spot network's output and the *noisy* centre frame
(Sheth, Mohan et al., ICCV 2021): because the output pixel never sees its own noisy value and the
noise is zero-mean and independent between pixels, its expectation is the MSE to the clean frame
plus the (constant) noise variance. Nothing in this module reads a clean frame: the training
windows, their augmentation, their weights and the model selection all come from stored noisy
videos, one fixed noise draw per frame, as a microscopist's recordings.

Two modes, both on the generic :class:`~temdenoise.train.engine.Trainer`:

* :func:`train_udvd` - the stored noisy copies of the training videos at one or more recorded
  conditions (doses or sigmas), model selection by the blind-spot loss on the stored noisy copies
  of the validation videos (the workflow's ``train_udvd`` rule);
* :func:`fit_single_video` - the noisy test video itself (no other data), with optional spatial
  flips and time reversal, and optional early stopping on held-out noisy frames.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from temdenoise.io import save_json
from temdenoise.models import build_model, count_parameters, homogeneity_facts
from temdenoise.models.udvd import UDVD, denoise_video, window_frames
from temdenoise.noise import NoiseCondition, parse_condition
from temdenoise.runtime import resolve_device
from temdenoise.train.engine import Trainer, TrainResult, TrainSettings, plot_history
from temdenoise.train.supervised import OUTPUTS, load_split, pixel_size_summary

log = logging.getLogger("temdenoise")


def blind_spot_mse(model: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """MSE between ``model(windows)`` and the noisy centre frame of ``windows`` (B, T, P, P).

    With a second tensor ``weights`` (B,) in the batch, the per-window MSEs are averaged with
    those weights (:class:`VideoWindowSampler` with ``conditions``: inverse noise variances).
    """
    windows = batch[0]
    centre = windows.shape[1] // 2
    if len(batch) < 2:
        return torch.nn.functional.mse_loss(model(windows), windows[:, centre : centre + 1])
    errors = (model(windows) - windows[:, centre : centre + 1]).pow(2).mean(dim=(1, 2, 3))
    return (batch[1] * errors).sum() / batch[1].sum()


def noise_variance(condition: NoiseCondition, noisy: np.ndarray, pixel_size: float = 1.0) -> float:
    """Mean noise variance of a recording ``noisy`` made under ``condition``, from the noisy data.

    Poisson: ``mean(y) / (D p^2)``; the noisy mean is an unbiased estimate of the clean mean
    intensity (the recorded counts divided by the known dose and pixel area). Gaussian:
    ``(sigma / 255)^2``. Floored, so that a black recording never gets an infinite weight.
    """
    if condition.kind == "poisson":
        return max(float(np.mean(noisy)), 1e-3) / (condition.level * pixel_size**2)
    return max(condition.level / 255.0, 1e-3) ** 2


class VideoWindowSampler:
    """A ``BatchSampler``: ``sampler(rng) -> (windows,)``, ``(B, frames, P, P)`` patches of noisy videos.

    Each window is centred on a random allowed frame (``centres[i]``: frame indices of video
    ``i``; default all) of a random video; windows reaching past the ends of a video are completed
    as at inference (:func:`~temdenoise.models.udvd.window_frames`), so a frame used twice carries
    the same noise twice. The videos are noisy recordings and every window holds their values,
    transformed only by what keeps the noise zero-mean and independent between pixels (the
    blind-spot assumptions):

    * ``flips``: random horizontal and vertical flips;
    * ``time_reversal``: the window's frame order reversed with probability 1/2;
    * ``contrast_inversion``: with probability 1/2 the window is mirrored about its video's noisy
      mean ``m`` (``2 m - y``, not clipped: clipping would bias the noise), so that dark-atom and
      bright-atom contrast (the two signs of the phase contrast, set by the defocus) are both seen
      whatever the contrast of the few training videos. The noise of ``2 m - y`` is the negated
      noise of ``y``: still zero-mean and independent, so the blind-spot loss still targets
      ``2 m - x``.

    ``conditions`` (one :class:`~temdenoise.noise.NoiseCondition` per video, the recording's
    known dose or sigma) makes the batch ``(windows, weights)``: each window weighted by the
    inverse of its video's noise variance (:func:`noise_variance` of the noisy video, with
    ``pixel_sizes``) in :func:`blind_spot_mse`.
    """

    def __init__(
        self,
        videos: Sequence[np.ndarray],
        frames: int,
        patch_size: int,
        batch_size: int,
        centres: Sequence[Sequence[int]] | None = None,
        flips: bool = True,
        time_reversal: bool = True,
        contrast_inversion: bool = False,
        conditions: Sequence[NoiseCondition] | None = None,
        pixel_sizes: Sequence[float] | None = None,
    ) -> None:
        if not videos:
            raise ValueError("no training videos")
        small = [i for i, video in enumerate(videos) if min(video.shape[-2:]) < patch_size]
        if small:
            raise ValueError(f"training videos {small[:5]} have frames smaller than the patch size {patch_size}")
        short = [i for i, video in enumerate(videos) if len(video) < frames]
        if short:
            raise ValueError(f"training videos {short[:5]} have fewer than {frames} frames")
        self.half = frames // 2
        self.videos = [np.asarray(v, dtype=np.float32) for v in videos]
        self.centres = [np.arange(len(v)) for v in videos] if centres is None else [np.asarray(c) for c in centres]
        if any(len(c) == 0 for c in self.centres):
            raise ValueError("every training video needs at least one training frame")
        self.frames, self.patch_size, self.batch_size = frames, patch_size, batch_size
        self.flips, self.time_reversal, self.contrast_inversion = flips, time_reversal, contrast_inversion
        self.means = [float(np.mean(v)) for v in self.videos]
        self.weights: list[float] | None = None
        if conditions is not None:
            if len(conditions) != len(self.videos):
                raise ValueError(f"{len(conditions)} noise conditions for {len(self.videos)} videos")
            sizes = [1.0] * len(self.videos) if pixel_sizes is None else [float(p) for p in pixel_sizes]
            self.weights = [1.0 / noise_variance(c, v, p) for c, v, p in zip(conditions, self.videos, sizes)]

    def window(self, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """One ``(frames, P, P)`` window and the index of its video."""
        index = int(rng.integers(len(self.videos)))
        video = self.videos[index]
        centre = int(rng.choice(self.centres[index]))
        top = int(rng.integers(video.shape[1] - self.patch_size + 1))
        left = int(rng.integers(video.shape[2] - self.patch_size + 1))
        frames = window_frames(len(video), self.frames, centre)
        window = video[frames, top : top + self.patch_size, left : left + self.patch_size]
        if self.contrast_inversion and rng.random() < 0.5:
            window = 2.0 * self.means[index] - window
        if self.flips:
            if rng.random() < 0.5:
                window = window[:, ::-1, :]
            if rng.random() < 0.5:
                window = window[:, :, ::-1]
        if self.time_reversal and rng.random() < 0.5:
            window = window[::-1]
        return np.ascontiguousarray(window, dtype=np.float32), index

    def __call__(self, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        windows, indices = zip(*(self.window(rng) for _ in range(self.batch_size)))
        batch = torch.from_numpy(np.stack(windows))
        if self.weights is None:
            return (batch,)
        return batch, torch.tensor([self.weights[i] for i in indices], dtype=torch.float32)


def noisy_frame_validation(
    videos: Sequence[np.ndarray], frames: Sequence[Sequence[int]], device: str = "cpu"
) -> Callable[[nn.Module], float]:
    """``validate(model)``: blind-spot score on the given noisy frames, no clean data involved.

    The score is ``-10 log10(MSE(model output, noisy frame))`` over the frames ``frames[i]`` of
    noisy video ``i`` (higher is better; its differences are differences of the MSE to the clean
    frames, in the expectation, because the noise variance is a constant).
    """
    chosen = [np.asarray(f, dtype=int) for f in frames]
    if not sum(len(f) for f in chosen):
        raise ValueError("no held-out validation frames")

    def validate(model: nn.Module) -> float:
        errors = [
            (denoise_video(model, video, device, indices=f) - np.asarray(video)[f]).ravel()
            for video, f in zip(videos, chosen)
            if len(f)
        ]
        return float(-10.0 * np.log10(np.mean(np.concatenate(errors) ** 2)))

    return validate


def stored_recordings(
    paths: Sequence[str],
    conditions: Sequence[str],
    metadata_path: str | None,
    count: int | None = None,
    videos: bool = True,
) -> tuple[list[np.ndarray], list[NoiseCondition], list[float] | None]:
    """The first ``count`` (None = all) noisy items of every stored stack in ``paths`` (recorded
    under ``conditions[i]``), with each item's condition and pixel size (None without metadata).
    ``videos``: every item must be a ``(T, H, W)`` video (UDVD)."""
    if len(paths) != len(conditions):
        raise ValueError(f"{len(paths)} noisy stacks for {len(conditions)} conditions")
    items, kinds, sizes = [], [], []
    for path, name in zip(paths, conditions):
        stack, stack_sizes = load_split(path, metadata_path, count)
        flat = [i for i, v in enumerate(stack) if v.ndim != 3]
        if videos and flat:
            raise ValueError(f"{path}: UDVD needs (T, H, W) videos, items {flat[:5]} are not videos")
        items += stack
        kinds += [parse_condition(name)] * len(stack)
        sizes += stack_sizes or [1.0] * len(stack)
    return items, kinds, None if metadata_path is None else sizes


def train_udvd(
    entry: dict[str, Any],
    recipe: dict[str, Any],
    conditions: Sequence[str],
    train_paths: Sequence[str],
    validation_paths: Sequence[str],
    out_dir: str,
    train_metadata: str | None = None,
    validation_metadata: str | None = None,
    device: str = "auto",
    seed: int = 0,
    contrast_inversion: bool = True,
    weighted: bool = True,
    loader_workers: int = 0,
) -> TrainResult:
    """Train a UDVD ``entry`` on stored noisy recordings of the training videos, nothing else.

    ``train_paths[i]`` / ``validation_paths[i]``: the stored noisy copies of the training /
    validation videos under condition ``conditions[i]`` (e.g. ``poisson-20``): one fixed noise
    draw per frame, as a recording. All of them are pooled: the net sees every training video at
    every recorded dose (or sigma). The metadata tables give the pixel sizes only (the Poisson
    weights need the pixel area); no clean frame is read.

    The windows are contrast-inverted half of the time (``contrast_inversion``, see
    :class:`VideoWindowSampler`): with one or a few training videos the net otherwise learns the
    contrast of those videos only. They are weighted by the inverse of their recording's noise
    variance (``weighted``, estimated from the noisy recording and its known dose or sigma,
    :func:`noise_variance`): each window's blind-spot MSE is its error to the clean frame plus its
    noise variance, so unweighted the noisiest recordings dominate the loss and its gradient noise
    (doses 20 and 100: 5 times the variance). The weights do not change the minimiser of any one
    recording's loss.

    Model selection (best weights, plateau schedule, early stopping) uses the blind-spot score of
    :func:`noisy_frame_validation` on the first ``validation_images`` stored noisy validation
    videos of every condition. Writes :data:`~temdenoise.train.supervised.OUTPUTS` in ``out_dir``.
    ``loader_workers``: processes that build the batches (:class:`temdenoise.train.engine.Trainer`).
    """
    out = Path(out_dir)
    device = resolve_device(device)
    settings = TrainSettings.from_config(recipe)
    if settings.rotation_deg or settings.rescale:
        # the recordings are fixed noise draws: warping them would correlate the noise of neighbours
        raise ValueError("training.rotation_deg / rescale apply to supervised training only, not to UDVD recipes")
    torch.manual_seed(seed)
    model = build_model(entry)
    train_videos, train_conditions, train_sizes = stored_recordings(train_paths, conditions, train_metadata)
    val_videos, _, _ = stored_recordings(validation_paths, conditions, validation_metadata, settings.validation_images)
    validate = noisy_frame_validation(val_videos, [range(len(v)) for v in val_videos], device)
    sampler = VideoWindowSampler(train_videos, model.frames, settings.patch_size, settings.batch_size,
                                 contrast_inversion=contrast_inversion,
                                 conditions=train_conditions if weighted else None, pixel_sizes=train_sizes)
    trainer = Trainer(model, sampler, settings, loss_fn=blind_spot_mse, validate=validate, out_dir=out,
                      device=device, seed=seed,
                      fingerprint={"entry": entry, "conditions": list(conditions),
                                   "contrast_inversion": contrast_inversion, "weighted": weighted},
                      loader_workers=loader_workers)
    info: dict[str, Any] = {"family": entry["family"], "params": entry.get("params", {}),
                            "parameters": count_parameters(model), **homogeneity_facts(model),
                            "training_data": "stored noisy recordings only",
                            "selection": "blind-spot loss on stored noisy validation videos",
                            "conditions": list(conditions), "contrast_inversion": contrast_inversion,
                            "weighted": weighted,
                            "train_noise": {"kind": train_conditions[0].kind,
                                            "range": [min(c.level for c in train_conditions),
                                                      max(c.level for c in train_conditions)]},
                            "pixel_size": pixel_size_summary(train_sizes), "recipe": recipe}
    log.info("training %s (%d parameters) self-supervised on %d noisy recordings (%s) on %s",
             entry, info["parameters"], len(train_videos), ", ".join(conditions), device)
    result = trainer.fit()
    info.update(precision=result.precision, best_epoch=result.best_epoch, best_val_score=result.best_score, epochs=len(result.history),
                stopped_early=result.stopped_early)
    plot_history(result.history, out / "training_curve.png", title=f"{entry['family']} {entry.get('params', {})}")
    save_json(out / "info.json", info)
    trainer.export(out / "model.pt")
    return result


def held_out_frames(length: int, count: int) -> np.ndarray:
    """``count`` frame indices spread evenly over a video of ``length`` frames (ends excluded)."""
    if not 0 < count < length - 1:
        raise ValueError(f"cannot hold out {count} of {length} frames (need 0 < count < length - 1)")
    return np.unique(np.linspace(1, length - 2, count).round().astype(int))


def fit_single_video(
    entry: dict[str, Any],
    noisy_video: np.ndarray,
    settings: TrainSettings,
    flips: bool,
    time_reversal: bool,
    early_stopping: bool,
    validation_frames: int = 2,
    device: str = "cpu",
    seed: int = 0,
) -> tuple[UDVD, TrainResult]:
    """Train a fresh UDVD ``entry`` on one noisy ``(T, H, W)`` video, nothing else.

    With ``early_stopping`` the ``validation_frames`` held-out frames are never training targets
    (they may still be neighbours in a window) and select the weights: the best blind-spot score
    (:func:`noisy_frame_validation`), training stopping after ``settings.early_stopping`` epochs
    without improvement. Without it every frame is a target and the last weights are kept.
    """
    torch.manual_seed(seed)  # the initial weights depend on the seed only
    model = build_model(entry)
    length = noisy_video.shape[0]
    held = held_out_frames(length, validation_frames) if early_stopping else np.array([], dtype=int)
    centres = [np.setdiff1d(np.arange(length), held)]
    sampler = VideoWindowSampler([noisy_video], model.frames, settings.patch_size, settings.batch_size,
                                 centres=centres, flips=flips, time_reversal=time_reversal)
    if early_stopping:
        validate = noisy_frame_validation([noisy_video], [held], device)
    else:
        validate, settings = None, dataclasses.replace(settings, early_stopping=0)
    trainer = Trainer(model, sampler, settings, loss_fn=blind_spot_mse, validate=validate, device=device, seed=seed)
    result = trainer.fit()
    if early_stopping and trainer.best_state is not None:
        model.load_state_dict(trainer.best_state)
    return model.eval(), result
