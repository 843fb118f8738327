"""Self-supervised training of the image networks (DnCNN, UNet) on stored noisy recordings only.

Three objectives, chosen by a ``methods:`` entry's ``objective`` section (:class:`Objective`):

* ``noise2self`` (Batson & Royer, ICML 2019): J-invariant grid masking. One pixel of every
  ``grid x grid`` cell (one random phase per patch) is replaced by the mean of its four neighbours;
  the loss is the MSE to the noisy image on those pixels only.
* ``noise2void`` (Krull, Buchholz & Jug, CVPR 2019): a random ``fraction`` of the pixels, each
  replaced by a random pixel of its ``(2 radius + 1)^2`` neighbourhood (never itself nor another
  masked pixel); the loss is the MSE to the noisy image on the masked pixels.
* ``noise2noise`` (Lehtinen et al., ICML 2018), ``pairs: thinning``: from one Poisson recording
  by binomial thinning: the counts ``y`` split into ``y1 ~ Binomial(y, p)`` and ``y2 = y - y1``,
  independent Poisson with means ``p lambda`` and ``(1 - p) lambda``; the input ``y1 / (p s)`` and
  the target ``y2 / ((1 - p) s)`` (``s`` = dose x pixel area) both estimate the intensity without
  bias. The net learns at dose ``p D`` and is applied at ``D``. ``pairs: two_exposures``
  (simulated data, any noise): the input is the stored noisy copy of a split and the target a
  second, independent stored copy of the same scenes (rule ``add_noise_second``); the net learns
  at the dose it is applied at.

Pooled over several noise conditions, the masked (thinned) loss of the noisiest recordings is the
largest (its expectation is the MSE to the clean image plus the noise variance), so they dominate
the loss and its gradient noise. ``weighting: inverse_variance`` weights each image's loss by the
inverse of its recording's noise variance (:func:`~temdenoise.train.self_supervised.noise_variance`,
from the noisy image and its known dose or sigma, as UDVD's loss does), so that every condition
weighs alike; the weights do not change the minimiser of any one image's loss.

In every case the target pixel's own noisy value never reaches the input, and the noise is
zero-mean and independent between pixels (between the halves), so the expected loss is the MSE
to the clean image plus a constant. Model selection (best epoch, early stopping) uses the same
loss on fixed masked (thinned) copies of the stored noisy validation images. No clean array is
read anywhere: the workflow's ``train_noisy_images`` rule has noisy stacks and metadata (pixel
sizes) as its only inputs. The networks are applied to the whole noisy image at test time.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from temdenoise.io import save_json
from temdenoise.models import build_model
from temdenoise.models.inference import denoise_image
from temdenoise.runtime import resolve_device
from temdenoise.train.data import dihedral
from temdenoise.train.engine import Trainer, TrainResult, TrainSettings, plot_history
from temdenoise.noise import NoiseCondition
from temdenoise.train.self_supervised import noise_variance, stored_recordings
from temdenoise.train.supervised import model_info

log = logging.getLogger("temdenoise")

OBJECTIVES = ("noise2self", "noise2void", "noise2noise")
PAIRS = ("thinning", "two_exposures")
WEIGHTINGS = ("none", "inverse_variance")

# The four direct neighbours: the Noise2Self replacement of a masked pixel.
_NEIGHBOURS = np.array([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]])


def noise2self_input(noisy: np.ndarray, grid: int, phase: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The masked input and the mask of the pixels ``(i, j)`` with ``(i % grid, j % grid) == phase``.

    Masked pixels take the mean of their four neighbours (mirrored at the border, so never their
    own value); with ``grid >= 2`` no neighbour is masked, so the input is independent of the
    noisy values at the masked pixels.
    """
    if grid < 2:
        raise ValueError(f"noise2self grid must be >= 2, got {grid}")
    rows, cols = np.indices(noisy.shape)
    mask = (rows % grid == phase[0]) & (cols % grid == phase[1])
    interpolated = ndimage.correlate(noisy.astype(np.float64), _NEIGHBOURS, mode="mirror")
    return np.where(mask, interpolated, noisy).astype(np.float32), mask


