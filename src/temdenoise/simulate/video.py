"""Videos of one fluxional particle for unsupervised video denoising (UDVD).

Between frames the whole specimen drifts by a random walk (``video.drift_px``: standard deviation
per axis of one step, detector pixels), the particle turns by a small random angle about an axis
along the beam through its contact point on the support (so it keeps its zone axis and its footing),
and a few surface atoms hop to new sites. Every frame is a full multislice simulation.

The motion is stored exactly in each frame's metadata row (:mod:`temdenoise.simulate.motion`) (crop pixels, rows down, columns right;
:data:`MOTION_COLUMNS`): the drift from frame 0, the particle's rotation from frame 0 (degrees,
counterclockwise on screen) and its centre, and the particle's region. :func:`displacement_field`
turns the rows of two frames into the per-pixel displacement between them: the drift on the support
and in vacuum, the drift plus the rotation on the particle. Hopping atoms are not motion (they
vanish and appear) and are not in the field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from temdenoise.simulate import imaging
from temdenoise.simulate.sample import (
    StructureDraw, cell_geometry, choose_defoci, crop_and_score, crop_pixels, drift_allowance_px, microscope,
    particle_with_defects, specimen, target_label,
)
from temdenoise.simulate.settings import SimulationSettings
from temdenoise.simulate.structures import SUPPORT_GAP, Specimen, contact_anchor, rearrange_surface



@dataclass(frozen=True)
class VideoMotion:
    """The drift and rotation of every frame of one video, relative to frame 0."""

    drift_px: np.ndarray      # (T, 2) specimen drift, (x right, y up), detector pixels
    rotation_deg: np.ndarray  # (T,) particle rotation about the beam through its contact point

    @classmethod
    def draw(cls, settings: SimulationSettings, rng: np.random.Generator) -> "VideoMotion":
        """Random walks of ``settings.video``; the drift is clipped to :func:`drift_allowance_px`."""
        video = settings.video
        steps = rng.normal(0.0, video.drift_px, size=(video.frames, 2))
        steps[0] = 0.0
        limit = drift_allowance_px(settings)
        drift = np.clip(np.cumsum(steps, axis=0), -limit, limit)
        rotation = np.cumsum(np.r_[0.0, rng.normal(0.0, video.rotation_deg, size=video.frames - 1)])
        return cls(drift, rotation)


def rotation_pivot(settings: SimulationSettings) -> np.ndarray:
    """(x, y) in A of the particle's contact point on the support at frame 0 (the rotation axis)."""
    cell, interface_y = cell_geometry(settings)
    return np.array([cell[0] / 2, interface_y])


def frame_specimen(settings: SimulationSettings, draw: StructureDraw, particle: Atoms, anchor: np.ndarray,
                   motion: VideoMotion, t: int) -> Specimen:
    """The specimen of frame ``t``: ``particle`` placed by ``anchor`` on the support, turned about
    the beam through its contact point, then everything drifted (periodic cell)."""
    spec = specimen(settings, draw, particle, anchor)
    positions = spec.atoms.positions
    pivot = rotation_pivot(settings)
    angle = np.deg2rad(motion.rotation_deg[t])
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])   # (x right, y up)
    positions[spec.particle, :2] = (positions[spec.particle, :2] - pivot) @ turn.T + pivot
    positions[:, :2] += motion.drift_px[t] * settings.pixel_size
    spec.atoms.positions = positions
    spec.atoms.wrap()
    spec.phonon_seed = draw.seed + t   # each frame its own thermal configurations
    return spec


def frame_motion(settings: SimulationSettings, spec: Specimen, motion: VideoMotion, t: int, image_height: int,
                 window: tuple[slice, slice]) -> dict[str, float]:
    """The :data:`MOTION_COLUMNS` of frame ``t`` (its specimen ``spec``, cropped by ``window`` from
    a detector image of ``image_height`` rows)."""
    pixel_size = settings.pixel_size
    pivot = crop_pixels(rotation_pivot(settings) + motion.drift_px[t] * pixel_size, image_height, window, pixel_size)[0]
    atoms = crop_pixels(spec.atoms.positions[spec.particle, :2], image_height, window, pixel_size)
    centre = atoms.mean(axis=0)
    return {
        "displacement_row_px": -float(motion.drift_px[t, 1]),
        "displacement_col_px": float(motion.drift_px[t, 0]),
        "rotation_deg": float(motion.rotation_deg[t]),
        "pivot_row_px": float(pivot[0]), "pivot_col_px": float(pivot[1]),
        "particle_row_px": float(centre[0]), "particle_col_px": float(centre[1]),
        "particle_radius_px": float(np.hypot(*(atoms - centre).T).max()),
        # halfway between the support surface (through the pivot) and the particle's lowest atoms
        "particle_floor_row_px": float(pivot[0] - SUPPORT_GAP / 2 / pixel_size),
    }


def simulate_video(settings: SimulationSettings, draw: StructureDraw, klass: str,
                   rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """(T, H, W) float32 frames of one structure at one defocus of contrast class ``klass``
    (chosen on the first frame) and one metadata dict per frame (with :data:`MOTION_COLUMNS`)."""
    video = settings.video
    scope = microscope(settings)
    particle, info = particle_with_defects(settings, draw, rng)
    bottom = particle.positions[:, 1].min() + 1.0
    anchor = contact_anchor(particle)
    motion = VideoMotion.draw(settings, rng)
    frames, rows = [], []
    window = defocus = None   # both fixed by frame 0: drift moves the specimen, never the detector
    for t in range(video.frames):
        if t > 0:
            particle = rearrange_surface(particle, settings.element, rng, video.surface_moves, keep_below=bottom)
        spec = frame_specimen(settings, draw, particle, anchor, motion, t)
        wave = imaging.exit_wave(spec, scope)
        if defocus is None:
            defocus = choose_defoci(settings, [klass], wave, spec, rng)[0]
        image = imaging.detector_image(wave, defocus, scope)
        frame, score, window = crop_and_score(settings, spec, image, window)
        frames.append(frame.astype(np.float32))
        rows.append({**info, "frame": t, "defocus": defocus, "target_contrast": target_label(settings, klass),
                     "contrast_score": round(score, 4),
                     "contrast_class": imaging.contrast_class(score, settings.contrast_threshold),
                     **frame_motion(settings, spec, motion, t, image.shape[0], window)})
    return np.stack(frames), rows
