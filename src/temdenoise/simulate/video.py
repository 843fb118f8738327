"""Videos of one fluxional particle for unsupervised video denoising (UDVD).

Between frames the specimen drifts by a sub-pixel random walk, the particle turns by a small
random angle about the beam (which keeps its zone axis), and a few surface atoms hop to new sites.
Every frame is a full multislice simulation. The true displacement of each frame relative to the
first (in detector pixels, rows down and columns right) and the particle's rotation are returned
so that motion estimates can be checked against them.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from scipy.spatial.transform import Rotation

from temdenoise.simulate import imaging
from temdenoise.simulate.sample import (
    StructureDraw, choose_defocus, crop_and_score, microscope, particle_with_defects, specimen,
)
from temdenoise.simulate.settings import SimulationSettings
from temdenoise.simulate.structures import rearrange_surface


def _rotate_about_beam(particle: Atoms, angle_deg: float) -> Atoms:
    particle = particle.copy()
    centre = particle.positions.mean(axis=0)
    rotation = Rotation.from_euler("z", angle_deg, degrees=True).as_matrix()
    particle.positions = (particle.positions - centre) @ rotation.T + centre
    return particle


def simulate_video(settings: SimulationSettings, draw: StructureDraw, klass: str,
                   rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """(T, H, W) float32 frames of one structure at one defocus of contrast class ``klass``
    (chosen on the first frame) and one metadata dict per frame."""
    video = settings.video
    scope = microscope(settings)
    particle, info = particle_with_defects(settings, draw, rng)
    bottom = particle.positions[:, 1].min() + 1.0
    steps = rng.normal(0.0, video.drift_px, size=(video.frames, 2))
    steps[0] = 0.0
    displacement_px = np.cumsum(steps, axis=0)           # (x right, y up) in pixels
    rotation = np.cumsum(np.r_[0.0, rng.normal(0.0, video.rotation_deg, size=video.frames - 1)])
    frames, rows = [], []
    window = defocus = None   # both fixed by frame 0: drift moves the specimen, never the detector
    for t in range(video.frames):
        if t > 0:
            particle = rearrange_surface(particle, settings.element, rng, video.surface_moves, keep_below=bottom)
        spec = specimen(settings, draw, _rotate_about_beam(particle, rotation[t]))
        spec.atoms.positions[:, :2] += displacement_px[t] * settings.pixel_size
        spec.atoms.wrap()
        wave = imaging.exit_wave(spec, scope)
        if defocus is None:
            defocus = choose_defocus(settings, klass, wave, spec, rng)
        frame, score, window = crop_and_score(settings, spec, imaging.detector_image(wave, defocus, scope), window)
        frames.append(frame.astype(np.float32))
        rows.append({**info, "frame": t, "defocus": defocus, "target_contrast": klass,
                     "contrast_score": round(score, 4),
                     "contrast_class": imaging.contrast_class(score, settings.contrast_threshold),
                     "displacement_row_px": -float(displacement_px[t, 1]),
                     "displacement_col_px": float(displacement_px[t, 0]),
                     "rotation_deg": float(rotation[t])})
    return np.stack(frames), rows
