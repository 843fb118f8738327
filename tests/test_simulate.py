"""Physics and bookkeeping of the abTEM data factory (temdenoise.simulate)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from temdenoise.io import load_stack
from temdenoise.simulate import dataset, imaging, sample
from temdenoise.simulate.settings import SUPPORT_NAMES, SimulationSettings, VideoSettings, shard_count
from temdenoise.simulate.structures import (
    FCC_LATTICE_CONSTANTS, SUPPORTS, build_particle, equivalent_diameter_nm, oriented_support_cell,
)

SCHEMA = Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"

# Bulk spacings (A) visible along the zone axes used: fcc metal {111} and {200}; CeO2 along [1-10]
# {111}, {200}, {220}; rutile TiO2 along [001] {110}, {200}.
CEO2_SPACINGS = (5.411 / np.sqrt(3), 5.411 / 2, 5.411 / np.sqrt(8))


def fcc_spacings(element: str) -> tuple[float, float]:
    a = FCC_LATTICE_CONSTANTS[element]
    return a / np.sqrt(3), a / 2


def strongest_spacing(region: np.ndarray, pixel_size: float, k_min: float = 0.25, k_max: float = 0.75) -> float:
    """Spacing (A) of the strongest Fourier peak of ``region`` with k_min < |k| < k_max (1/A);
    Hann window, zero-padded FFT for sub-bin precision."""
    window = np.outer(np.hanning(region.shape[0]), np.hanning(region.shape[1]))
    padded = 1024
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2((region - region.mean()) * window, s=(padded, padded)))) ** 2
    k = np.fft.fftshift(np.fft.fftfreq(padded, d=pixel_size))
    kk = np.hypot(*np.meshgrid(k, k, indexing="ij"))
    spectrum[(kk < k_min) | (kk > k_max)] = 0
    peak = np.unravel_index(np.argmax(spectrum), spectrum.shape)
    return 1.0 / kk[peak]


def matches(spacing: float, references: tuple[float, ...], tolerance: float = 0.03) -> bool:
    return any(abs(spacing - r) / r < tolerance for r in references)


def nearest_lattice(spacing: float, lattices: dict[str, tuple[float, ...]]) -> str:
    """The name of the lattice one of whose spacings is relatively closest to ``spacing``: tells
    lattices apart whose spacings lie within the 3% tolerance of each other (CeO2 {220} 1.913 A
    and Pt {200} 1.962 A; Au and Pt 3.9% apart)."""
    return min(lattices, key=lambda name: min(abs(spacing - r) / r for r in lattices[name]))


def physics_settings(**overrides) -> SimulationSettings:
    """A clean, untilted particle: lattice fringes must come out at the bulk spacings."""
    base = dict(shapes=["octahedron"], sizes_nm=[1.8], support_thickness=[30, 30], tilt_max=0.0,
                vacancy_fraction=0.0, adatom_fraction=0.0, image_size=192, pixel_size=0.2,
                potential_sampling=0.05, mtf_sigma=0.0,
                defocus={"black": [10, 10], "intermediate": [-45, -15], "white": [-70, -70]},
                structures={"train": 1, "validation": 0, "test": 0})
    base.update(overrides)
    return SimulationSettings.from_config(base, key="test.simulation")


def simulate_one(settings: SimulationSettings, classes=("black", "intermediate", "white")):
    rng = np.random.default_rng(1)
    draw = sample.draw_structure(settings, "s", 1, rng)
    return imaging_regions(settings, *dataset.simulate_images(settings, draw, rng, list(classes)))


def imaging_regions(settings, images, rows):
    """Particle, support and vacuum regions of the cropped images (support at the bottom)."""
    n = settings.image_size
    surface_row = int(round((1 - settings.support_fraction) * n))
    d_px = 10 * settings.sizes_nm[0] / settings.pixel_size
    half = int(0.3 * d_px)
    centre_row = surface_row - int(0.5 * d_px) - 8
    particle = (slice(centre_row - half, centre_row + half), slice(n // 2 - half, n // 2 + half))
    support = (slice(surface_row + 6, n - 2), slice(4, n - 4))
    vacuum = (slice(2, max(4, surface_row - int(d_px) - 20)), slice(4, n - 4))
    return images, rows, particle, support, vacuum


@pytest.fixture(scope="module")
def pt_on_ceo2():
    imaging.configure_abtem()
    return simulate_one(physics_settings())


def test_settings_support_menu_equals_the_built_supports():
    """The light settings module checks configs against SUPPORT_NAMES; the structures build SUPPORTS."""
    assert sorted(SUPPORT_NAMES) == sorted(SUPPORTS)


def test_pt_particle_shows_pt_lattice(pt_on_ceo2):
    images, rows, particle, _, _ = pt_on_ceo2
    # black and white images; at the contrast reversal (intermediate) the fringes nearly vanish
    for image in (images[0], images[2]):
        spacing = strongest_spacing(image[particle], 0.2)
        assert matches(spacing, fcc_spacings("Pt")), spacing


def test_support_shows_ceo2_lattice(pt_on_ceo2):
    images, _, _, support, _ = pt_on_ceo2
    for image in (images[0], images[2]):
        spacing = strongest_spacing(image[support], 0.2)
        assert matches(spacing, CEO2_SPACINGS), spacing
        assert nearest_lattice(spacing, {"CeO2": CEO2_SPACINGS, "Pt": fcc_spacings("Pt")}) == "CeO2", spacing


def test_vacuum_intensity_is_one(pt_on_ceo2):
    images, _, _, _, vacuum = pt_on_ceo2
    for image in images:
        assert image.dtype == np.float32 and image.shape == (192, 192)
        assert abs(float(image[vacuum].mean()) - 1.0) < 0.02
        assert float(image[vacuum].std()) < 0.05


def test_contrast_class_follows_configured_defocus(pt_on_ceo2):
    _, rows, _, _, _ = pt_on_ceo2
    assert [r["contrast_class"] for r in rows] == ["black", "intermediate", "white"]
    assert rows[0]["defocus"] == 10 and rows[2]["defocus"] == -70 and -45 <= rows[1]["defocus"] <= -15
    # the intermediate image sits at the contrast reversal, not anywhere within the class threshold
    assert abs(rows[1]["contrast_score"]) < 0.1, rows[1]["contrast_score"]


def test_expected_counts_follow_dose_and_pixel_area(pt_on_ceo2):
    from temdenoise.noise import expected_counts, poisson_noise

    image = pt_on_ceo2[0][0]
    dose, pixel = 200.0, 0.2
    np.testing.assert_allclose(expected_counts(image, dose, pixel), image * dose * pixel**2, rtol=1e-6)
    rng = np.random.default_rng(0)
    draws = np.stack([poisson_noise(image, dose, pixel, rng) for _ in range(200)])
    # the noisy copies are unbiased for the clean intensity: 200 draws, 144^2 pixels
    assert abs(float(draws.mean() - image.mean())) < 5 * np.sqrt(image.mean() / (dose * pixel**2) / draws.size)


def test_au_on_tio2_works_and_shows_au_lattice():
    settings = physics_settings(element="Au", support="TiO2", defocus={"black": [10, 10], "intermediate": [-30, -30],
                                                                      "white": [-70, -70]})
    images, rows, particle, support, vacuum = simulate_one(settings, classes=("black",))
    assert rows[0]["element"] == "Au" and rows[0]["support"] == "TiO2"
    spacing = strongest_spacing(images[0][particle], 0.2)
    assert matches(spacing, fcc_spacings("Au")), spacing
    assert nearest_lattice(spacing, {"Au": fcc_spacings("Au"), "Pt": fcc_spacings("Pt")}) == "Au", spacing
    assert abs(float(images[0][vacuum].mean()) - 1.0) < 0.02
    tio2 = oriented_support_cell("TiO2")
    assert sorted(set(tio2.get_chemical_symbols())) == ["O", "Ti"]
    assert np.allclose(tio2.cell.angles(), 90)


@pytest.mark.parametrize("shape", ["wulff", "octahedron", "cuboctahedron", "decahedron", "icosahedron"])
def test_particle_size_follows_config(shape):
    for size in (1.5, 3.0):
        particle = build_particle(shape, "Pt", size)
        assert abs(equivalent_diameter_nm(len(particle), 3.924) - size) / size < 0.25
        assert np.allclose(particle.positions.mean(axis=0), 0, atol=1e-6)


def test_different_seeds_give_different_structures():
    settings = SimulationSettings.from_config({"image_size": 128, "pixel_size": 0.25, "sizes_nm": [1.5, 2.0]})
    positions = []
    for seed in (sample.structure_seed(0, "tem", "train", 0), sample.structure_seed(0, "tem", "train", 1),
                 sample.structure_seed(1, "tem", "train", 0)):
        rng = np.random.default_rng(seed)
        draw = sample.draw_structure(settings, "s", seed, rng)
        particle, info = sample.particle_with_defects(settings, draw, rng)
        positions.append(sample.specimen(settings, draw, particle).atoms.positions)
    for i in range(3):
        for j in range(i + 1, 3):
            assert positions[i].shape != positions[j].shape or not np.allclose(positions[i], positions[j])
    assert len({sample.structure_seed(0, "tem", split, 0) for split in ("train", "validation", "test")}) == 3


def tiny_settings(**overrides) -> SimulationSettings:
    base = dict(shapes=["cuboctahedron"], sizes_nm=[1.2], support_thickness=[12, 14], image_size=64,
                pixel_size=0.3, potential_sampling=0.06, defoci_per_structure=2,
                structures={"train": 2, "validation": 1, "test": 0}, structures_per_shard=1)
    base.update(overrides)
    return SimulationSettings.from_config(base, key="test.simulation")


def test_same_seed_gives_byte_identical_shards(tmp_path):
    settings = tiny_settings()
    for run in ("a", "b"):
        dataset.write_shard(settings, "tem", "train", 1, 7, tmp_path / f"{run}.npz", tmp_path / f"{run}.csv")
    a, b = load_stack(tmp_path / "a.npz"), load_stack(tmp_path / "b.npz")
    assert len(a) == 2 and all(x.tobytes() == y.tobytes() for x, y in zip(a, b))
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    table = pd.read_csv(tmp_path / "a.csv")
    for column in ("structure_id", "shape", "size_nm", "n_atoms", "zone_axis", "tilt_x", "tilt_y", "thickness",
                   "defocus", "Cs", "focal_spread", "pixel_size", "contrast_class", "seed", "abtem_version", "split"):
        assert column in table.columns, column
    assert (table["pixel_size"] == 0.3).all() and (table["split"] == "train").all()


def test_crashed_shard_leaves_no_file(tmp_path, monkeypatch):
    settings = tiny_settings(structures={"train": 2, "validation": 0, "test": 0}, structures_per_shard=2)
    calls = []

    def exit_wave_then_crash(spec, scope):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return original(spec, scope)

    original = imaging.exit_wave
    monkeypatch.setattr(imaging, "exit_wave", exit_wave_then_crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        dataset.write_shard(settings, "tem", "train", 0, 0, tmp_path / "s.npz", tmp_path / "s.csv")
    assert list(tmp_path.iterdir()) == []


def test_merge_keeps_splits_apart_and_renumbers_items(tmp_path):
    settings = tiny_settings(defoci_per_structure=1)
    paths = {}
    for split in ("train", "validation"):
        npz, csv = [], []
        for shard in range(shard_count(settings, split)):
            npz.append(tmp_path / f"{split}-{shard}.npz")
            csv.append(tmp_path / f"{split}-{shard}.csv")
            dataset.write_shard(settings, "tem", split, shard, 0, npz[-1], csv[-1])
        dataset.merge_shards(npz, csv, tmp_path / f"{split}.npz", tmp_path / f"{split}.csv")
        paths[split] = pd.read_csv(tmp_path / f"{split}.csv")
        assert len(load_stack(tmp_path / f"{split}.npz")) == len(paths[split])
        assert list(paths[split]["item"]) == list(range(len(paths[split])))
    assert not set(paths["train"]["structure_id"]) & set(paths["validation"]["structure_id"])
    import tifffile

    dataset.export_split_tiff(tmp_path / "train.npz", tmp_path / "train.tif")
    assert tifffile.imread(tmp_path / "train.tif").shape == (2, 64, 64)


def test_video_frames_move_by_the_stored_displacement():
    settings = tiny_settings(image_size=64, sizes_nm=[1.2], video={"frames": 3, "drift_px": 1.5, "rotation_deg": 0.0,
                                                                   "surface_moves": 0},
                             mtf_sigma=0.0, tilt_max=0.0)
    rng = np.random.default_rng(3)
    draw = sample.draw_structure(settings, "v", 3, rng)
    from temdenoise.simulate.video import simulate_video

    frames, rows = simulate_video(settings, draw, "black", rng)
    assert frames.shape == (3, 64, 64) and frames.dtype == np.float32
    assert [r["frame"] for r in rows] == [0, 1, 2]
    from scipy import ndimage

    inner = (slice(8, -8), slice(8, -8))   # away from the edges that the shift fills in
    for t in (1, 2):
        stored = np.array([rows[t]["displacement_row_px"], rows[t]["displacement_col_px"]])
        assert np.abs(stored).max() > 0.3
        moved = ndimage.shift(frames[0].astype(float), stored, order=3, mode="nearest")
        residual = np.mean((moved[inner] - frames[t][inner]) ** 2)
        unmoved = np.mean((frames[0][inner] - frames[t][inner]) ** 2)
        # frame 0 shifted by the stored displacement reproduces frame t (sub-pixel interpolation error only)
        assert residual < 0.02 * unmoved, (residual, unmoved)


def test_displacement_field_moves_every_atom_to_its_next_position():
    """Move the atoms of a video (drift, and a rotation large enough to matter), project them into
    the crop, and compare each atom's move with the field at its site: particle atoms follow drift
    plus rotation, support atoms the drift alone."""
    from temdenoise.simulate.structures import contact_anchor
    from temdenoise.simulate.motion import displacement_field, on_particle
    from temdenoise.simulate.video import VideoMotion, frame_motion, frame_specimen

    settings = tiny_settings(video={"frames": 3, "drift_px": 1.5, "rotation_deg": 3.0, "surface_moves": 0})
    rng = np.random.default_rng(5)
    draw = sample.draw_structure(settings, "v", 5, rng)
    particle, _ = sample.particle_with_defects(settings, draw, rng)
    motion = VideoMotion(drift_px=np.array([[0.0, 0.0], [2.3, -1.7], [-1.1, 2.6]]), rotation_deg=np.array([0.0, 4.0, -3.0]))
    anchor = contact_anchor(particle)
    specs = [frame_specimen(settings, draw, particle, anchor, motion, t) for t in range(3)]
    height = int(round(sample.cell_geometry(settings)[0][1] / settings.pixel_size))
    window = sample.crop_window_of(settings, specs[0], (height, height))
    rows = [frame_motion(settings, spec, motion, t, height, window) for t, spec in enumerate(specs)]
    sites = [sample.crop_pixels(spec.atoms.positions[:, :2], height, window, settings.pixel_size) for spec in specs]
    is_particle = np.zeros(len(specs[0].atoms), bool)
    is_particle[specs[0].particle] = True
    size = settings.image_size
    for s, t in ((0, 1), (1, 2), (2, 0)):
        # support atoms that stay in the crop and were not wrapped across the periodic cell
        inside = np.all((sites[s] >= 0) & (sites[s] < size) & (sites[t] >= 0) & (sites[t] < size), axis=1)
        kept = inside & (np.hypot(*(sites[t] - sites[s]).T) < 10)
        assert is_particle[kept].sum() == is_particle.sum() and (~is_particle[kept]).sum() > 50
        moved = sites[t][kept] - sites[s][kept]
        field = displacement_field(rows[s], rows[t], sites[s][kept])
        np.testing.assert_allclose(field, moved, atol=1e-6)
        np.testing.assert_array_equal(on_particle(rows[s], sites[s][kept]), is_particle[kept])
        drift = [rows[t]["displacement_row_px"] - rows[s]["displacement_row_px"],
                 rows[t]["displacement_col_px"] - rows[s]["displacement_col_px"]]
        assert np.abs(field[is_particle[kept]] - drift).max() > 0.5   # the rotation shows, not the drift alone


def test_schema_defaults_match_library_defaults():
    schema = yaml.safe_load(SCHEMA.read_text())
    section = schema["properties"]["datasets"]["additionalProperties"]["properties"]["simulation"]["properties"]
    defaults = SimulationSettings()
    for field in dataclasses.fields(SimulationSettings):
        assert field.name in section, field.name
        if field.name == "video":
            for video_field in dataclasses.fields(VideoSettings):
                assert section["video"]["properties"][video_field.name]["default"] == getattr(defaults.video, video_field.name)
            continue
        value = getattr(defaults, field.name)
        if isinstance(value, dict):
            value = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
        elif isinstance(value, tuple):
            value = list(value)
        assert section[field.name]["default"] == value, field.name
    assert set(section) == {f.name for f in dataclasses.fields(SimulationSettings)}


@pytest.mark.parametrize("override, key", [
    ({"sizes_nm": [8.0]}, "sizes_nm"),
    ({"potential_sampling": 0.09}, "potential_sampling"),
    ({"support_thickness": [-5, 30]}, "support_thickness"),
    ({"element": "Xx"}, "element"),
    ({"bogus": 1}, "bogus"),
])
def test_impossible_physics_is_rejected_naming_the_key(override, key):
    with pytest.raises(ValueError, match=key):
        SimulationSettings.from_config(override, key="datasets.tem.simulation")


def test_potential_grid_is_fft_friendly():
    """A 44-A cell at 0.06 A needs 734 = 2 x 367 points: the grid takes the next 5-smooth size."""
    assert imaging.fft_friendly_size(734) == 750 and imaging.fft_friendly_size(750) == 750
    assert imaging.fft_friendly_size(1009) == 1024 and imaging.fft_friendly_size(1) == 1
    gpts = imaging.potential_gpts((44.0, 44.0), 0.06)
    assert gpts == (750, 750) and 44.0 / gpts[0] <= 0.06


def test_vacuum_behind_the_specimen_only_moves_the_defocus_reference():
    """The cell ends at the specimen's exit surface; 4 A of vacuum slices before and after it (the
    former cell) give the image that the vacuum-free cell gives 4 A closer to overfocus, and a
    different one at the same defocus: the defocus is measured from the exit surface."""
    from temdenoise.simulate.structures import BEAM_MARGIN, Specimen

    imaging.configure_abtem()
    settings = tiny_settings(mtf_sigma=0.0, tilt_max=0.0)
    rng = np.random.default_rng(1)
    draw = sample.draw_structure(settings, "s", 1, rng)
    particle, _ = sample.particle_with_defects(settings, draw, rng)
    spec = sample.specimen(settings, draw, particle)
    z = spec.atoms.positions[:, 2]
    assert z.min() == pytest.approx(BEAM_MARGIN) and spec.atoms.cell[2, 2] == pytest.approx(z.max() + BEAM_MARGIN)
    padded = spec.atoms.copy()
    padded.positions[:, 2] += 4.0
    padded.cell[2, 2] += 8.0
    scope = sample.microscope(settings)
    bare, vacuum = imaging.exit_wave(spec, scope), imaging.exit_wave(Specimen(padded, spec.particle, spec.centre), scope)
    for defocus in (20.0, -30.0):
        reference = imaging.detector_image(vacuum, defocus, scope)
        shifted = np.sqrt(np.mean((imaging.detector_image(bare, defocus - 4.0, scope) - reference) ** 2))
        same = np.sqrt(np.mean((imaging.detector_image(bare, defocus, scope) - reference) ** 2))
        # what remains is the slicing (slice boundaries move with the cell), about 0.002
        assert shifted < 0.005 and shifted < 0.25 * same, (defocus, shifted, same)


def test_intermediate_defocus_finds_the_icosahedron_reversal():
    """A 1.5 nm icosahedron on 37 A of CeO2 reverses its contrast near -2 A (scores 1.27 at -10 A,
    -0.54 at 0 A), outside the intermediate range before issue 34 (-50, -5), where its images measure
    white: the default range finds it."""
    imaging.configure_abtem()
    settings = SimulationSettings.from_config(dict(
        shapes=["icosahedron"], sizes_nm=[1.5], support_thickness=[37, 37], image_size=96, pixel_size=0.25,
        potential_sampling=0.06, tilt_max=0.0, structures={"train": 1, "validation": 0, "test": 0}), key="test")
    rng = np.random.default_rng(2)
    draw = sample.draw_structure(settings, "s", 2, rng)
    _, rows = dataset.simulate_images(settings, draw, rng, ["intermediate"])
    assert rows[0]["contrast_class"] == "intermediate" and abs(rows[0]["contrast_score"]) < 0.1, rows[0]


@pytest.mark.parametrize("shape", ["cuboctahedron", "icosahedron"])
def test_adatoms_sit_on_hollow_sites_and_defect_counts_vary(shape):
    """Every adatom is bonded to three or more atoms at one bond length (a hollow site; an on-top
    site has one bond), and vacancy and adatom counts differ between particles of one shape."""
    from scipy.spatial import cKDTree

    from temdenoise.simulate.structures import add_surface_defects, nearest_neighbour_distance

    particle = build_particle(shape, "Pt", 2.0)
    bond = nearest_neighbour_distance("Pt")
    counts = set()
    for seed in range(6):
        defective, vacancies, adatoms = add_surface_defects(particle, "Pt", np.random.default_rng(seed), 0.05, 0.05)
        counts.add((vacancies, adatoms))
        assert len(defective) == len(particle) - vacancies + adatoms and adatoms > 0
        distances, _ = cKDTree(defective.positions[:-adatoms]).query(defective.positions[-adatoms:], k=3)
        assert np.all(distances < 1.06 * bond) and np.all(distances > 0.94 * bond), distances
    assert len(counts) >= 4, counts


def test_surface_hops_land_on_hollow_sites():
    from scipy.spatial import cKDTree

    from temdenoise.simulate.structures import nearest_neighbour_distance, rearrange_surface

    particle = build_particle("wulff", "Pt", 2.0)
    moved = rearrange_surface(particle, "Pt", np.random.default_rng(0), 3)
    hopped = np.flatnonzero(np.linalg.norm(moved.positions - particle.positions, axis=1) > 0.1)
    assert len(hopped) == 3
    for index in hopped:
        others = np.delete(moved.positions, index, axis=0)
        distances, _ = cKDTree(others).query(moved.positions[index], k=3)
        assert np.all(np.abs(distances / nearest_neighbour_distance("Pt") - 1) < 0.06), distances


def test_flat_bottom_searches_the_icosahedron_two_fold_period():
    """Seen along its 2-fold axis the icosahedron repeats every 180 degrees: whatever its starting
    turn, the flattest bottom found equals the best over a full turn (its best turns lie outside
    0-72 degrees after a -20 degree start)."""
    from ase import Atoms
    from ase.cluster import Icosahedron
    from scipy.spatial.transform import Rotation

    from temdenoise.simulate.structures import BEAM_SYMMETRY_PERIOD_DEG, _flat_bottom

    def bottom_count(atoms: Atoms, angle: float = 0.0) -> int:
        y = (atoms.positions @ Rotation.from_euler("z", angle, degrees=True).as_matrix().T)[:, 1]
        return int(np.sum(y < y.min() + 0.5))

    cluster = Icosahedron("Pt", 4, latticeconstant=3.924)
    atoms = Atoms(cluster.get_chemical_symbols(), positions=cluster.positions)
    atoms.positions = atoms.positions @ Rotation.from_euler("z", -20, degrees=True).as_matrix().T
    best = max(bottom_count(atoms, angle) for angle in np.arange(0.0, 360.0, 1.0))
    assert bottom_count(_flat_bottom(atoms, BEAM_SYMMETRY_PERIOD_DEG["icosahedron"])) == best


def test_limit_threads_reaches_dask_imported_later():
    """Jobs import abTEM (and with it dask) after runtime.limit_threads: dask must still get the
    job's thread count."""
    import subprocess
    import sys

    code = ("from temdenoise.runtime import limit_threads; limit_threads(1); import abtem, dask; "
            "print(dask.config.get('num_workers'), dask.config.get('scheduler'))")
    environment = {k: v for k, v in __import__("os").environ.items() if not k.startswith("DASK_")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment)
    assert result.stdout.split() == ["1", "threads"]


