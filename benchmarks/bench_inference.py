"""Tiled inference on a large image: megapixels per second and peak memory; prints, asserts nothing.

Denoises one ``--size`` x ``--size`` image (default 4096) with a UNet in tiles of ``--tile`` px
overlapping by its measured field of view (so the result equals whole-image inference, see
:mod:`temdenoise.models.inference`), and, for comparison, the whole image at once when
``--whole`` is given. Each mode runs in a fresh subprocess, so the peak memory is its own: peak
resident memory on the CPU (includes the ~0.3-0.5 GB of the Python and torch runtime), peak
allocated memory on CUDA. Goal: tiled 4096 x 4096 within 2 GB.

Usage: ``python benchmarks/bench_inference.py [--device cpu|cuda] [--threads 2] [--scales 4 --base 32]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time

import numpy as np
import torch

from temdenoise.models import build_model
from temdenoise.models.inference import denoise_image, field_of_view

GOAL_MB = 2048


def _run(args: tuple[dict, str, int | None, int, int]) -> tuple[float, float, int]:
    """One mode in this (fresh) process: (Mpx/s, peak MB, overlap used)."""
    entry, device, tile, size, threads = args
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(entry).to(device).eval()
    overlap = field_of_view(model)  # measured once, before the clock starts
    image = 1 + 0.3 * np.random.default_rng(0).random((size, size), dtype=np.float32)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    denoise_image(model, image, device, tile=tile, overlap=overlap)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    if device.startswith("cuda"):
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return size * size / 1e6 / seconds, peak_mb, overlap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--scales", type=int, default=4)
    parser.add_argument("--base", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--whole", action="store_true", help="also denoise the whole image at once")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    entry = {"family": "unet", "params": {"scales": args.scales, "base_channels": args.base}}
    print(f"model {entry}, device {args.device}, {args.threads} threads, image {args.size}x{args.size}")
    unit = "peak allocated" if args.device.startswith("cuda") else "peak RSS"
    context = multiprocessing.get_context("spawn")
    for tile in [args.tile] + ([None] if args.whole else []):
        with context.Pool(1) as pool:
            rate, peak, overlap = pool.map(_run, [(entry, args.device, tile, args.size, args.threads)])[0]
        mode = "whole image" if tile is None else f"tiles {tile} (overlap = FoV {overlap} px)"
        verdict = "" if tile is None else f" (goal <= {GOAL_MB} MB: {'met' if peak <= GOAL_MB else 'NOT met'})"
        print(f"{mode}: {rate:.3f} Mpx/s, {unit} {peak:.0f} MB{verdict}")


if __name__ == "__main__":
    main()
