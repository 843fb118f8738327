"""GPU-hours of config/paper.yaml's training jobs: an estimate, not a measurement (issue 37 item 5).

No GPU was lent to this task, so nothing here ran on one. Each training job's time is estimated as

    epochs x steps_per_epoch x max(compute, batch building) + epochs x validation compute

* compute: the FLOPs of one training step (forward and backward of the paper network at its
  recipe's batch and patch size) or of one validation pass (forward on the validation items at full
  size, tiled as the trainer tiles them), counted by ``torch.utils.flop_counter.FlopCounterMode`` on
  meta tensors, over an ASSUMED sustained throughput: UTILIZATION (assumed, not measured) of the
  H100 SXM's dense peak for the recipe's arithmetic (``precision: auto`` trains in bfloat16 there);
* batch building: the batch over the job's ``loader_workers`` processes, each building patches at
  the rate measured on the CPU of this machine by ``--measure-loaders`` (PATCH_RATES), assumed to
  scale with the number of workers;
* every epoch runs: early stopping can only shorten a job.

A method's ``runtime`` in paper.yaml is LIMIT_FACTOR x the largest estimate of its jobs, rounded up
to ROUND_MINUTES (tests/test_paper_config.py checks paper.yaml against ``method_runtime``).

    PYTHONPATH=src python benchmarks/gpu_cost.py [--workdir DIR]   # the table (DIR holds data/natural)
    PYTHONPATH=src python benchmarks/gpu_cost.py --measure-loaders  # prints PATCH_RATES
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from temdenoise.families import declared_families
from temdenoise.imagefiles import image_files, image_shape
from temdenoise.models import build_model
from temdenoise.models.inference import _apply
from temdenoise.models.udvd import _apply_tiled
from temdenoise.registry import entry_on, supervised_biased, takes_videos

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "config" / "paper.yaml"

# NVIDIA H100 SXM5 dense peaks (datasheet, TFLOP/s): bfloat16 tensor cores, float32 without them.
PEAK_TFLOPS = {"bf16": 989.4, "fp32": 66.9}
UTILIZATION = 0.10  # ASSUMED sustained fraction of the peak for 32-128-channel 3x3 convolutions
LIMIT_FACTOR = 2
ROUND_MINUTES = 30

# Patches (UDVD: windows) per second that one process builds at the paper recipes, printed by
# `PYTHONPATH=src python benchmarks/gpu_cost.py --measure-loaders` (docs/cluster.md has the run).
PATCH_RATES = {
    "supervised:paper_natural": 12428, "supervised:paper": 861, "supervised:paper_regime": 568,
    "noise2noise:paper": 980, "noise2self:paper": 2341, "noise2void:paper": 3047,
    "udvd1:udvd_paper": 23579, "udvd3:udvd_paper": 13321, "udvd5:udvd_paper": 9026,
}

TRAINING_RULES = ("train", "train_noisy_images", "train_udvd")


def paper_config() -> dict[str, Any]:
    return yaml.safe_load(PAPER.read_text())


def is_network(config: dict[str, Any], model: str) -> bool:
    return declared_families()[config["methods"][model]["family"]].kind == "network"


def training_rule(entry: dict[str, Any]) -> str:
    if takes_videos(entry):
        return "train_udvd"
    return "train_noisy_images" if "objective" in entry else "train"


def training_jobs(config: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(rule, dataset, model)`` of every training job of a config, as the workflow plans them
    (without the training-seed replicates, which cost what their model costs): every network
    the benchmark, the analyses, GainTuning and the UDVD study use, on the dataset it is trained on
    (a dataset's ``models_from``; tests/test_paper_config.py compares with the dry run)."""
    experiments = config["experiments"]
    uses = [(dataset, m) for dataset, methods in config["benchmark"].items() for m in methods]
    for section in ("generalization", "net_bias", "equivalent_filters"):
        studies = experiments.get(section, {}).get("datasets", {})
        uses += [(d, m) for d, study in studies.items() for m in study["models"]]
    for case in experiments.get("gaintuning", {}).get("cases", {}).values():
        uses += [(case["train"], case["model"])] + [(case["test"], m) for m in case.get("compare", [])]
    udvd = experiments.get("udvd", {})
    uses += [(udvd["dataset"], m) for key in ("poisson_methods", "gaussian_methods") for m in udvd.get(key, [])]
    trained = {(config["datasets"][d].get("models_from") or d, m) for d, m in uses if is_network(config, m)}
    return sorted((training_rule(config["methods"][m]), d, m) for d, m in trained)


