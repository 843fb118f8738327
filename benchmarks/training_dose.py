"""Blind training over a dose range against the TEM paper's training at the test dose, on validation.

The authors' TEM networks (electron-microscopy-denoising `train.py`, REFERENCE.md section 12) draw
a fresh Poisson sample at one dose, the test dose; the workflow trains each TEM network once, blind
over the dataset's `train_noise` range, and scores it at every test dose (docs/training.md lists
this deviation). This script measures what the deviation costs against the Wiener filter, which is
fitted at each dose. For each network of a finished run it trains, with the run's own entry and
recipe (the run's `info.json`) and one seed, the network blind over the run's range and once at each
dose; it denoises the run's stored noisy **validation** split at each dose and prints the PSNR
(`range` convention) of each training beside the run's Wiener filter:

    python benchmarks/training_dose.py --run RUN_DIR --dataset tem \\
        --models dncnn unet_s2 unet_s4 --doses poisson-20 poisson-200 --out RUN_DIR/results/benchmarks/training_dose.md

Validation only (this chooses nothing; it describes a deviation). The split is small (the quick
config's: 2 structures, 6 images), so the columns are means over images with the smallest
per-structure difference beside them, not intervals. Trainings go to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pandas as pd
import torch

from temdenoise.benchmark import denoise_split, evaluate_split
from temdenoise.conditions import parse_condition
from temdenoise.io import save_text
from temdenoise.train.supervised import train_supervised


def validation_psnr(run: Path, dataset: str, entry: dict, artifact: Path, noise: str, work: Path) -> pd.DataFrame:
    """Per-image PSNR (`range`) and structure of ``entry`` (weights or fitted state at ``artifact``)
    on the run's noisy validation split at ``noise``."""
    data = run / "results" / "data" / dataset
    estimate, scores = work / "estimate.npz", work / "scores.csv"
    denoise_split(entry, str(artifact), str(run / "results" / "noisy" / dataset / noise / "validation.npz"),
                  str(data / "validation.csv"), noise, "cpu", str(estimate))
    evaluate_split(str(data / "validation.npz"), str(estimate), str(data / "validation.csv"), dataset, "tem",
                   ["range"], 0.45, noise, "x", str(scores))
    return pd.read_csv(scores)[["unit", "psnr"]]


def train(run: Path, dataset: str, entry: dict, recipe: dict, dose_range: list[float], seed: int, out: Path) -> Path:
    data = run / "results" / "data" / dataset
    train_supervised(entry, recipe, {"kind": "poisson", "range": dose_range}, "tem",
                     str(data / "train.npz"), str(data / "validation.npz"), str(out),
                     train_metadata=str(data / "train.csv"), validation_metadata=str(data / "validation.csv"),
                     device="cpu", seed=seed)
    return out / "model.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished run directory (its results/)")
    parser.add_argument("--dataset", default="tem")
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--doses", nargs="+", required=True, help="test conditions, e.g. poisson-20")
    parser.add_argument("--wiener", default="wiener", help="the run's Wiener method (fitted per condition)")
    parser.add_argument("--seed", type=int, default=0, help="training seed of every training here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the table here (Markdown)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = args.run / "results" / "models" / args.dataset
    wiener_entry = {"family": "wiener"}  # its fitted state (fit-<noise>.npz) holds the kernel it applies
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wiener = {noise: validation_psnr(args.run, args.dataset, wiener_entry, models / args.wiener / f"fit-{noise}.npz",
                                         noise, work) for noise in args.doses}
        for model in args.models:
            info = json.loads((models / model / "info.json").read_text())
            entry = {"family": info["family"], "params": info["params"]}
            blind = info["train_noise"]["range"]
            trainings = {f"blind {blind[0]:g}-{blind[1]:g}": blind}
            trainings |= {f"at {noise}": [parse_condition(noise).level] * 2 for noise in args.doses}
            for label, dose_range in trainings.items():
                weights = train(args.run, args.dataset, entry, info["recipe"], dose_range, args.seed,
                                work / f"{model}-{label.replace(' ', '_')}")
                row = {"model": model, "training noise": label}
                for noise in args.doses:
                    scores = validation_psnr(args.run, args.dataset, entry, weights, noise, work)
                    diff = scores.assign(psnr=scores["psnr"] - wiener[noise]["psnr"])
                    per_unit = diff.groupby("unit")["psnr"].mean()
                    row[f"{noise} PSNR (dB)"] = f"{scores['psnr'].mean():.2f}"
                    row[f"{noise} − Wiener (dB), smallest structure"] = f"{per_unit.mean():+.2f} ({per_unit.min():+.2f})"
                rows.append(row)
                print(row, flush=True)
    provenance = args.run / "results" / "provenance.json"
    stamp = json.loads(provenance.read_text()) if provenance.exists() else {}
    header = (f"Run of commit {stamp.get('git_commit', '?')[:7]}, config sha256 {stamp.get('config_sha256', '?')[:12]} (its data, noisy validation sets and Wiener fits): validation split of `{args.dataset}` ({wiener[args.doses[0]]['unit'].nunique()} structures), training seed "
              f"{args.seed}; Wiener fitted per dose: " + ", ".join(f"{n} {wiener[n]['psnr'].mean():.2f} dB" for n in args.doses))
    table = header + "\n\n" + pd.DataFrame(rows).to_markdown(index=False) + "\n"
    print(table)
    if args.out:
        save_text(args.out, table)


if __name__ == "__main__":
    main()
