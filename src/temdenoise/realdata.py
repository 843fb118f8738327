"""Apply trained models to a user's recordings, and rank them there without ground truth.

The bodies of ``temdenoise denoise`` and ``temdenoise score`` (:mod:`temdenoise.cli`) and of the
workflow's real-data rules:

* :func:`load_model_dir` rebuilds a trained model from its workflow folder
  (``results/models/<dataset>/<model>/``: ``info.json`` + ``model.pt``, ``weights_only=True``);
* :func:`calibrate` turns a recording's values into counts (the detector gain and zero level
  estimated from the recording, :mod:`temdenoise.gain`, unless stated) and the model's input
  scale (normalised intensity, vacuum = 1: ``counts / (D p^2)``), stating every assumption; it
  refuses a STEM detector's image unless its counts per value are stated;
* :func:`denoised_frames` runs it at the model's pixel size (resampling when the file's differs by
  more than :data:`PIXEL_SIZE_TOLERANCE`, refused beyond ``max_resample``), one frame at a time:
  tiled inference for supervised nets, sliding frame windows for UDVD (:func:`apply_model` on an
  array in memory);
* :func:`denoise_files` writes a calibrated TIFF (frame by frame, as they are denoised) and a JSON
  provenance sidecar per input, at the input's path relative to the inputs' common folder (so
  equal names never collide);
* :func:`thin_files`, :func:`score_items` and :func:`ranking_table` rank models by the thinning
  estimate of their MSE, pooled over recordings, with paired intervals (:mod:`temdenoise.thinning`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import tifffile
import torch
from skimage.transform import resize
from tqdm.auto import tqdm

from temdenoise import provenance, registry
from temdenoise.io import atomic_path, load_stack, save_json, save_stack, save_table, save_text
from temdenoise.models import load_trained
from temdenoise.models.inference import denoise_image, field_of_view
from temdenoise.gain import GainError, estimate_gain
from temdenoise.readers import KINDS, Recording, RecordingError, read_recording, reader_versions, tia_pair
from temdenoise.stats import holm, paired_difference
from temdenoise.thinning import ThinnedSplit, estimate_data_range, estimated_mse, psnr_from_mse, thin

log = logging.getLogger("temdenoise")

PIXEL_SIZE_TOLERANCE = 0.10
"""Relative pixel-size mismatch above which a model is not applied at the file's scale."""
MAX_RESAMPLE = 4.0
"""Default largest zoom (either way) between a file's pixel size and a model's (``--max-resample``)."""
SQUARE_TOLERANCE = 0.01
"""Relative difference of a pixel's height and width above which it is not square."""
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


@dataclass(frozen=True)
class Stated:
    """What the user states about the recordings (command-line flags, a dataset's ``files``
    section); each given value overrides the file's."""

    pixel_size: float | None = None  # A
    dose: float | None = None  # e/A^2 per image / frame
    counts_per_unit: float | None = None  # electrons per stored value (1 / gain), zero level 0
    signal: str | None = None  # title of the signal to read in a multi-signal file


@dataclass
class Calibration:
    """How a recording's values became counts and the model's input scale (normalised intensity)."""

    pixel_size: float  # A
    dose: float  # e/A^2 per image / frame
    counts_per_unit: float  # counts per stored value (1 / gain)
    offset: float = 0.0  # stored value of zero electrons
    not_poisson: str = ""  # why the counts are not Poisson, so not thinned ("" when they are)
    gain: dict[str, Any] | None = None  # the estimate (temdenoise.gain.GainEstimate) when not stated
    assumptions: list[str] = field(default_factory=list)

    @property
    def counts_per_intensity(self) -> float:
        """``s = D p^2``: expected counts per pixel of vacuum (normalised intensity 1)."""
        return self.dose * self.pixel_size**2

    def counts(self, values: np.ndarray) -> np.ndarray:
        """Stored values as counts: ``(values - offset) x counts_per_unit``."""
        return (np.asarray(values, dtype=np.float64) - self.offset) * self.counts_per_unit


