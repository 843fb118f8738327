"""Apply trained models to a user's recordings, and rank them there without ground truth.

The bodies of ``temdenoise denoise`` and ``temdenoise score`` (:mod:`temdenoise.cli`) and of the
workflow's real-data rules:

* :func:`load_model_dir` rebuilds a trained model from its workflow folder
  (``results/models/<dataset>/<model>/``: ``info.json`` + ``model.pt``, ``weights_only=True``);
* :func:`calibrate` turns a recording's values into counts and the model's input scale
  (normalised intensity, vacuum = 1: ``counts / (D p^2)``), stating every assumption;
* :func:`apply_model` runs it at the model's pixel size (resampling when the file's differs by
  more than :data:`PIXEL_SIZE_TOLERANCE`): tiled inference for supervised nets, sliding frame
  windows for UDVD;
* :func:`denoise_files` writes a calibrated TIFF and a JSON provenance sidecar per input;
* :func:`score_files` ranks models by the thinning estimate of their PSNR (:mod:`temdenoise.thinning`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import tifffile
import torch
from skimage.transform import resize
from tqdm.auto import tqdm

from temdenoise import provenance, registry
from temdenoise.io import atomic_path, load_stack, save_json, save_stack, save_table, save_text
from temdenoise.models import load_trained
from temdenoise.models.inference import denoise_image
from temdenoise.readers import Recording, RecordingError, read_recording
from temdenoise.stats import paired_difference
from temdenoise.thinning import ThinnedSplit, estimate_data_range, estimated_mse, psnr_from_mse, thin

log = logging.getLogger("temdenoise")

PIXEL_SIZE_TOLERANCE = 0.10
"""Relative pixel-size mismatch above which a model is not applied at the file's scale."""
NOISY = "noisy"
"""The identity (the thinned input itself), always scored as the baseline row."""


@dataclass
class TrainedModel:
    """A trained network rebuilt from its workflow folder, with what it was trained on."""

    directory: Path
    name: str
    info: dict[str, Any]
    network: torch.nn.Module
    weights_sha256: str
    pixel_size: float  # median training pixel size, A

    @property
    def takes_videos(self) -> bool:
        return registry.takes_videos(self.info)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_model_dir(directory: str | os.PathLike, device: str = "cpu") -> TrainedModel:
    """Rebuild the trained network of a workflow model folder (``info.json`` + ``model.pt``).

    ``info.json`` must name the family, params, noise model and training pixel size (written by
    the training rules); a model of Gaussian-noise training (natural images) is refused: counts
    from a microscope are Poisson.
    """
    directory = Path(directory)
    info_path, weights = directory / "info.json", directory / "model.pt"
    for needed in (info_path, weights):
        if not needed.is_file():
            raise FileNotFoundError(f"{directory}: not a trained model folder (no {needed.name})")
    info = json.loads(info_path.read_text())
    missing = [key for key in ("family", "params", "train_noise", "pixel_size") if not info.get(key)]
    if missing:
        raise ValueError(f"{info_path}: lacks {', '.join(missing)}; retrain the model with this version")
    if info["train_noise"]["kind"] != "poisson":
        raise ValueError(f"{directory}: trained on {info['train_noise']['kind']} noise, not on Poisson counts")
    network = load_trained(weights, {"family": info["family"], "params": info["params"]}, device)
    return TrainedModel(directory, directory.name, info, network, sha256_file(weights), info["pixel_size"]["median"])


@dataclass
class Calibration:
    """How a recording's values became counts and the model's input scale (normalised intensity)."""

    pixel_size: float  # A
    dose: float  # e/A^2 per image / frame
    counts_per_unit: float  # counts per stored value
    assumptions: list[str] = field(default_factory=list)

    @property
    def counts_per_intensity(self) -> float:
        """``s = D p^2``: expected counts per pixel of vacuum (normalised intensity 1)."""
        return self.dose * self.pixel_size**2


