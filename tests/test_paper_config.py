"""config/paper.yaml as a cluster admin would see it (issue 20, section 4).

* Its job list (a dry run with every job forced, threads not capped by ``--cores``): evaluation,
  denoising and table jobs ask for at most 4 threads and 8 GB, while every job that trains or adapts
  a network, and the denoising of a GPU-trained network, asks for its GPU.
* Its memory (issue 37 item 2): every job that holds arrays asks for what they need by its rule's
  measured footprint (temdenoise.jobmemory), the arrays' bytes counted here from paper.yaml
  itself; a streamed job asks for no more than its stage whatever its split's size.
* Its time limits (issue 37 item 5): benchmarks/gpu_cost.py plans the same training jobs as the
  dry run, and every network's runtime is the script's (2x its largest estimated job).
* Its natural-image folders: absent, the run stops before any job with the key and the folder named.
* Its models ("paper smoke"): every network is built, its parameter count printed beside the
  authors' (the model tests pin them where the architecture is theirs), and one
  optimisation step changes its weights on a 64 x 64 crop (batch 2) on the CPU.
"""

from __future__ import annotations

import importlib
import math
import re
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import PAPER_NATURAL_FOLDERS, REPO, dry_run_jobs, make_paper_natural_folders, run_workflow
from temdenoise.families import declared_families
from temdenoise.jobmemory import job_mem_mb
from temdenoise.models import build_model, count_parameters
from temdenoise.registry import replicate_of

PAPER = REPO / "config" / "paper.yaml"
LIGHT_RULES = {
    "evaluate", "evaluate_video", "denoise", "gaintuning_score", "gaintuning_curve_score",
    "tem_table", "udvd_table", "udvd_augmentation_table", "gaintuning_tables", "generalization",
    "aggregate", "table_html", "html_report", "plot_psnr", "plot_example",
}  # fmt: skip
"""Rules that score, denoise or tabulate: within 4 threads and 8 GB."""

GPU_RULES = {"train", "train_udvd", "udvd_augmentation", "gaintuning_select", "gaintuning_case",
             "gaintuning_curve", "gaintuning_net_bias"}  # fmt: skip
"""Rules that train or adapt a network: each asks for the GPU of its method."""

AUTHORS_PARAMETERS = {
    "bf_dncnn": 667_008, "unet_s2": 102_657, "unet_s4": 352_737, "unet_s4_b64": 1_405_889,
    "unet_s4_b128": 5_613_441, "unet_s6_b128": 70_514_817, "udvd1": 1_118_832, "udvd3": 1_121_424,
    "udvd5": 2_123_664,
}  # fmt: skip
"""The authors' counts (issue 20, section 1) of the paper.yaml entries that mean their networks.
Printed beside ours; the model tests pin them where the architecture is built as theirs."""


def paper_config() -> dict:
    return yaml.safe_load(PAPER.read_text())


