"""Accuracy of bfloat16 training: best validation score of the same networks trained in fp32 and in bf16.

Run (issue 35 item 2), in two copies of a run directory that hold the same simulated data:

    snakemake <models> --cores 2 --configfile config/laptop.yaml benchmarks/overlays/precision_seed2.yaml
    snakemake <models> --cores 2 --configfile config/laptop.yaml benchmarks/overlays/precision_seed2.yaml \\
        benchmarks/overlays/precision_bf16.yaml        # in the second copy
    python benchmarks/precision_accuracy.py --fp32 RUN_A --bf16 RUN_B \\
        --models tem_regime/dncnn_image tem_regime/dncnn_image_seed2 ...

with ``<models>`` the ``results/models/<dataset>/<model>/model.pt`` files. For each model it prints
the arithmetic recorded in each run's ``info.json``, the best validation score of each (PSNR in dB
for supervised nets; the blind-spot score on noisy validation frames, in dB, for UDVD), their
difference, the training seconds (``metrics.csv``) and their ratio. The same name trains with the
same seed, data and batches in both runs; ``*_seed2`` entries are second training seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def record(root: Path, model: str) -> dict:
    folder = root / "results" / "models" / model
    info = json.loads((folder / "info.json").read_text())
    score = info.get("best_val_psnr", info.get("best_val_score"))
    seconds = float(pd.read_csv(folder / "metrics.csv")["seconds"].sum())
    return {"precision": info.get("precision", "fp32"), "score": float(score), "seconds": seconds,
            "steps": info["epochs"] * info["recipe"]["steps_per_epoch"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fp32", type=Path, required=True, help="run directory trained in fp32")
    parser.add_argument("--bf16", type=Path, required=True, help="run directory trained in bf16")
    parser.add_argument("--models", nargs="+", required=True, help="dataset/model folders under results/models")
    parser.add_argument("--tolerance", type=float, default=0.1, help="largest accepted score difference (dB)")
    args = parser.parse_args()
    print(f"| model | steps | arithmetic A / B | best validation A (dB) | B (dB) | B - A (dB) | within {args.tolerance} dB "
          "| train s A | B | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model in args.models:
        a, b = record(args.fp32, model), record(args.bf16, model)
        delta = b["score"] - a["score"]
        print(f"| {model} | {a['steps']} / {b['steps']} | {a['precision']} / {b['precision']} | {a['score']:.3f} | "
              f"{b['score']:.3f} | {delta:+.3f} | {'yes' if abs(delta) <= args.tolerance else 'NO'} | "
              f"{a['seconds']:.0f} | {b['seconds']:.0f} | {a['seconds'] / b['seconds']:.2f}x |")


if __name__ == "__main__":
    main()