def calibrate(
    recording: Recording,
    pixel_size: float | None = None,
    dose: float | None = None,
    counts_per_unit: float | None = None,
) -> Calibration:
    """Pixel size, dose and count conversion of ``recording``: the user's values first, then the
    file's; what is assumed is stated in :attr:`Calibration.assumptions`.

    Integer data are counts; other data need ``counts_per_unit``, or ``dose`` with the mean
    intensity taken as vacuum's. A missing dose is estimated from the mean counts the same way.
    """
    assumptions = []
    size = pixel_size or recording.pixel_size
    if size is None:
        raise RecordingError(recording.path, "the file has no pixel size; pass --pixel-size (A)")
    if pixel_size is None:
        assumptions.append(f"pixel size {size:.4g} A from the file ({recording.unit})")
    mean = float(recording.data.mean())
    if mean <= 0:
        raise RecordingError(recording.path, "mean value is not positive: not counts of electrons")
    file_dose = next((value for key, value in recording.exposure.items() if key.lower().endswith("dose")), None)
    dose = dose or file_dose
    if counts_per_unit is None:
        if recording.integer:
            counts_per_unit = 1.0
            assumptions.append("integer values used as counts")
        elif dose is not None:
            counts_per_unit = dose * size**2 / mean
            assumptions.append(f"float values scaled to counts with the mean intensity taken as vacuum's (dose {dose:g})")
        else:
            raise RecordingError(recording.path, "values are not integer counts; pass --counts-per-unit or --dose")
    if dose is None:
        dose = mean * counts_per_unit / size**2
        assumptions.append(f"dose {dose:.4g} e/A^2 estimated from the mean counts (mean intensity taken as vacuum's)")
    elif dose == file_dose:
        assumptions.append(f"dose {dose:g} e/A^2 from the file's metadata")
    return Calibration(size, float(dose), float(counts_per_unit), assumptions)


def resampling_factor(source_pixel_size: float, model: TrainedModel, resample: bool) -> float:
    """Zoom that brings an image to the model's pixel size (1 within the tolerance); refuses a
    mismatch when resampling is off."""
    factor = source_pixel_size / model.pixel_size
    if abs(factor - 1) <= PIXEL_SIZE_TOLERANCE:
        return 1.0
    if not resample:
        raise ValueError(
            f"pixel size {source_pixel_size:.4g} A differs from {model.name}'s training pixel size "
            f"{model.pixel_size:.4g} A by {abs(factor - 1):.0%} (> {PIXEL_SIZE_TOLERANCE:.0%}); "
            "the model would see structures at the wrong scale (use --resample)"
        )
    return factor


