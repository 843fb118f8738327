"""The FoV in physical units: pixels -> angstroms -> projected support cells."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from temdenoise.fov_units import PROJECTED_CELL_AREA, FovScale, fov_scale, fov_units_note
from temdenoise.simulate.structures import SUPPORTS, oriented_support_cell


def test_fov_in_angstroms_and_cells_on_a_hand_computed_case():
    # 41 px at 0.0625 A/px = 2.5625 A; CeO2 projected along [1-10]: A = sqrt(2) * 5.411^2 / 4 = 10.35166 A^2,
    # so 2.5625^2 / 10.35166 = 0.6343 cells (the "0.6 cell" of the paper's DnCNN)
    paper = FovScale(0.0625, "CeO2")
    assert paper.angstrom(41) == 2.5625
    assert paper.cell_area == pytest.approx(10.35166, abs=1e-5)
    assert paper.cells(41) == pytest.approx(0.63433, abs=1e-5)
    # 17 px at 0.25 A/px = 4.25 A: 18.0625 / 10.35166 = 1.7449 cells (the "1.7 cells")
    assert FovScale(0.25, "CeO2").cells(17) == pytest.approx(1.74489, abs=1e-5)
    # rutile along [001]: the square a x a
    assert FovScale(0.5, "TiO2").cells(10) == pytest.approx(25.0 / 4.594**2)
    # an undefined FoV (the method sees the whole image) and a dataset without a support
    assert math.isnan(paper.angstrom(None)) and math.isnan(paper.cells(float("nan")))
    assert FovScale(0.25).angstrom(8) == 2.0 and math.isnan(FovScale(0.25).cells(8))
    assert "10.35 Å²" in fov_units_note(paper) and "CeO2" not in fov_units_note(FovScale(0.25))


def test_fov_scale_reads_one_pixel_and_one_support_per_split():
    assert fov_scale(pd.DataFrame({"pixel_size": [0.25, 0.25], "support": ["CeO2", "CeO2"]})) == FovScale(0.25, "CeO2")
    assert fov_scale(pd.DataFrame({"pixel_size": [1.0]})) == FovScale(1.0, None)
    with pytest.raises(ValueError, match="one pixel size"):
        fov_scale(pd.DataFrame({"pixel_size": [0.25, 0.15], "support": "CeO2"}))
    with pytest.raises(ValueError, match="one support"):
        fov_scale(pd.DataFrame({"pixel_size": 0.25, "support": ["CeO2", "MgO"]}))
    with pytest.raises(ValueError, match="Al2O3"):
        fov_scale(pd.DataFrame({"pixel_size": [0.25], "support": ["Al2O3"]}))


def _maps_onto_itself(positions: np.ndarray, numbers: np.ndarray, box: np.ndarray, shift: np.ndarray) -> bool:
    """Whether translating the periodic crystal by ``shift`` puts every atom on an atom of its species."""
    for number in np.unique(numbers):
        same = positions[numbers == number]
        tree = cKDTree(np.mod(same, box), boxsize=box)
        if not np.all(tree.query(np.mod(same + shift, box))[0] < 1e-3):
            return False
    return True


def _projected_cell_area_of_builder(name: str) -> float:
    """The area of the projected primitive cell of the support as the simulator builds it, found
    from its atoms: the orthogonal cell (x, y in the image plane, z along the beam) holds N lattice
    translations, k of them along the beam, so the projected lattice has N / k points in x * y."""
    cell = oriented_support_cell(name)
    box = np.diag(cell.cell.array)
    positions, numbers = cell.positions, cell.numbers
    anchor = positions[numbers == numbers[0]]
    translations = [t for t in anchor - anchor[0] if _maps_onto_itself(positions, numbers, box, t)]
    along_beam = sum(1 for t in translations if np.allclose(np.mod(t[:2] + 1e-6, box[:2]), 1e-6, atol=1e-4))
    return box[0] * box[1] * along_beam / len(translations)


@pytest.mark.parametrize("support", sorted(SUPPORTS))
def test_projected_cell_area_matches_the_support_builder(support):
    # the light table repeats the builder's lattice constants and zone axes: derived from its atoms here
    assert PROJECTED_CELL_AREA[support] == pytest.approx(_projected_cell_area_of_builder(support), rel=1e-6)
