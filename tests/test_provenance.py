"""Provenance: the record's fields, and the tables and records written in a job carrying it.

``check_results_carry_provenance`` is also applied to a whole tiny run (tests/test_workflow.py).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pandas as pd

from conftest import REPO
from temdenoise import provenance
from temdenoise.io import save_json, save_table, save_text

CONFIG = {"seed": 7, "device": "cpu", "methods": {"wiener": {"family": "wiener"}}}
FIELDS = {"project", "version", "git_commit", "config_sha256", "seed", "versions", "device", "date"}
LIBRARIES = {"Python", "torch", "abTEM", "numpy", "scikit-image", "snakemake"}


def check_record(entry: dict, config_sha256: str | None = None, seed: int | None = None) -> None:
    """A provenance record names every field (of this checkout, of the given config and seed)."""
    assert set(entry) == FIELDS
    assert set(entry["versions"]) == LIBRARIES
    assert entry["versions"]["numpy"] != "not installed" and entry["versions"]["snakemake"] != "not installed"
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", entry["git_commit"])
    assert re.fullmatch(r"[0-9a-f]{64}", entry["config_sha256"])
    assert entry["device"].startswith(("CPU: ", "GPU: "))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", entry["date"])
    if config_sha256 is not None:
        assert entry["config_sha256"] == config_sha256
    if seed is not None:
        assert entry["seed"] == seed


def check_results_carry_provenance(results: Path) -> None:
    """Every CSV under ``results/tables`` has a sidecar, every Markdown / LaTeX table a footer, every
    trained model's info.json a record, all of one run (one config hash and seed), as does
    ``results/provenance.json``."""
    run = json.loads((results / "provenance.json").read_text())
    check_record(run)
    same_run = {"config_sha256": run["config_sha256"], "seed": run["seed"]}
    csvs = sorted((results / "tables").rglob("*.csv"))
    assert csvs
    for csv in csvs:
        check_record(json.loads(provenance.sidecar_path(csv).read_text()), **same_run)
    texts = sorted([*(results / "tables").rglob("*.md"), *(results / "tables").rglob("*.tex")])
    assert texts
    for text in texts:
        last = text.read_text().rstrip().splitlines()[-1]
        assert last.startswith(("Provenance: ", "% Provenance: ")), text
        assert f"config sha256 {run['config_sha256']}, seed {run['seed']};" in last, text
    infos = sorted((results / "models").rglob("info.json"))
    for info in infos:
        check_record(json.loads(info.read_text())["provenance"], **same_run)


def test_the_record_names_code_config_seed_libraries_device_and_date():
    entry = provenance.record(CONFIG)
    check_record(entry, provenance.config_sha256(CONFIG), seed=7)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert entry["git_commit"].removesuffix("-dirty") == head
    assert entry["device"].startswith("CPU: ")  # the config asks for the CPU
    # the hash follows the config's content, not its key order
    assert provenance.config_sha256({"b": 1, "a": [1, 2]}) == provenance.config_sha256({"a": [1, 2], "b": 1})
    assert provenance.config_sha256(CONFIG) != provenance.config_sha256({**CONFIG, "seed": 8})


def test_a_source_tree_outside_git_says_so(tmp_path):
    assert provenance.git_commit(tmp_path) == provenance.NOT_A_CHECKOUT


def test_tables_and_records_written_in_a_job_carry_provenance(tmp_path):
    results = tmp_path / "results"
    table = pd.DataFrame({"method": ["wiener"], "psnr": [30.0]})
    with provenance.recording(CONFIG) as entry:
        save_table(results / "tables/t.csv", table)
        save_text(results / "tables/t.md", "| method | psnr |\n|---|---|\n| wiener | 30 |\n")
        save_text(results / "tables/t.tex", "\\begin{tabular}{lr}\\end{tabular}\n")
        save_text(tmp_path / "notes.txt", "plain")
        save_json(results / "models/m/info.json", {"parameters": 3})
        save_text(results / "provenance.json", json.dumps(entry))
    check_results_carry_provenance(results)
    # the table itself is unchanged; only Markdown / LaTeX get a footer
    pd.testing.assert_frame_equal(pd.read_csv(results / "tables/t.csv"), table)
    assert (tmp_path / "notes.txt").read_text() == "plain"
    assert json.loads((results / "models/m/info.json").read_text())["parameters"] == 3
    assert provenance.current() is None


def test_nothing_is_added_outside_a_job(tmp_path):
    save_table(tmp_path / "t.csv", pd.DataFrame({"a": [1]}))
    save_text(tmp_path / "t.md", "text\n")
    save_json(tmp_path / "info.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["info.json", "t.csv", "t.md"]
    assert (tmp_path / "t.md").read_text() == "text\n"
    assert json.loads((tmp_path / "info.json").read_text()) == {"a": 1}
