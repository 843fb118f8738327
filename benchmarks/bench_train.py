"""Training-engine and inference speed: prints measured figures and ratios, asserts nothing.

1. Training throughput (patches/s) of :class:`temdenoise.train.Trainer` against a bare PyTorch loop
   on the same model, the same :class:`PatchSampler` batches and the same optimiser; runs are
   interleaved and the best of ``--repeats`` is kept, so machine load affects both alike.
   Goal: engine / bare >= 0.9.
2. Inference on a 2048 x 2048 image: whole image vs overlapping tiles, megapixels per second and
   peak memory (CPU: peak resident memory of a fresh subprocess per mode; CUDA: peak allocated).
3. ``--paper``: at the paper recipe (batch 128, patch 128, TEM-size 512 px images), patches/s of
   the batch sampler alone (in this process, then in ``--workers`` DataLoader worker processes as
   :class:`Trainer` builds them with ``loader_workers``) beside the model step alone (a given batch,
   on ``--device``). The sampler starves the device when its rate is below the step's.
4. ``--pairing``: threads per training job on CPU. For each network of ``--config`` (its family and
   params at its recipe's batch and patch size, as the workflow trains it; ``method@dataset`` takes
   that dataset's recipe) the step is timed in fresh processes: one job on 2 threads alone, one on
   1 thread alone, and two 1-thread jobs started together (the slower counts). ``scaling`` = 2-thread
   rate / 1-thread rate (2.00 is perfect); ``pair gain`` = the two 1-thread jobs' joint rate / the
   2-thread rate: above 1, the rule should declare ``threads: 1`` so that Snakemake runs two such
   jobs at once on 2 cores. Run it alone on an idle machine.
5. ``--precision``: the same networks' optimisation step in fp32 and under bfloat16 autocast, each
   with contiguous and channels-last tensors, side by side, their ratios to fp32 contiguous, and the
   arithmetic ``precision: auto`` picks on this CPU (bf16 only with AMX or AVX512-BF16 among its flags).

Usage: ``python benchmarks/bench_train.py [--threads 2] [--steps 20] [--device cpu|cuda] [--paper]
[--pairing | --precision [--config config/laptop.yaml] [--methods udvd1 unet_s4@tem_regime ...]]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from typing import Any

import numpy as np
import torch
import yaml

from temdenoise.models import build_model
from temdenoise.models.inference import denoise_image
from temdenoise.precision import BF16_CPU_FLAGS, autocast, cpu_flags, cpu_has_native_bf16, resolve_precision
from temdenoise.registry import entry_on
from temdenoise.train import NoiseRange, PatchSampler, Trainer, TrainSettings
from temdenoise.train.engine import EpochSteps, SeededBatches

MODEL = {"family": "unet", "params": {"scales": 3, "base_channels": 16, "residual": True}}
PAIRING_METHODS = ["udvd1", "udvd3", "udvd5", "dncnn", "unet_s3", "dncnn_image@tem_regime", "unet_s4@tem_regime"]


def sampler(batch: int, patch: int) -> PatchSampler:
    rng = np.random.default_rng(0)
    images = [1 + 0.3 * rng.random((256, 256), dtype=np.float32) for _ in range(8)]
    return PatchSampler(images, NoiseRange("poisson", 10, 400), patch, batch, pixel_sizes=[0.2] * 8)


def engine_rate(steps: int, batch: int, patch: int, device: str) -> float:
    torch.manual_seed(0)
    settings = TrainSettings(epochs=1, steps_per_epoch=steps, schedule="constant", progress=True)
    trainer = Trainer(build_model(MODEL), sampler(batch, patch), settings, device=device, seed=0)
    started = time.perf_counter()
    trainer.fit()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - started)


def bare_rate(steps: int, batch: int, patch: int, device: str) -> float:
    torch.manual_seed(0)
    model = build_model(MODEL).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    draw, rng = sampler(batch, patch), np.random.default_rng(0)
    started = time.perf_counter()
    for _ in range(steps):
        noisy, clean = (t.to(device) for t in draw(rng))
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(noisy), clean)
        loss.backward()
        optimizer.step()
    loss.item()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - started)


def sampler_rate(batches: int, batch: int, patch: int, workers: int) -> float:
    """Patches/s of the batch sampler alone, in this process (0 workers) or in worker processes
    (the loader of :class:`Trainer` with ``loader_workers = workers``)."""
    rng = np.random.default_rng(0)
    images = [1 + 0.3 * rng.random((512, 512), dtype=np.float32) for _ in range(16)]
    draw = PatchSampler(images, NoiseRange("poisson", 10, 400), patch, batch, pixel_sizes=[0.15] * 16)
    if workers == 0:
        started = time.perf_counter()
        for _ in range(batches):
            draw(rng)
        return batches * batch / (time.perf_counter() - started)
    loader = torch.utils.data.DataLoader(SeededBatches(draw), batch_size=None, sampler=EpochSteps(batches + 1),
                                         num_workers=workers)
    stream = iter(loader)
    next(stream)  # the workers' start-up is paid once per training, not per batch
    started = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return batches * batch / (time.perf_counter() - started)


def step_rate(steps: int, batch: int, patch: int, device: str, entry: dict[str, Any] = MODEL,
              threads: int | None = None, barrier: Any = None, arithmetic: str = "fp32",
              channels_last: bool = False) -> float:
    """Patches/s of the optimisation step alone (one fixed batch already on ``device``) of the
    network of ``entry``; a video net gets its ``frames`` per item and learns the centre frame.
    ``threads``: torch threads of this process; ``barrier``: waited on after the warm-up step;
    ``arithmetic``: ``fp32`` or ``bf16`` (the trainer's autocast, :mod:`temdenoise.precision`);
    ``channels_last``: model and batch in the channels-last memory format."""
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(entry).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    frames = model.frames if getattr(model, "video_input", False) else 1
    noisy = 1 + 0.1 * torch.randn(batch, frames, patch, patch, device=device)
    clean = torch.ones_like(noisy[:, :1])
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        noisy = noisy.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        optimizer.zero_grad()
        with autocast(arithmetic, device):
            loss = torch.nn.functional.mse_loss(model(noisy), clean).float()
        loss.backward()
        optimizer.step()

    step()  # warm-up (allocations, cuDNN choices)
    if barrier is not None:
        barrier.wait()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - started)


def recipe_job(config: dict[str, Any], name: str) -> tuple[dict[str, Any], int, int]:
    """The ``methods:`` entry of ``name`` (``method[@dataset]``) as the workflow uses it on that dataset
    (:func:`~temdenoise.registry.entry_on`), with its recipe's batch and patch size."""
    method, _, dataset = name.partition("@")
    entry = entry_on(config["methods"][method], dataset or None)
    recipe = config["training"][entry.get("training", "quick")]  # the workflow's default recipe (common.smk)
    return entry, int(recipe["batch_size"]), int(recipe["patch_size"])


def _timed_step(args: tuple, barrier: Any = None, rates: Any = None, slot: int = 0) -> float:
    rate = step_rate(*args, barrier=barrier)
    if rates is not None:
        rates[slot] = rate
    return rate


def pairing(config_path: str, methods: list[str], steps: int) -> None:
    """Part 4: one 2-thread job against two 1-thread jobs side by side, per network of a config."""
    with open(config_path) as handle:
        config = yaml.safe_load(handle)
    context = multiprocessing.get_context("spawn")
    print(f"{config_path}, {steps} steps per timing, patches/s (two 1-thread jobs: each, the slower one)")
    print(f"{'job':24s} {'batch x patch':>13s} {'2 thr':>7s} {'1 thr':>7s} {'1 thr x2':>8s} {'scaling':>7s} {'pair gain':>9s}")
    for name in methods:
        entry, batch, patch = recipe_job(config, name)
        alone = {}
        for threads in (2, 1):
            with context.Pool(1) as pool:
                alone[threads] = pool.apply(_timed_step, ((steps, batch, patch, "cpu", entry, threads),))
        barrier, rates = context.Barrier(2), context.Array("d", 2)
        pair = [context.Process(target=_timed_step, args=((steps, batch, patch, "cpu", entry, 1), barrier, rates, slot))
                for slot in range(2)]
        for process in pair:
            process.start()
        for process in pair:
            process.join()
        side_by_side = min(rates)
        print(f"{name:24s} {f'{batch} x {patch}':>13s} {alone[2]:7.1f} {alone[1]:7.1f} {side_by_side:8.1f} "
              f"{alone[2] / alone[1]:7.2f} {2 * side_by_side / alone[2]:9.2f}")


def precision_table(config_path: str, methods: list[str], steps: int, threads: int) -> None:
    """Part 5: the optimisation step of each network of a config in fp32 and under bf16 autocast,
    side by side in this process, and the arithmetic ``precision: auto`` chooses here."""
    with open(config_path) as handle:
        config = yaml.safe_load(handle)
    torch.set_num_threads(threads)
    chosen = resolve_precision("auto", "cpu")
    native = "with" if cpu_has_native_bf16() else "WITHOUT"
    print(f"{config_path}, {threads} threads, {steps} steps per timing (best of 2), patches/s; CPU {native} "
          f"AMX / AVX512-BF16 ({', '.join(f for f in BF16_CPU_FLAGS if f in cpu_flags()) or 'none'}): "
          f"auto -> {chosen}")
    print("channels last: model and batch in torch.channels_last; ratios against fp32 contiguous")
    print(f"{'job':24s} {'batch x patch':>13s} {'fp32':>7s} {'bf16':>7s} {'ratio':>6s} {'fp32 CL':>8s} {'ratio':>6s} "
          f"{'bf16 CL':>8s} {'ratio':>6s} {'auto':>5s}")
    for name in methods:
        entry, batch, patch = recipe_job(config, name)
        rates = {(a, cl): max(step_rate(steps, batch, patch, "cpu", entry, arithmetic=a, channels_last=cl)
                              for _ in range(2))
                 for cl in (False, True) for a in ("fp32", "bf16")}
        base = rates["fp32", False]
        print(f"{name:24s} {f'{batch} x {patch}':>13s} {base:7.1f} {rates['bf16', False]:7.1f} "
              f"{rates['bf16', False] / base:6.2f} {rates['fp32', True]:8.1f} {rates['fp32', True] / base:6.2f} "
              f"{rates['bf16', True]:8.1f} {rates['bf16', True] / base:6.2f} {chosen:>5s}")


def _inference(args: tuple[str, int | None, int, int]) -> tuple[float, float]:
    device, tile, size, threads = args
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(MODEL).to(device).eval()
    image = 1 + 0.3 * np.random.default_rng(0).random((size, size), dtype=np.float32)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    denoise_image(model, image, device, tile=tile, overlap=64)
    seconds = time.perf_counter() - started
    if device.startswith("cuda"):
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return size * size / 1e6 / seconds, peak_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--paper", action="store_true", help="only part 3, at batch 128 x 128^2")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of part 3")
    parser.add_argument("--pairing", action="store_true", help="only part 4: threads per job, on CPU")
    parser.add_argument("--config", default="config/laptop.yaml", help="config of part 4")
    parser.add_argument("--methods", nargs="+", default=PAIRING_METHODS, help="networks of parts 4 and 5")
    parser.add_argument("--precision", action="store_true", help="only part 5: fp32 against bf16, on CPU")
    args = parser.parse_args()
    if args.pairing:
        pairing(args.config, args.methods, args.steps)
        return
    if args.precision:
        precision_table(args.config, args.methods, args.steps, args.threads)
        return
    torch.set_num_threads(args.threads)
    if args.paper:
        paper_batch, paper_patch, batches = 128, 128, 5
        alone = sampler_rate(batches, paper_batch, paper_patch, 0)
        parallel = sampler_rate(batches, paper_batch, paper_patch, args.workers)
        step = step_rate(max(1, args.steps // 10), paper_batch, paper_patch, args.device)
        print(f"paper recipe (batch {paper_batch} x {paper_patch}^2, model {MODEL['params']}):\n"
              f"  sampler, this process:       {alone:8.1f} patches/s\n"
              f"  sampler, {args.workers} worker processes: {parallel:8.1f} patches/s "
              f"(x{parallel / alone:.2f})\n"
              f"  model step on {args.device} ({args.threads} threads): {step:8.1f} patches/s")
        return
    print(f"model {MODEL}, device {args.device}, {args.threads} threads, batch {args.batch} x {args.patch}^2")

    bare, engine = [], []
    for _ in range(args.repeats):
        bare.append(bare_rate(args.steps, args.batch, args.patch, args.device))
        engine.append(engine_rate(args.steps, args.batch, args.patch, args.device))
    print(f"training: bare loop {max(bare):.1f} patches/s, engine {max(engine):.1f} patches/s, "
          f"ratio engine/bare {max(engine) / max(bare):.3f} (goal >= 0.9)")

    context = multiprocessing.get_context("spawn")
    for tile in (args.tile, None):
        with context.Pool(1) as pool:
            rate, peak = pool.map(_inference, [(args.device, tile, args.size, args.threads)])[0]
        mode = "whole image" if tile is None else f"tiles {tile} (overlap 64)"
        unit = "peak allocated" if args.device.startswith("cuda") else "peak RSS"
        print(f"inference {args.size}x{args.size}, {mode}: {rate:.3f} Mpx/s, {unit} {peak:.0f} MB")


if __name__ == "__main__":
    main()
