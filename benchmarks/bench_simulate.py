"""Throughput of the abTEM data factory: images per second per core, exit-wave reuse, peak memory.

Run: ``python benchmarks/bench_simulate.py [--sizes 256 512] [--defoci 5] [--threads 1]``

For each image size (square, 0.2 A detector pixels, 0.05 A potential sampling, a 3 nm Pt
cuboctahedron on 40 A of CeO2) it prints the wall and CPU time of one image (structure + potential + multislice +
CTF + interpolation) after a warm-up that pays numba compilation, images per second per core, the
cost of a defocus series with and without reusing the exit wave (and their ratio, measured side by
side), the CPU time of one image and the peak traced memory of one image. Threads are limited before abTEM is imported.
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
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--defoci", type=int, default=5, help="length of the defocus series")
    parser.add_argument("--threads", type=int, default=1)
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
    print(f"process max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
