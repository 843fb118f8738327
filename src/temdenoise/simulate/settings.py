"""The ``simulation`` section of a TEM dataset, as typed settings with the schema's defaults.

``workflow/schemas/config.schema.yaml`` documents every key; the defaults here must equal the
schema's (a test checks it). Physical checks that JSON schema cannot express (a particle larger
than the field of view) are made by :func:`check_settings` with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

# Standard library only: the Snakefile parses and checks every simulation section with this
# module before any job runs, possibly where only Snakemake is installed (no numpy, ase, abTEM).

SPLITS = ("train", "validation", "test")

# Room-temperature lattice constants (A) of the fcc metals a particle may be made of.
FCC_LATTICE_CONSTANTS: dict[str, float] = {
    "Pt": 3.924, "Au": 4.078, "Pd": 3.891, "Ag": 4.086, "Cu": 3.615, "Ni": 3.524, "Ir": 3.839, "Rh": 3.803,
}
SHAPES = ("wulff", "octahedron", "cuboctahedron", "decahedron", "icosahedron", "winterbottom")
# The shapes drawn when a config names none (the Winterbottom particle is opted into, so that the
# data of configs written before it existed do not change).
DEFAULT_SHAPES = SHAPES[:5]
# The oxide supports built by temdenoise.simulate.structures.SUPPORTS (a test keeps the two equal).
SUPPORT_NAMES = ("CeO2", "ZrO2", "MgO", "TiO2")


@dataclass(frozen=True)
class VideoSettings:
    """Video options; ``frames: 0`` makes an image dataset."""

    frames: int = 0
    drift_px: float = 1.5            # std per axis of the per-frame drift step, detector pixels
    rotation_deg: float = 0.3        # std of the per-frame rotation step about the beam, degrees
    surface_moves: int = 2           # surface atoms hopping to a new site between frames


@dataclass(frozen=True)
class SimulationSettings:
    """``datasets.<name>.simulation``: what to simulate and how (lengths in A, sizes in nm, angles
    in degrees except the aperture in mrad); each key is described in the config schema."""

    element: str = "Pt"
    support: str = "CeO2"
    shapes: tuple[str, ...] = DEFAULT_SHAPES
    sizes_nm: tuple[float, ...] = (2.0, 3.0)
    support_thickness: tuple[float, float] = (30.0, 60.0)
    support_fraction: float = 0.25
    tilt_max: float = 1.0
    vacancy_fraction: float = 0.05
    adatom_fraction: float = 0.03
    surface_energies: tuple[float, float] = (1.0, 1.15)
    adhesion: tuple[float, float] = (1.0, 1.5)
    image_size: int = 256
    pixel_size: float = 0.2
    potential_sampling: float = 0.05
    slice_thickness: float = 2.0
    energy: float = 300e3
    Cs: float = -1.3e5
    focal_spread: float = 40.0
    semiangle_cutoff: float = 30.0
    angular_spread: float = 0.0
    rms_displacement: float = 0.0
    frozen_phonons: int = 0
    mtf_sigma: float = 0.5
    image_spread: float = 0.0
    defocus: Mapping[str, tuple[float, float]] = field(default_factory=lambda: {
        "black": (5.0, 30.0), "intermediate": (-50.0, 5.0), "white": (-90.0, -50.0)})
    defocus_window: tuple[float, float] | None = None
    contrast_threshold: float = 0.5
    defoci_per_structure: int = 3
    structures: Mapping[str, int] = field(default_factory=lambda: {"train": 6, "validation": 2, "test": 2})
    structures_per_shard: int = 4
    export_tiff: bool = False
    video: VideoSettings = field(default_factory=VideoSettings)

    @property
    def is_video(self) -> bool:
        return self.video.frames > 0

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None, key: str = "simulation") -> "SimulationSettings":
        """Settings from a config mapping (missing keys take defaults); ``key`` names the section
        in error messages, e.g. ``datasets.tem.simulation``."""
        section = dict(section or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"{key}: unknown key(s) {unknown}")
        video = dict(section.pop("video", None) or {})
        video_known = {f.name for f in dataclasses.fields(VideoSettings)}
        if set(video) - video_known:
            raise ValueError(f"{key}.video: unknown key(s) {sorted(set(video) - video_known)}")
        values: dict[str, Any] = {}
        for name, value in section.items():
            values[name] = tuple(value) if isinstance(value, list) else value
        if "defocus" in values:
            values["defocus"] = {k: tuple(v) for k, v in values["defocus"].items()}
        settings = cls(**values, video=VideoSettings(**video))
        check_settings(settings, key)
        return settings


def field_of_view(settings: SimulationSettings) -> float:
    """Side of the (square) image in A."""
    return settings.image_size * settings.pixel_size


def particle_height_bound(settings: SimulationSettings) -> float:
    """An estimate (A) of the height of the largest particle above the support.

    A free particle is as high as its volume-equivalent diameter ``d``. A Winterbottom particle at
    adhesion ``W`` (W / gamma_111) keeps a fraction ``f = (2 - W) / 2`` of the height of its Wulff
    shape; with the Wulff shape taken as a sphere, the cap of height ``f D`` holds
    ``f^2 (3 - 2 f)`` of its volume, so ``h = f d / (f^2 (3 - 2 f))^(1/3)``, at the smallest
    adhesion drawn (a 2.0 nm Pt particle at W = 0.9: 13.2 A; built, 9.1 A between its top and
    bottom atom layers)."""
    diameter = 10 * max(settings.sizes_nm)
    if set(settings.shapes) != {"winterbottom"}:
        return diameter
    kept = (2 - settings.adhesion[0]) / 2
    return kept * diameter / (kept**2 * (3 - 2 * kept)) ** (1 / 3)


def check_settings(settings: SimulationSettings, key: str = "simulation") -> None:
    """Reject impossible physics with a ValueError naming the offending key."""
    def fail(name: str, why: str) -> None:
        raise ValueError(f"{key}.{name}: {why}")

    if settings.element not in FCC_LATTICE_CONSTANTS:
        fail("element", f"unknown element {settings.element!r}; known: {sorted(FCC_LATTICE_CONSTANTS)}")
    if settings.support not in SUPPORT_NAMES:
        fail("support", f"unknown support {settings.support!r}; known: {sorted(SUPPORT_NAMES)}")
    for shape in settings.shapes:
        if shape not in SHAPES:
            fail("shapes", f"unknown shape {shape!r}; known: {list(SHAPES)}")
    if not settings.shapes:
        fail("shapes", "at least one shape is needed")
    if not settings.sizes_nm or min(settings.sizes_nm) <= 0:
        fail("sizes_nm", "particle sizes must be positive")
    low, high = settings.support_thickness
    if not 0 < low <= high:
        fail("support_thickness", f"need 0 < min <= max, got {[low, high]}")
    low, high = settings.adhesion
    if not 0 <= low <= high < 2:
        fail("adhesion", f"need 0 <= min <= max < 2 (2 = complete wetting, no particle), got {[low, high]}")
    if settings.frozen_phonons and not settings.rms_displacement:
        fail("frozen_phonons", "frozen phonons need a positive rms_displacement")
    if not 0 < settings.potential_sampling <= 0.06:
        fail("potential_sampling", f"must be in (0, 0.06] A for an accurate potential, got {settings.potential_sampling}")
    if settings.pixel_size < settings.potential_sampling:
        fail("pixel_size", f"{settings.pixel_size} A is finer than potential_sampling {settings.potential_sampling} A")
    # The particle must fit between the support surface and the image top.
    room = (1 - settings.support_fraction) * field_of_view(settings) - 2.0
    height = particle_height_bound(settings)
    if height > room:
        fail("sizes_nm", f"a {max(settings.sizes_nm)} nm particle (at most {height:.1f} A high) does "
                         f"not fit in the field of view above the support ({field_of_view(settings):.1f} A image, "
                         f"{room:.1f} A free above the support): lower sizes_nm or raise image_size / pixel_size")
    if settings.defocus_window is not None and not settings.defocus_window[0] < settings.defocus_window[1]:
        fail("defocus_window", f"need min < max, got {list(settings.defocus_window)}")
    for name in ("black", "intermediate", "white"):
        if name not in settings.defocus:
            fail("defocus", f"needs a range for the contrast class {name!r}")
    missing = [s for s in SPLITS if s not in settings.structures]
    if missing:
        fail("structures", f"needs a count for split(s) {missing}")
    if settings.structures_per_shard < 1:
        fail("structures_per_shard", "must be >= 1")


def shard_count(settings: SimulationSettings, split: str) -> int:
    """Number of shards of ``split`` (0 when the split has no structure)."""
    return math.ceil(settings.structures[split] / settings.structures_per_shard)


def shard_paths(settings: SimulationSettings, dataset: str, split: str) -> dict[str, list[str]]:
    """Shard files of one split (``results/data/{dataset}/shards/{split}-{shard}.npz`` / ``.csv``)."""
    stem = f"results/data/{dataset}/shards/{split}"
    shards = range(shard_count(settings, split))
    return {"stacks": [f"{stem}-{shard}.npz" for shard in shards], "metadata": [f"{stem}-{shard}.csv" for shard in shards]}
