"""Contrast of clean paper-regime TEM images against the damping settings (issue 21 item 1).

Run: ``python benchmarks/calibrate_contrast.py [--config tests/configs/regime.yaml] [--structures 4]``

For the first ``--structures`` training structures of the config's ``tem_regime`` dataset it prints
the mean (I - 1)^2 of the clean cropped images (the authors' released images: about 0.012,
REFERENCE.md section 10), averaged over defoci spread evenly across the configured window, for
each Debye-Waller rms displacement (one exit wave each), spatial-coherence angular spread and
detector MTF (CTF and blur only, on the same exit waves), side by side: the table the dataset's
damping settings were chosen from (docs/SIMULATION.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tests/configs/regime.yaml")
    parser.add_argument("--dataset", default="tem_regime")
    parser.add_argument("--structures", type=int, default=4)
    parser.add_argument("--defoci", type=int, default=6, help="defoci spread evenly over the configured window")
    parser.add_argument("--rms", type=float, nargs="+", default=[0.0, 0.08])
    parser.add_argument("--spread", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--mtf", type=float, nargs="+", default=[0.5, 4.0, 6.0, 8.0])
    args = parser.parse_args()

    from temdenoise.runtime import limit_threads

    limit_threads(1)
    import numpy as np
    import yaml

    from temdenoise.simulate import imaging, sample
    from temdenoise.simulate.settings import SimulationSettings

    imaging.configure_abtem()
    config = yaml.safe_load(open(args.config))
    settings = SimulationSettings.from_config(config["datasets"][args.dataset]["simulation"])
    window = [value for bounds in settings.defocus.values() for value in bounds]
    defoci = np.linspace(min(window), max(window), args.defoci)
    print(f"{args.config} {args.dataset}: {settings.image_size} px at {settings.pixel_size} A, "
          f"{args.structures} structures x defoci {np.round(defoci, 1).tolist()} A")
    print("rms displacement (A) | angular spread (mrad) | MTF sigma (px) | mean (I-1)^2 | per structure")
    for rms in args.rms:
        scope = dataclasses.replace(sample.microscope(settings), rms_displacement=rms, frozen_phonons=0)
        waves = []
        for index in range(args.structures):
            seed = sample.structure_seed(config.get("seed", 0), args.dataset, "train", index)
            rng = np.random.default_rng(seed)
            draw = sample.draw_structure(settings, f"calibrate-{index}", seed, rng)
            particle, _ = sample.particle_with_defects(settings, draw, rng)
            spec = sample.specimen(settings, draw, particle)
            waves.append((spec, imaging.exit_wave(spec, scope)))
        for spread, mtf in itertools.product(args.spread, args.mtf):
            imaged = dataclasses.replace(scope, angular_spread=spread, mtf_sigma=mtf)
            per_structure = [float(np.mean([np.mean((sample.crop_and_score(settings, spec, image)[0] - 1) ** 2)
                                            for image in imaging.defocus_series(wave, list(defoci), imaged)]))
                             for spec, wave in waves]
            print(f"{rms} | {spread} | {mtf} | {np.mean(per_structure):.4f} | {np.round(per_structure, 4).tolist()}",
                  flush=True)


if __name__ == "__main__":
    main()
