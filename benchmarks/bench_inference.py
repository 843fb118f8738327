"""Tiled inference on large images: Mpx/s and peak memory, tiled beside whole-image; prints, asserts nothing.

Denoises a ``--sizes`` x ``--sizes`` image (default 2048 and 4096) with a UNet in tiles of
``--tile`` px overlapping by its measured field of view (so the result equals whole-image
inference for a shift-equivariant net, see :mod:`temdenoise.models.inference`; the function
``temdenoise denoise`` and the workflow's denoise step call), and the whole image at once (unless
``--no-whole``). Each run is a fresh subprocess, so the peak memory is its own: peak resident
memory on the CPU (``ru_maxrss``; the Python and torch runtime's share is printed apart, as the
resident memory before the image is made), peak allocated memory on CUDA. Goal: tiled 4096 x
4096 within 2 GB.

Usage: ``python benchmarks/bench_inference.py [--device cpu|cuda] [--threads 2] [--scales 4 --base 32]
[--sizes 2048 4096] [--tile 512]``.
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


def _run(args: tuple[dict, str, int | None, int, int]) -> tuple[float, float, float, int]:
    """One mode in this (fresh) process: (Mpx/s, peak MB, runtime MB before the image, overlap used)."""
    entry, device, tile, size, threads = args
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(entry).to(device).eval()
    overlap = field_of_view(model)  # measured once, before the clock starts
    runtime_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    image = 1 + 0.3 * np.random.default_rng(0).random((size, size), dtype=np.float32)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    denoise_image(model, image, device, tile=tile, overlap=overlap)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    if device.startswith("cuda"):
        peak_mb, runtime_mb = torch.cuda.max_memory_allocated() / 2**20, 0.0
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return size * size / 1e6 / seconds, peak_mb, runtime_mb, overlap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--scales", type=int, default=4)
    parser.add_argument("--base", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--whole", action=argparse.BooleanOptionalAction, default=True,
                        help="also denoise the whole image at once (default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    entry = {"family": "unet", "params": {"scales": args.scales, "base_channels": args.base}}
    print(f"model {entry}, device {args.device}, {args.threads} threads")
    unit = "peak allocated MB" if args.device.startswith("cuda") else "peak RSS MB"
    context = multiprocessing.get_context("spawn")
    modes = [args.tile] + ([None] if args.whole else [])
    names = [f"tiles {tile}" if tile else "whole image" for tile in modes]
    print(f"{unit}; runtime: the process's resident memory before the image is made (CPU)")
    columns = " | ".join(f"{name}: {unit} | {name}: Mpx/s" for name in names)
    print(f"| image | overlap (FoV) | runtime MB | {columns} |")
    for size in args.sizes:
        cells, runtime, overlap = [], 0.0, 0
        for tile in modes:
            with context.Pool(1) as pool:
                rate, peak, runtime, overlap = pool.map(_run, [(entry, args.device, tile, size, args.threads)])[0]
            cells += [f"{peak:.0f}", f"{rate:.3f}"]
        print(f"| {size} x {size} | {overlap} px | {runtime:.0f} | " + " | ".join(cells) + " |")
    print(f"goal: tiled 4096 x 4096 within {GOAL_MB} MB")


if __name__ == "__main__":
    main()
