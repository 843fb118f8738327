"""Time the full Jacobian of a 40x40 patch: batched vector-Jacobian products vs one backward per pixel.

Both methods run on the same DnCNN (paper size by default: 20 layers of 64 channels, 668,225
parameters) at the same patch, one after the other; the script prints both times, their ratio
and the largest difference between the two Jacobians.

    OMP_NUM_THREADS=1 python benchmarks/bench_jacobian.py                      # paper-size DnCNN
    python benchmarks/bench_jacobian.py --depth 8 --channels 32 --threads 2    # quick-config size
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from skimage import data

from temdenoise.analysis.jacobian import jacobian, jacobian_looped
from temdenoise.models import build_model, count_parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--bias-free", action="store_true")
    parser.add_argument("--patch", type=int, default=40)
    parser.add_argument("--chunk-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    entry = {"family": "dncnn", "params": {"depth": args.depth, "channels": args.channels, "bias_free": args.bias_free}}
    model = build_model(entry).to(args.device).eval()
    camera = data.camera().astype(np.float32) / 255.0
    patch = camera[200 : 200 + args.patch, 200 : 200 + args.patch]
    patch = patch + np.random.default_rng(0).normal(0, 25 / 255, patch.shape).astype(np.float32)

    def timed(method, *extra):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = method(model, patch, *extra)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return result, time.perf_counter() - start

    batched, batched_s = timed(jacobian, args.chunk_size)
    looped, looped_s = timed(jacobian_looped)
    difference = float((batched - looped).abs().max())
    print(
        f"DnCNN depth={args.depth} channels={args.channels} bias_free={args.bias_free} "
        f"({count_parameters(model):,} parameters), patch {args.patch}x{args.patch}, "
        f"device {args.device}, {args.threads} thread(s), chunk {args.chunk_size}"
    )
    print(f"batched VJP (is_grads_batched):      {batched_s:8.2f} s")
    print(f"looped (one backward per pixel):     {looped_s:8.2f} s")
    print(f"speed-up looped / batched:           {looped_s / batched_s:8.2f} x")
    print(f"max |batched - looped|:              {difference:.2e} (agree to 1e-5: {difference <= 1e-5})")


if __name__ == "__main__":
    main()
