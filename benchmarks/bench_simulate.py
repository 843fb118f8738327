"""Throughput of the abTEM data factory: images per second per core, exit-wave reuse, peak memory.

Run: ``python benchmarks/bench_simulate.py [--sizes 256 512] [--defoci 5] [--threads 1] [--frames CONFIG:DATASET ...]``

For each image size (square, 0.2 A detector pixels, 0.05 A potential sampling, a 3 nm Pt
cuboctahedron on 40 A of CeO2) it prints the wall and CPU time of one image (structure + potential + multislice +
CTF + interpolation) after a warm-up that pays numba compilation, images per second per core, the
cost of a defocus series with and without reusing the exit wave (and their ratio, measured side by
side), the CPU time of one image and the peak traced memory of one image. Threads are limited before abTEM is imported.

It then times the exit wave of the quick config's 44-A cell (128 px at 0.25 A plus the 6-A edge
margins, 0.06 A potential sampling, a 2 nm cuboctahedron on 40 A of CeO2) side by side as the
factory made it before issue 21 (``ceil(L / s)`` = 734 = 2 x 367 grid points, 4 A of vacuum
slices before and after the specimen) and as it makes it now (a 5-smooth 750-point grid, no
vacuum slices), with the 5-smooth grid and the vacuum slices between them: median CPU seconds of
``--repeats`` runs each, and the speed-up over the first.

Last, the cost per frame of whole datasets side by side (``--frames``, issue 21 item 1): CPU seconds
of the first ``--frame-structures`` training structures of each named ``config:dataset`` (all of its
images, defocus choice included, as a ``simulate`` job makes them) divided by the images made, e.g.
config/laptop.yaml's ``tem`` against config/paper.yaml's paper-regime ``tem_regime``.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc


def timed(function) -> tuple[float, float]:
    """Wall and CPU seconds of ``function()``."""
    start, cpu_start = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - start, time.process_time() - cpu_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[256, 512], help="image sizes timed (none: skip)")
    parser.add_argument("--defoci", type=int, default=5, help="length of the defocus series")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each exit wave of the 44-A cell comparison (0: skip it)")
    parser.add_argument("--frames", nargs="*", default=["config/laptop.yaml:tem", "config/paper.yaml:tem_regime"],
                        help="config:dataset whose cost per frame is compared (none: skip)")
    parser.add_argument("--frame-structures", type=int, default=2)
    args = parser.parse_args()

    from temdenoise.runtime import limit_threads

    limit_threads(args.threads)
    import numpy as np

    from temdenoise.simulate import imaging, sample
    from temdenoise.simulate.settings import SimulationSettings

    imaging.configure_abtem()
    print(f"threads: {args.threads}; defocus series of {args.defoci}")
    # On a shared machine wall time overstates the cost: CPU seconds (all threads of the process)
    # are printed beside it and images/s/core uses them.
    if args.sizes:
        print("size | atoms | grid | wall s/image | CPU s/image | images/s/core | series reuse wall/CPU (s) | "
              "series no reuse wall/CPU (s) | ratio wall/CPU | peak MB")
    for size in args.sizes:
        settings = SimulationSettings.from_config({
            "image_size": size, "pixel_size": 0.2, "potential_sampling": 0.05, "shapes": ["cuboctahedron"],
            "sizes_nm": [3.0], "support_thickness": [40.0, 40.0]})
        scope = sample.microscope(settings)
        rng = np.random.default_rng(0)
        draw = sample.draw_structure(settings, "bench", 0, rng)
        particle, _ = sample.particle_with_defects(settings, draw, rng)

        def one_image(defocus: float = 20.0):
            spec = sample.specimen(settings, draw, particle)
            wave = imaging.exit_wave(spec, scope)
            return spec, wave, imaging.detector_image(wave, defocus, scope)

        spec, wave, _ = one_image()  # warm-up: numba compilation, FFT caches
        tracemalloc.start()
        per_image, cpu_image = timed(one_image)
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()

        defoci = list(np.linspace(-60, 60, args.defoci))

        def series_with_reuse():
            wave = imaging.exit_wave(sample.specimen(settings, draw, particle), scope)
            imaging.defocus_series(wave, defoci, scope)

        def series_without_reuse():
            for defocus in defoci:
                one_image(defocus)

        reuse, reuse_cpu = timed(series_with_reuse)
        no_reuse, no_reuse_cpu = timed(series_without_reuse)
        grid = "x".join(map(str, wave.gpts))
        print(f"{size} | {len(spec.atoms)} | {grid} | {per_image:.2f} | {cpu_image:.2f} | {1 / cpu_image:.3f} | "
              f"{reuse:.1f} / {reuse_cpu:.1f} | {no_reuse:.1f} / {no_reuse_cpu:.1f} | "
              f"{no_reuse / reuse:.1f} / {no_reuse_cpu / reuse_cpu:.1f} | {peak_mb:.0f}")
    if args.repeats:
        quick_cell_exit_wave(args.repeats)
    if args.frames:
        frame_costs(args.frames, args.frame_structures)
    print(f"process max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


# Vacuum (A) the factory put along the beam before and after the specimen until issue 21.
FORMER_BEAM_VACUUM = 4.0


def exit_wave_with_vacuum(spec, scope, smooth_grid: bool = False):
    """The exit wave with the vacuum slices along the beam of before issue 21, on its ``ceil(L / s)``
    grid or (``smooth_grid``) on the 5-smooth grid of now."""
    import abtem
    import numpy as np

    from temdenoise.simulate import imaging

    atoms = spec.atoms.copy()
    atoms.positions[:, 2] += FORMER_BEAM_VACUUM
    atoms.cell[2, 2] += 2 * FORMER_BEAM_VACUUM
    gpts = tuple(int(np.ceil(length / scope.potential_sampling)) for length in np.diag(atoms.cell.array)[:2])
    if smooth_grid:
        gpts = imaging.potential_gpts(tuple(np.diag(atoms.cell.array)[:2]), scope.potential_sampling)
    potential = abtem.Potential(atoms, gpts=gpts, slice_thickness=scope.slice_thickness, projection="infinite",
                                parametrization="lobato")
    return abtem.PlaneWave(energy=scope.energy, normalize=False).multislice(potential).compute(progress_bar=False)


def quick_cell_exit_wave(repeats: int) -> None:
    """Median CPU seconds of the exit wave of the quick config's 44-A cell, before and after issue 21."""
    import numpy as np

    from temdenoise.simulate import imaging, sample
    from temdenoise.simulate.settings import SimulationSettings

    settings = SimulationSettings.from_config({
        "image_size": 128, "pixel_size": 0.25, "potential_sampling": 0.06, "shapes": ["cuboctahedron"],
        "sizes_nm": [2.0], "support_thickness": [40.0, 40.0]})
    scope = sample.microscope(settings)
    rng = np.random.default_rng(0)
    draw = sample.draw_structure(settings, "bench", 0, rng)
    particle, _ = sample.particle_with_defects(settings, draw, rng)
    spec = sample.specimen(settings, draw, particle)
    print(f"\nexit wave of the quick config's {spec.atoms.cell[0, 0]:.1f}-A cell ({len(spec.atoms)} atoms), "
          f"median CPU s of {repeats}")
    print("version | grid | depth A | slices | CPU s | speed-up")
    rows = {}
    versions = (("before issue 21", exit_wave_with_vacuum, True),
                ("5-smooth grid, vacuum slices", lambda *a: exit_wave_with_vacuum(*a, smooth_grid=True), True),
                ("now: 5-smooth grid, no vacuum", imaging.exit_wave, False))
    for name, compute, vacuum in versions:
        wave = compute(spec, scope)  # warm-up: numba compilation, FFT caches
        rows[name] = float(np.median([timed(lambda: compute(spec, scope))[1] for _ in range(repeats)]))
        depth = spec.atoms.cell[2, 2] + (2 * FORMER_BEAM_VACUUM if vacuum else 0.0)
        slices = int(np.ceil(depth / scope.slice_thickness - 1e-9))
        print(f"{name} | {'x'.join(map(str, wave.gpts))} | {depth:.1f} | {slices} | {rows[name]:.2f} | "
              f"{rows['before issue 21'] / rows[name]:.2f}x")


