"""Random draws of one structure (shape, size, support thickness, tilt, defects) and its specimen.

Every random choice of a structure comes from one ``numpy`` generator seeded by
:func:`structure_seed`, so a structure is a pure function of (master seed, dataset, split, index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from temdenoise.runtime import derive_seed
from temdenoise.simulate import imaging
from temdenoise.simulate.imaging import Microscope
from temdenoise.simulate.settings import SimulationSettings, field_of_view
from temdenoise.simulate.structures import (
    ZONE_AXIS_LABEL, Specimen, add_surface_defects, assemble_specimen, build_particle, equivalent_diameter_nm,
    FCC_LATTICE_CONSTANTS,
)

# Vacuum (A) kept around the cropped field of view: hides the cell-edge seam of the periodic
# potential and the CTF delocalisation, and leaves room for video drift.
EDGE_MARGIN = 6.0


def structure_seed(master_seed: int, dataset: str, split: str, index: int) -> int:
    """The seed of structure ``index`` of ``split``: unique per (master seed, dataset, split, index)."""
    return derive_seed(master_seed, "simulate", dataset, split, index)


@dataclass
class StructureDraw:
    """The random choices that define one structure."""

    structure_id: str
    seed: int
    shape: str
    size_nm: float
    thickness: float
    tilt: tuple[float, float]
    adhesion: float = 0.0         # W / gamma_111 of a Winterbottom particle (0 for the other shapes)


def draw_structure(settings: SimulationSettings, structure_id: str, seed: int, rng: np.random.Generator) -> StructureDraw:
    """Shape, size, support thickness, tilt (and the adhesion of a Winterbottom particle) of one
    structure, drawn from ``rng``; the adhesion is drawn last and only for a Winterbottom particle,
    so the draws of the other shapes are those made before that shape existed."""
    low, high = settings.support_thickness
    draw = StructureDraw(
        structure_id=structure_id,
        seed=seed,
        shape=str(rng.choice(settings.shapes)),
        size_nm=float(rng.choice(settings.sizes_nm)),
        thickness=float(rng.uniform(low, high)),
        tilt=(float(rng.uniform(-settings.tilt_max, settings.tilt_max)),
              float(rng.uniform(-settings.tilt_max, settings.tilt_max))),
    )
    if draw.shape == "winterbottom":
        draw.adhesion = float(rng.uniform(*settings.adhesion))
    return draw


def microscope(settings: SimulationSettings) -> Microscope:
    """The imaging conditions of ``settings``."""
    return Microscope(energy=settings.energy, potential_sampling=settings.potential_sampling,
                      slice_thickness=settings.slice_thickness, pixel_size=settings.pixel_size, Cs=settings.Cs,
                      focal_spread=settings.focal_spread, semiangle_cutoff=settings.semiangle_cutoff,
                      angular_spread=settings.angular_spread, rms_displacement=settings.rms_displacement,
                      frozen_phonons=settings.frozen_phonons, mtf_sigma=settings.mtf_sigma,
                      image_spread=settings.image_spread)


def particle_with_defects(settings: SimulationSettings, draw: StructureDraw, rng: np.random.Generator) -> tuple[Atoms, dict]:
    """The drawn particle (centred at the origin) with its surface defects, and metadata."""
    particle = build_particle(draw.shape, settings.element, draw.size_nm, tuple(settings.surface_energies), draw.adhesion)
    bottom = particle.positions[:, 1].min() + 1.0
    particle, vacancies, adatoms = add_surface_defects(particle, settings.element, rng, settings.vacancy_fraction,
                                                       settings.adatom_fraction, keep_below=bottom)
    info = {
        "structure_id": draw.structure_id, "shape": draw.shape, "size_nm": draw.size_nm,
        "diameter_nm": round(equivalent_diameter_nm(len(particle), FCC_LATTICE_CONSTANTS[settings.element]), 3),
        "n_atoms": len(particle), "element": settings.element, "support": settings.support,
        "zone_axis": ZONE_AXIS_LABEL[draw.shape], "tilt_x": draw.tilt[0], "tilt_y": draw.tilt[1],
        "thickness": draw.thickness, "adhesion": draw.adhesion, "vacancies": vacancies, "adatoms": adatoms,
        "seed": draw.seed,
    }
    return particle, info


def drift_allowance_px(settings: SimulationSettings) -> int:
    """Largest drift (px, per axis) of a video from its first frame: 3 standard deviations of its
    random walk's end point. The cell has this much more vacuum on each side, so the cell-edge
    seam never drifts into the field of view; the drift is clipped to it."""
    video = settings.video
    if video.frames < 2:
        return 0
    return int(np.ceil(3.0 * video.drift_px * np.sqrt(video.frames - 1)))


def cell_geometry(settings: SimulationSettings) -> tuple[tuple[float, float], float]:
    """Cell size (A, a whole number of detector pixels) and the y of the support surface."""
    margin_px = int(np.ceil(EDGE_MARGIN / settings.pixel_size)) + drift_allowance_px(settings)
    side = (settings.image_size + 2 * margin_px) * settings.pixel_size
    interface_y = margin_px * settings.pixel_size + settings.support_fraction * field_of_view(settings)
    return (side, side), interface_y


def specimen(settings: SimulationSettings, draw: StructureDraw, particle: Atoms,
             anchor: np.ndarray | None = None) -> Specimen:
    """``particle`` on the drawn support, tilted, in the simulation cell of ``settings``
    (``anchor``: see :func:`~temdenoise.simulate.structures.assemble_specimen`)."""
    cell, interface_y = cell_geometry(settings)
    spec = assemble_specimen(particle, settings.support, draw.thickness, cell, interface_y, draw.tilt, anchor)
    spec.phonon_seed = draw.seed
    return spec


def crop_centre(settings: SimulationSettings, spec: Specimen) -> np.ndarray:
    """Centre of the crop in A: the particle's x; y such that the support fills the configured
    fraction of the image."""
    _, interface_y = cell_geometry(settings)
    fov = field_of_view(settings)
    return np.array([spec.centre[0], interface_y - settings.support_fraction * fov + fov / 2])


def crop_pixels(xy: np.ndarray, image_height: int, window: tuple[slice, slice], pixel_size: float) -> np.ndarray:
    """(x, y) positions in A -> (row, column) in the crop ``window`` of a detector image."""
    return imaging.to_pixels(xy, image_height, pixel_size) - [window[0].start, window[1].start]


def particle_columns(spec: Specimen, image_height: int, window: tuple[slice, slice], pixel_size: float) -> np.ndarray:
    """(row, column) of the particle's atoms in a cropped image."""
    return crop_pixels(spec.atoms.positions[spec.particle, :2], image_height, window, pixel_size)


