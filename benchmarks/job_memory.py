"""Peak resident memory of the jobs that hold arrays, against the bytes they hold (issue 37, item 2).

Each rule's body (the library function its script calls) runs alone in a fresh Python process on
synthetic float32 splits, twice: a job that streams its split (one item held) on items of the
quick config's side (128 px) and of 1024 px; a job that holds its split (training, prepare_images)
on 1024-px items, few then many (the images a training job validates on are the same two: their
activations cancel). Its peak resident set size (GNU time's maximum resident set size) against
the bytes the job holds (as temdenoise.jobmemory counts them) gives ``base_mb`` and ``per_byte``
by a line through the two points, printed as the ``FOOTPRINTS`` of temdenoise.jobmemory. Networks
and recipes are the quick config's (config/config.yaml; one epoch of two steps: memory does not
grow with the steps), on the CPU. ``denoise`` is measured for each classical family and for the
quick DnCNN, and the largest base and slope are kept.

    PYTHONPATH=src python benchmarks/job_memory.py [--rules add_noise,train]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from temdenoise.io import save_stack

REPO = Path(__file__).resolve().parents[1]
QUICK = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
STREAMED_ITEMS = 2  # a streamed job holds one item whatever the count
VIDEO_FRAMES = 8
# folder name: (image side, training images, training videos)
DATA = {"small-items": (128, 8, 2), "large-items": (1024, 8, 2), "many-items": (1024, 32, 6)}
STREAMED_POINTS = ("small-items", "large-items")
HELD_SPLIT_POINTS = ("large-items", "many-items")
HOLDS_SPLIT = ("prepare_images", "train", "train_noisy_images", "train_udvd")
RECIPE = {**QUICK["training"]["quick"], "epochs": 1, "steps_per_epoch": 2}
DENOISERS = {
    "wiener": {"family": "wiener", "params": {"kernel_size": 11}},
    "wavelet": {"family": "wavelet", "params": {"wavelet": "db4", "levels": 4}},
    "nlm": {"family": "nlm"},
    "tv": {"family": "tv"},
    "dncnn": QUICK["methods"]["dncnn"],
}


def item_bytes(side: int, frames: int = 1) -> int:
    return frames * side * side * 4


def write_data(folder: Path) -> None:
    """The synthetic splits of one image side: clean, noisy and their metadata, a Wiener fit,
    weights of the quick DnCNN, stored noisy videos and a folder of PNG images."""
    import torch
    from skimage import io as skio

    from temdenoise.benchmark import fit_classical, write_noisy_split
    from temdenoise.models import build_model

    side, images, videos = DATA[folder.name]
    rng = np.random.default_rng(side)
    folder.mkdir(parents=True)
    for name, count, frames in (("stream", STREAMED_ITEMS, 1), ("train", images, 1), ("video", videos, VIDEO_FRAMES)):
        shape = (frames, side, side) if frames > 1 else (side, side)
        save_stack(folder / f"{name}.npz", (1 + 0.1 * rng.standard_normal(shape) for _ in range(count)))
        rows = [{"item": i, "frame": f, "pixel_size": 0.25} for i in range(count) for f in range(frames)]
        pd.DataFrame(rows).to_csv(folder / f"{name}.csv", index=False)
        write_noisy_split(folder / f"{name}.npz", folder / f"{name}.csv", "poisson-20", 0, folder / f"{name}_noisy.npz")
    fit_classical(DENOISERS["wiener"], folder / "stream_noisy.npz", folder / "stream.npz", folder / "wiener.npz")
    torch.save(build_model(DENOISERS["dncnn"]).state_dict(), folder / "dncnn.pt")
    (folder / "png").mkdir()
    for index in range(images):
        skio.imsave(folder / "png" / f"{index:03d}.png", rng.integers(0, 256, (side, side), dtype=np.uint8),
                    check_contrast=False)


def run_rule(rule: str, folder: Path) -> None:
    """The body of ``rule`` (``denoise-<method>`` for one denoiser) on the data of ``folder``."""
    out = Path(tempfile.mkdtemp(dir=folder))
    if rule == "merge_shards":
        from temdenoise.simulate.dataset import merge_shards

        merge_shards([folder / "stream.npz"] * 2, [folder / "stream.csv"] * 2, out / "m.npz", out / "m.csv")
    elif rule == "export_tiff":
        from temdenoise.simulate.dataset import export_split_tiff

        export_split_tiff(folder / "stream.npz", out / "s.tif")
    elif rule == "add_noise":
        from temdenoise.benchmark import write_noisy_split

        write_noisy_split(folder / "stream.npz", folder / "stream.csv", "poisson-20", 1, out / "n.npz")
    elif rule == "fit_classical":
        from temdenoise.benchmark import fit_classical

        fit_classical(DENOISERS["wiener"], folder / "stream_noisy.npz", folder / "stream.npz", out / "f.npz")
    elif rule.startswith("denoise-"):
        from temdenoise.benchmark import denoise_split

        method = rule.removeprefix("denoise-")
        artifact = {"wiener": folder / "wiener.npz", "dncnn": folder / "dncnn.pt"}.get(method)
        denoise_split(DENOISERS[method], artifact, folder / "stream_noisy.npz", folder / "stream.csv", "poisson-20",
                      "cpu", out / "d.npz")
    elif rule == "evaluate":
        from temdenoise.benchmark import evaluate_split

        evaluate_split(folder / "stream.npz", folder / "stream_noisy.npz", folder / "stream.csv", "tem", "tem",
                       ["range", "seed_counts"], 0.45, "poisson-20", "noisy", out / "e.csv")
    elif rule == "prepare_images":
        from temdenoise.natural import natural_split

        images, _ = natural_split({"source": "folder", "train_folder": folder / "png", "test_folder": folder / "png"},
                                  "test")
        save_stack(out / "p.npz", images)
    elif rule == "train":
        from temdenoise.train.supervised import train_supervised

        train_supervised(QUICK["methods"]["dncnn"], RECIPE, {"kind": "poisson", "range": [10, 400]}, "tem",
                         folder / "train.npz", folder / "train.npz", out, folder / "train.csv", folder / "train.csv",
                         device="cpu")
    elif rule == "train_noisy_images":
        from temdenoise.train.noisy_images import train_noisy_images

        train_noisy_images(QUICK["methods"]["n2v_unet"], RECIPE, ["poisson-20"], [folder / "train_noisy.npz"],
                           [folder / "train_noisy.npz"], out, folder / "train.csv", folder / "train.csv", device="cpu")
    elif rule == "train_udvd":
        from temdenoise.train.self_supervised import train_udvd

        recipe = {**QUICK["training"]["udvd_quick"], "epochs": 1, "steps_per_epoch": 2}
        train_udvd(QUICK["methods"]["udvd3"], recipe, ["poisson-20"], [folder / "video_noisy.npz"],
                   [folder / "video_noisy.npz"], out, folder / "video.csv", folder / "video.csv", device="cpu")
    else:
        raise ValueError(f"no measurement for rule {rule!r}")


def held_bytes(rule: str, folder: str) -> int:
    """What the job holds, as temdenoise.jobmemory counts it for the workflow's jobs."""
    side, images, videos = DATA[folder]
    if rule == "prepare_images":
        return images * item_bytes(side)
    if rule in ("train", "train_noisy_images"):  # the split, and validation_images items of the same split
        return (images + RECIPE["validation_images"]) * item_bytes(side)
    if rule == "train_udvd":
        return (videos + QUICK["training"]["udvd_quick"]["validation_images"]) * item_bytes(side, VIDEO_FRAMES)
    return item_bytes(side)  # a streamed job: one item


