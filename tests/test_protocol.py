"""Split roles, enforced on the workflow's DAG: no job outside evaluation and reporting opens clean test
data, and self-supervised training opens no clean array at all.

Each shipped config is dry-run with ``--forceall`` in a scratch directory; the dry run prints every
job's rule and ``input:`` list, which :func:`leaks` checks against the allowlists below.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Iterable

import pytest

from conftest import OVERLAYS, REPO, dry_run_jobs, make_paper_natural_folders, run_workflow

CLEAN_TEST = re.compile(r"^results/data/[^/]+/(shards/)?test[.-]")
"""Clean test data: a dataset's test stack and metadata, and the simulator's shards of them."""

CLEAN_ARRAY = re.compile(r"^results/data/[^/]+/(shards/)?[^/]+\.npz$")
"""Any clean array, of any split."""

SCORING_RULES = {
    # Data preparation: they write the clean test data (the simulator's shards are merged).
    "merge_shards": "assembles the simulated clean test split from its shards",
    # The simulated microscope: draws the noisy recording from the clean truth. No method sees it.
    "add_noise": "draws the stored noisy copies from the clean images (the acquisition itself)",
    # Evaluation and reporting: score written estimates against the clean test data.
    "evaluate": "scores stored denoised test items against the clean ones",
    "evaluate_video": "scores stored denoised test videos (per video and per frame) against the clean ones",
    "gaintuning_score": "scores the estimates written by gaintuning_case",
    "gaintuning_curve_score": "scores the estimates written by gaintuning_curve",
    "udvd_augmentation_table": "scores the videos denoised by udvd_augmentation",
    "plot_example": "figure of clean / noisy / denoised test items",
    "plot_dataset": "figure of the dataset itself",
    "data_stats": "the data card: image statistics describing the clean test split; nothing is fitted or chosen from it",
    "all": "the target list of the workflow; runs nothing",
    # Analyses of a frozen trained network: they probe it (Jacobians, equivalent filters) on test
    # items and compare with the clean image; nothing is fitted or chosen from the result.
    "jacobian_statistics": "Jacobian of a frozen trained network on clean/noisy test items",
    "equivalent_filters": "equivalent filters of a frozen trained network on test items",
    # Motion study of a frozen UDVD: reads the stored true displacements to score its estimate.
    "udvd_motion": "scores the motion estimated by a frozen UDVD against the simulated truth",
}
"""Rules allowed to take clean test data as input, each with the reason."""

CALIBRATION_READERS = {
    # The metadata table gives each item's pixel size, which converts a dose (e/A^2) into counts per
    # pixel: the microscope's calibration, known for every real recording. These rules read only
    # that column of the test metadata (never a clean test array: those stay on SCORING_RULES).
    "denoise": "pixel size of each noisy test item (Poisson models need the counts per pixel)",
    "gaintuning_case": "pixel size of each noisy test item (Poisson losses need the counts per pixel)",
    "gaintuning_curve": "pixel size of the noisy test item",
    "gaintuning_net_bias": "pixel size of the noisy test items",
    # Tables of scores already written: the pixel and the support material (known for a real
    # specimen too) turn each network's FoV into angstroms and projected support cells.
    "tem_table": "pixel size and support of the test split (FoV in angstroms and support cells)",
    "fov_gain": "pixel size and support of each dataset's test split (FoV in angstroms and support cells)",
}
"""Rules allowed to take the test *metadata* (``results/data/*/test.csv``), never a test array."""

SELF_SUPERVISED_TRAINING = {
    "train_udvd": "UDVD is trained on noisy recordings only",
    "udvd_augmentation": "the single-video augmentation study trains UDVD on one noisy recording",
    "train_noisy_images": "Noise2Self / Noise2Void / Noise2Noise train image networks on noisy recordings only",
}
"""Rules that train a self-supervised method: no clean array of any split may reach them."""

SHIPPED_CONFIGS = [
    REPO / "config" / "config.yaml",
    REPO / "config" / "laptop.yaml",
    REPO / "config" / "paper.yaml",
    *sorted(path for path in (REPO / "tests" / "configs").glob("*.yaml") if path not in OVERLAYS),
]  # an overlay only shrinks its base (tests/test_paper_mini.py): its base is checked here

def job_inputs(text: str) -> list[tuple[str, list[str]]]:
    """(rule, input files) of every job of a ``snakemake -n`` printout."""
    return [(rule, fields["input"].split(", ") if "input" in fields else []) for rule, fields in dry_run_jobs(text)]


def leaks(jobs: Iterable[tuple[str, list[str]]]) -> list[str]:
    """Every input that breaks the split roles, as ``rule: file (why)``."""
    found = []
    for rule, inputs in jobs:
        for path in inputs:
            if CLEAN_TEST.match(path) and rule not in SCORING_RULES:
                if not (path.endswith(".csv") and rule in CALIBRATION_READERS):
                    found.append(f"{rule}: {path} (clean test data outside evaluation)")
            if CLEAN_ARRAY.match(path) and rule in SELF_SUPERVISED_TRAINING:
                found.append(f"{rule}: {path} (clean array in self-supervised training)")
    return sorted(set(found))


@pytest.fixture(scope="module", params=SHIPPED_CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def shipped_jobs(request, tmp_path_factory) -> list[tuple[str, list[str]]]:
    workdir = tmp_path_factory.mktemp("dag")
    make_paper_natural_folders(workdir)  # the image folders paper.yaml reads (others ignore them)
    result = run_workflow(workdir, request.param, "-n", "--forceall")
    jobs = job_inputs(result.stdout)
    assert len(jobs) > 5 and any(inputs for _, inputs in jobs), result.stdout[-2000:]
    return jobs


def test_no_job_outside_evaluation_takes_clean_test_data(shipped_jobs) -> None:
    found = leaks(shipped_jobs)
    assert not found, "inputs breaking the split roles:\n" + "\n".join(found)


def test_the_allowlists_name_rules_of_the_workflow() -> None:
    """A renamed rule must leave the allowlists, or they would silently excuse a new rule of that name."""
    known = set()
    for path in (REPO / "workflow" / "rules").glob("*.smk"):
        text = path.read_text()
        known |= set(re.findall(r"^rule (\w+):", text, re.MULTILINE))
        known |= set(re.findall(r"^use rule \w+ as (\w+)", text, re.MULTILINE))
    known.add("all")
    assert set(SCORING_RULES) | set(CALIBRATION_READERS) | set(SELF_SUPERVISED_TRAINING) <= known


LEAKING_SNIPPET = '''
rule peek_at_test:
    input: "results/data/natural/test.npz", "results/noisy/natural/gaussian-25/test.npz"
    output: "results/peek.txt"
    shell: "touch {output}"
'''


def test_a_leaking_rule_is_caught(tmp_path) -> None:
    """The workflow plus one rule that reads clean test images: the same dry run and check flag it."""
    source = tmp_path / "workflow_copy"
    source.mkdir()
    for entry in REPO.iterdir():  # the repository as it is, with one rule appended to its Snakefile
        if entry.name not in ("Snakefile", ".git"):
            (source / entry.name).symlink_to(entry)
    (source / "Snakefile").write_text((REPO / "Snakefile").read_text() + LEAKING_SNIPPET)
    command = [sys.executable, "-m", "snakemake", "-s", str(source / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(REPO / "tests" / "configs" / "tiny.yaml"), "-n", "--forceall", "results/peek.txt"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    jobs = job_inputs(result.stdout)
    assert "peek_at_test" in {rule for rule, _ in jobs}
    assert leaks(jobs) == ["peek_at_test: results/data/natural/test.npz (clean test data outside evaluation)"]


@pytest.mark.parametrize(
    ("jobs", "expected"),
    [
        ([("train", ["results/data/tem/train.npz", "results/data/tem/validation.npz"])], []),
        ([("evaluate", ["results/data/tem/test.npz"])], []),
        ([("denoise", ["results/data/tem/test.csv"])], []),
        ([("denoise", ["results/data/tem/test.npz"])], ["denoise: results/data/tem/test.npz (clean test data outside evaluation)"]),
        ([("gaintuning_case", ["results/data/tem/shards/test-0.npz"])],
         ["gaintuning_case: results/data/tem/shards/test-0.npz (clean test data outside evaluation)"]),
        ([("train_udvd", ["results/noisy/tem_video/poisson-20/train.npz", "results/data/tem_video/train.csv"])], []),
        ([("train_udvd", ["results/data/tem_video/train.npz"])],
         ["train_udvd: results/data/tem_video/train.npz (clean array in self-supervised training)"]),
        ([("train_noisy_images", ["results/noisy/tem/poisson-20/train.npz", "results/data/tem/validation.csv"])], []),
        ([("train_noisy_images", ["results/data/tem/validation.npz"])],
         ["train_noisy_images: results/data/tem/validation.npz (clean array in self-supervised training)"]),
    ],
)
def test_leak_check_on_synthetic_jobs(jobs, expected) -> None:
    assert leaks(jobs) == expected