def crop_window_of(settings: SimulationSettings, spec: Specimen, shape: tuple[int, int]) -> tuple[slice, slice]:
    """The crop window of a detector image of ``shape`` of ``spec`` (see :func:`crop_centre`)."""
    centre = imaging.to_pixels(crop_centre(settings, spec), shape[0], settings.pixel_size)[0]
    return imaging.crop_window(centre, shape, (settings.image_size, settings.image_size))


def crop_and_score(settings: SimulationSettings, spec: Specimen, image: np.ndarray,
                   window: tuple[slice, slice] | None = None) -> tuple[np.ndarray, float, tuple[slice, slice]]:
    """The cropped image, its contrast score and the crop window (computed when not given)."""
    if window is None:
        window = crop_window_of(settings, spec, image.shape)
    crop = image[window]
    score = imaging.contrast_score(crop, particle_columns(spec, image.shape[0], window, settings.pixel_size))
    return crop, score, window


# Defoci tried in the intermediate range (7.5 A apart in the default 45-A range).
INTERMEDIATE_CANDIDATES = 7


def choose_defocus(settings: SimulationSettings, klass: str, wave, spec: Specimen, rng: np.random.Generator) -> float:
    """A defocus for contrast class ``klass``: uniform in its configured range for black and white;
    for intermediate, the contrast reversal located on this exit wave (it depends on the
    structure: in the quick config's tem train shard 0, -34 A for a 2 nm cuboctahedron on 26 A of CeO2,
    -13 A for a 2 nm icosahedron on 37 A).

    The intermediate range is scanned at :data:`INTERMEDIATE_CANDIDATES` defoci; where the score
    changes sign between two neighbours, the reversal is their linear interpolation at score 0
    (the candidates' spacing alone leaves scores of up to about +-0.5 at a 7.5-A step); otherwise
    the candidate with the weakest contrast is kept.
    """
    low, high = settings.defocus[klass]
    if klass != "intermediate":
        return float(rng.uniform(low, high))
    scope = microscope(settings)
    candidates = np.linspace(low, high, INTERMEDIATE_CANDIDATES)
    scores = np.array([crop_and_score(settings, spec, image)[1]
                       for image in imaging.defocus_series(wave, list(candidates), scope)])
    best = int(np.argmin(np.abs(scores)))
    for neighbour in (best - 1, best + 1):
        if 0 <= neighbour < len(scores) and scores[best] * scores[neighbour] < 0:
            weight = scores[best] / (scores[best] - scores[neighbour])
            return float(candidates[best] + weight * (candidates[neighbour] - candidates[best]))
    return float(candidates[best])


def choose_defoci(settings: SimulationSettings, classes: list[str], wave, spec: Specimen,
                  rng: np.random.Generator) -> list[float]:
    """One defocus per entry of ``classes`` for one exit wave, all distinct.

    With ``defocus_window`` set the classes are ignored: the window is cut into ``len(classes)``
    equal strata and one defocus is drawn uniformly in each (so a structure's images cover the
    window and never coincide), and the class is only measured on the image. Otherwise each class
    gets :func:`choose_defocus`; the contrast reversal is searched for the first intermediate target
    only, the structure's later intermediate targets are drawn uniformly in the intermediate range
    (the search is deterministic: a second search would repeat the first image byte for byte)."""
    if settings.defocus_window is not None:
        edges = np.linspace(*settings.defocus_window, len(classes) + 1)
        return [float(rng.uniform(low, high)) for low, high in zip(edges[:-1], edges[1:])]
    defoci: list[float] = []
    for klass in classes:
        if klass == "intermediate" and "intermediate" in classes[:len(defoci)]:
            defoci.append(float(rng.uniform(*settings.defocus["intermediate"])))
        else:
            defoci.append(choose_defocus(settings, klass, wave, spec, rng))
    return defoci


def target_label(settings: SimulationSettings, klass: str) -> str:
    """The ``target_contrast`` of an image: the class its defocus targeted, or ``window`` when the
    defocus was drawn in ``defocus_window`` (the class is then only measured)."""
    return "window" if settings.defocus_window is not None else klass