@pytest.fixture(scope="module")
def support_wave():
    """Exit wave of a Pt particle on 40 A of CeO2 (one multislice for the imaging tests below)."""
    imaging.configure_abtem()
    settings = physics_settings(image_size=96, pixel_size=0.25, sizes_nm=[1.5], support_thickness=[40, 40])
    rng = np.random.default_rng(1)
    draw = sample.draw_structure(settings, "s", 1, rng)
    particle, _ = sample.particle_with_defects(settings, draw, rng)
    spec = sample.specimen(settings, draw, particle)
    return settings, spec, imaging.exit_wave(spec, sample.microscope(settings))


def test_focal_spread_quadrature_converges(support_wave, monkeypatch):
    """Samples FOCAL_SPREAD_STEP apart give the image of a 4x finer quadrature to 2e-3 of the vacuum."""
    settings, _, wave = support_wave
    scope = sample.microscope(settings)
    image = imaging.detector_image(wave, -60.0, scope)
    monkeypatch.setattr(imaging, "FOCAL_SPREAD_STEP", imaging.FOCAL_SPREAD_STEP / 4)
    fine = imaging.detector_image(wave, -60.0, scope)
    assert np.sqrt(np.mean((image - fine) ** 2)) < 2e-3


def test_focal_spread_is_an_incoherent_sum_that_keeps_the_intensity(support_wave):
    """The focal spread averages intensities over defocus: the mean intensity is that of the coherent
    image at the nominal defocus (within 0.5 %), and the fringes are damped. An envelope on the wave
    (abTEM's CTF focal_spread) instead loses intensity: the former model's 11 % on the support."""
    settings, _, wave = support_wave
    scope = sample.microscope(settings)
    coherent = imaging.detector_image(wave, -60.0, dataclasses.replace(scope, focal_spread=0.0))
    spread = imaging.detector_image(wave, -60.0, dataclasses.replace(scope, focal_spread=80.0))
    assert spread.mean() == pytest.approx(coherent.mean(), rel=5e-3)
    assert spread.std() < coherent.std()
    import abtem
    envelope = wave.apply_ctf(abtem.CTF(semiangle_cutoff=scope.semiangle_cutoff, focal_spread=80.0, defocus=-60.0,
                                        Cs=scope.Cs, energy=scope.energy)).intensity().compute(progress_bar=False)
    assert float(envelope.array.mean()) < coherent.mean() - 0.01