def job_resources(text: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(rule, wildcards, resources with ``threads``) of every job of a ``snakemake -n`` printout."""
    jobs = []
    for rule, fields in dry_run_jobs(text):
        resources = dict(item.split("=", 1) for item in fields.get("resources", "").split(", ") if "=" in item)
        resources["threads"] = fields.get("threads", "1")  # printed only above 1
        wildcards = dict(item.split("=", 1) for item in fields.get("wildcards", "").split(", ") if "=" in item)
        jobs.append((rule, wildcards, resources))
    return jobs


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory) -> str:
    """The ``snakemake -n --forceall`` printout of config/paper.yaml."""
    workdir = tmp_path_factory.mktemp("paper")
    make_paper_natural_folders(workdir)
    return run_workflow(workdir, PAPER, "-n", "--forceall", "--cores", "64").stdout


@pytest.fixture(scope="module")
def paper_jobs(paper_dry_run) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    return job_resources(paper_dry_run)


def test_set12_is_scored_with_the_networks_of_natural_and_trains_nothing(paper_dry_run):
    jobs = dry_run_jobs(paper_dry_run)
    assert not [(rule, fields["wildcards"]) for rule, fields in jobs
                if rule.startswith(("train", "fit_")) and "natural_set12" in fields.get("wildcards", "")]
    denoise = {re.search(r"model=(\w+)", fields["wildcards"])[1]: fields["input"] for rule, fields in jobs
               if rule == "denoise" and "dataset=natural_set12," in fields["wildcards"] + ","}
    networks = [m for m in paper_config()["benchmark"]["natural_set12"]
                if declared_families()[paper_config()["methods"][m]["family"]].kind == "network"]
    assert networks and set(networks) <= set(denoise)
    for model in networks:  # natural's checkpoint, Set12's noisy test images
        assert f"results/models/natural/{model}/model.pt" in denoise[model]
        assert "results/noisy/natural_set12/" in denoise[model]
    trained = {re.search(r"model=(\w+)", fields["wildcards"])[1] for rule, fields in jobs
               if rule == "train" and "dataset=natural," in fields["wildcards"] + ","}
    assert set(networks) <= trained


def test_light_jobs_ask_for_little_and_training_jobs_for_their_gpu(paper_jobs):
    config = paper_config()
    seen = {rule for rule, _, _ in paper_jobs}
    assert {"evaluate", "denoise", "tem_table", "train", "train_udvd", "udvd_augmentation", "gaintuning_case"} <= seen
    for rule, wildcards, resources in paper_jobs:
        if rule in LIGHT_RULES:
            assert int(resources["threads"]) <= 4 and int(resources.get("mem_mb", 0)) <= 8000, (rule, resources)
        if rule in GPU_RULES:
            assert resources.get("gpu") == "1", (rule, wildcards, resources)
        if rule in TRAINING_RULES:  # batches built in one worker process per thread of the job
            assert resources.get("loader_workers") == resources["threads"] == "8", (wildcards, resources)
        if rule == "denoise":
            family = config["methods"][replicate_of(wildcards["model"])[0]]["family"]  # a replicate: its model's
            network = declared_families()[family].kind == "network"
            assert resources.get("gpu") == ("1" if network else "0"), (wildcards, resources)


STREAMED_RULES = {"merge_shards": None, "export_tiff": None, "add_noise": None, "add_noise_second": None,
                  "fit_classical": "train", "denoise": "test", "evaluate": "test", "evaluate_video": "test"}
"""Rules that hold one item of a split (of the {split} wildcard, or the one named) at a time."""

TRAINING_RULES = {"train", "train_noisy_images", "train_udvd"}
STAND_IN_SIDE = 48  # conftest.make_paper_natural_folders


def paper_split(dataset: str, split: str) -> tuple[int, int]:
    """(items, bytes of one item) of a paper.yaml split, counted from the config as the issue does:
    images x pixels x 4 bytes, frames for videos; the natural sets are the tests' stand-ins."""
    config = paper_config()
    entry = config["datasets"][dataset]
    if "simulation" in entry:
        sim = entry["simulation"]
        frames = sim.get("video", {}).get("frames", 0)
        items = sim["structures"][split] * (1 if frames else sim["defoci_per_structure"])
        return items, max(frames, 1) * sim["image_size"] ** 2 * 4
    if entry["source"] == "piecewise":
        piecewise = config["experiments"]["gaintuning"]["piecewise"]
        return piecewise[split], piecewise["size"] ** 2 * 4
    pool = PAPER_NATURAL_FOLDERS[Path(entry["test_folder" if split == "test" else "train_folder"]).name]
    items = {"train": pool - 2, "validation": 2, "test": pool}[split]  # validation_count: 2 by default
    return items, STAND_IN_SIDE**2 * 4


def recordings(dataset: str, model: str) -> int:
    """Stored noisy copies a self-supervised model of paper.yaml trains on: its noise kind's levels in its range."""
    config = paper_config()
    noise = config["methods"][model.split("~")[0]].get("train_noise") or config["datasets"][dataset]["train_noise"]
    levels = config["datasets"][dataset]["noise"].get(noise["kind"], [])
    return sum(noise["range"][0] <= level <= noise["range"][1] for level in levels)


def held_bytes(rule: str, wildcards: dict[str, str]) -> int:
    """Bytes of the arrays a paper.yaml job holds at once."""
    dataset = wildcards["dataset"]
    if rule in STREAMED_RULES:
        return paper_split(dataset, STREAMED_RULES[rule] or wildcards["split"])[1]
    if rule == "prepare_images":
        return math.prod(paper_split(dataset, wildcards["split"]))
    recipe = paper_config()["training"][training_recipe_name(dataset, wildcards["model"])]
    validation_items, validation_item = paper_split(dataset, "validation")
    validation = min(recipe["validation_images"], validation_items) * validation_item
    held = math.prod(paper_split(dataset, "train")) + validation
    return held * (1 if rule == "train" else recordings(dataset, wildcards["model"]))


def training_recipe_name(dataset: str, model: str) -> str:
    entry = paper_config()["methods"][model.split("~")[0]]
    return entry.get("datasets", {}).get(dataset, {}).get("training", entry.get("training", "quick"))


def test_every_job_that_holds_arrays_asks_for_their_memory(paper_jobs):
    stages = paper_config()["resources"]
    checked = set()
    for rule, wildcards, resources in paper_jobs:
        if rule not in {*STREAMED_RULES, "prepare_images", *TRAINING_RULES}:
            continue
        held, asked = held_bytes(rule, wildcards), int(resources["mem_mb"])
        footprint_rule = {"add_noise_second": "add_noise", "evaluate_video": "evaluate"}.get(rule, rule)
        assert asked >= job_mem_mb(footprint_rule, held), (rule, wildcards, held, asked)
        assert asked * 1e6 > held, (rule, wildcards, held, asked)  # never less than the arrays themselves
        if rule in STREAMED_RULES:  # one item: the stage's memory, even for a 27.8 GiB split
            stage = {"merge_shards": "simulate", "export_tiff": "simulate", "fit_classical": "fit"}.get(rule)
            stage = stage or ("noise" if rule.startswith("add_noise") else rule.removesuffix("_video"))
            assert asked == stages[stage]["mem_mb"], (rule, wildcards, asked)
        checked.add(rule)
    assert {"merge_shards", "add_noise", "fit_classical", "denoise", "evaluate", "prepare_images"} <= checked
    assert set(TRAINING_RULES) <= checked
    tem_regime = [int(r["mem_mb"]) for rule, w, r in paper_jobs if rule == "train" and w["dataset"] == "tem_regime"]
    assert min(tem_regime) > 32_000  # its 27.8 GiB split outgrows the methods' 32,000 MB


@pytest.fixture(scope="module")
def gpu_cost():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        yield importlib.import_module("gpu_cost")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def test_runtimes_are_twice_the_estimated_gpu_hours_of_the_same_jobs(paper_jobs, gpu_cost, tmp_path):
    planned = {(rule, w["dataset"], w["model"]) for rule, w, _ in paper_jobs if rule in TRAINING_RULES}
    config = paper_config()
    assert set(gpu_cost.training_jobs(config)) == {job for job in planned if "~seed" not in job[2]}
    assert gpu_cost.replicated(config) == {(d, m.partition("~seed")[0]) for _, d, m in planned if "~seed" in m}
    make_paper_natural_folders(tmp_path)
    estimates = gpu_cost.estimates_of(config, tmp_path)
    for model in {m for _, _, m in estimates}:
        runtime = config["methods"][model]["resources"]["runtime"]
        assert runtime == gpu_cost.method_runtime(estimates, model), model
        assert all(runtime >= 2 * 60 * e.hours for (_, _, m), e in estimates.items() if m == model)
    runtimes = {int(r["runtime"]) for rule, _, r in paper_jobs if rule in TRAINING_RULES}
    assert max(runtimes) < 24 * 60  # no blanket day


def test_missing_natural_folder_stops_before_any_job_naming_key_and_folder(tmp_path):
    result = run_workflow(tmp_path, PAPER, "-n", check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "datasets.natural.train_folder: folder not found: 'data/natural/Train400'" in message, message[-2000:]


def test_paper_smoke_every_network_builds_and_takes_one_step_on_cpu():
    config = paper_config()
    networks = {n: e for n, e in config["methods"].items() if declared_families()[e["family"]].kind == "network"}
    assert len(networks) >= 15
    counts = {}
    for name, entry in networks.items():
        torch.manual_seed(0)
        model = build_model(entry).train()
        counts[name] = count_parameters(model)
        frames = entry["params"].get("frames", 1) if entry["family"] == "udvd" else 1
        noisy = 1 + 0.1 * torch.randn(2, frames, 64, 64)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        before = [p.detach().clone() for p in model.parameters()]
        loss = torch.nn.functional.mse_loss(model(noisy), noisy[:, frames // 2 : frames // 2 + 1])
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss), name
        assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters())), f"{name}: nothing trained"
    print("\n".join(f"{name}: {count:,} parameters (authors': {AUTHORS_PARAMETERS.get(name, 'no count')})"
                    for name, count in counts.items()))
