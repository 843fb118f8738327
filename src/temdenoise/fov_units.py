"""The measured field of view (FoV) in physical units: angstroms and projected support cells.

A FoV in pixels is not comparable across pixel sizes: the TEM paper's DnCNN (Mohan et al., "Deep
denoising for scientific discovery", IEEE TCI 2022) sees 41 px at about 0.062 A/px, 2.5 A, while
the same 41 px at this project's 0.25 A/px cover 10 A. Two physical units are therefore given
beside every measured FoV (:func:`temdenoise.models.fov.measure_fov`, stored in ``info.json``):

* **angstroms**: ``fov_A = fov_px * p``, with ``p`` the pixel the network sees, the ``pixel_size``
  of the test split's metadata (networks are applied to the stored test images, never rescaled).
* **projected support cells**: how many primitive cells of the support lattice, projected along
  the simulated zone axis, the ``fov_A x fov_A`` square covers: ``cells = fov_A**2 / A``, i.e.
  ``(fov_A / d)**2`` with ``d = sqrt(A)`` the edge of a square of the cell's area. The area of the
  projected primitive cell is the primitive volume over the lattice period along the beam:
  ``A = V_prim / t``. For the face-centred cubic lattices of the fluorite (CeO2, ZrO2) and rocksalt
  (MgO) supports seen along <110> (:data:`temdenoise.simulate.structures.SUPPORTS`),
  ``V_prim = a**3 / 4`` and ``t = a / sqrt(2)``, so ``A = sqrt(2) a**2 / 4`` (CeO2, a = 5.411 A:
  A = 10.35 A^2, d = 3.22 A); for rutile TiO2 along [001], ``A = a**2``. This is the count behind
  the issue's figures: the paper's 41 px DnCNN covers 0.6 CeO2 cell, a 17 px DnCNN at 0.25 A/px
  1.7 cells, and 116 e/A^2 is about 1,200 electrons per cell.

Standard library only (the lattice constants repeat the support builder's, which needs ASE;
``tests/test_fov_units.py`` derives each area from the builder's atoms and keeps the two equal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence


def _fcc_along_110(a: float) -> float:
    return math.sqrt(2.0) * a * a / 4.0


# Area (A^2) of the primitive cell of each support's lattice projected along its simulated zone axis.
PROJECTED_CELL_AREA: dict[str, float] = {
    "CeO2": _fcc_along_110(5.411),  # fluorite, beam along [1-10]
    "ZrO2": _fcc_along_110(5.07),   # fluorite, beam along [1-10]
    "MgO": _fcc_along_110(4.212),   # rocksalt, beam along [1-10]
    "TiO2": 4.594**2,               # rutile, beam along [001]
}


@dataclass(frozen=True)
class FovScale:
    """The physical size of what a network sees: its input pixel (A) and the projected cell
    (A^2) of the dataset's support (None when the dataset has no simulated support)."""

    pixel_size: float
    support: str | None = None

    @property
    def cell_area(self) -> float | None:
        return PROJECTED_CELL_AREA[self.support] if self.support else None

    def angstrom(self, fov_px: float | None) -> float:
        """The FoV side in angstroms (NaN for an undefined FoV, e.g. a method that sees the whole image)."""
        return math.nan if fov_px is None or fov_px != fov_px else float(fov_px) * self.pixel_size

    def cells(self, fov_px: float | None) -> float:
        """Projected support cells covered by the ``fov_px x fov_px`` FoV (NaN without a support)."""
        area = self.cell_area
        return math.nan if area is None else self.angstrom(fov_px) ** 2 / area


def fov_scale(metadata: Mapping[str, Sequence]) -> FovScale:
    """The :class:`FovScale` of a split from its metadata columns (a metadata CSV read as a table):
    ``pixel_size`` must be one value; ``support`` (absent for non-simulated data) too."""
    sizes = set(map(float, metadata["pixel_size"]))
    if len(sizes) != 1:
        raise ValueError(f"the FoV in angstroms needs one pixel size per split, found {sorted(sizes)}")
    supports = set(metadata["support"]) if "support" in metadata else {None}
    if len(supports) != 1:
        raise ValueError(f"the FoV in support cells needs one support per split, found {sorted(supports)}")
    support = supports.pop()
    if support is not None and support not in PROJECTED_CELL_AREA:
        raise ValueError(f"no projected cell known for support {support!r}: add it to PROJECTED_CELL_AREA")
    return FovScale(sizes.pop(), support)


def fov_units_note(scale: FovScale) -> str:
    """The sentence a table states about its FoV units, e.g. "in Å at the test pixel of 0.25 Å, and
    in projected CeO2 cells along the zone axis (cells = (FoV in Å)² / 10.35 Å²)"."""
    note = f"in Å at the test pixel of {scale.pixel_size:g} Å"
    if scale.cell_area is None:
        return note
    return (f"{note}, and in projected {scale.support} cells along the zone axis "
            f"(cells = (FoV in Å)² / {scale.cell_area:.2f} Å²)")
