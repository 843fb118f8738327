"""The true motion of a simulated video frame by frame, from its metadata rows alone (numpy only).

The video simulator (:mod:`temdenoise.simulate.video`) stores the motion of each frame in
:data:`MOTION_COLUMNS`; :func:`displacement_field` turns the rows of two frames into the per-pixel
displacement between them. Kept apart from the simulator so that the motion study scores against
this truth without importing abTEM or ASE.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

MOTION_COLUMNS = (
    "displacement_row_px", "displacement_col_px",   # drift of the specimen from frame 0
    "rotation_deg",                                  # rotation of the particle from frame 0, counterclockwise
    "pivot_row_px", "pivot_col_px",                  # centre of that rotation in this frame
    "particle_row_px", "particle_col_px", "particle_radius_px",   # disc holding the particle's atoms
    "particle_floor_row_px",                         # the particle lies above this row, the support below
)
"""Metadata columns of a video frame that define :func:`displacement_field` (crop pixels)."""


def rotate_rc(offsets_rc: np.ndarray, angle_deg: float) -> np.ndarray:
    """(N, 2) (row, column) offsets turned by ``angle_deg`` counterclockwise on screen (rows down)."""
    angle = np.deg2rad(angle_deg)
    cos, sin = np.cos(angle), np.sin(angle)
    offsets_rc = np.asarray(offsets_rc, dtype=float)
    return np.stack([cos * offsets_rc[:, 0] - sin * offsets_rc[:, 1],
                     sin * offsets_rc[:, 0] + cos * offsets_rc[:, 1]], axis=1)


def on_particle(frame: Mapping[str, float], points_rc: np.ndarray) -> np.ndarray:
    """Which (row, column) points of a frame (its metadata row ``frame``) lie in the particle's region."""
    points_rc = np.atleast_2d(np.asarray(points_rc, dtype=float))
    distance = np.hypot(points_rc[:, 0] - frame["particle_row_px"], points_rc[:, 1] - frame["particle_col_px"])
    return (distance <= frame["particle_radius_px"] + 0.5) & (points_rc[:, 0] < frame["particle_floor_row_px"])


def content_region(frame: Mapping[str, float], points_rc: np.ndarray) -> np.ndarray:
    """``"particle"``, ``"support"`` (below the particle's floor) or ``"vacuum"`` for each point of a frame."""
    points_rc = np.atleast_2d(np.asarray(points_rc, dtype=float))
    support = np.where(points_rc[:, 0] >= frame["particle_floor_row_px"], "support", "vacuum")
    return np.where(on_particle(frame, points_rc), "particle", support)


def displacement_field(source: Mapping[str, float], target: Mapping[str, float], points_rc: np.ndarray) -> np.ndarray:
    """(N, 2) true displacement (rows down, columns right, px) from frame ``source`` to frame
    ``target`` (their metadata rows) of the content at ``points_rc`` of the source frame: where
    that content is in the target frame, minus where it is now."""
    points_rc = np.atleast_2d(np.asarray(points_rc, dtype=float))
    drift = np.array([target["displacement_row_px"] - source["displacement_row_px"],
                      target["displacement_col_px"] - source["displacement_col_px"]])
    field = np.tile(drift, (len(points_rc), 1))
    particle = on_particle(source, points_rc)
    pivot = np.array([source["pivot_row_px"], source["pivot_col_px"]])
    turned = rotate_rc(points_rc[particle] - pivot, target["rotation_deg"] - source["rotation_deg"]) + pivot
    field[particle] = turned + drift - points_rc[particle]
    return field