GAIN_PIXELS = 1 << 22
"""Most pixels the detector gain is estimated from (:func:`gain_sample`): 4.2 M, one 2048 x 2048
frame; a recording within it is used whole."""


def gain_sample(values: Any) -> tuple[np.ndarray, str]:
    """At most :data:`GAIN_PIXELS` of a recording's stored values for the gain estimate, read frame
    by frame: a movie's frames spread evenly over it (first and last included), as many as fit; a
    frame larger than the budget, its central rows. Returns them and a line saying which."""
    frames = values.shape[0] if values.ndim == 3 else 1
    height, width = values.shape[-2:]
    count = int(min(frames, max(1, GAIN_PIXELS // (height * width))))
    indices = np.unique(np.linspace(0, frames - 1, count).round().astype(int))
    rows = int(min(height, max(2, GAIN_PIXELS // width // 2 * 2)))
    top = (height - rows) // 2 // 2 * 2  # keeps the 2 x 2 blocks of the whole frame
    crop = (slice(top, top + rows), slice(None))
    sample = np.stack([np.asarray(values[(index, *crop)] if values.ndim == 3 else values[crop]) for index in indices])
    used = f"{len(indices)} of {frames} frames, evenly spread" if values.ndim == 3 else "the image"
    return sample, used + (f", central {rows} of {height} rows" if rows < height else "")


def mean_value(values: Any) -> float:
    """Mean of a recording's stored values, frame by frame (float64): never the movie whole."""
    if values.ndim == 2:
        return float(np.asarray(values, dtype=np.float64).mean())
    return float(np.mean([np.asarray(values[index], dtype=np.float64).mean() for index in range(values.shape[0])]))


def pixel_size_of(recording: Recording, stated: Stated) -> float:
    """The pixel size (A): stated, else the file's; a file without one, or with pixels that are
    not square, is refused."""
    if stated.pixel_size:
        return stated.pixel_size
    size, height = recording.pixel_size, recording.pixel_size_y
    if size is None:
        raise RecordingError(recording.path, "the file has no pixel size; pass --pixel-size (A)")
    if height is not None and abs(height / size - 1) > SQUARE_TOLERANCE:
        raise RecordingError(recording.path, f"pixels are not square ({height:.4g} x {size:.4g} A, height x width): "
                             "a model would see stretched structures; pass --pixel-size to override")
    return size


def calibrate(recording: Recording, stated: Stated = Stated()) -> Calibration:
    """Pixel size, dose and count conversion of ``recording``: the user's values first, then the
    file's; what is assumed is stated in :attr:`Calibration.assumptions`.

    A STEM detector's values are not electron counts: its image is refused unless
    ``counts_per_unit`` is stated. Integer values become counts through the detector gain and
    zero level estimated from the recording (:func:`temdenoise.gain.estimate_gain` on at most
    :data:`GAIN_PIXELS` of it, :func:`gain_sample`; refused when it is not determined); other data need ``counts_per_unit``, or ``dose`` with the mean intensity
    taken as vacuum's. A missing dose is estimated from the mean counts the same way (computed
    frame by frame, :func:`mean_value`: the recording is read lazily and never held whole).
    """
    path = recording.path
    size = pixel_size_of(recording, stated)
    assumptions = [] if stated.pixel_size else [f"pixel size {size:.4g} A from the file ({recording.unit})"]
    if recording.kind == "stem" and stated.counts_per_unit is None:
        raise RecordingError(path, f"{KINDS['stem']} ({recording.detector}), not electron counts of a TEM camera; "
                             "pass --counts-per-unit (electrons per value) to use it")
    file_dose = next((value for key, value in recording.exposure.items() if key.lower().endswith("dose")), None)
    dose = stated.dose or file_dose
    counts_per_unit, offset, not_poisson, gain = stated.counts_per_unit, 0.0, "", None
    stored_mean = functools.cache(lambda: mean_value(recording.data))  # one pass over the file, when needed
    if counts_per_unit is not None:
        assumptions.append(f"{counts_per_unit:g} counts per value as stated, zero level 0")
    elif recording.integer:
        sample, used = gain_sample(recording.data)
        try:
            estimate = estimate_gain(sample)
        except GainError as error:
            raise RecordingError(path, f"the detector gain cannot be estimated from the recording ({error}); "
                                 "pass --counts-per-unit") from error
        counts_per_unit, offset, not_poisson = 1 / estimate.gain, estimate.offset, estimate.reason
        gain = {**asdict(estimate), "sample": used}
        assumptions.append(f"detector gain {estimate.gain:.4g} per electron and zero level {estimate.offset:.4g} "
                           f"estimated from the recording ({estimate.method}; {used}; docs/thinning.md)")
        if not_poisson:
            assumptions.append(f"not Poisson counts after the gain: {not_poisson}")
    elif dose is not None:
        counts_per_unit = dose * size**2 / stored_mean()
        not_poisson = "float values scaled by the dose, not integer counts"
        assumptions.append(f"float values scaled to counts with the mean intensity taken as vacuum's (dose {dose:g})")
    else:
        raise RecordingError(path, "values are not integer counts; pass --counts-per-unit or --dose")
    mean = (stored_mean() - offset) * counts_per_unit
    if mean <= 0:
        raise RecordingError(path, "mean count is not positive: not counts of electrons")
    if dose is None:
        dose = mean / size**2
        assumptions.append(f"dose {dose:.4g} e/A^2 estimated from the mean counts (mean intensity taken as vacuum's)")
    elif dose == file_dose:
        assumptions.append(f"dose {dose:g} e/A^2 from the file's metadata")
    return Calibration(size, float(dose), float(counts_per_unit), float(offset), not_poisson, gain, assumptions)


def resampling_factor(source_pixel_size: float, model: TrainedModel, settings: "ApplySettings") -> float:
    """Zoom that brings an image to the model's pixel size (1 within the tolerance); refuses a
    mismatch when resampling is off, and a zoom beyond ``settings.max_resample`` either way."""
    factor = source_pixel_size / model.pixel_size
    if abs(factor - 1) <= PIXEL_SIZE_TOLERANCE:
        return 1.0
    sizes = f"pixel size {source_pixel_size:.4g} A against {model.name}'s training pixel size {model.pixel_size:.4g} A"
    if not settings.resample:
        raise ValueError(f"{sizes}: {abs(factor - 1):.0%} apart (> {PIXEL_SIZE_TOLERANCE:.0%}); the model would see "
                         "structures at the wrong scale (use --resample)")
    if max(factor, 1 / factor) > settings.max_resample:
        raise ValueError(f"{sizes}: a x{factor:.4g} resampling, beyond the limit x{settings.max_resample:g} "
                         "(--max-resample): the model was not trained for this scale")
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
    max_resample: float = MAX_RESAMPLE  # largest zoom either way to the model's pixel size
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


@dataclass(frozen=True)
class FrameSource:
    """The frames of an ``(H, W)`` image (one frame) or a ``(T, H, W)`` movie, each converted by
    ``convert`` when it is read: the working memory is one frame's, whatever the frame count."""

    values: np.ndarray
    convert: Callable[[np.ndarray], np.ndarray] | None = None  # e.g. stored values -> normalised intensity

    @property
    def movie(self) -> bool:
        return self.values.ndim == 3

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape)

    def __len__(self) -> int:
        return self.values.shape[0] if self.movie else 1

    def __getitem__(self, index: int) -> np.ndarray:
        frame = self.values[index] if self.movie else self.values
        return np.asarray(frame if self.convert is None else self.convert(frame), dtype=np.float32)


def denoised_frames(model: TrainedModel, source: FrameSource, pixel_size: float, settings: ApplySettings,
                    dose: float | None = None) -> Iterator[np.ndarray]:
    """The denoised frames of a normalised image or movie at the model's pixel size, one at a time
    (at the source's size): memory bounded by one frame and one tile, not the frame count.

    Each frame is read from ``source``, resampled to the model's pixel size when it differs by more
    than :data:`PIXEL_SIZE_TOLERANCE` (refused beyond ``settings.max_resample``), denoised and
    resampled back. Supervised nets: frame by frame, in tiles of ``settings.tile`` overlapping by
    the model's field of view (measured at training, ``info["fov"]``, else measured here), so the
    result equals whole-image inference (:func:`temdenoise.models.inference.denoise_image`, the
    function the workflow's denoise step uses too). UDVD: sliding windows of its frame count with
    the edge frames of training (:func:`temdenoise.models.udvd.denoise_video`), on chunks of frames
    with the neighbours their windows need. With ``settings.gaintune`` the network is first adapted
    (:func:`gaintuned`, on the central crop of every frame; needs ``dose``).
    """
    factor = resampling_factor(pixel_size, model, settings)
    shape = source.shape[-2:]
    scaled_shape = (max(2, round(shape[0] * factor)), max(2, round(shape[1] * factor)))
    if model.takes_videos and not source.movie:
        raise ValueError(f"{model.name} (UDVD) denoises movies (T, H, W), got one image {source.shape}")

    def prepared(index: int) -> np.ndarray:
        return _zoom(source[index], scaled_shape) if factor != 1.0 else source[index]

    def back(out: np.ndarray) -> np.ndarray:
        return _zoom(out, shape) if factor != 1.0 else out

    network = model.network
    if settings.gaintune:
        from temdenoise.adapt.experiments import central_crop

        if dose is None:
            raise ValueError("GainTuning needs the recording's dose")
        multiple = getattr(network, "size_multiple", 1)
        crops = [central_crop(prepared(index), settings.gaintune_crop, multiple) for index in range(len(source))]
        network = gaintuned(model, np.stack(crops) if source.movie else crops[0], dose, settings)
    if model.takes_videos:
        yield from map(back, _video_frames(network, prepared, len(source), settings.device))
        return
    fov = int(model.info.get("fov") or field_of_view(network))
    tile = settings.tile if settings.tile is None else max(settings.tile, 2 * fov)
    for index in range(len(source)):
        yield back(denoise_image(network, prepared(index), settings.device, tile, overlap=fov, fov=fov))


def _video_frames(network: torch.nn.Module, prepared: Callable[[int], np.ndarray], length: int, device: str,
                  chunk: int = 8) -> Iterator[np.ndarray]:
    """UDVD's denoised frames of a ``length``-frame movie whose frame ``i`` is ``prepared(i)``, by
    chunks of ``chunk`` centre frames with the ``frames // 2`` neighbours each side their windows
    reach (or more, up to ``frames``): the same windows as on the whole movie (mirrored only at its ends)."""
    from temdenoise.models.udvd import denoise_video

    frames = network.frames
    chunk, half = max(chunk, frames), frames // 2
    for start in range(0, length, chunk):
        stop = min(start + chunk, length)
        low, high = max(0, start - half), min(length, stop + half)
        # at least ``frames`` frames (denoise_video's minimum; a short last chunk takes more before it)
        low = max(0, min(low, high - frames))
        window = np.stack([prepared(index) for index in range(low, high)])
        yield from denoise_video(network, window, device, indices=range(start - low, stop - low))


def apply_model(model: TrainedModel, image: np.ndarray, pixel_size: float, settings: ApplySettings,
                dose: float | None = None) -> np.ndarray:
    """Denoise a normalised ``(H, W)`` image or ``(T, H, W)`` movie held in memory
    (:func:`denoised_frames`, stacked)."""
    frames = list(denoised_frames(model, FrameSource(np.asarray(image)), pixel_size, settings, dose))
    return np.stack(frames) if np.ndim(image) == 3 else frames[0]


def write_calibrated_tiff(path: str | os.PathLike, data: np.ndarray | Iterable[np.ndarray], pixel_size: float,
                          shape: Sequence[int] | None = None, frame_interval: float | None = None) -> None:
    """float32 ImageJ TIFF with its pixel size (written in nm, read by Fiji and napari), atomically.

    ``data``: the image or movie, or an iterable of its frames with the whole ``shape`` given (each
    frame is written as it comes: a movie is never held whole). ``frame_interval`` (s) is written
    as ImageJ's ``finterval``.
    """
    size_nm = pixel_size / 10
    if shape is None:
        data = np.asarray(data, dtype=np.float32)
        shape = data.shape
    else:
        data = (np.asarray(frame, dtype=np.float32) for frame in data)
    metadata: dict[str, Any] = {"unit": "nm", "axes": "TYX" if len(shape) == 3 else "YX"}
    if frame_interval and len(shape) == 3:
        metadata["finterval"] = float(frame_interval)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, shape=tuple(shape), dtype=np.float32, imagej=True,
                         resolution=(1 / size_nm, 1 / size_nm), metadata=metadata)


def output_paths(input_path: Path, base: Path, out_dir: Path) -> tuple[Path, Path]:
    """The denoised TIFF and its JSON sidecar for one input: its path relative to ``base`` (the
    inputs' common folder) under ``out_dir``, named after the whole file name (``scan.dm3`` ->
    ``scan.dm3.denoised.tif``), so that no two inputs share an output."""
    relative = input_path.resolve().relative_to(base)
    target = out_dir / relative.parent / relative.name
    return target.with_name(f"{relative.name}.denoised.tif"), target.with_name(f"{relative.name}.denoised.json")


def denoise_file(path: Path, base: Path, model: TrainedModel, out_dir: str | os.PathLike, settings: ApplySettings,
                 stated: Stated = Stated()) -> Path:
    """Denoise one file into ``out_dir`` (:func:`output_paths`): a TIFF of normalised intensity,
    calibrated, and a JSON sidecar (provenance, the reader and its versions, the calibration and
    every setting); returns the TIFF."""
    recording = read_recording(path, stated.signal)
    resampling_factor(pixel_size_of(recording, stated), model, settings)  # refuse before any work
    calibration = calibrate(recording, stated)
    source = FrameSource(recording.data, lambda values: calibration.counts(values) / calibration.counts_per_intensity)
    denoised = denoised_frames(model, source, calibration.pixel_size, settings, calibration.dose)
    tiff, sidecar = output_paths(recording.path, base, Path(out_dir))
    record = {
        "input": {"path": str(recording.path.resolve()), "sha256": sha256_file(recording.path),
                  "reader": recording.reader, "reader_versions": reader_versions(), "signal": recording.title,
                  "signals": recording.signals, "kind": recording.kind, "detector": recording.detector,
                  "shape": list(recording.data.shape), "frame_interval_s": recording.frame_interval,
                  "exposure": recording.exposure},
        "model": {"directory": str(model.directory.resolve()), "weights_sha256": model.weights_sha256,
                  "training": model.info},
        "calibration": asdict(calibration),
        "settings": {**asdict(settings), "resampling_factor": calibration.pixel_size / model.pixel_size},
        "output": {"path": tiff.name, "values": "normalised intensity (vacuum = 1)", "pixel_size_A": calibration.pixel_size,
                   "frame_interval_s": recording.frame_interval},
        "provenance": provenance.record({"device": settings.device}),
    }
    write_calibrated_tiff(tiff, denoised, calibration.pixel_size, source.shape, recording.frame_interval)
    save_json(sidecar, record)
    for line in calibration.assumptions:
        log.info("%s: %s", recording.path.name, line)
    return tiff


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files named, and the files of folders named (sorted), in order, each once; a TIA
    ``<name>_<n>.ser`` beside its ``<name>.emi`` is that one recording (:func:`readers.tia_pair`)."""
    files: list[Path] = []
    for item in map(Path, inputs):
        files += sorted(p for p in item.iterdir() if p.is_file() and not p.name.startswith(".")) if item.is_dir() else [item]
    unique = {tia_pair(file).resolve(): tia_pair(file) for file in reversed(files)}
    return list(reversed(unique.values()))


def common_folder(files: Sequence[Path]) -> Path:
    """The deepest folder holding every file (outputs mirror the files' paths below it)."""
    return Path(os.path.commonpath([file.resolve().parent for file in files])) if files else Path.cwd()


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
                  settings: ApplySettings, stated: Stated = Stated()) -> list[str]:
    """Denoise every input file (or folder's files) with one model; returns the failures."""
    model = load_model_dir(model_dir, settings.device)
    files = expand_inputs(inputs)
    base = common_folder(files)
    return run_batch(files, lambda file: denoise_file(file, base, model, out_dir, settings, stated), "denoise")


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
    """Thin a recording's counts (see :mod:`temdenoise.thinning`); refused when they are not
    Poisson counts (:attr:`Calibration.not_poisson`)."""
    if calibration.not_poisson:
        raise RecordingError(recording.path, f"not thinned: {calibration.not_poisson}")
    split = thin(calibration.counts(recording.data), calibration.counts_per_intensity, fraction, rng)
    return ThinnedItem(str(recording.path), split, calibration.pixel_size, calibration.dose)


def thin_files(inputs: Sequence[str | os.PathLike], fraction: float, seed: int,
               stated: Stated = Stated()) -> tuple[list[ThinnedItem], list[str]]:
    """Thin every input file (or folder's files); returns the items and the failures."""
    rng = np.random.default_rng(seed)
    items: list[ThinnedItem] = []

    def read_and_thin(file: Path) -> None:
        recording = read_recording(file, stated.signal)
        items.append(thin_recording(recording, calibrate(recording, stated), fraction, rng))

    return items, run_batch(expand_inputs(inputs), read_and_thin, "thin")


def item_scores(item: ThinnedItem, models: Sequence[TrainedModel], settings: ApplySettings) -> list[dict[str, Any]]:
    """Thinning scores (:func:`score_rows`) of each model and of the thinned input, ``noisy``."""
    estimates = {NOISY: item.split.input}
    for model in models:
        estimates[model.name] = apply_model(model, item.split.input, item.pixel_size, settings)
    return score_rows(item, estimates)


def score_rows(item: ThinnedItem, estimates: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Estimated MSE of each estimate of the clean recording (by name, computed from the thinned
    input only) on every image / frame of a thinned recording, at dose ``fraction * D``
    (:mod:`temdenoise.thinning`), and normalised by the square of the estimated peak
    (``nmse_estimate``), as the PSNR is."""
    split, full = item.split, item.full
    rows = []
    for frame in range(split.input.shape[0]) if split.input.ndim == 3 else [None]:
        part = split if frame is None else split.frame(frame)
        peak = estimate_data_range(full if frame is None else full[frame])
        for name, estimate in estimates.items():
            mse = estimated_mse(estimate if frame is None else estimate[frame], part)
            rows.append({"file": item.file, "frame": -1 if frame is None else frame, "model": name,
                         "dose": split.fraction * item.dose, "mse_estimate": mse, "data_range": peak,
                         "nmse_estimate": mse / peak**2})
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
    """One row per model, best first (lowest pooled MSE estimate).

    The normalised MSE estimates (:func:`item_scores`) are averaged over a recording's frames,
    then over the recordings, before the logarithm: ``psnr_estimate = -10 log10(mean)`` (NaN when
    the mean estimate is not positive: never floored). Each model is compared with the best by
    the paired difference of the recordings' normalised MSE estimates (model - best: the held-out
    noise term cancels), with its standard error and 95% Student-t interval over recordings
    (the recording is the unit: ``unit``, ``n_units``), ``resolved`` when its p-value, Holm-adjusted
    over the comparisons with the best, is below 0.05, and in dB (``db_vs_best``, the pooled PSNRs'
    difference).
    """
    per_recording = scores.groupby(["file", "model"])["nmse_estimate"].mean().unstack("model")
    pooled = per_recording.mean().sort_values()
    best = pooled.index[0]
    rows = []
    for model, mean in pooled.items():
        gap = paired_difference(per_recording[model].to_numpy(), per_recording[best].to_numpy(), unit="recording")
        rows.append({"rank": len(rows) + 1, "model": model, "psnr_estimate": psnr_from_mse(mean, 1.0),
                     "nmse_estimate": mean, "recordings": gap.items, "unit": gap.unit, "n_units": gap.units,
                     "nmse_vs_best": gap.mean, "nmse_vs_best_se": gap.standard_error, "nmse_vs_best_low": gap.low,
                     "nmse_vs_best_high": gap.high, "nmse_vs_best_p": gap.p_value if model != best else np.nan,
                     "db_vs_best": psnr_from_mse(mean, 1.0) - psnr_from_mse(pooled[best], 1.0)})
    table = pd.DataFrame(rows)
    # one family: every model against the best (Holm, docs/statistics.md); the best is itself
    table["nmse_vs_best_p_holm"] = holm(table["nmse_vs_best_p"].to_numpy(dtype=float))
    table["resolved"] = (table["nmse_vs_best_p_holm"] < 0.05) | (table["model"] == best)
    return table


def ranking_markdown(table: pd.DataFrame, title: str, fraction: float) -> str:
    """The ranking as a Markdown table with the estimator's conventions in its header."""
    shown = pd.DataFrame({
        "rank": table["rank"], "model": table.model,
        "estimated PSNR (dB)": [f"{v:.2f}" if np.isfinite(v) else "n/a (MSE estimate <= 0)" for v in table.psnr_estimate],
        "recordings": table.recordings,
        "vs best: dB": ["best" if r == 1 else f"{v:+.2f}" if np.isfinite(v) else "n/a"
                        for r, v in zip(table["rank"], table.db_vs_best)],
        "vs best: normalised MSE [95% CI]": [
            "best" if r == 1 else f"{m:+.3g} [{lo:+.3g}, {hi:+.3g}]" + ("" if ok else ", not resolved")
            for r, m, lo, hi, ok in zip(table["rank"], table.nmse_vs_best, table.nmse_vs_best_low,
                                        table.nmse_vs_best_high, table.resolved)],
    })
    return (f"# {title}\n\nGround-truth-free PSNR by binomial thinning (fraction {fraction:g}: models denoise "
            f"the thinned recording at dose {fraction:g} x D, scored against the held-out counts; docs/thinning.md). "
            "The MSE estimates, normalised by the square of the peak (range of the Gaussian-smoothed recording, "
            "common to all models), are pooled over frames and recordings before the logarithm. `vs best`: the paired "
            "difference of normalised MSE to the best model with its 95% interval over recordings (the unit), "
            "'not resolved' unless its p-value, Holm-adjusted over the comparisons with the best, is below 0.05; "
            "and in dB."
            "\n\n" + shown.to_markdown(index=False) + "\n")


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
    items, failures = thin_files(recordings, files["fraction"], seed, Stated(files["pixel_size"], files["dose"],
                                                                         files["counts_per_unit"]))
    if failures:
        raise ValueError(f"{len(failures)} recording(s) of {dataset} could not be read: " + "; ".join(failures))
    save_thinned(items, folder)


def rank_dataset(folder: str, model_dirs: Sequence[str | os.PathLike], out: str, dataset: str,
                 device: str) -> pd.DataFrame:
    """The workflow's ``real_table``: rank ``model_dirs`` on a dataset's thinned recordings."""
    items = load_thinned(folder)
    return write_ranking(score_items(items, model_dirs, ApplySettings(device=device)), out,
                         f"Real data: {dataset}", items[0].split.fraction)
