"""Self-supervised training of the image networks (DnCNN, UNet) on stored noisy recordings only.

Three objectives, chosen by a ``methods:`` entry's ``objective`` section (:class:`Objective`):

* ``noise2self`` (Batson & Royer, ICML 2019): J-invariant grid masking. One pixel of every
  ``grid x grid`` cell (one random phase per patch) is replaced by the mean of its four neighbours;
  the loss is the MSE to the noisy image on those pixels only.
* ``noise2void`` (Krull, Buchholz & Jug, CVPR 2019): a random ``fraction`` of the pixels, each
  replaced by a random pixel of its ``(2 radius + 1)^2`` neighbourhood (never itself nor another
  masked pixel); the loss is the MSE to the noisy image on the masked pixels.
* ``noise2noise`` (Lehtinen et al., ICML 2018) from one Poisson recording by binomial thinning:
  the counts ``y`` split into ``y1 ~ Binomial(y, p)`` and ``y2 = y - y1``, independent Poisson
  with means ``p lambda`` and ``(1 - p) lambda``; the input ``y1 / (p s)`` and the target
  ``y2 / ((1 - p) s)`` (``s`` = dose x pixel area) both estimate the intensity without bias. The
  net learns at dose ``p D`` and is applied at ``D``.

In every case the target pixel's own noisy value never reaches the input, and the noise is
zero-mean and independent between pixels (between the halves), so the expected loss is the MSE
to the clean image plus a constant. Model selection (best epoch, early stopping) uses the same
loss on fixed masked (thinned) copies of the stored noisy validation images. No clean array is
read anywhere: the workflow's ``train_noisy_images`` rule has noisy stacks and metadata (pixel
sizes) as its only inputs. The networks are applied to the whole noisy image at test time.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
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
from temdenoise.train.self_supervised import stored_recordings
from temdenoise.train.supervised import model_info

log = logging.getLogger("temdenoise")

OBJECTIVES = ("noise2self", "noise2void", "noise2noise")

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
    within a 5 x 5 neighbourhood, as in the paper), ``thinning`` (Noise2Noise: ``p``)."""

    name: str
    grid: int = 4
    fraction: float = 0.016
    radius: int = 2
    thinning: float = 0.5

    def __post_init__(self) -> None:
        if self.name not in OBJECTIVES:
            raise ValueError(f"objective.name must be one of {OBJECTIVES}, got {self.name!r}")

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> "Objective":
        """From an ``objective`` section; unknown keys are an error naming them."""
        unknown = sorted(set(section) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown objective keys {unknown}")
        return cls(**section)

    def pair(
        self, noisy: np.ndarray, scale: float | None, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(input, target, mask)`` of one noisy image; ``scale`` = counts per unit intensity
        (dose x pixel area) of a Poisson recording, None for Gaussian noise."""
        noisy = np.asarray(noisy, dtype=np.float32)
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
    ``(input, target, mask)`` of ``(B, 1, P, P)`` tensors."""
    source, target, mask = batch[0], batch[1], batch[2]
    return ((model(source) - target).pow(2) * mask).sum() / mask.sum()


class NoisyPatchSampler:
    """A ``BatchSampler``: ``(input, target, mask)`` of random patches of noisy images.

    A random image (a random frame of a video), a random patch, a random dihedral symmetry if
    ``augment``, then the objective's pair; ``scales[i]`` is image ``i``'s counts per unit intensity.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        scales: Sequence[float | None],
        objective: Objective,
        patch_size: int,
        batch_size: int,
        augment: bool = True,
    ) -> None:
        self.images = [np.asarray(image, dtype=np.float32) for image in images]
        if not self.images or len(scales) != len(self.images):
            raise ValueError(f"{len(self.images)} noisy images for {len(scales)} scales")
        small = [i for i, image in enumerate(self.images) if min(image.shape[-2:]) < patch_size]
        if small:
            raise ValueError(f"noisy images {small[:5]} are smaller than the patch size {patch_size}")
        self.scales = list(scales)
        self.objective = objective
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.augment = augment

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One ``(input, target, mask)`` triple of ``(P, P)`` arrays."""
        index = int(rng.integers(len(self.images)))
        image = self.images[index]
        if image.ndim == 3:
            image = image[int(rng.integers(image.shape[0]))]
        top = int(rng.integers(image.shape[0] - self.patch_size + 1))
        left = int(rng.integers(image.shape[1] - self.patch_size + 1))
        patch = image[top : top + self.patch_size, left : left + self.patch_size]
        if self.augment:
            patch = dihedral(patch, int(rng.integers(8)))
        return self.objective.pair(np.ascontiguousarray(patch), self.scales[index], rng)

    def __call__(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        triples = [self.sample(rng) for _ in range(self.batch_size)]
        return tuple(torch.from_numpy(np.stack([t[k] for t in triples]).astype(np.float32))[:, None] for k in range(3))


def masked_validation(
    images: Sequence[np.ndarray],
    scales: Sequence[float | None],
    objective: Objective,
    device: str = "cpu",
    seed: int = 0,
) -> Callable[[nn.Module], float]:
    """``validate(model)``: ``-10 log10`` of the objective's loss on fixed masked (thinned) copies of
    noisy validation images, drawn once from ``seed`` (higher is better; no clean data involved)."""
    rng = np.random.default_rng(seed)
    pairs = [objective.pair(image, scale, rng) for image, scale in zip(images, scales)]
    if not pairs:
        raise ValueError("no noisy validation images")

    def validate(model: nn.Module) -> float:
        errors = [((denoise_image(model, source, device) - target)[mask]) for source, target, mask in pairs]
        return float(-10.0 * np.log10(np.mean(np.concatenate(errors) ** 2)))

    return validate


def frames_and_scales(
    items: Sequence[np.ndarray], conditions: Sequence[Any], pixel_sizes: Sequence[float] | None
) -> tuple[list[np.ndarray], list[float | None]]:
    """Every frame of noisy ``items`` (videos split) with its counts per unit intensity (None: Gaussian)."""
    sizes = [1.0] * len(items) if pixel_sizes is None else list(pixel_sizes)
    frames, scales = [], []
    for item, condition, size in zip(items, conditions, sizes):
        scale = condition.level * size**2 if condition.kind == "poisson" else None
        for frame in item if np.ndim(item) == 3 else [item]:
            frames.append(np.asarray(frame, dtype=np.float32))
            scales.append(scale)
    return frames, scales


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
) -> TrainResult:
    """Train ``entry``'s image network with its ``objective`` on stored noisy recordings only.

    ``train_paths[i]`` / ``validation_paths[i]``: the stored noisy copies of the training /
    validation split under condition ``conditions[i]``, pooled (videos are split into frames). The
    metadata tables give the pixel sizes only. Model selection: :func:`masked_validation` on the
    first ``validation_images`` noisy validation items of every condition. Writes
    :data:`~temdenoise.train.supervised.OUTPUTS` in ``out_dir``.
    """
    out = Path(out_dir)
    device = resolve_device(device)
    settings = TrainSettings.from_config(recipe)
    objective = Objective.from_config(entry["objective"])
    torch.manual_seed(seed)
    model = build_model(entry)
    train_items, train_conditions, train_sizes = stored_recordings(
        train_paths, conditions, train_metadata, videos=False
    )
    val_items, val_conditions, val_sizes = stored_recordings(
        validation_paths, conditions, validation_metadata, settings.validation_images, videos=False
    )
    train_frames, train_scales = frames_and_scales(train_items, train_conditions, train_sizes)
    val_frames, val_scales = frames_and_scales(val_items, val_conditions, val_sizes)
    validate = masked_validation(val_frames, val_scales, objective, device, seed + 1)
    sampler = NoisyPatchSampler(train_frames, train_scales, objective, settings.patch_size, settings.batch_size)
    trainer = Trainer(model, sampler, settings, loss_fn=masked_mse, validate=validate, out_dir=out, device=device,
                      seed=seed, fingerprint={"entry": entry, "conditions": list(conditions)})
    info = model_info(entry)
    info.update(objective=asdict(objective), conditions=list(conditions), training_data="stored noisy recordings only",
                selection=f"{objective.name} loss on stored noisy validation images")
    log.info("training %s (%d parameters) by %s on %d noisy frames (%s) on %s", entry, info["parameters"],
             objective.name, len(train_frames), ", ".join(conditions), device)
    result = trainer.fit()
    info.update(best_epoch=result.best_epoch, best_val_score=result.best_score, epochs=len(result.history),
                stopped_early=result.stopped_early)
    plot_history(result.history, out / "training_curve.png", title=f"{objective.name} {entry['family']}")
    save_json(out / "info.json", info)
    trainer.export(out / "model.pt")
    return result