def replicated(config: dict[str, Any]) -> set[tuple[str, str]]:
    """``(dataset, model)`` of the networks trained again with each of ``training_seeds``: the FoV
    gain's biased supervised UNets and DnCNNs on its TEM image datasets, the UDVD table's networks."""
    if not config["training_seeds"]:
        return set()
    experiments, pairs = config["experiments"], set()
    if experiments.get("fov_gain", {}).get("enabled"):
        datasets = experiments["fov_gain"].get("datasets") or [
            d for d in config["benchmark"] if config["datasets"][d]["domain"] == "tem"
            and config["datasets"][d]["source"] == "simulate" and "video" not in config["datasets"][d]["simulation"]]
        for d in datasets:
            entries = {m: entry_on(config["methods"][m], d) for m in config["benchmark"][d]}
            networks = {family: supervised_biased(entries, family) for family in ("unet", "dncnn")}
            if all(networks.values()):
                pairs |= {(d, m) for family in networks.values() for m in family}
    udvd = experiments.get("udvd", {})
    pairs |= {(udvd["dataset"], m) for key in ("poisson_methods", "gaussian_methods") for m in udvd.get(key, [])
              if is_network(config, m)}
    return pairs


def recipe_name(config: dict[str, Any], dataset: str, model: str) -> str:
    return entry_on(config["methods"][model], dataset).get("training", "quick")


def stored_conditions(config: dict[str, Any], dataset: str, model: str) -> int:
    """Noisy recordings a self-supervised model trains and validates on (its kind's levels in its range)."""
    entry = entry_on(config["methods"][model], dataset)
    noise = entry.get("train_noise") or config["datasets"][dataset]["train_noise"]
    levels = config["datasets"][dataset].get("noise", {}).get(noise["kind"], [])
    return sum(noise["range"][0] <= level <= noise["range"][1] for level in levels)


def validation_shape(config: dict[str, Any], dataset: str, workdir: Path) -> tuple[int, int, int]:
    """(frames, height, width) of the largest validation item of a dataset (frames 1: an image)."""
    entry = config["datasets"][dataset]
    if entry["source"] == "simulate":
        sim = entry["simulation"]
        return sim.get("video", {}).get("frames", 0) or 1, sim["image_size"], sim["image_size"]
    if entry["source"] == "piecewise":
        side = config["experiments"]["gaintuning"]["piecewise"]["size"]
        return 1, side, side
    # the last validation_count training images validate (temdenoise.natural.natural_split)
    pool = image_files(workdir / entry["train_folder"])[: entry.get("max_images")]
    held_out = pool[-entry.get("validation_count", 2) :]
    return (1, *max((image_shape(f) for f in held_out), key=lambda shape: shape[0] * shape[1]))


def counted_flops(run) -> float:
    with FlopCounterMode(display=False) as counter:
        run()
    return float(counter.get_total_flops())


def step_flops(entry: dict[str, Any], recipe: dict[str, Any]) -> float:
    """FLOPs of one training step: forward and backward at the recipe's batch and patch size."""
    with torch.device("meta"):
        model = build_model(entry)
    channels = model.frames if takes_videos(entry) else 1
    batch = torch.empty(recipe["batch_size"], channels, recipe["patch_size"], recipe["patch_size"], device="meta")
    return counted_flops(lambda: model(batch).sum().backward())


def validation_flops(entry: dict[str, Any], recipe: dict[str, Any], shape: tuple[int, int, int], copies: int) -> float:
    """FLOPs of one validation pass: ``validation_images`` items of ``shape`` per stored copy,
    whole images (or a UDVD's every frame, in its tiles) forward."""
    frames, height, width = shape
    with torch.device("meta"):
        model = build_model(entry).eval()
    if takes_videos(entry):
        windows = torch.empty(1, model.frames, height, width, device="meta")
        per_item = frames * counted_flops(lambda: _apply_tiled(model, windows))
    else:
        image = torch.empty(1, 1, height, width, device="meta")
        per_item = frames * counted_flops(lambda: _apply(model, image))
    return copies * recipe["validation_images"] * per_item


