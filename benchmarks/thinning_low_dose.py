"""The thinning score at the TEM paper's dose: the figures of docs/thinning.md, "At 0.45 counts per pixel".

Runs the trial of tests/test_realdata.py (``low_dose_trial``: 20 oversampled lattices of 64 x 64 at
0.45 counts per vacuum pixel, two Gaussian-filter denoisers 0.5 dB apart) over ``--seeds`` seeds and
prints, for the ranking of temdenoise.realdata (normalised MSE estimates pooled over images before
the logarithm, paired difference with its 95% interval over images) and for the former one (the
mean over images of per-image PSNRs, MSE floored at 1e-12):

- how often the better denoiser comes first, and the median estimated gain in dB (pooled: over
  the seeds where both pooled MSE estimates are positive, so that the PSNRs are defined);
- how often the 95% interval covers the true normalised-MSE difference (pooled ranking only);
- the share of single-image MSE estimates that are negative, and of images where the per-image
  PSNR puts the pair in the right order.

    python benchmarks/thinning_low_dose.py --seeds 40
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_realdata import low_dose_trial  # noqa: E402  (the test's own simulation)

from temdenoise.realdata import ranking_table  # noqa: E402

FORMER_FLOOR = 1e-12  # the MSE floor of the former per-image PSNR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--counts-per-pixel", type=float, default=0.45)
    args = parser.parse_args()
    pooled_right = covered = former_right = 0
    pooled_db, former_db, true_db, negative, per_image_right = [], [], [], [], []
    for seed in range(args.seeds):
        scores, true_nmse, gain = low_dose_trial(seed, args.images, args.counts_per_pixel)
        table = ranking_table(scores).set_index("model")
        best, other = ("good", "worse") if table.loc["good", "rank"] == 1 else ("worse", "good")
        pooled_right += best == "good"
        truth = np.mean(true_nmse[other]) - np.mean(true_nmse[best])
        covered += table.loc[other, "nmse_vs_best_low"] <= truth <= table.loc[other, "nmse_vs_best_high"]
        pooled_db.append(-table.loc["worse", "db_vs_best"] if best == "good" else table.loc["good", "db_vs_best"])
        true_db.append(gain)
        former = scores.assign(psnr=10 * np.log10(scores.data_range**2 / scores.mse_estimate.clip(lower=FORMER_FLOOR)))
        wide = former.pivot_table(index="file", columns="model", values="psnr")
        former_db.append(float((wide["good"] - wide["worse"]).mean()))
        former_right += former_db[-1] > 0
        per_image_right.append(float((wide["good"] > wide["worse"]).mean()))
        negative.append(float((scores.mse_estimate < 0).mean()))
    print(f"{args.seeds} seeds x {args.images} images at {args.counts_per_pixel} counts/px; "
          f"true gain {np.mean(true_db):+.3f} dB (mean over seeds)")
    print(f"single-image MSE estimates negative: {np.mean(negative):.0%}")
    defined = np.isfinite(pooled_db)
    print(f"pooled, paired ranking: right order {pooled_right}/{args.seeds}, 95% interval covers the true MSE "
          f"difference {covered}/{args.seeds}; gain in dB defined (both pooled MSE estimates > 0) in "
          f"{defined.sum()}/{args.seeds} seeds, median {np.nanmedian(pooled_db):+.2f} dB")
    print(f"former (mean per-image PSNR, floored): right order {former_right}/{args.seeds}, "
          f"median gain {np.median(former_db):+.2f} dB, right on {np.mean(per_image_right):.0%} of images")


if __name__ == "__main__":
    main()
