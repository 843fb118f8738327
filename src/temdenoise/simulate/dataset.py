"""Sharded simulation of TEM image / video datasets and the merge of shards into splits.

Structures are drawn per split (``structures: {train: n, ...}``), so no structure appears in two
splits; a split's structures are cut into shards of ``structures_per_shard`` that are simulated by
independent jobs. An image dataset yields ``defoci_per_structure`` images of each structure (one
exit wave, a defocus series cycling through the black / intermediate / white contrast ranges); a
video dataset yields one (T, H, W) video per structure. Each item has one metadata row per image
or frame.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Iterator, Sequence

import abtem
import numpy as np
import pandas as pd
from tqdm import tqdm

from temdenoise.classical import frames_of
from temdenoise.io import StackReader, export_tiff, save_stack, save_table
from temdenoise.simulate import imaging
from temdenoise.simulate.imaging import CONTRAST_CLASSES
from temdenoise.simulate.sample import (
    StructureDraw, choose_defoci, crop_and_score, draw_structure, microscope, particle_with_defects, specimen, structure_seed,
    target_label,
)
from temdenoise.simulate.settings import SPLITS, SimulationSettings
from temdenoise.simulate.video import simulate_video

log = logging.getLogger("temdenoise")


def shard_structures(settings: SimulationSettings, split: str, shard: int) -> range:
    """Indices (within the split) of the structures of one shard."""
    start = shard * settings.structures_per_shard
    return range(start, min(start + settings.structures_per_shard, settings.structures[split]))


def simulate_images(settings: SimulationSettings, draw: StructureDraw, rng: np.random.Generator,
                    classes: Sequence[str]) -> tuple[list[np.ndarray], list[dict]]:
    """One exit wave of the drawn structure, imaged at one defocus per entry of ``classes``
    (:func:`~temdenoise.simulate.sample.choose_defoci`)."""
    scope = microscope(settings)
    particle, info = particle_with_defects(settings, draw, rng)
    spec = specimen(settings, draw, particle)
    wave = imaging.exit_wave(spec, scope)
    defoci = choose_defoci(settings, list(classes), wave, spec, rng)
    images, rows = [], []
    for defocus, klass, image in zip(defoci, classes, imaging.defocus_series(wave, defoci, scope)):
        crop, score, _ = crop_and_score(settings, spec, image)
        images.append(crop.astype(np.float32))
        rows.append({**info, "frame": 0, "defocus": defocus, "target_contrast": target_label(settings, klass),
                     "contrast_score": round(score, 4),
                     "contrast_class": imaging.contrast_class(score, settings.contrast_threshold)})
    digests = {hashlib.sha256(image.tobytes()).hexdigest() for image in images}
    if len(digests) < len(images):
        raise RuntimeError(f"{draw.structure_id}: two images are byte-identical (defoci {defoci})")
    return images, rows


def simulate_shard(settings: SimulationSettings, dataset: str, split: str, shard: int, master_seed: int,
                   progress: bool = True) -> tuple[list[np.ndarray], pd.DataFrame]:
    """Arrays and metadata rows of one shard (``item`` = index in the shard's stack)."""
    imaging.configure_abtem()
    arrays: list[np.ndarray] = []
    rows: list[dict] = []
    indices = shard_structures(settings, split, shard)
    for index in tqdm(indices, desc=f"{dataset}/{split}-{shard}", disable=not progress):
        seed = structure_seed(master_seed, dataset, split, index)
        rng = np.random.default_rng(seed)
        draw = draw_structure(settings, f"{dataset}-{split}-{index:05d}", seed, rng)
        if settings.is_video:
            klass = CONTRAST_CLASSES[(SPLITS.index(split) + index) % len(CONTRAST_CLASSES)]
            frames, frame_rows = simulate_video(settings, draw, klass, rng)
            for row in frame_rows:
                row["item"] = len(arrays)
            arrays.append(frames)
            rows.extend(frame_rows)
        else:
            classes = [CONTRAST_CLASSES[(index * settings.defoci_per_structure + j) % len(CONTRAST_CLASSES)]
                       for j in range(settings.defoci_per_structure)]
            images, image_rows = simulate_images(settings, draw, rng, classes)
            for image, row in zip(images, image_rows):
                row["item"] = len(arrays)
                arrays.append(image)
            rows.extend(image_rows)
        log.info("%s: %s %s nm, %d atoms", draw.structure_id, draw.shape, draw.size_nm, rows[-1]["n_atoms"])
    table = pd.DataFrame(rows)
    if len(table):
        table = table.assign(
            Cs=settings.Cs, focal_spread=settings.focal_spread, semiangle_cutoff=settings.semiangle_cutoff,
            energy=settings.energy, potential_sampling=settings.potential_sampling, pixel_size=settings.pixel_size,
            mtf_sigma=settings.mtf_sigma, image_spread=settings.image_spread, abtem_version=abtem.__version__,
            dataset=dataset, split=split, shard=shard,
        )
        table = table[["item", *[c for c in table.columns if c != "item"]]]
    return arrays, table


def write_shard(settings: SimulationSettings, dataset: str, split: str, shard: int, master_seed: int,
                npz_path: str | os.PathLike, csv_path: str | os.PathLike) -> None:
    """Simulate one shard and write its stack and metadata; on any failure neither file remains."""
    arrays, table = simulate_shard(settings, dataset, split, shard, master_seed)
    try:
        save_stack(npz_path, arrays)
        save_table(csv_path, table)
    except BaseException:
        Path(npz_path).unlink(missing_ok=True)
        Path(csv_path).unlink(missing_ok=True)
        raise


def merge_shards(npz_paths: Sequence[str | os.PathLike], csv_paths: Sequence[str | os.PathLike],
                 out_npz: str | os.PathLike, out_csv: str | os.PathLike) -> None:
    """Concatenate shards (in the given order) into one split; ``item`` is renumbered to the
    merged stack. Item by item: the job holds one item, not the split (docs/cluster.md)."""
    tables = []
    offset = 0
    for npz, csv in zip(npz_paths, csv_paths):
        table = pd.read_csv(csv)
        if len(table):
            table["item"] += offset
            tables.append(table)
        with StackReader(npz) as shard:
            offset += len(shard)
    merged = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    save_stack(out_npz, (item for npz in npz_paths for item in _items(npz)))
    save_table(out_csv, merged)


def _items(npz_path: str | os.PathLike) -> Iterator[np.ndarray]:
    """The items of a stack, read one at a time, the file closed after the last."""
    with StackReader(npz_path) as stack:
        yield from stack


def export_split_tiff(npz_path: str | os.PathLike, tiff_path: str | os.PathLike) -> None:
    """Write a split as one float32 TIFF stack for Fiji / napari (videos as their frames in order),
    item by item."""
    export_tiff(tiff_path, (frame for item in _items(npz_path) for frame in frames_of([item])))