def loader_key(rule: str, entry: dict[str, Any], recipe_name: str) -> str:
    """The PATCH_RATES key of a job's batch building."""
    if rule == "train_udvd":
        return f"udvd{entry['params']['frames']}:{recipe_name}"
    if rule == "train_noisy_images":
        return f"{entry['objective']['name']}:{recipe_name}"
    return f"supervised:{recipe_name}"


@dataclass(frozen=True)
class Estimate:
    """One training job's estimated hours: its compute alone, its batch building alone, and the total."""

    step_tflop: float
    steps: int
    compute_h: float
    batches_h: float
    hours: float


def job_estimate(config: dict[str, Any], rule: str, dataset: str, model: str, workdir: Path) -> Estimate:
    entry = entry_on(config["methods"][model], dataset)
    name = recipe_name(config, dataset, model)
    recipe = config["training"][name]
    arithmetic = "bf16" if recipe.get("precision", "fp32") in ("auto", "bf16") else "fp32"
    flops_per_second = UTILIZATION * PEAK_TFLOPS[arithmetic] * 1e12
    copies = 1 if rule == "train" else stored_conditions(config, dataset, model)
    step = step_flops(entry, recipe)
    validation = validation_flops(entry, recipe, validation_shape(config, dataset, workdir), copies)
    workers = max(entry.get("resources", {}).get("loader_workers", 0), 1)
    batch_seconds = recipe["batch_size"] / (workers * PATCH_RATES[loader_key(rule, entry, name)])
    steps = recipe["epochs"] * recipe["steps_per_epoch"]
    compute = steps * step / flops_per_second + recipe["epochs"] * validation / flops_per_second
    batches = steps * batch_seconds
    total = steps * max(step / flops_per_second, batch_seconds) + recipe["epochs"] * validation / flops_per_second
    return Estimate(step / 1e12, steps, compute / 3600, batches / 3600, total / 3600)


def method_runtime(estimates: dict[tuple[str, str, str], Estimate], model: str) -> int:
    """The ``runtime`` (minutes) of a method: LIMIT_FACTOR x its largest job estimate, rounded up."""
    hours = max(e.hours for (_, _, m), e in estimates.items() if m == model)
    return ROUND_MINUTES * math.ceil(LIMIT_FACTOR * hours * 60 / ROUND_MINUTES)


def estimates_of(config: dict[str, Any], workdir: Path) -> dict[tuple[str, str, str], Estimate]:
    return {job: job_estimate(config, *job, workdir) for job in training_jobs(config)}


