"""Time the full Jacobian of a 40x40 patch: one backward pass per pixel vs batched vector-Jacobian products.

Four methods run on the same DnCNN at the same patch, one after the other, each ``--repeats``
times; the last run is timed (the first backward pass of each tensor shape builds its CPU kernels,
which would otherwise be charged to whichever method runs first):

- looped: one backward pass per output pixel (the authors' code);
- batched: vmap over the backward pass, ``--chunk-size`` one-hot cotangents at a time;
- batched + coloured: the same, with rows a measured field of view apart sharing one cotangent;
- light cone: ``--chunk-size`` rows back-propagated together, each only inside its growing window
  (what :func:`temdenoise.analysis.jacobian.jacobian` does for a DnCNN).

The script prints the four times, the speed-ups over the looped method, and the largest
difference from the looped Jacobian. Several DnCNN sizes can be given as depth x channels:

    python benchmarks/bench_jacobian.py                                 # quick, laptop and paper DnCNNs
    python benchmarks/bench_jacobian.py --models 20x64 --device cuda    # paper-size DnCNN on a GPU
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from skimage import data

from temdenoise.analysis.jacobian import jacobian_cone, jacobian_looped, jacobian_vjp
from temdenoise.models import build_model, count_parameters
from temdenoise.models.fov import measure_fov


def timed(method, device: str):
    """``(result, seconds)`` of ``method()``, synchronising CUDA around it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = method()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["7x16", "8x24", "20x64"], help="DnCNN sizes, depth x channels")
    parser.add_argument("--bias-free", action="store_true")
    parser.add_argument("--patch", type=int, default=40)
    parser.add_argument("--chunk-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    camera = data.camera().astype(np.float32) / 255.0
    patch = camera[200 : 200 + args.patch, 200 : 200 + args.patch]
    patch = patch + np.random.default_rng(0).normal(0, 25 / 255, patch.shape).astype(np.float32)
    print(f"Full Jacobian of a {args.patch}x{args.patch} patch, device {args.device}, {args.threads} thread(s), chunk {args.chunk_size}")
    for size in args.models:
        depth, channels = (int(part) for part in size.split("x"))
        torch.manual_seed(0)
        entry = {"family": "dncnn", "params": {"depth": depth, "channels": channels, "bias_free": args.bias_free}}
        model = build_model(entry).to(args.device).eval()
        field_of_view = measure_fov(model)
        methods = {
            "looped (one backward per pixel)": lambda: jacobian_looped(model, patch),
            "batched VJP": lambda: jacobian_vjp(model, patch, args.chunk_size),
            "batched VJP + colouring": lambda: jacobian_vjp(model, patch, args.chunk_size, field_of_view=field_of_view),
            "light cone": lambda: jacobian_cone(model, patch, args.chunk_size),
        }
        results = {name: [timed(method, args.device) for _ in range(args.repeats)][-1] for name, method in methods.items()}
        reference, looped_s = results["looped (one backward per pixel)"]
        print(f"\nDnCNN {depth}x{channels} ({count_parameters(model):,} parameters), measured FoV {field_of_view} px")
        for name, (result, seconds) in results.items():
            difference = float((result - reference).abs().max())
            print(f"  {name:34s} {seconds:8.2f} s   speed-up {looped_s / seconds:6.2f} x   max |diff| {difference:.1e}")


if __name__ == "__main__":
    main()