def test_image_spread_and_mtf_add_in_quadrature(support_wave):
    """An image spread of s A and an MTF of m px blur as one Gaussian of hypot(m, s / pixel) px."""
    settings, _, wave = support_wave
    scope = dataclasses.replace(sample.microscope(settings), mtf_sigma=0.0)
    sharp = imaging.detector_image(wave, 0.0, scope)
    both = imaging.detector_image(wave, 0.0, dataclasses.replace(scope, mtf_sigma=0.6, image_spread=0.2))
    from scipy import ndimage
    expected = ndimage.gaussian_filter(sharp, np.hypot(0.6, 0.2 / settings.pixel_size), mode="wrap")
    assert np.abs(both - expected).max() < 1e-9


def test_bright_columns_side_follows_the_sign_of_defocus(support_wave):
    """The sign convention, once: abTEM's positive defocus is underfocus. At Cs = -13 um (the shipped
    negative-Cs imaging) and at +13 um alike, the atom columns are bright at the authors' 6 nm of
    *overfocus* and not at 6 nm of underfocus: the TEM paper's bright columns at 6 nm sit at defocus
    -60 A (data_stats.matched_defocus), whatever the sign of Cs at this size."""
    from temdenoise.simulate import data_stats

    settings, spec, wave = support_wave
    for Cs in (-data_stats.BRIGHT_SIDE_CHECKED_CS, data_stats.BRIGHT_SIDE_CHECKED_CS):
        scope = dataclasses.replace(sample.microscope(settings), Cs=Cs)
        bright = data_stats.matched_defocus(Cs)
        score = {defocus: sample.crop_and_score(settings, spec, imaging.detector_image(wave, defocus, scope))[1]
                 for defocus in (bright, -bright)}
        assert bright == -60.0 and score[bright] > settings.contrast_threshold > score[-bright], (Cs, score)
    with pytest.raises(ValueError, match="Cs"):
        data_stats.matched_defocus(-1e6)


