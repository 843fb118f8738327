"""config/paper.yaml in miniature (issue 37 item 3): tests/configs/paper_mini.yaml, an overlay given
after paper.yaml (``--configfile config/paper.yaml tests/configs/paper_mini.yaml``), only shrinks
sizes, counts, steps and noise-level lists, its run has the same rules as paper.yaml's, and it runs
end to end on the CPU to paper.yaml's final tables (docs/cluster.md, "paper.yaml in miniature").

The natural images come from ``../shared/data/natural`` beside the repository (the overlay's paths are
relative to the working directory: the runs below link ``shared`` beside theirs)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from conftest import OVERLAYS, REPO, SHARED_NATURAL, make_paper_natural_folders, run_workflow

MINI = REPO / "tests" / "configs" / "paper_mini.yaml"
PAPER = OVERLAYS[MINI]  # config/paper.yaml: the overlay's base, named once (conftest)
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
NATURAL_FOLDER_KEYS = {"train_folder", "test_folder"}
"""The only strings the overlay may change: paper.yaml's natural-image folders, to ../shared/data/natural."""

needs_shared = pytest.mark.skipif(not SHARED_NATURAL.is_dir(), reason="shared/data/natural not beside the repository")


def paper_with_defaults() -> dict:
    """paper.yaml as the workflow sees it: every key the schema gives a default filled in."""
    config = yaml.safe_load(PAPER.read_text())
    validate(config, str(SCHEMA), set_default=True)
    return config


def shrink_violations(overlay, paper, where: str = "") -> list[str]:
    """Each place where ``overlay`` sets a key paper.yaml lacks or does more than shrink paper.yaml's value."""
    if isinstance(overlay, dict):
        if not isinstance(paper, dict):
            return [f"{where}: a mapping where paper.yaml has {paper!r}"]
        return [problem for key, value in overlay.items() for problem in (
            shrink_violations(value, paper[key], f"{where}.{key}".lstrip(".")) if key in paper
            else [f"{where}.{key}: not a key of paper.yaml".lstrip(".")])]
    key = where.rsplit(".", 1)[-1]
    if isinstance(overlay, bool) or isinstance(paper, bool):
        # progress bars only change what the logs show
        return [] if overlay == paper or (key == "progress" and overlay is False) else [f"{where}: {paper!r} -> {overlay!r}"]
    if isinstance(overlay, (int, float)) and isinstance(paper, (int, float)):
        return [] if overlay <= paper else [f"{where}: {overlay} > paper.yaml's {paper}"]
    if isinstance(overlay, str) and key in NATURAL_FOLDER_KEYS:
        return [] if overlay.startswith("../shared/data/natural/") else [f"{where}: {overlay!r} not in ../shared/data/natural"]
    if isinstance(overlay, list) and isinstance(paper, list):
        if not overlay and where != "training_seeds":  # an empty list turns a part of the study off
            return [f"{where}: empty"]
        return [] if all(value in paper for value in overlay) else [f"{where}: {overlay!r} not a subset of {paper!r}"]
    return [] if overlay == paper else [f"{where}: {paper!r} -> {overlay!r}"]


def test_the_overlay_only_shrinks_paper_yaml():
    overlay = yaml.safe_load(MINI.read_text())
    assert shrink_violations(overlay, paper_with_defaults()) == []
    # the checker itself: a new key, a larger count, a new condition, a changed string are each caught
    bad = copy.deepcopy(overlay)
    bad["methods"]["dncnn"]["params"]["width"] = 3
    bad["training"]["paper"]["epochs"] = 500
    bad["datasets"]["tem"]["noise"]["poisson"] = [20, 30]
    bad["methods"]["dncnn"]["training"] = "quick"
    assert len(shrink_violations(bad, paper_with_defaults())) == 4