def peak_rss_mb(rule: str, folder: Path) -> float:
    """Peak resident set size (MB) of a fresh process running ``rule`` on ``folder``'s data, as
    GNU time reports it (a child of this process would inherit this process's peak: Linux keeps
    ``ru_maxrss`` across exec)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    report = folder / f"{rule}.time"
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(report), sys.executable, __file__, "--child", rule,
                    str(folder)], env=env, check=True)
    return int(report.read_text().split()[-1]) * 1024 / 1e6  # kilobytes


RULES = ("merge_shards", "export_tiff", "add_noise", "fit_classical", "denoise", "evaluate", "prepare_images",
         "train", "train_noisy_images", "train_udvd")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", default=",".join(RULES))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_rule(args.child[0], Path(args.child[1]))
        return
    rules = args.rules.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        for name in DATA:
            write_data(Path(tmp, name))
        print(f"{'rule':<28} {'data':<12} {'held MB':>10} {'peak MB':>10}")
        footprints = {}
        for rule in rules:
            variants = [f"denoise-{m}" for m in DENOISERS] if rule == "denoise" else [rule]
            points = HELD_SPLIT_POINTS if rule in HOLDS_SPLIT else STREAMED_POINTS
            fits = []
            for variant in variants:
                held = [held_bytes(rule, name) / 1e6 for name in points]
                peak = [peak_rss_mb(variant, Path(tmp, name)) for name in points]
                slope = (peak[1] - peak[0]) / (held[1] - held[0])
                fits.append((peak[0] - slope * held[0], slope))
                for name, h, p in zip(points, held, peak):
                    print(f"{variant:<28} {name:<12} {h:>10.2f} {p:>10.1f}")
                print(f"{'':<28} base {fits[-1][0]:.0f} MB, {fits[-1][1]:.2f} x held")
            footprints[rule] = (max(f[0] for f in fits), max(f[1] for f in fits))
        print("\nFOOTPRINTS = {")
        for rule, (base, slope) in footprints.items():
            print(f'    "{rule}": Footprint(base_mb={base:.0f}, per_byte={slope:.2f}),')
        print("}")


if __name__ == "__main__":
    main()