def measure_loaders(config: dict[str, Any], batches: int) -> None:
    """Patches per second one single-threaded process builds for each PATCH_RATES key of paper.yaml's
    training jobs, on synthetic images of the paper's sides (512 px, tem_regime 720, natural 180;
    videos of 40 frames)."""
    from temdenoise.noise import apply_condition, parse_condition
    from temdenoise.train.data import NoiseRange, PatchSampler
    from temdenoise.train.noisy_images import NoisyPatchSampler, Objective, noisy_images
    from temdenoise.train.self_supervised import VideoWindowSampler

    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # as in a DataLoader worker process, which torch limits to one thread
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    images = {side: [(1 + 0.1 * rng.standard_normal((side, side))).astype(np.float32) for _ in range(8)]
              for side in (180, 512, 720)}
    videos = [(1 + 0.1 * rng.standard_normal((40, 512, 512))).astype(np.float32) for _ in range(2)]
    seen = {}
    for rule, dataset, model in training_jobs(config):
        entry = entry_on(config["methods"][model], dataset)
        name = recipe_name(config, dataset, model)
        recipe, key = config["training"][name], loader_key(rule, entry, name)
        if key in seen:
            continue
        size = {"natural": 180, "tem_regime": 720}.get(dataset, 512)
        noise = entry.get("train_noise") or config["datasets"][dataset]["train_noise"]
        if rule == "train":
            sampler = PatchSampler(images[size], NoiseRange.from_config(noise), recipe["patch_size"],
                                   recipe["batch_size"], [0.15] * 8, rotation_deg=recipe.get("rotation_deg", 0.0),
                                   rescale=recipe.get("rescale", []))
        elif rule == "train_noisy_images":
            # recordings at the middle stored level of the dataset (tem: dose 50 on 0.15-A pixels)
            levels = config["datasets"][dataset]["noise"][noise["kind"]]
            condition = parse_condition(f"{noise['kind']}-{levels[len(levels) // 2]:g}")
            noisy = [apply_condition(image, condition, rng, 0.15) for image in images[size]]
            sampler = NoisyPatchSampler(noisy_images(noisy, [condition] * 8, [0.15] * 8),
                                        Objective(**entry["objective"]), recipe["patch_size"], recipe["batch_size"])
        else:
            sampler = VideoWindowSampler(videos, entry["params"]["frames"], recipe["patch_size"], recipe["batch_size"])
        sampler(rng)  # warm-up
        started = time.perf_counter()
        for _ in range(batches):
            sampler(rng)
        seen[key] = batches * recipe["batch_size"] / (time.perf_counter() - started)
        print(f"{key:<32} {seen[key]:8.1f} patches/s  ({batches} batches of {recipe['batch_size']})", flush=True)
    print("\nPATCH_RATES = {" + ", ".join(f'"{k}": {v:.0f}' for k, v in seen.items()) + "}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("."), help="where paper.yaml's data/natural folders are")
    parser.add_argument("--measure-loaders", action="store_true")
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args()
    config = paper_config()
    if args.measure_loaders:
        measure_loaders(config, args.batches)
        return
    estimates = estimates_of(config, args.workdir)
    print(f"ESTIMATE at {UTILIZATION:.0%} of the H100 SXM dense peak ({PEAK_TFLOPS['bf16']} TFLOP/s bf16), "
          f"batch building at PATCH_RATES x loader_workers; every epoch run\n")
    print(f"{'rule':<19} {'dataset':<11} {'model':<13} {'TFLOP/step':>10} {'steps':>7} {'compute h':>9} "
          f"{'batches h':>9} {'estimate h':>10}")
    for (rule, dataset, model), e in estimates.items():
        print(f"{rule:<19} {dataset:<11} {model:<13} {e.step_tflop:>10.3f} {e.steps:>7} {e.compute_h:>9.2f} "
              f"{e.batches_h:>9.2f} {e.hours:>10.2f}")
    print(f"\n{'method':<13} {'largest estimate h':>18} {'runtime min (2x)':>16} {'paper.yaml now':>14}")
    for model in dict.fromkeys(m for _, _, m in estimates):
        largest = max(e.hours for (_, _, m), e in estimates.items() if m == model)
        now = config["methods"][model].get("resources", {}).get("runtime")
        print(f"{model:<13} {largest:>18.2f} {method_runtime(estimates, model):>16} {now:>14}")
    again = replicated(config)
    runs = {job: 1 + len(config["training_seeds"]) * ((job[1], job[2]) in again) for job in estimates}
    print(f"\nGPU-hours per rule (ESTIMATE; the {len(again)} replicated networks once per training seed, "
          f"{1 + len(config['training_seeds'])} runs):")
    for rule in TRAINING_RULES:
        jobs = [job for job in estimates if job[0] == rule]
        hours = sum(runs[job] * estimates[job].hours for job in jobs)
        print(f"  {rule:<19} {sum(runs[job] for job in jobs):4d} jobs {hours:9.1f} GPU-hours")
    total = sum(runs[job] * e.hours for job, e in estimates.items())
    print(f"  {'all':<19} {sum(runs.values()):4d} jobs {total:9.1f} GPU-hours")
    limits = {name: sum(runs[job] * minutes(job) for job in estimates) / 60 for name, minutes in (
        ("in paper.yaml", lambda job: config["methods"][job[2]]["resources"]["runtime"]),
        (f"at {LIMIT_FACTOR}x the estimates", lambda job: method_runtime(estimates, job[2])))}
    print("Time limits of these jobs, summed: " + ", ".join(f"{h:.0f} GPU-hours {name}" for name, h in limits.items()))


if __name__ == "__main__":
    main()
