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
from temdenoise.simulate.sample import StructureDraw, crop_centre, microscope, particle_with_defects, specimen
from temdenoise.simulate.settings import SimulationSettings
from temdenoise.simulate.structures import rearrange_surface


def _rotate_about_beam(particle: Atoms, angle_deg: float) -> Atoms:
    particle = particle.copy()
    centre = particle.positions.mean(axis=0)
    rotation = Rotation.from_euler("z", angle_deg, degrees=True).as_matrix()
    particle.positions = (particle.positions - centre) @ rotation.T + centre
    return particle


def simulate_video(settings: SimulationSettings, draw: StructureDraw, defocus: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """(T, H, W) float32 frames of one structure at ``defocus`` and one metadata dict per frame."""
    video = settings.video
    scope = microscope(settings)
    particle, info = particle_with_defects(settings, draw, rng)
    bottom = particle.positions[:, 1].min() + 1.0
    steps = rng.normal(0.0, video.drift_px, size=(video.frames, 2))
    steps[0] = 0.0
    displacement_px = np.cumsum(steps, axis=0)           # (x right, y up) in pixels
    rotation = np.cumsum(np.r_[0.0, rng.normal(0.0, video.rotation_deg, size=video.frames - 1)])
    frames, rows = [], []
    window = None
    for t in range(video.frames):
        if t > 0:
            particle = rearrange_surface(particle, settings.element, rng, video.surface_moves, keep_below=bottom)
        spec = specimen(settings, draw, _rotate_about_beam(particle, rotation[t]))
        if window is None:
            centre = crop_centre(settings, spec)
        spec.atoms.positions[:, :2] += displacement_px[t] * settings.pixel_size
        spec.atoms.wrap()
        wave = imaging.exit_wave(spec, scope)
        image = imaging.detector_image(wave, defocus, scope)
        if window is None:
            window = imaging.crop_window(imaging.to_pixels(centre, image.shape[0], settings.pixel_size)[0],
                                         image.shape, (settings.image_size, settings.image_size))
        frame = image[window]
        columns = imaging.to_pixels(spec.atoms.positions[spec.particle, :2], image.shape[0], settings.pixel_size)
        score = imaging.contrast_score(frame, columns - [window[0].start, window[1].start])
        frames.append(frame.astype(np.float32))
        rows.append({**info, "frame": t, "defocus": defocus, "contrast_score": round(score, 4),
                     "contrast_class": imaging.contrast_class(score, settings.contrast_threshold),
                     "displacement_row_px": -float(displacement_px[t, 1]),
                     "displacement_col_px": float(displacement_px[t, 0]),
                     "rotation_deg": float(rotation[t])})
    return np.stack(frames), rows