def mini_workdir(tmp_path: Path) -> Path:
    """A working directory with ``../shared`` linked to the shared data beside the repository."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "shared").symlink_to(SHARED_NATURAL.parents[1], target_is_directory=True)
    (tmp_path / "run").mkdir()
    return tmp_path / "run"


def dry_run_rules(workdir: Path, configs: list[Path]) -> dict[str, int]:
    """Jobs per rule of a dry run (Snakemake's "Job stats" table)."""
    text = run_workflow(workdir, configs, "-n", "--quiet", "rules").stdout
    table = text.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    counts = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}
    counts.pop("total")
    return counts


@needs_shared
def test_the_miniature_has_the_rules_of_paper_yaml(tmp_path):
    paper_dir = tmp_path / "paper"
    paper_dir.mkdir()
    make_paper_natural_folders(paper_dir)
    paper = dry_run_rules(paper_dir, [PAPER])
    mini = dry_run_rules(mini_workdir(tmp_path / "mini"), [PAPER, MINI])
    assert set(mini) == set(paper), (set(paper) - set(mini), set(mini) - set(paper))
    assert len(paper) > 30 and sum(mini.values()) < sum(paper.values()) / 3


@pytest.mark.slow
@needs_shared
def test_the_miniature_runs_to_paper_yamls_final_tables(tmp_path):
    workdir = mini_workdir(tmp_path)
    run_workflow(workdir, [PAPER, MINI])
    results = workdir / "results"
    tables = results / "tables"
    paper = yaml.safe_load(PAPER.read_text())
    psnr = pd.read_csv(tables / "psnr.csv")
    assert set(psnr["dataset"]) >= set(paper["benchmark"])
    for dataset, methods in paper["benchmark"].items():
        assert {"noisy", *methods} <= set(psnr.loc[psnr["dataset"] == dataset, "method"]), dataset
    # a table of every experiment of paper.yaml, and a data card per simulated dataset
    finals = ["claims", "psnr_summary", "tem_table", "fov_gain", "udvd_table", "udvd_augmentation", "udvd_motion",
              "gaintuning_ood", "gaintuning_shift", "gaintuning_curve", "gaintuning_net_bias",
              *(f"{kind}_{d}" for kind in ("generalization", "net_bias") for d in paper["experiments"][kind]["datasets"]),
              *(f"data_stats_{d}" for d, entry in paper["datasets"].items() if entry["source"] == "simulate")]
    assert not [table for table in finals if pd.read_csv(tables / f"{table}.csv").empty]
    report = (results / "report.html").read_text()
    assert "tem_table" in report and "udvd" in report


def test_slurm_profile_submits_a_networks_denoise_jobs_together(tmp_path):
    """profiles/slurm on paper.yaml (dry run): the GPU denoise jobs of one network on one dataset, one per
    noise condition, form one group job (issue 37 item 4); CPU denoise jobs stay single."""
    make_paper_natural_folders(tmp_path)
    text = run_workflow(tmp_path, [PAPER], "-n", "--profile", str(REPO / "profiles" / "slurm")).stdout
    groups = re.split(r"\n(?=\[[^\]]*\] Group job )", text)[1:]
    assert groups
    grouped = 0
    for block in groups:
        name = re.search(r"Group job (\S+)", block)[1]
        members = re.findall(r"^    rule (\w+):\n(?:    .*\n)*?        wildcards: (.*)$", block, re.MULTILINE)
        assert {rule for rule, _ in members} == {"denoise"}, name
        networks = {(w["dataset"], w["model"]) for w in (dict(i.split("=", 1) for i in wc.split(", ")) for _, wc in members)}
        assert len(networks) == 1 and name == "denoise_{}_{}".format(*networks.pop()), name
        grouped += len(members)
    assert len(groups) < grouped / 2  # a network's conditions together, not one submission each
    singles = re.findall(r"^rule denoise:\n(?:    .*\n)*?    resources: .*", text, re.MULTILINE)
    assert singles and all("gpu=0" in job for job in singles)
