"""Atomic models of supported metal nanoparticles seen edge-on (ASE).

A face-centred-cubic metal particle (``ase.cluster``: Wulff construction, octahedron,
cuboctahedron, decahedron, icosahedron, or a Winterbottom particle: the Wulff shape truncated by
its interface with the support) sits on the (111) / (110) surface of an oxide support.
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
from ase.cluster import Decahedron, FaceCenteredCubic, Icosahedron, Octahedron, wulff_construction
from ase.spacegroup import crystal
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

# The menus live in the light settings module (the Snakefile checks a config against them while parsing).
from temdenoise.simulate.settings import FCC_LATTICE_CONSTANTS, SHAPES


# Rows: the image-plane x, y (surface normal) and beam z directions in the crystal's cubic axes.
# [11-2] x [111] is parallel to [1-10], so the frame is right-handed.
_FCC_ZONE_110 = np.array([[1, 1, -2], [1, 1, 1], [1, -1, 0]], dtype=float)
ZONE_AXIS_LABEL = {"wulff": "[1-10]", "octahedron": "[1-10]", "cuboctahedron": "[1-10]",
                   "decahedron": "5-fold", "icosahedron": "2-fold", "winterbottom": "[1-10]"}


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


def winterbottom_layers(wulff_layers_111: int, adhesion: float) -> int:
    """(111) layers below the Wulff centre that a Winterbottom particle keeps (negative: its lowest
    layer is above the centre).

    Winterbottom (Acta Metall. 1, 1967): a particle on a support is its Wulff shape truncated by a
    plane parallel to the interface, at the distance ``h_int = h_111 (gamma_int - gamma_support) /
    gamma_111 = h_111 (1 - W / gamma_111)`` from the Wulff centre, where ``h_111`` is the distance of
    the (111) facet and ``W`` the adhesion energy (Dupre: ``W = gamma_111 + gamma_support -
    gamma_int``). ``adhesion`` is ``W / gamma_111``: 0 keeps the whole Wulff particle, 1 cuts it
    through its centre, towards 2 it wets the support as a flat raft.
    """
    return int(round(wulff_layers_111 * (1.0 - adhesion)))


def truncate_at_interface(cluster: Atoms, layers_111: int, adhesion: float, d111: float) -> Atoms:
    """``cluster`` (an ``ase.cluster`` fcc cluster centred on an atom, ``layers_111`` (111) layers
    from its centre to its (111) facets) oriented with [111] up (y), without the atoms below its
    Winterbottom interface layer (:func:`winterbottom_layers`); the centre atom is at y = 0, so the
    (111) layers sit at whole multiples of ``d111``."""
    atoms = _orient(Atoms(cluster.get_chemical_symbols(), positions=cluster.positions), _FCC_ZONE_110)
    interface = -winterbottom_layers(layers_111, adhesion) * d111
    return atoms[atoms.positions[:, 1] > interface - 0.25 * d111]


def winterbottom_particle(element: str, target_atoms: int, surface_energies: tuple[float, float],
                          adhesion: float) -> Atoms:
    """A single-crystal Winterbottom particle (:func:`winterbottom_layers`) of about ``target_atoms``
    atoms, oriented along [1-10] with [111] up (y): the fcc cluster bounded by (111) and (100)
    facets at Wulff distances (``surface_energies``), with every atom below the interface (111)
    layer removed. Among the Wulff clusters of 2..29 (111) layers from the centre (and the (100)
    layer counts nearest the Wulff ratio) the truncated one with the atom count closest to the target
    is kept."""
    a = FCC_LATTICE_CONSTANTS[element]
    d111, d100 = a / np.sqrt(3), a / 2
    gamma_111, gamma_100 = surface_energies
    best: Atoms | None = None
    for layers_111 in range(2, 30):
        wulff_100 = layers_111 * d111 / d100 * gamma_100 / gamma_111
        for layers_100 in sorted({max(1, int(np.floor(wulff_100))), max(1, int(np.ceil(wulff_100)))}):
            cluster = FaceCenteredCubic(element, [(1, 1, 1), (1, 0, 0)], [layers_111, layers_100], latticeconstant=a)
            atoms = truncate_at_interface(cluster, layers_111, adhesion, d111)
            if best is None or abs(len(atoms) - target_atoms) < abs(len(best) - target_atoms):
                best = atoms
        if len(atoms) > 2 * target_atoms:   # larger clusters only move further from the target
            break
    assert best is not None
    return best


def build_particle(shape: str, element: str, diameter_nm: float, surface_energies: tuple[float, float] = (1.0, 1.15),
                   adhesion: float = 0.0) -> Atoms:
    """A particle of ``shape`` whose volume-equivalent diameter is close to ``diameter_nm``.

    Cubic shapes are oriented along [1-10] with [111] up (y); the decahedron is seen along its
    five-fold axis and the icosahedron along a two-fold axis, both turned about the beam so that a
    facet lies flat on the support. ``surface_energies`` are the (111) and (100) energies of the
    Wulff construction; ``adhesion`` (W / gamma_111) truncates the ``winterbottom`` particle
    (:func:`winterbottom_particle`). Positions are centred at the origin.
    """
    if element not in FCC_LATTICE_CONSTANTS:
        raise ValueError(f"unknown particle element {element!r}; known: {sorted(FCC_LATTICE_CONSTANTS)}")
    a = FCC_LATTICE_CONSTANTS[element]
    target = _atoms_for_diameter(diameter_nm, a)
    if shape == "winterbottom":
        atoms = winterbottom_particle(element, target, surface_energies, adhesion)
        atoms.positions -= atoms.positions.mean(axis=0)
        return atoms
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
    if shape in BEAM_SYMMETRY_PERIOD_DEG:
        atoms = _flat_bottom(atoms, BEAM_SYMMETRY_PERIOD_DEG[shape])
    else:
        atoms = _orient(atoms, _FCC_ZONE_110)
    atoms.positions -= atoms.positions.mean(axis=0)
    return atoms


# Rotation period (degrees) about the beam of the twinned particles as ase.cluster builds them:
# the decahedron's 5-fold axis and the icosahedron's 2-fold axis lie along z.
BEAM_SYMMETRY_PERIOD_DEG = {"decahedron": 72.0, "icosahedron": 180.0}


def _flat_bottom(atoms: Atoms, period_deg: float) -> Atoms:
    """Turn ``atoms`` about the beam (z) so that the most atoms share the lowest y (a flat facet);
    the turns tried (1 degree apart) cover ``period_deg``, the rotation period about the beam."""
    best_angle, best_count = 0.0, -1
    for angle in np.arange(0.0, period_deg, 1.0):
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


def bonds(atoms: Atoms, element: str) -> tuple[np.ndarray, np.ndarray]:
    """Both directions ``(i, j)`` of every first-shell pair (closer than 1.2 bond lengths) of a
    particle (no periodic cell), sorted by ``i``; a k-d tree is much faster than ase's neighbour
    list for atoms without a cell."""
    pairs = cKDTree(atoms.positions).query_pairs(1.2 * nearest_neighbour_distance(element), output_type="ndarray")
    first = np.concatenate([pairs[:, 0], pairs[:, 1]])
    second = np.concatenate([pairs[:, 1], pairs[:, 0]])
    order = np.argsort(first, kind="stable")
    return first[order], second[order]


def surface_indices(atoms: Atoms, element: str) -> np.ndarray:
    """Indices of under-coordinated (surface) atoms: fewer than 12 neighbours in the first shell."""
    coordination = np.bincount(bonds(atoms, element)[0], minlength=len(atoms))
    return np.flatnonzero(coordination < 12)


def hollow_sites(atoms: Atoms, element: str, surface: np.ndarray, keep_below: float | None = None) -> np.ndarray:
    """(N, 3) free hollow sites above the surface atoms ``surface`` (indices into ``atoms``).

    A hollow site is at one bond length ``d`` from three surface atoms, two of them bonded to the
    third and at most 1.5 ``d`` apart, on the side away from the particle's centroid: the fcc and
    hcp 3-fold hollows of (111) facets (an equilateral triangle) and the 4-fold hollows of (100)
    facets (three corners of a square), i.e. where the next atomic layer would grow, also on the
    twinned particles. Sites closer than 0.8 ``d`` to an atom, or not above ``keep_below`` (y),
    are dropped; the 4-fold hollow found from several triangles is kept once.
    """
    d = nearest_neighbour_distance(element)
    positions = atoms.positions
    is_surface = np.zeros(len(atoms), dtype=bool)
    is_surface[surface] = True
    first, second = bonds(atoms, element)
    bonded = is_surface[first] & is_surface[second]
    first, second = first[bonded], second[bonded]   # sorted by first
    starts = np.searchsorted(first, np.arange(len(atoms) + 1))
    triangles = []
    for i in np.unique(first):
        around = second[starts[i]:starts[i + 1]]
        j, k = np.triu_indices(len(around), 1)
        triangles.append(np.stack([np.full(len(j), i), around[j], around[k]], axis=1))
    triangles = np.concatenate(triangles) if triangles else np.empty((0, 3), dtype=int)
    triangles = triangles[np.linalg.norm(positions[triangles[:, 1]] - positions[triangles[:, 2]], axis=1) <= 1.5 * d]
    if not len(triangles):
        return np.empty((0, 3))
    apex, left, right = (positions[triangles[:, corner]] for corner in range(3))
    a, b = left - apex, right - apex
    normal = np.cross(a, b)
    normal_sq = np.sum(normal**2, axis=1)
    # circumcentre of each triangle, then up along its normal to one bond length from the corners
    centre = apex + np.cross(np.sum(a**2, axis=1)[:, None] * b - np.sum(b**2, axis=1)[:, None] * a, normal) / (
        2 * normal_sq[:, None])
    height = np.sqrt(np.clip(d**2 - np.sum((centre - apex) ** 2, axis=1), 0.0, None))
    unit = normal / np.sqrt(normal_sq)[:, None]
    outward = np.sign(np.sum(unit * (centre - positions.mean(axis=0)), axis=1))
    sites = centre + (outward * height)[:, None] * unit
    free = cKDTree(positions).query(sites)[0] > 0.8 * d
    if keep_below is not None:
        free &= sites[:, 1] > keep_below
    sites = sites[free]
    # the 4-fold hollow of a (100) facet comes from each of its four corner triangles: keep one
    duplicates = cKDTree(sites).query_pairs(0.3 * d, output_type="ndarray")
    keep = np.ones(len(sites), dtype=bool)
    keep[duplicates.max(axis=1) if len(duplicates) else []] = False
    return sites[keep]


def _surface_above(atoms: Atoms, element: str, keep_below: float | None) -> np.ndarray:
    """Surface atoms of ``atoms`` above ``keep_below`` (y; all when None)."""
    surface = surface_indices(atoms, element)
    if keep_below is None:
        return surface
    return surface[atoms.positions[surface, 1] > keep_below]


def add_surface_defects(atoms: Atoms, element: str, rng: np.random.Generator, vacancy_fraction: float,
                        adatom_fraction: float, keep_below: float | None = None) -> tuple[Atoms, int, int]:
    """Remove surface atoms (vacancies) and add adatoms on hollow sites of the surface.

    Each surface atom is removed with probability ``vacancy_fraction``, and the number of adatoms
    is binomial with ``adatom_fraction`` per surface atom, so both counts vary between particles of
    one shape and size. Adatoms sit on free :func:`hollow_sites`, not next to a vacancy (they would
    lose a bond) nor next to each other. Atoms below ``keep_below`` (y, the interface with the
    support) are never touched. Returns the new atoms and the numbers of vacancies and adatoms made.
    """
    surface = _surface_above(atoms, element, keep_below)
    removed = surface[rng.random(len(surface)) < vacancy_fraction]
    n_adatoms = int(rng.binomial(len(surface), adatom_fraction))
    d = nearest_neighbour_distance(element)
    sites = hollow_sites(atoms, element, surface, keep_below)
    if len(removed) and len(sites):
        sites = sites[cKDTree(atoms.positions[removed]).query(sites)[0] > 1.2 * d]
    new_sites: list[np.ndarray] = []
    for site in sites[rng.permutation(len(sites))]:
        if len(new_sites) == n_adatoms:
            break
        if all(np.linalg.norm(site - other) > 0.8 * d for other in new_sites):
            new_sites.append(site)
    result = atoms[np.setdiff1d(np.arange(len(atoms)), removed)]
    if new_sites:
        result += Atoms([element] * len(new_sites), positions=new_sites)
    return result, len(removed), len(new_sites)


def rearrange_surface(atoms: Atoms, element: str, rng: np.random.Generator, n_moves: int,
                      keep_below: float | None = None) -> Atoms:
    """Fluxional surface: move ``n_moves`` surface atoms each to a free hollow site of the surface
    the others leave (:func:`hollow_sites`), away from where it was."""
    atoms = atoms.copy()
    d = nearest_neighbour_distance(element)
    for _ in range(n_moves):
        surface = _surface_above(atoms, element, keep_below)
        if len(surface) < 2:
            break
        mover = int(rng.choice(surface))
        others = atoms[np.arange(len(atoms)) != mover]
        sites = hollow_sites(others, element, _surface_above(others, element, keep_below), keep_below)
        sites = sites[np.linalg.norm(sites - atoms.positions[mover], axis=1) > 0.5 * d]
        if len(sites):
            atoms.positions[mover] = sites[rng.integers(len(sites))]
    return atoms


@dataclass
class Specimen:
    """A particle on its support inside an abTEM cell, with what the metadata needs."""

    atoms: Atoms                  # everything, in the simulation cell
    particle: np.ndarray          # indices of the particle's atoms in ``atoms``
    centre: np.ndarray            # particle centre (x, y) in A, the crop centre is derived from it
    phonon_seed: int = 0          # seed of the frozen-phonon displacements (imaging.exit_wave)


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


# Room (A) between the outermost atoms and the cell's faces along the beam: keeps every atom strictly
# inside the cell (a periodic wrap never moves one across it) while adding no vacuum slice.
BEAM_MARGIN = 0.1


def assemble_specimen(particle: Atoms, support: str, thickness: float, cell_xy: tuple[float, float],
                      interface_y: float, tilt_deg: tuple[float, float], anchor: np.ndarray | None = None) -> Specimen:
    """Put ``particle`` on a ``support`` slab of ``thickness`` (A, along the beam) in a cell of
    lateral size ``cell_xy`` (A) whose support surface is at ``interface_y``; tilt the specimen by
    ``tilt_deg`` (about x, then y; degrees) around the particle's contact point.

    ``anchor`` (default :func:`contact_anchor` of ``particle``) is the particle point placed at the
    contact point; a video passes its first frame's anchor so that surface atoms hopping between
    frames do not move the rest of the particle. The support is built wider than the cell, tilted,
    then cut back to the cell laterally and to ``thickness`` along the beam, so the tilt leaves no
    hole at the cell edges.

    Along the beam the cell ends :data:`BEAM_MARGIN` beyond the outermost atoms, with no vacuum
    slices: vacuum before the specimen leaves a plane wave unchanged, vacuum after it only moves
    the plane at which the exit wave is taken, i.e. the defocus reference (tests/test_simulate.py
    shows the equivalence). The defocus is thus measured from the specimen's exit surface.
    """
    width, height = cell_xy
    particle = particle.copy()
    particle_depth = np.ptp(particle.positions[:, 2])
    depth = max(thickness, particle_depth) + 8.0   # room for the tilt while building; trimmed below
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
    z = atoms.positions[:, 2]
    atoms.positions[:, 2] += BEAM_MARGIN - z.min()
    atoms.cell = [width, height, float(np.ptp(z)) + 2 * BEAM_MARGIN]
    atoms.pbc = True
    centre = particle.positions[:, :2].mean(axis=0)
    return Specimen(atoms=atoms, particle=np.arange(len(particle)), centre=centre)
