"""Supervised training of a network family on one dataset: the body of the workflow's ``train`` rule."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from temdenoise.io import StackReader, save_json
from temdenoise.models import build_model, count_parameters, homogeneity_facts
from temdenoise.models.fov import measure_fov
from temdenoise.noise import item_pixel_sizes
from temdenoise.runtime import resolve_device
from temdenoise.train.data import NoiseRange, PatchSampler
from temdenoise.train.engine import Trainer, TrainResult, TrainSettings, plot_history
from temdenoise.train.validation import psnr_validation

log = logging.getLogger("temdenoise")


def model_info(entry: dict[str, Any]) -> dict[str, Any]:
    """Parameter count, measured field of view (pixels, side) and homogeneity facts of a method entry's network."""
    model = build_model(entry)
    return {"family": entry["family"], "params": entry.get("params", {}),
            "parameters": count_parameters(model), "fov": measure_fov(model), **homogeneity_facts(model)}


def pixel_size_summary(sizes: list[float] | None) -> dict[str, float]:
    """Median, min and max pixel size (A) of a training split, recorded in ``info.json`` so that a
    trained model is applied at its own scale (``temdenoise denoise``); without metadata the
    samplers' 1 A."""
    sizes = sizes or [1.0]
    return {"median": float(np.median(sizes)), "min": float(np.min(sizes)), "max": float(np.max(sizes))}


def load_split(stack_path: str, metadata_path: str | None, count: int | None = None) -> tuple[list, list[float] | None]:
    """The first ``count`` (None: all) items of a split and their pixel sizes (None without a
    metadata table); only those items are read."""
    with StackReader(stack_path) as stack:
        images = stack[:count]
        sizes = None if metadata_path is None else list(item_pixel_sizes(pd.read_csv(metadata_path), len(stack)))
    return images, None if sizes is None else sizes[:count]


OUTPUTS = ("model.pt", "metrics.csv", "training_curve.png", "info.json")
"""Files :func:`train_supervised` writes in its output folder (``last.pt`` is the resumable checkpoint)."""


def train_supervised(
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
    loader_workers: int = 0,
) -> TrainResult:
    """Train ``entry``'s network on clean ``train_path`` images with noise drawn from ``train_noise``.

    Writes in ``out_dir``: ``model.pt`` (weights of the best validation PSNR), ``metrics.csv``
    (per epoch), ``training_curve.png`` and ``info.json`` (parameters, measured FoV, best epoch),
    plus the checkpoint ``last.pt`` after every epoch; a restarted job resumes from it.
    ``loader_workers``: processes that build the batches (:class:`temdenoise.train.engine.Trainer`).
    Pixel sizes (Poisson dose per pixel) come from the metadata tables when given, else 1 A.
    ``info.json`` holds what rebuilds and applies the model elsewhere: family and params (offset
    included), training noise range, domain, recipe and the training pixel sizes.
    """
    out = Path(out_dir)
    device = resolve_device(device)
    settings = TrainSettings.from_config(recipe)
    noise = NoiseRange.from_config(train_noise)
    train_images, train_sizes = load_split(train_path, train_metadata)
    val_images, val_sizes = load_split(validation_path, validation_metadata, settings.validation_images)
    validate = psnr_validation(val_images, noise, domain, device, seed + 1, val_sizes)
    sampler = PatchSampler(train_images, noise, settings.patch_size, settings.batch_size, train_sizes,
                           rotation_deg=settings.rotation_deg, rescale=settings.rescale)
    trainer = Trainer(build_model(entry), sampler, settings, validate=validate, out_dir=out, device=device, seed=seed,
                      fingerprint={"entry": entry, "train_noise": train_noise, "domain": domain},
                      loader_workers=loader_workers)
    info = model_info(entry)
    log.info("training %s (%d parameters, FoV %d px) on %s", entry, info["parameters"], info["fov"], device)
    result = trainer.fit()
    info.update(precision=result.precision, best_epoch=result.best_epoch, best_val_psnr=result.best_score, epochs=len(result.history),
                stopped_early=result.stopped_early, train_noise=train_noise, domain=domain,
                pixel_size=pixel_size_summary(train_sizes), recipe=recipe)
    plot_history(result.history, out / "training_curve.png", title=f"{entry['family']} {entry.get('params', {})}")
    save_json(out / "info.json", info)
    trainer.export(out / "model.pt")
    return result