def noise2void_input(
    noisy: np.ndarray, fraction: float, radius: int, rng: np.random.Generator, tries: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """The masked input and the mask of ``fraction`` of the pixels, drawn at random.

    Each masked pixel takes the noisy value of a random pixel within ``radius`` of it (the
    neighbour is redrawn while it is the pixel itself or another masked pixel), so the input is
    independent of the noisy values at the masked pixels.
    """
    height, width = noisy.shape
    count = max(1, int(round(fraction * height * width)))
    chosen = rng.choice(height * width, size=count, replace=False)
    mask = np.zeros(height * width, dtype=bool)
    mask[chosen] = True
    mask = mask.reshape(height, width)
    rows, cols = np.divmod(chosen, width)
    source_rows, source_cols = rows.copy(), cols.copy()
    redraw = np.ones(count, dtype=bool)
    for _ in range(tries):
        if not redraw.any():
            break
        offsets = rng.integers(-radius, radius + 1, size=(2, int(redraw.sum())))
        source_rows[redraw] = np.clip(rows[redraw] + offsets[0], 0, height - 1)
        source_cols[redraw] = np.clip(cols[redraw] + offsets[1], 0, width - 1)
        redraw = mask[source_rows, source_cols]
    else:
        if redraw.any():
            raise ValueError(f"noise2void: no unmasked neighbour within radius {radius} (fraction {fraction} too high)")
    masked = noisy.astype(np.float32).copy()
    masked[rows, cols] = noisy[source_rows, source_cols]
    return masked, mask


def binomial_split(counts: np.ndarray, p: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Binomial thinning: ``y1 ~ Binomial(counts, p)`` and ``y2 = counts - y1``.

    For Poisson ``counts`` of mean ``lambda`` the two are independent Poisson with means
    ``p lambda`` and ``(1 - p) lambda`` (one recording gives a Noise2Noise pair).
    """
    if not 0 < p < 1:
        raise ValueError(f"thinning probability must lie in (0, 1), got {p}")
    counts = np.asarray(counts)
    if np.any(counts < 0) or not np.array_equal(counts, np.round(counts)):
        raise ValueError("binomial thinning needs non-negative integer counts")
    first = rng.binomial(counts.astype(np.int64), p)
    return first, counts.astype(np.int64) - first


@dataclass(frozen=True)
class Objective:
    """A self-supervised objective (a ``methods:`` entry's ``objective`` section) and its settings:
    ``grid`` (Noise2Self), ``fraction`` and ``radius`` (Noise2Void; 64 pixels of a 64 x 64 patch
    within a 5 x 5 neighbourhood, as in the paper), ``pairs`` and ``thinning`` (Noise2Noise: one
    recording thinned with probability ``p``, or two stored exposures), ``weighting`` (every
    objective: ``none`` or ``inverse_variance`` of each recording's noise)."""

    name: str
    grid: int = 4
    fraction: float = 0.016
    radius: int = 2
    thinning: float = 0.5
    pairs: str = "thinning"
    weighting: str = "none"

    def __post_init__(self) -> None:
        if self.name not in OBJECTIVES:
            raise ValueError(f"objective.name must be one of {OBJECTIVES}, got {self.name!r}")
        if self.pairs not in PAIRS:
            raise ValueError(f"objective.pairs must be one of {PAIRS}, got {self.pairs!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"objective.weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")

    @property
    def two_exposures(self) -> bool:
        """Whether the objective pairs two stored noisy copies (Noise2Noise ``pairs: two_exposures``)."""
        return self.name == "noise2noise" and self.pairs == "two_exposures"

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> "Objective":
        """From an ``objective`` section; unknown keys are an error naming them."""
        unknown = sorted(set(section) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown objective keys {unknown}")
        return cls(**section)

    def pair(
        self,
        noisy: np.ndarray,
        scale: float | None,
        rng: np.random.Generator,
        second: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(input, target, mask)`` of one noisy image; ``scale`` = counts per unit intensity
        (dose x pixel area) of a Poisson recording, None for Gaussian noise; ``second``: the
        independent second exposure of the same scene (``pairs: two_exposures`` only)."""
        noisy = np.asarray(noisy, dtype=np.float32)
        if self.two_exposures:
            if second is None or np.shape(second) != noisy.shape:
                raise ValueError("noise2noise with two exposures needs a second noisy copy of the same shape")
            return noisy, np.asarray(second, dtype=np.float32), np.ones(noisy.shape, dtype=bool)
        if self.name == "noise2self":
            phase = (int(rng.integers(self.grid)), int(rng.integers(self.grid)))
            masked, mask = noise2self_input(noisy, self.grid, phase)
            return masked, noisy, mask
        if self.name == "noise2void":
            masked, mask = noise2void_input(noisy, self.fraction, self.radius, rng)
            return masked, noisy, mask
        if scale is None:
            raise ValueError("noise2noise by binomial thinning needs Poisson recordings (counts)")
        first, second = binomial_split(np.round(noisy.astype(np.float64) * scale), self.thinning, rng)
        source = (first / (self.thinning * scale)).astype(np.float32)
        target = (second / ((1 - self.thinning) * scale)).astype(np.float32)
        return source, target, np.ones(noisy.shape, dtype=bool)


def masked_mse(model: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """MSE between ``model(input)`` and ``target`` on the pixels of ``mask``, for a batch
    ``(input, target, mask)`` of ``(B, 1, P, P)`` tensors; a real-valued ``mask`` holds each
    pixel's weight (the weighted mean)."""
    source, target, mask = batch[0], batch[1], batch[2]
    return ((model(source) - target).pow(2) * mask).sum() / mask.sum()


@dataclass(frozen=True)
class NoisyImages:
    """Noisy frames (videos split) with, for each, its counts per unit intensity (``scales``;
    None: Gaussian noise), its loss weight (1, or the inverse of its recording's noise variance)
    and its condition; ``seconds``: the independent second exposures of the same frames, or None."""

    frames: list[np.ndarray]
    scales: list[float | None]
    weights: list[float]
    conditions: list[str]
    seconds: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        sizes = {len(self.scales), len(self.weights), len(self.conditions), len(self.frames)}
        if self.seconds is not None:
            sizes.add(len(self.seconds))
        if not self.frames or len(sizes) != 1:
            raise ValueError(f"{len(self.frames)} noisy frames for {sorted(sizes)} scales / weights / second copies")

    def second(self, index: int) -> np.ndarray | None:
        return None if self.seconds is None else self.seconds[index]

    def subset(self, condition: str) -> "NoisyImages":
        """The frames recorded under ``condition``."""
        keep = [i for i, name in enumerate(self.conditions) if name == condition]
        return NoisyImages([self.frames[i] for i in keep], [self.scales[i] for i in keep],
                           [self.weights[i] for i in keep], [condition] * len(keep),
                           None if self.seconds is None else [self.seconds[i] for i in keep])


class NoisyPatchSampler:
    """A ``BatchSampler``: ``(input, target, mask)`` of random patches of noisy images.

    A random frame, a random patch (the same one of its second exposure), a random dihedral
    symmetry if ``augment``, then the objective's pair; the mask carries the frame's loss weight.
    """

    def __init__(
        self, images: NoisyImages, objective: Objective, patch_size: int, batch_size: int, augment: bool = True
    ) -> None:
        small = [i for i, image in enumerate(images.frames) if min(image.shape[-2:]) < patch_size]
        if small:
            raise ValueError(f"noisy images {small[:5]} are smaller than the patch size {patch_size}")
        if objective.two_exposures and images.seconds is None:
            raise ValueError("noise2noise with two exposures needs the second noisy copies")
        self.images = images
        self.objective = objective
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.augment = augment

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One ``(input, target, mask)`` triple of ``(P, P)`` arrays."""
        index = int(rng.integers(len(self.images.frames)))
        image, second = self.images.frames[index], self.images.second(index)
        top = int(rng.integers(image.shape[0] - self.patch_size + 1))
        left = int(rng.integers(image.shape[1] - self.patch_size + 1))
        window = (slice(top, top + self.patch_size), slice(left, left + self.patch_size))
        symmetry = int(rng.integers(8)) if self.augment else 0
        patch = np.ascontiguousarray(dihedral(image[window], symmetry))
        if second is not None:
            second = np.ascontiguousarray(dihedral(second[window], symmetry))
        source, target, mask = self.objective.pair(patch, self.images.scales[index], rng, second)
        return source, target, mask * np.float32(self.images.weights[index])

    def __call__(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        triples = [self.sample(rng) for _ in range(self.batch_size)]
        return tuple(torch.from_numpy(np.stack([t[k] for t in triples]).astype(np.float32))[:, None] for k in range(3))


def masked_validation(
    images: NoisyImages, objective: Objective, device: str = "cpu", seed: int = 0
) -> Callable[[nn.Module], float]:
    """``validate(model)``: ``-10 log10`` of the objective's loss (weighted as in training) on fixed
    masked (thinned) copies of noisy validation images, drawn once from ``seed`` (higher is better;
    no clean data involved)."""
    rng = np.random.default_rng(seed)
    pairs = [objective.pair(image, scale, rng, images.second(i))
             for i, (image, scale) in enumerate(zip(images.frames, images.scales))]

    def validate(model: nn.Module) -> float:
        weighted, total = 0.0, 0.0
        for (source, target, mask), weight in zip(pairs, images.weights):
            errors = (denoise_image(model, source, device) - target)[mask]
            weighted += weight * float(np.sum(errors.astype(np.float64) ** 2))
            total += weight * errors.size
        return float(-10.0 * np.log10(weighted / total))

    return validate


def noisy_images(
    items: Sequence[np.ndarray],
    conditions: Sequence[NoiseCondition],
    pixel_sizes: Sequence[float] | None,
    weighting: str = "none",
    seconds: Sequence[np.ndarray] | None = None,
) -> NoisyImages:
    """Every frame of noisy ``items`` (videos split) with its counts per unit intensity, its loss
    weight under ``weighting`` and its condition's name; ``seconds``: the items' second exposures."""
    sizes = [1.0] * len(items) if pixel_sizes is None else list(pixel_sizes)
    pairs = zip(items, [None] * len(items) if seconds is None else seconds, conditions, sizes)
    frames, second_frames, scales, weights, names = [], [], [], [], []
    for item, second, condition, size in pairs:
        scale = condition.level * size**2 if condition.kind == "poisson" else None
        for index, frame in enumerate(item if np.ndim(item) == 3 else [item]):
            frame = np.asarray(frame, dtype=np.float32)
            frames.append(frame)
            scales.append(scale)
            weights.append(1.0 / noise_variance(condition, frame, size) if weighting == "inverse_variance" else 1.0)
            names.append(condition.name)
            if second is not None:
                second_frames.append(np.asarray(second if np.ndim(item) == 2 else second[index], dtype=np.float32))
    return NoisyImages(frames, scales, weights, names, second_frames if seconds is not None else None)


def condition_scores(
    model: nn.Module, images: NoisyImages, objective: Objective, device: str = "cpu", seed: int = 0
) -> dict[str, float]:
    """The unweighted validation score of ``model`` under each condition of ``images``: comparable
    between nets of any ``weighting`` (a higher score is a lower MSE to the clean images, since the
    noise adds the same constant to both)."""
    unweighted = replace(objective, weighting="none")
    scores = {}
    for name in dict.fromkeys(images.conditions):
        subset = images.subset(name)
        subset = replace(subset, weights=[1.0] * len(subset.weights))
        scores[name] = masked_validation(subset, unweighted, device, seed)(model)
    return scores


def train_noisy_images(
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
    train_second_paths: Sequence[str] | None = None,
    validation_second_paths: Sequence[str] | None = None,
    loader_workers: int = 0,
) -> TrainResult:
    """Train ``entry``'s image network with its ``objective`` on stored noisy recordings only.

    ``train_paths[i]`` / ``validation_paths[i]``: the stored noisy copies of the training /
    validation split under condition ``conditions[i]``, pooled (videos are split into frames);
    ``*_second_paths``: their independent second copies (Noise2Noise with two exposures). The
    metadata tables give the pixel sizes only. Model selection: :func:`masked_validation` on the
    first ``validation_images`` noisy validation items of every condition; ``info.json`` also holds
    the best net's unweighted score under each condition (:func:`condition_scores`). Writes
    :data:`~temdenoise.train.supervised.OUTPUTS` in ``out_dir``. ``loader_workers``: processes that
    build the batches (:class:`temdenoise.train.engine.Trainer`).
    """
    out = Path(out_dir)
    device = resolve_device(device)
    settings = TrainSettings.from_config(recipe)
    objective = Objective.from_config(entry["objective"])
    if objective.two_exposures != (train_second_paths is not None and validation_second_paths is not None):
        raise ValueError("second noisy copies are given exactly when the objective pairs two exposures")
    torch.manual_seed(seed)
    model = build_model(entry)

    def load(paths: Sequence[str], second_paths: Sequence[str] | None, metadata: str | None,
             count: int | None) -> NoisyImages:
        items, kinds, sizes = stored_recordings(paths, conditions, metadata, count, videos=False)
        seconds = None if second_paths is None else stored_recordings(second_paths, conditions, None, count,
                                                                       videos=False)[0]
        return noisy_images(items, kinds, sizes, objective.weighting, seconds)

    train_images = load(train_paths, train_second_paths, train_metadata, None)
    val_images = load(validation_paths, validation_second_paths, validation_metadata, settings.validation_images)
    validate = masked_validation(val_images, objective, device, seed + 1)
    sampler = NoisyPatchSampler(train_images, objective, settings.patch_size, settings.batch_size)
    trainer = Trainer(model, sampler, settings, loss_fn=masked_mse, validate=validate, out_dir=out, device=device,
                      seed=seed, fingerprint={"entry": entry, "conditions": list(conditions)},
                      loader_workers=loader_workers)
    info = model_info(entry)
    info.update(objective=asdict(objective), conditions=list(conditions), training_data="stored noisy recordings only",
                selection=f"{objective.name} loss on stored noisy validation images")
    log.info("training %s (%d parameters) by %s on %d noisy frames (%s) on %s", entry, info["parameters"],
             objective.name, len(train_images.frames), ", ".join(conditions), device)
    result = trainer.fit()
    if trainer.best_state is not None:
        model.load_state_dict(trainer.best_state)
    info.update(precision=result.precision, best_epoch=result.best_epoch, best_val_score=result.best_score, epochs=len(result.history),
                stopped_early=result.stopped_early,
                val_score_by_condition=condition_scores(model, val_images, objective, device, seed + 1))
    plot_history(result.history, out / "training_curve.png", title=f"{objective.name} {entry['family']}")
    save_json(out / "info.json", info)
    trainer.export(out / "model.pt")
    return result
