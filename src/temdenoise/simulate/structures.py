"""Atomic models of supported metal nanoparticles seen edge-on (ASE).

A face-centred-cubic metal particle (``ase.cluster``: Wulff construction, octahedron,
cuboctahedron, decahedron, icosahedron) sits on the (111) / (110) surface of an oxide support.
Axes follow abTEM: the beam runs along ``z``; the image plane is ``x`` (horizontal) and ``y``
(vertical, the surface normal of the support, so the support is seen edge-on). Cubic particles and
the support are both oriented along a <110> zone axis with the epitaxy of Pt/CeO2 (particle [111]
parallel to the support normal), then the whole specimen is tilted by a small random angle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from ase import Atoms
from ase.build import bulk, make_supercell
from ase.cluster import Decahedron, Icosahedron, Octahedron, wulff_construction
from ase.neighborlist import neighbor_list
from ase.spacegroup import crystal
from scipy.spatial.transform import Rotation

# The menus live in the light settings module (the Snakefile checks a config against them while parsing).
from temdenoise.simulate.settings import FCC_LATTICE_CONSTANTS, SHAPES


# Rows: the image-plane x, y (surface normal) and beam z directions in the crystal's cubic axes.
# [11-2] x [111] is parallel to [1-10], so the frame is right-handed.
_FCC_ZONE_110 = np.array([[1, 1, -2], [1, 1, 1], [1, -1, 0]], dtype=float)
ZONE_AXIS_LABEL = {"wulff": "[1-10]", "octahedron": "[1-10]", "cuboctahedron": "[1-10]",
                   "decahedron": "5-fold", "icosahedron": "2-fold"}


def _orient(atoms: Atoms, rows: np.ndarray) -> Atoms:
    """Rotate ``atoms`` so that the crystal directions ``rows`` become x, y, z."""
    rotation = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    atoms = atoms.copy()
    atoms.positions = atoms.positions @ rotation.T
    return atoms


@dataclass(frozen=True)
class Support:
    """An oxide support: a conventional cell plus the supercell matrix whose rows are the
    orthogonal x (in plane), y (surface normal) and z (beam) directions."""

    name: str
    conventional: Callable[[], Atoms]
    supercell: tuple[tuple[int, int, int], ...]
    surface: str
    zone_axis: str


def _fluorite(symbol: str, a: float) -> Callable[[], Atoms]:
    return lambda: bulk(symbol, "fluorite", a=a, cubic=True)


def _rocksalt(symbol: str, a: float) -> Callable[[], Atoms]:
    return lambda: bulk(symbol, "rocksalt", a=a, cubic=True)


def _rutile() -> Atoms:
    return crystal(["Ti", "O"], basis=[(0, 0, 0), (0.3048, 0.3048, 0)], spacegroup=136,
                   cellpar=[4.594, 4.594, 2.959, 90, 90, 90])


SUPPORTS: dict[str, Support] = {
    # Fluorite / rocksalt: x = [11-2], y = [111] (surface normal), z = [1-10] (beam).
    "CeO2": Support("CeO2", _fluorite("CeO2", 5.411), ((1, 1, -2), (1, 1, 1), (1, -1, 0)), "(111)", "[1-10]"),
    "ZrO2": Support("ZrO2", _fluorite("ZrO2", 5.07), ((1, 1, -2), (1, 1, 1), (1, -1, 0)), "(111)", "[1-10]"),
    "MgO": Support("MgO", _rocksalt("MgO", 4.212), ((1, 1, -2), (1, 1, 1), (1, -1, 0)), "(111)", "[1-10]"),
    # Rutile: x = [1-10], y = [110] (surface normal), z = [001] (beam).
    "TiO2": Support("TiO2", _rutile, ((1, -1, 0), (1, 1, 0), (0, 0, 1)), "(110)", "[001]"),
}


def oriented_support_cell(name: str) -> Atoms:
    """Orthogonal unit cell of support ``name`` with x, y, z as described by :class:`Support`."""
    support = SUPPORTS[name]
    cell = make_supercell(support.conventional(), np.array(support.supercell))
    lengths = np.linalg.norm(cell.cell.array, axis=1)
    scaled = cell.get_scaled_positions(wrap=True)
    return Atoms(cell.get_chemical_symbols(), scaled_positions=scaled, cell=np.diag(lengths), pbc=True)


def equivalent_diameter_nm(n_atoms: int, lattice_constant: float) -> float:
    """Diameter (nm) of the sphere holding ``n_atoms`` at fcc bulk density (4 atoms per a^3)."""
    return float((6.0 * n_atoms * lattice_constant**3 / 4.0 / np.pi) ** (1 / 3) / 10.0)


def _atoms_for_diameter(diameter_nm: float, lattice_constant: float) -> int:
    return max(13, int(round(np.pi / 6 * (10 * diameter_nm) ** 3 * 4 / lattice_constant**3)))


def _closest(builder: Callable[[int], Atoms], sizes: range, target_atoms: int) -> Atoms:
    """The cluster of ``builder(n)`` for n in ``sizes`` whose atom count is closest to the target."""
    best: Atoms | None = None
    for n in sizes:
        cluster = builder(n)
        if best is None or abs(len(cluster) - target_atoms) < abs(len(best) - target_atoms):
            best = cluster
        if len(cluster) > target_atoms:
            break
    assert best is not None
    return best


def build_particle(shape: str, element: str, diameter_nm: float, surface_energies: tuple[float, float] = (1.0, 1.15)) -> Atoms:
    """A particle of ``shape`` whose volume-equivalent diameter is close to ``diameter_nm``.

    Cubic shapes are oriented along [1-10] with [111] up (y); the decahedron is seen along its
    five-fold axis and the icosahedron along a two-fold axis, both turned about the beam so that a
    facet lies flat on the support. ``surface_energies`` are the (111) and (100) energies of the
    Wulff construction. Positions are centred at the origin.
    """
    if element not in FCC_LATTICE_CONSTANTS:
        raise ValueError(f"unknown particle element {element!r}; known: {sorted(FCC_LATTICE_CONSTANTS)}")
    a = FCC_LATTICE_CONSTANTS[element]
    target = _atoms_for_diameter(diameter_nm, a)
    if shape == "wulff":
        cluster = wulff_construction(element, [(1, 1, 1), (1, 0, 0)], list(surface_energies), target, "fcc",
                                     rounding="closest", latticeconstant=a)
    elif shape == "octahedron":
        cluster = _closest(lambda n: Octahedron(element, n, cutoff=0, latticeconstant=a), range(2, 40), target)
    elif shape == "cuboctahedron":
        cluster = _closest(lambda n: Octahedron(element, 2 * n + 1, cutoff=n, latticeconstant=a), range(1, 20), target)
    elif shape == "decahedron":
        cluster = _closest(lambda n: Decahedron(element, n, n, 0, latticeconstant=a), range(2, 20), target)
    elif shape == "icosahedron":
        cluster = _closest(lambda n: Icosahedron(element, n, latticeconstant=a), range(2, 20), target)
    else:
        raise ValueError(f"unknown particle shape {shape!r}; known: {SHAPES}")
    atoms = Atoms(cluster.get_chemical_symbols(), positions=cluster.positions)
    if shape in ("decahedron", "icosahedron"):
        atoms = _flat_bottom(atoms)
    else:
        atoms = _orient(atoms, _FCC_ZONE_110)
    atoms.positions -= atoms.positions.mean(axis=0)
    return atoms


def _flat_bottom(atoms: Atoms) -> Atoms:
    """Turn ``atoms`` about the beam (z) so that the most atoms share the lowest y (a flat facet)."""
    best_angle, best_count = 0.0, -1
    for angle in np.arange(0.0, 72.0, 1.0):
        y = atoms.positions @ Rotation.from_euler("z", angle, degrees=True).as_matrix().T
        count = int(np.sum(y[:, 1] < y[:, 1].min() + 0.5))
        if count > best_count:
            best_angle, best_count = angle, count
    atoms = atoms.copy()
    atoms.positions = atoms.positions @ Rotation.from_euler("z", best_angle, degrees=True).as_matrix().T
    return atoms


def nearest_neighbour_distance(element: str) -> float:
    """Bond length (A) of the fcc metal ``element``."""
    return FCC_LATTICE_CONSTANTS[element] / np.sqrt(2)


def surface_indices(atoms: Atoms, element: str) -> np.ndarray:
    """Indices of under-coordinated (surface) atoms: fewer than 12 neighbours in the first shell."""
    cutoff = 1.2 * nearest_neighbour_distance(element)
    centres = neighbor_list("i", atoms, cutoff)
    coordination = np.bincount(centres, minlength=len(atoms))
    return np.flatnonzero(coordination < 12)


def _outward_site(atoms: Atoms, index: int, element: str) -> np.ndarray:
    """A site one bond length outside surface atom ``index`` (pointing away from the centroid)."""
    position = atoms.positions[index]
    direction = position - atoms.positions.mean(axis=0)
    return position + nearest_neighbour_distance(element) * direction / max(np.linalg.norm(direction), 1e-9)


def _free(atoms: Atoms, site: np.ndarray, element: str) -> bool:
    return bool(np.min(np.linalg.norm(atoms.positions - site, axis=1)) > 0.8 * nearest_neighbour_distance(element))


def add_surface_defects(atoms: Atoms, element: str, rng: np.random.Generator, vacancy_fraction: float,
                        adatom_fraction: float, keep_below: float | None = None) -> tuple[Atoms, int, int]:
    """Remove a fraction of surface atoms (vacancies) and add adatoms outside others.

    Atoms below ``keep_below`` (y, the interface with the support) are never touched. Returns the
    new atoms and the numbers of vacancies and adatoms made.
    """
    surface = surface_indices(atoms, element)
    if keep_below is not None:
        surface = surface[atoms.positions[surface, 1] > keep_below]
    n_vacancies = int(round(vacancy_fraction * len(surface)))
    n_adatoms = int(round(adatom_fraction * len(surface)))
    chosen = rng.permutation(surface)
    removed, hosts = chosen[:n_vacancies], chosen[n_vacancies:]
    new_sites: list[np.ndarray] = []
    probe = atoms.copy()
    for host in hosts:
        if len(new_sites) == n_adatoms:
            break
        site = _outward_site(atoms, host, element)
        if _free(probe, site, element):
            probe += Atoms(element, positions=[site])
            new_sites.append(site)
    keep = np.setdiff1d(np.arange(len(atoms)), removed)
    result = atoms[keep]
    if new_sites:
        result += Atoms([element] * len(new_sites), positions=new_sites)
    return result, n_vacancies, len(new_sites)


def rearrange_surface(atoms: Atoms, element: str, rng: np.random.Generator, n_moves: int,
                      keep_below: float | None = None) -> Atoms:
    """Fluxional surface: move ``n_moves`` surface atoms each to a free site outside another one."""
    atoms = atoms.copy()
    for _ in range(n_moves):
        surface = surface_indices(atoms, element)
        if keep_below is not None:
            surface = surface[atoms.positions[surface, 1] > keep_below]
        if len(surface) < 2:
            break
        mover, host = rng.choice(surface, size=2, replace=False)
        site = _outward_site(atoms, host, element)
        others = atoms[np.arange(len(atoms)) != mover]
        if _free(others, site, element):
            atoms.positions[mover] = site
    return atoms


@dataclass
class Specimen:
    """A particle on its support inside an abTEM cell, with what the metadata needs."""

    atoms: Atoms                  # everything, in the simulation cell
    particle: np.ndarray          # indices of the particle's atoms in ``atoms``
    centre: np.ndarray            # particle centre (x, y) in A, the crop centre is derived from it


def support_block(name: str, width: float, height: float, depth: float) -> Atoms:
    """Support atoms filling x in [0, width), y in [0, height) (top = surface), z in [0, depth)."""
    unit = oriented_support_cell(name)
    lengths = np.diag(unit.cell.array)
    reps = np.ceil(np.array([width, height, depth]) / lengths).astype(int) + 1
    block = unit.repeat(tuple(int(r) for r in reps))
    block.positions[:, 1] -= block.positions[:, 1].max() - height
    inside = (block.positions[:, 0] < width) & (block.positions[:, 1] >= 0) & (block.positions[:, 2] < depth)
    return block[inside]


# Distance (A) between the particle's lowest atoms and the support surface.
SUPPORT_GAP = 2.3


def contact_anchor(particle: Atoms, gap: float = SUPPORT_GAP) -> np.ndarray:
    """The point of ``particle`` (its own coordinates) that :func:`assemble_specimen` puts at the
    contact point: mean x and z of its atoms, ``gap`` below its lowest atom."""
    positions = particle.positions
    return np.array([positions[:, 0].mean(), positions[:, 1].min() - gap, positions[:, 2].mean()])


def assemble_specimen(particle: Atoms, support: str, thickness: float, cell_xy: tuple[float, float],
                      interface_y: float, tilt_deg: tuple[float, float], anchor: np.ndarray | None = None,
                      padding: float = 2.0) -> Specimen:
    """Put ``particle`` on a ``support`` slab of ``thickness`` (A, along the beam) in a cell of
    lateral size ``cell_xy`` (A) whose support surface is at ``interface_y``; tilt the specimen by
    ``tilt_deg`` (about x, then y; degrees) around the particle's contact point.

    ``anchor`` (default :func:`contact_anchor` of ``particle``) is the particle point placed at the
    contact point; a video passes its first frame's anchor so that surface atoms hopping between
    frames do not move the rest of the particle. The support is built wider than the cell, tilted,
    then cut back to the cell laterally and to ``thickness`` along the beam, so the tilt leaves no
    hole at the cell edges.
    """
    width, height = cell_xy
    particle = particle.copy()
    particle_depth = np.ptp(particle.positions[:, 2])
    depth = max(thickness, particle_depth) + 2 * padding + 4.0
    zc = depth / 2
    contact = np.array([width / 2, interface_y, zc])
    particle.positions += contact - (contact_anchor(particle) if anchor is None else anchor)
    margin = 0.3 * max(width, depth)
    block = support_block(support, width + 2 * margin, interface_y + margin, depth + 2 * margin)
    block.positions -= [margin, margin, margin]
    block.positions[:, 1] -= block.positions[:, 1].max() - interface_y
    rotation = Rotation.from_euler("xy", tilt_deg, degrees=True).as_matrix()
    for part in (particle, block):
        part.positions = (part.positions - contact) @ rotation.T + contact
    bp = block.positions
    keep = (bp[:, 0] >= 0) & (bp[:, 0] < width) & (bp[:, 1] >= 0) & (np.abs(bp[:, 2] - zc) <= thickness / 2)
    block = block[keep]
    atoms = particle + block
    atoms.cell = [width, height, depth]
    atoms.pbc = True
    centre = particle.positions[:, :2].mean(axis=0)
    return Specimen(atoms=atoms, particle=np.arange(len(particle)), centre=centre)