def _zoom(data: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize the last two axes (bilinear, anti-aliased when shrinking); normalised intensity is a
    density, so its values are kept."""
    frames = data if data.ndim == 3 else data[None]
    out = np.stack([resize(frame, shape, order=1, anti_aliasing=True, preserve_range=True) for frame in frames])
    return (out if data.ndim == 3 else out[0]).astype(np.float32)


@dataclass(frozen=True)
class ApplySettings:
    """Settings of one application of a model (recorded in every sidecar)."""

    device: str = "cpu"
    tile: int | None = 512  # supervised nets: side of the tiles (None: whole image)
    resample: bool = True
    # GainTuning on the file itself: the chosen setting of a workflow selection.json ({loss, lr, steps},
    # chosen on validation images), None = off; it adapts on a central crop of ``gaintune_crop`` pixels.
    gaintune: dict[str, Any] | None = None
    gaintune_source: str = ""  # the selection.json it came from
    gaintune_crop: int = 256
    seed: int = 0


def gaintuned(model: TrainedModel, image: np.ndarray, dose: float, settings: ApplySettings) -> torch.nn.Module:
    """A copy of the model's network whose gains are adapted to ``image`` (normalised, at the
    model's pixel size, dose ``dose``) with the self-supervised loss of ``settings.gaintune``
    (GainTuning, Mohan et al., NeurIPS 2021; :mod:`temdenoise.adapt`)."""
    from temdenoise.adapt.experiments import central_crop, gaintune_item
    from temdenoise.adapt.settings import AdaptSettings
    from temdenoise.noise import NoiseCondition

    multiple = getattr(model.network, "size_multiple", 1)
    crop = central_crop(image, settings.gaintune_crop, multiple)
    _, _, tuned = gaintune_item(model.network, crop, NoiseCondition("poisson", dose), AdaptSettings(**settings.gaintune),
                                pixel_size=model.pixel_size, device=settings.device, seed=settings.seed)
    return tuned.model  # the adapted gains act through hooks on the copied network


def apply_model(model: TrainedModel, image: np.ndarray, pixel_size: float, settings: ApplySettings,
                dose: float | None = None) -> np.ndarray:
    """Denoise a normalised ``(H, W)`` image or ``(T, H, W)`` movie at the model's pixel size.

    Supervised nets: image by image (frame by frame), in tiles of ``settings.tile`` overlapping by
    the model's measured field of view (seam-free). UDVD: sliding windows of its frame count with
    the edge frames of training (:func:`temdenoise.models.udvd.denoise_video`). With
    ``settings.gaintune`` the network is first adapted to the image (:func:`gaintuned`; needs ``dose``).
    """
    factor = resampling_factor(pixel_size, model, settings.resample)
    shape = image.shape[-2:]
    scaled_shape = (max(2, round(shape[0] * factor)), max(2, round(shape[1] * factor)))
    work = _zoom(image, scaled_shape) if factor != 1.0 else np.asarray(image, dtype=np.float32)
    if model.takes_videos and work.ndim != 3:
        raise ValueError(f"{model.name} (UDVD) denoises movies (T, H, W), got one image {work.shape}")
    network = model.network
    if settings.gaintune:
        if dose is None:
            raise ValueError("GainTuning needs the recording's dose")
        network = gaintuned(model, work, dose, settings)
    if model.takes_videos:
        from temdenoise.models.udvd import denoise_video

        out = denoise_video(network, work, settings.device)
    else:
        fov = int(model.info.get("fov") or 64)
        tile = settings.tile if settings.tile is None else max(settings.tile, 2 * fov)
        out = denoise_image(network, work, settings.device, tile, overlap=fov)
    return _zoom(out, shape) if factor != 1.0 else out


def write_calibrated_tiff(path: str | os.PathLike, data: np.ndarray, pixel_size: float) -> None:
    """float32 ImageJ TIFF with its pixel size (written in nm, read by Fiji and napari), atomically."""
    size_nm = pixel_size / 10
    axes = "TYX" if data.ndim == 3 else "YX"
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, np.asarray(data, dtype=np.float32), imagej=True, resolution=(1 / size_nm, 1 / size_nm),
                         metadata={"unit": "nm", "axes": axes})


def output_paths(input_path: Path, out_dir: Path) -> tuple[Path, Path]:
    """The denoised TIFF and its JSON sidecar for one input."""
    stem = input_path.name.rsplit(".", 1)[0]
    return out_dir / f"{stem}.denoised.tif", out_dir / f"{stem}.denoised.json"


def denoise_file(path: str | os.PathLike, model: TrainedModel, out_dir: str | os.PathLike, settings: ApplySettings,
                 pixel_size: float | None = None, dose: float | None = None,
                 counts_per_unit: float | None = None) -> Path:
    """Denoise one file: ``<stem>.denoised.tif`` (normalised intensity, calibrated) and
    ``<stem>.denoised.json`` (provenance and every setting) in ``out_dir``; returns the TIFF."""
    recording = read_recording(path)
    calibration = calibrate(recording, pixel_size, dose, counts_per_unit)
    normalised = recording.data * (calibration.counts_per_unit / calibration.counts_per_intensity)
    denoised = apply_model(model, normalised, calibration.pixel_size, settings, calibration.dose)
    tiff, sidecar = output_paths(recording.path, Path(out_dir))
    record = {
        "input": {"path": str(recording.path.resolve()), "sha256": sha256_file(recording.path),
                  "reader": recording.reader, "shape": list(recording.data.shape), "exposure": recording.exposure},
        "model": {"directory": str(model.directory.resolve()), "weights_sha256": model.weights_sha256,
                  "training": model.info},
        "calibration": asdict(calibration),
        "settings": {**asdict(settings), "resampling_factor": calibration.pixel_size / model.pixel_size},
        "output": {"path": tiff.name, "values": "normalised intensity (vacuum = 1)", "pixel_size_A": calibration.pixel_size},
        "provenance": provenance.record({"device": settings.device}),
    }
    write_calibrated_tiff(tiff, denoised, calibration.pixel_size)
    save_json(sidecar, record)
    for line in calibration.assumptions:
        log.info("%s: %s", recording.path.name, line)
    return tiff


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files named, and the files of folders named (sorted), in order."""
    files: list[Path] = []
    for item in map(Path, inputs):
        files += sorted(p for p in item.iterdir() if p.is_file() and not p.name.startswith(".")) if item.is_dir() else [item]
    return files


def run_batch(files: Sequence[Path], work: Any, desc: str) -> list[str]:
    """Call ``work(file)`` for every file with a progress bar; a failure is one line naming the
    file, printed, and the batch goes on. Returns the failures' lines."""
    failures = []
    for file in tqdm(files, desc=desc, unit="file"):
        try:
            work(file)
        except (RecordingError, ValueError, OSError) as error:
            line = str(error) if isinstance(error, RecordingError) else f"{file}: {error}"
            tqdm.write(f"error: {line}")
            failures.append(line)
    return failures


def denoise_files(inputs: Sequence[str | os.PathLike], model_dir: str | os.PathLike, out_dir: str | os.PathLike,
                  settings: ApplySettings, **calibration: float | None) -> list[str]:
    """Denoise every input file (or folder's files) with one model; returns the failures."""
    model = load_model_dir(model_dir, settings.device)
    return run_batch(expand_inputs(inputs), lambda file: denoise_file(file, model, out_dir, settings, **calibration),
                     "denoise")


@dataclass
class ThinnedItem:
    """One recording split by binomial thinning, with its calibration."""

    file: str
    split: ThinnedSplit
    pixel_size: float  # A
    dose: float  # of the whole recording, e/A^2

    @property
    def full(self) -> np.ndarray:
        """The whole recording on the clean scale, ``(y1 + y2) / s``, rebuilt from its halves."""
        fraction = self.split.fraction
        return fraction * self.split.input + (1 - fraction) * self.split.target


def thin_recording(recording: Recording, calibration: Calibration, fraction: float,
                   rng: np.random.Generator) -> ThinnedItem:
    """Thin a recording's counts (see :mod:`temdenoise.thinning`)."""
    counts = recording.data * calibration.counts_per_unit
    split = thin(counts, calibration.counts_per_intensity, fraction, rng)
    return ThinnedItem(recording.path.name, split, calibration.pixel_size, calibration.dose)


def thin_files(inputs: Sequence[str | os.PathLike], fraction: float, seed: int,
               **calibration: float | None) -> tuple[list[ThinnedItem], list[str]]:
    """Thin every input file (or folder's files); returns the items and the failures."""
    rng = np.random.default_rng(seed)
    items: list[ThinnedItem] = []

    def read_and_thin(file: Path) -> None:
        recording = read_recording(file)
        items.append(thin_recording(recording, calibrate(recording, **calibration), fraction, rng))

    return items, run_batch(expand_inputs(inputs), read_and_thin, "thin")


def item_scores(item: ThinnedItem, models: Sequence[TrainedModel], settings: ApplySettings) -> list[dict[str, Any]]:
    """Estimated MSE and PSNR of each model (and the thinned input, ``noisy``) on every image /
    frame of a thinned recording, at dose ``fraction * D`` (:mod:`temdenoise.thinning`)."""
    split = item.split
    estimates = {NOISY: split.input}
    for model in models:
        estimates[model.name] = apply_model(model, split.input, item.pixel_size, settings)
    full = item.full
    rows = []
    for frame in range(split.input.shape[0]) if split.input.ndim == 3 else [None]:
        part = split if frame is None else split.frame(frame)
        peak = estimate_data_range(full if frame is None else full[frame])
        for name, estimate in estimates.items():
            mse = estimated_mse(estimate if frame is None else estimate[frame], part)
            rows.append({"file": item.file, "frame": -1 if frame is None else frame, "model": name,
                         "dose": split.fraction * item.dose, "mse_estimate": mse, "data_range": peak,
                         "psnr_estimate": psnr_from_mse(mse, peak)})
    return rows


def score_items(items: Sequence[ThinnedItem], model_dirs: Sequence[str | os.PathLike],
                settings: ApplySettings) -> pd.DataFrame:
    """Per-item thinning scores of every model folder (and ``noisy``) on every thinned recording."""
    models = [load_model_dir(directory, settings.device) for directory in model_dirs]
    names = [model.name for model in models]
    if len(set(names)) != len(names) or NOISY in names:
        raise ValueError(f"model folders must have distinct names other than {NOISY!r}: {names}")
    rows = [row for item in tqdm(items, desc="score", unit="file") for row in item_scores(item, models, settings)]
    return pd.DataFrame(rows)


def ranking_table(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per model, best first: mean estimated PSNR over the items (images / frames) with
    its 95% interval, and the paired difference to the best model with its 95% interval."""
    wide = scores.pivot_table(index=["file", "frame"], columns="model", values="psnr_estimate", aggfunc="first")
    order = wide.mean().sort_values(ascending=False).index
    best = order[0]
    rows = []
    for model in order:
        level = paired_difference(wide[model].to_numpy(), np.zeros(len(wide)))
        gap = paired_difference(wide[model].to_numpy(), wide[best].to_numpy())
        rows.append({"rank": len(rows) + 1, "model": model, "psnr_estimate": level.mean, "psnr_low": level.low,
                     "psnr_high": level.high, "items": level.items, "vs_best": gap.format() if model != best else "best",
                     "resolved": gap.resolved if model != best else True})
    return pd.DataFrame(rows)


def ranking_markdown(table: pd.DataFrame, title: str, fraction: float) -> str:
    """The ranking as a Markdown table with the estimator's conventions in its header."""
    shown = table.assign(**{"estimated PSNR (dB) [95% CI]": [
        f"{m:.2f} [{lo:.2f}, {hi:.2f}]" for m, lo, hi in zip(table.psnr_estimate, table.psnr_low, table.psnr_high)]})
    shown = shown[["rank", "model", "estimated PSNR (dB) [95% CI]", "items", "vs_best"]]
    return (f"# {title}\n\nGround-truth-free PSNR by binomial thinning (fraction {fraction:g}: models denoise "
            f"the thinned recording at dose {fraction:g} x D, scored against the held-out counts; docs/thinning.md). "
            "Peak: range of the Gaussian-smoothed recording (common to all models); `vs_best`: paired difference "
            "to the best model with its 95% interval over images/frames.\n\n" + shown.to_markdown(index=False) + "\n")


def write_ranking(scores: pd.DataFrame, out: str | os.PathLike, title: str, fraction: float) -> pd.DataFrame:
    """``<out>.csv`` (the ranking), ``<out>.scores.csv`` (per item) and ``<out>.md``, atomically."""
    table = ranking_table(scores)
    save_table(f"{out}.scores.csv", scores)
    save_table(f"{out}.csv", table)
    save_text(f"{out}.md", ranking_markdown(table, title, fraction))
    return table


ITEM_COLUMNS = ["file", "pixel_size", "dose", "held_scale", "fraction"]


def save_thinned(items: Sequence[ThinnedItem], folder: str | os.PathLike) -> None:
    """A dataset's thinned recordings as the workflow stores them: ``input.npz`` (the thinned
    halves, what models see and self-supervised models train on), ``target.npz`` (the held-out
    halves, read by the score only) and ``items.csv`` (one row per recording; ``pixel_size`` as in
    the simulated datasets' metadata)."""
    folder = Path(folder)
    save_stack(folder / "input.npz", [item.split.input for item in items])
    save_stack(folder / "target.npz", [item.split.target for item in items])
    save_table(folder / "items.csv", pd.DataFrame(
        [[item.file, item.pixel_size, item.dose, item.split.held_scale, item.split.fraction] for item in items],
        columns=ITEM_COLUMNS))


def load_thinned(folder: str | os.PathLike) -> list[ThinnedItem]:
    """The items written by :func:`save_thinned`."""
    folder = Path(folder)
    table = pd.read_csv(folder / "items.csv")
    inputs, targets = load_stack(folder / "input.npz"), load_stack(folder / "target.npz")
    return [ThinnedItem(row.file, ThinnedSplit(x, t, row.held_scale, row.fraction), row.pixel_size, row.dose)
            for row, x, t in zip(table.itertuples(), inputs, targets)]


def thin_dataset(recordings: Sequence[str], files: dict[str, Any], folder: str, dataset: str, seed: int) -> None:
    """The workflow's ``real_thin``: thin a dataset's recordings (``files``: its
    ``datasets.<name>.files`` section) into ``folder``; any unreadable recording fails the job."""
    items, failures = thin_files(recordings, files["fraction"], seed, pixel_size=files["pixel_size"],
                                 dose=files["dose"], counts_per_unit=files["counts_per_unit"])
    if failures:
        raise ValueError(f"{len(failures)} recording(s) of {dataset} could not be read: " + "; ".join(failures))
    save_thinned(items, folder)


def rank_dataset(folder: str, model_dirs: Sequence[str | os.PathLike], out: str, dataset: str,
                 device: str) -> pd.DataFrame:
    """The workflow's ``real_table``: rank ``model_dirs`` on a dataset's thinned recordings."""
    items = load_thinned(folder)
    return write_ranking(score_items(items, model_dirs, ApplySettings(device=device)), out,
                         f"Real data: {dataset}", items[0].split.fraction)