def frame_costs(datasets: list[str], structures: int) -> None:
    """CPU seconds per frame of each ``config:dataset`` (its first ``structures`` training structures)."""
    import numpy as np
    import yaml

    from temdenoise.simulate import imaging, sample
    from temdenoise.simulate.dataset import simulate_images
    from temdenoise.simulate.imaging import CONTRAST_CLASSES
    from temdenoise.simulate.settings import SimulationSettings

    warm_up = SimulationSettings.from_config({"image_size": 64, "pixel_size": 0.3, "potential_sampling": 0.06,
                                             "shapes": ["octahedron"], "sizes_nm": [1.0]})
    simulate_images(warm_up, sample.draw_structure(warm_up, "warm-up", 0, np.random.default_rng(0)),
                    np.random.default_rng(0), ["black"])   # numba compilation, paid once per process
    print(f"\ncost per frame, {structures} training structures each (CPU s, 1 thread)")
    print("config:dataset | frame px | pixel A | FoV A | cell grid | images | CPU s / structure | CPU s / frame")
    for name in datasets:
        path, dataset = name.split(":")
        config = yaml.safe_load(open(path))
        settings = SimulationSettings.from_config(config["datasets"][dataset]["simulation"])
        classes = [CONTRAST_CLASSES[j % len(CONTRAST_CLASSES)] for j in range(settings.defoci_per_structure)]
        cpu, images = 0.0, 0
        for index in range(structures):
            seed = sample.structure_seed(config.get("seed", 0), dataset, "train", index)
            rng = np.random.default_rng(seed)
            draw = sample.draw_structure(settings, f"bench-{index}", seed, rng)
            made = []
            cpu += timed(lambda: made.extend(simulate_images(settings, draw, rng, classes)[0]))[1]
            images += len(made)
        cell, _ = sample.cell_geometry(settings)
        grid = "x".join(map(str, imaging.potential_gpts(cell, settings.potential_sampling)))
        print(f"{name} | {settings.image_size} | {settings.pixel_size} | {settings.image_size * settings.pixel_size:.0f} | "
              f"{grid} | {images} | {cpu / structures:.1f} | {cpu / images:.2f}")


if __name__ == "__main__":
    main()
