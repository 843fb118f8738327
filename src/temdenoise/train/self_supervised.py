"""Self-supervised (blind-spot) training of UDVD on noisy frames only.

The loss is the MSE between the blind-spot network's output and the *noisy* centre frame
(Sheth, Mohan et al., ICCV 2021): because the output pixel never sees its own noisy value and the
noise is zero-mean and independent between pixels, its expectation is the MSE to the clean frame
plus the (constant) noise variance. Nothing here ever reads a clean frame as a target or for
model selection; clean videos only serve, in the training-set mode, to draw fresh noisy
observations on the fly (a stand-in for an unlimited supply of noisy training videos).

Two modes, both on the generic :class:`~temdenoise.train.engine.Trainer`:

* :func:`train_udvd` - a set of training videos, noise drawn over the entry's training range,
  model selection by the blind-spot loss on fixed noisy copies of the validation videos
  (the workflow's ``train`` rule; same signature as :func:`~temdenoise.train.supervised.train_supervised`);
* :func:`fit_single_video` - the test video itself (no other data), with optional spatial flips
  and time reversal, and optional early stopping on held-out noisy frames.
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
from temdenoise.models import build_model, count_parameters
from temdenoise.models.udvd import UDVD, denoise_video, window_frames
from temdenoise.runtime import resolve_device
from temdenoise.train.data import NoiseRange
from temdenoise.train.engine import Trainer, TrainResult, TrainSettings, plot_history
from temdenoise.train.supervised import OUTPUTS, load_split

log = logging.getLogger("temdenoise")


def blind_spot_mse(model: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """MSE between ``model(windows)`` and the noisy centre frame of ``windows`` (B, T, P, P).

    With a second tensor ``weights`` (B,) in the batch, the per-window MSEs are averaged with
    those weights (:class:`VideoWindowSampler` with ``weighted``: inverse noise variances).
    """
    windows = batch[0]
    centre = windows.shape[1] // 2
    if len(batch) < 2:
        return torch.nn.functional.mse_loss(model(windows), windows[:, centre : centre + 1])
    errors = (model(windows) - windows[:, centre : centre + 1]).pow(2).mean(dim=(1, 2, 3))
    return (batch[1] * errors).sum() / batch[1].sum()


def noise_variance(kind: str, level: float, clean: np.ndarray, pixel_size: float = 1.0) -> float:
    """Mean noise variance of a ``kind`` noise at ``level`` on the clean frame ``clean``.

    Poisson: ``mean(I) / (D p^2)`` (shot noise on the clean scale); Gaussian: ``(sigma / 255)^2``.
    Floored, so that a black window or a zero level never gets an infinite weight.
    """
    if kind == "poisson":
        return max(float(np.mean(clean)), 1e-3) / (level * pixel_size**2)
    return max(level / 255.0, 1e-3) ** 2


class VideoWindowSampler:
    """A ``BatchSampler``: ``sampler(rng) -> (windows,)``, noisy ``(B, frames, P, P)`` patches.

    Each window is centred on a random allowed frame (``centres[i]``: frame indices of video
    ``i``; default all) of a random video; windows reaching past the ends of a video are completed
    as at inference (:func:`~temdenoise.models.udvd.window_frames`). With ``noise`` the videos are
    clean and a level and realisation are drawn per window, one per frame, so that a frame used
    twice carries the same noise twice, as in a noisy video; without it the videos are already
    noisy. ``flips``: random horizontal and vertical flips;
    ``time_reversal``: the window's frame order reversed with probability 1/2;
    ``weighted`` (clean videos only): the batch is ``(windows, weights)``, each window weighted by
    the inverse of its noise variance (:func:`noise_variance`) in :func:`blind_spot_mse`;
    ``contrast_inversion`` (clean videos only): with probability 1/2 the clean window is mirrored
    about its video's mean intensity (``2 * mean - x``, clipped at 0) before the noise is drawn, so
    that dark-atom and bright-atom contrast (the two signs of the phase contrast, set by the
    defocus) are both seen whatever the contrast of the few training videos.
    """

    def __init__(
        self,
        videos: Sequence[np.ndarray],
        frames: int,
        patch_size: int,
        batch_size: int,
        noise: NoiseRange | None = None,
        pixel_sizes: Sequence[float] | None = None,
        centres: Sequence[Sequence[int]] | None = None,
        flips: bool = True,
        time_reversal: bool = True,
        contrast_inversion: bool = False,
        weighted: bool = False,
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
        self.noise = noise
        self.pixel_sizes = [1.0] * len(videos) if pixel_sizes is None else [float(p) for p in pixel_sizes]
        self.flips, self.time_reversal = flips, time_reversal
        if contrast_inversion and noise is None:
            raise ValueError("contrast inversion needs clean videos (noise drawn on the fly): it would change the noise")
        self.contrast_inversion = contrast_inversion
        if weighted and noise is None:
            raise ValueError("weighted windows need clean videos (noise drawn on the fly) whose noise level is known")
        self.weighted = weighted
        self.means = [float(np.mean(v)) for v in videos]

    def window(self, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """One noisy ``(frames, P, P)`` window and its mean noise variance (1 for noisy videos)."""
        index = int(rng.integers(len(self.videos)))
        video = self.videos[index]
        centre = int(rng.choice(self.centres[index]))
        top = int(rng.integers(video.shape[1] - self.patch_size + 1))
        left = int(rng.integers(video.shape[2] - self.patch_size + 1))
        # The distinct frames of the window, then the window as indices into them.
        distinct, positions = np.unique(window_frames(len(video), self.frames, centre), return_inverse=True)
        patches = video[distinct, top : top + self.patch_size, left : left + self.patch_size]
        if self.contrast_inversion and rng.random() < 0.5:
            patches = np.clip(2.0 * self.means[index] - patches, 0.0, None)
        variance = 1.0
        if self.noise is not None:
            level = self.noise.draw(rng)
            variance = noise_variance(self.noise.kind, level, patches[positions[self.half]], self.pixel_sizes[index])
            patches = self.noise.add(patches, level, rng, self.pixel_sizes[index])
        window = patches[positions]
        if self.flips:
            if rng.random() < 0.5:
                window = window[:, ::-1, :]
            if rng.random() < 0.5:
                window = window[:, :, ::-1]
        if self.time_reversal and rng.random() < 0.5:
            window = window[::-1]
        return np.ascontiguousarray(window, dtype=np.float32), variance

    def __call__(self, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        windows, variances = zip(*(self.window(rng) for _ in range(self.batch_size)))
        batch = torch.from_numpy(np.stack(windows))
        if not self.weighted:
            return (batch,)
        return batch, 1.0 / torch.tensor(variances, dtype=torch.float32)


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


def _videos(stack_path: str, metadata_path: str | None) -> tuple[list[np.ndarray], list[float] | None]:
    videos, sizes = load_split(stack_path, metadata_path)
    flat = [i for i, v in enumerate(videos) if v.ndim != 3]
    if flat:
        raise ValueError(f"{stack_path}: UDVD needs (T, H, W) videos, items {flat[:5]} are not videos")
    return videos, sizes


def train_udvd(
    entry: dict[str, Any],
    recipe: dict[str, Any],
    train_noise: dict[str, Any],
    domain: str,
    train_path: str,
    validation_path: str,
    out_dir: str,
    train_metadata: str | None = None,
    validation_metadata: str | None = None,
    device: str = "auto",
    seed: int = 0,
    contrast_inversion: bool = True,
    weighted: bool = True,
) -> TrainResult:
    """Train a UDVD ``entry`` on noisy windows of the training videos (noise from ``train_noise``).

    The clean training windows are contrast-inverted half of the time (``contrast_inversion``, see
    :class:`VideoWindowSampler`): with one or a few training videos the net otherwise learns the
    contrast of those videos only (measured on the quick data: 30 dB on noisy copies of the
    dark-atom training video, below the noisy input on the bright-atom test video).

    The windows are weighted by the inverse of their noise variance (``weighted``, see
    :class:`VideoWindowSampler`). Each window's blind-spot MSE is its error to the clean frame plus
    its noise variance, so the unweighted loss and its gradient noise are dominated by the noisiest
    windows (dose 10 vs 200: 20 times the variance); the quick nets then learnt mostly noise and
    their rank depended on the seed. The weights change nothing in the minimiser (the noise level
    is plain in every window) and make every window's noise count alike.

    Model selection (best weights, plateau schedule, early stopping) uses the blind-spot score of
    :func:`noisy_frame_validation` on fixed noisy copies of the validation videos, so no clean frame
    is ever used. ``domain`` is unused (no PSNR is computed) and kept for the signature shared with
    :func:`~temdenoise.train.supervised.train_supervised`. Writes
    :data:`~temdenoise.train.supervised.OUTPUTS` in ``out_dir``.
    """
    del domain
    out = Path(out_dir)
    device = resolve_device(device)
    settings = TrainSettings.from_config(recipe)
    noise = NoiseRange.from_config(train_noise)
    torch.manual_seed(seed)
    model = build_model(entry)
    train_videos, train_sizes = _videos(train_path, train_metadata)
    val_videos, val_sizes = _videos(validation_path, validation_metadata)
    count = min(settings.validation_images, len(val_videos))
    rng = np.random.default_rng(seed + 1)
    sizes = [1.0] * count if val_sizes is None else val_sizes[:count]
    noisy_val = [noise.add(v, level, rng, s) for v, level, s in zip(val_videos, noise.spread(count), sizes)]
    validate = noisy_frame_validation(noisy_val, [range(len(v)) for v in noisy_val], device)
    sampler = VideoWindowSampler(train_videos, model.frames, settings.patch_size, settings.batch_size, noise, train_sizes,
                                 contrast_inversion=contrast_inversion, weighted=weighted)
    trainer = Trainer(model, sampler, settings, loss_fn=blind_spot_mse, validate=validate, out_dir=out,
                      device=device, seed=seed,
                      fingerprint={"entry": entry, "train_noise": train_noise,
                                   "contrast_inversion": contrast_inversion, "weighted": weighted})
    info: dict[str, Any] = {"family": entry["family"], "params": entry.get("params", {}),
                            "parameters": count_parameters(model), "selection": "blind-spot score on noisy frames",
                            "contrast_inversion": contrast_inversion, "weighted": weighted}
    log.info("training %s (%d parameters) self-supervised on %s", entry, info["parameters"], device)
    result = trainer.fit()
    info.update(best_epoch=result.best_epoch, best_val_score=result.best_score, epochs=len(result.history),
                stopped_early=result.stopped_early, train_noise=train_noise)
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
