"""What temdenoise.gain.estimate_gain finds: the figures of docs/thinning.md, "Detector gain".

Simulated lattices (tests/test_realdata.py's ``lattice``) of Poisson counts stored at gain 1, 2
and 4, plain, on a zero level of 100, with Gaussian read noise (in electrons, rounded to integer
values) and spread by a Gaussian detector MTF of 0.7 px before rounding; then every integer image
of shared/data/real_files. One line each: the gain and zero level found, the method, whether the
values are Poisson counts after them, and why not.

    python benchmarks/gain_estimates.py --size 256
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from test_realdata import lattice  # noqa: E402  (the tests' simulated image)

from temdenoise.gain import GainError, estimate_gain  # noqa: E402
from temdenoise.readers import RecordingError, read_recording  # noqa: E402


def describe(values: np.ndarray) -> str:
    try:
        found = estimate_gain(values)
    except GainError as error:
        return f"not determined: {error}"
    verdict = "Poisson counts" if found.poisson_like else f"refused: {found.reason}"
    return f"gain {found.gain:.3g}, zero level {found.offset:.4g} ({found.method}); {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--counts-per-pixel", type=float, nargs="+", default=[0.45, 25.0])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for counts_per_pixel in args.counts_per_pixel:
        for gain in (1, 2, 4):
            electrons = rng.poisson(lattice(args.size, 3) * counts_per_pixel).astype(np.float64)
            cases = {
                "plain": gain * electrons,
                "zero level 100": 100 + gain * electrons,
                **{f"read noise {sigma:g} e": np.round(gain * electrons + rng.normal(0, sigma * gain, electrons.shape))
                   for sigma in (0.5, 1.0, 2.0)},
                "MTF 0.7 px": np.round(gain * ndimage.gaussian_filter(electrons, 0.7)),
            }
            for case, values in cases.items():
                print(f"{args.size} px, {counts_per_pixel:g} counts/px, gain {gain}, {case}: {describe(values)}")
    real = REPO.parent / "shared" / "data" / "real_files"
    for path in sorted(real.rglob("*.*")):
        try:
            recording = read_recording(path)
        except RecordingError:
            continue
        if recording.integer and path.suffix != ".ser":
            print(f"{path.relative_to(real)} ({recording.kind}, {recording.data.shape}): {describe(recording.data)}")


if __name__ == "__main__":
    main()