def test_defoci_of_a_structure_are_distinct(monkeypatch):
    """No two images of a structure share a defocus, in every shipped config: the reversal search
    is deterministic, so it runs once per structure (a second intermediate target is drawn in the
    range), and a defocus window is cut into strata."""
    calls = []
    def search_or_draw(settings, klass, wave, spec, rng):  # the reversal search, deterministic per wave
        calls.append(klass)
        return -30.0 if klass == "intermediate" else float(rng.uniform(*settings.defocus[klass]))

    monkeypatch.setattr(sample, "choose_defocus", search_or_draw)
    configs = sorted((Path(__file__).parents[1] / "config").glob("*.yaml")) + [Path(__file__).parent / "configs/regime.yaml"]
    checked = 0
    for path in configs:
        for name, entry in yaml.safe_load(path.read_text()).get("datasets", {}).items():
            if entry.get("source") != "simulate":
                continue
            settings = SimulationSettings.from_config(entry.get("simulation"), key=name)
            n = 1 if settings.is_video else settings.defoci_per_structure
            classes = [imaging.CONTRAST_CLASSES[j % 3] for j in range(max(n, 6))]
            defoci = sample.choose_defoci(settings, classes, None, None, np.random.default_rng(0))
            assert len(set(defoci)) == len(defoci), (path.name, name, defoci)
            if settings.defocus_window is not None:
                low, high = settings.defocus_window
                strata = np.linspace(low, high, len(classes) + 1)
                assert all(a <= d <= b for d, a, b in zip(defoci, strata[:-1], strata[1:])), defoci
            checked += 1
    assert checked >= 5 and calls.count("intermediate") <= checked
