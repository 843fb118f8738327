"""The memory a workflow job asks for, from the arrays it holds (issue 37; docs/cluster.md).

Standard library only: the workflow sizes every job while it plans (tests/test_lint.py).

A job's peak resident memory is modelled as ``base_mb + per_byte x held``: ``held`` is the bytes
of the float32 arrays it holds at once, computed from the config (:class:`SplitSize`): one item
for the jobs that stream a split item by item (merge_shards, add_noise, fit_classical, denoise,
evaluate, export_tiff), every item it trains on for a training job, the split for prepare_images.
``base_mb`` (the interpreter, the job's imports) and ``per_byte`` (the arrays and their working
copies) are measured per rule by benchmarks/job_memory.py (:data:`FOOTPRINTS`). A job asks for
:data:`HEADROOM` times the model, and never less than its stage's configured ``mem_mb``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from temdenoise.imagefiles import image_files, image_shape

FLOAT32_BYTES = 4

# The grayscale shapes of the scikit-image samples of temdenoise.natural.SKIMAGE_SPLITS, per split
# (tests/test_jobmemory.py checks them against scikit-image).
SKIMAGE_SHAPES = {
    "train": [(512, 512), (512, 512), (300, 451), (400, 600), (512, 512), (512, 512), (191, 384), (427, 640),
              (660, 550)],
    "validation": [(300, 400)],
    "test": [(512, 512), (303, 384), (512, 512), (172, 448)],
}  # fmt: skip


@dataclass(frozen=True)
class SplitSize:
    """The float32 arrays of a split: how many items, the bytes of the largest and of them all."""

    items: int
    largest: int
    total: int

    @classmethod
    def of_items(cls, item_bytes: Sequence[int]) -> "SplitSize":
        return cls(len(item_bytes), max(item_bytes, default=0), sum(item_bytes))

    def first(self, count: int) -> int:
        """Bytes of (at most) the first ``count`` items, bounded by the largest item."""
        return min(count, self.items) * self.largest


def _pixels(shape: Sequence[int]) -> int:
    return math.prod(shape) * FLOAT32_BYTES


def simulated_split(settings: Any, split: str) -> SplitSize:
    """A simulated split (:class:`temdenoise.simulate.settings.SimulationSettings`): per structure,
    ``defoci_per_structure`` images or one video of ``video.frames`` frames, ``image_size`` square."""
    structures = settings.structures[split]
    frame = _pixels((settings.image_size, settings.image_size))
    if settings.is_video:
        return SplitSize.of_items([settings.video.frames * frame] * structures)
    return SplitSize.of_items([frame] * (structures * settings.defoci_per_structure))


def piecewise_split(section: Mapping[str, Any], split: str) -> SplitSize:
    """A piecewise-constant split (experiments.gaintuning.piecewise: ``size`` square images, a count per split)."""
    return SplitSize.of_items([_pixels((section["size"], section["size"]))] * section[split])


def skimage_split(split: str) -> SplitSize:
    return SplitSize.of_items([_pixels(shape) for shape in SKIMAGE_SHAPES[split]])


def folder_split(entry: Mapping[str, Any], split: str) -> SplitSize:
    """A split of a ``source: folder`` dataset as temdenoise.natural.natural_split cuts it (the last
    ``validation_count`` training images validate), each image's size from its file header."""
    folder = entry["test_folder"] if split == "test" else entry["train_folder"]
    files = image_files(folder)[: entry.get("max_images")]
    if split != "test":
        held_out = entry.get("validation_count", 2)
        files = files[-held_out:] if split == "validation" else files[:-held_out]
    return SplitSize.of_items([_pixels(image_shape(file)) for file in files])


@dataclass(frozen=True)
class Footprint:
    """Peak resident memory of a rule's job: ``base_mb`` + ``per_byte`` x the bytes it holds."""

    base_mb: float
    per_byte: float


# Printed by benchmarks/job_memory.py (peak RSS of each rule's body on synthetic splits of two
# sizes, a line through the two; docs/cluster.md has the printout, its command and machine). The
# training rules' bases hold the quick networks on the CPU, validation activations included.
FOOTPRINTS: dict[str, Footprint] = {
    "merge_shards": Footprint(base_mb=344, per_byte=2.88),
    "export_tiff": Footprint(base_mb=342, per_byte=2.15),
    "add_noise": Footprint(base_mb=79, per_byte=8.10),
    "fit_classical": Footprint(base_mb=103, per_byte=35.47),
    "denoise": Footprint(base_mb=293, per_byte=49.18),
    "evaluate": Footprint(base_mb=96, per_byte=38.09),
    "prepare_images": Footprint(base_mb=107, per_byte=1.00),
    "train": Footprint(base_mb=645, per_byte=0.96),
    "train_noisy_images": Footprint(base_mb=800, per_byte=1.08),
    "train_udvd": Footprint(base_mb=578, per_byte=1.04),
}

# A chosen margin, not a measurement: other library builds, allocator fragmentation, the workflow's
# own job set-up (provenance, logging) that the benchmark leaves out.
HEADROOM = 1.5


def job_mem_mb(rule: str, held_bytes: int) -> int:
    """The ``mem_mb`` a job of ``rule`` holding ``held_bytes`` of arrays asks for (before the
    stage's floor and the retry multiplier): :data:`HEADROOM` x its :class:`Footprint`, in MB."""
    footprint = FOOTPRINTS[rule]
    return math.ceil(HEADROOM * (footprint.base_mb + footprint.per_byte * held_bytes / 1e6))
