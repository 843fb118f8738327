"""The files the Snakemake workflow catalog reads, and the local rules of the Snakefile."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import yaml

from conftest import REPO, run_workflow

# "250 jobs in 8 min 42 s", "477 jobs in 2 h 31 min": a config's last end-to-end run as the docs quote it.
TIMING = re.compile(r"\b(\d+) jobs in (\d+ h \d+ min|\d+ min \d+ s|\d+ min)\b")


def defined_rules() -> set[str]:
    return {name for smk in (REPO / "workflow/rules").glob("*.smk")
            for name in re.findall(r"^rule (\w+):", smk.read_text(), flags=re.M)}


def local_rules() -> list[str]:
    block = re.search(r"^localrules:\n((?:    \w+,\n)+)", (REPO / "Snakefile").read_text(), flags=re.M)
    assert block, "the Snakefile declares its local rules in one localrules: block"
    return re.findall(r"\w+", block.group(1))


def test_local_rules_exist():
    """Snakemake ignores an unknown name in localrules: a typo would submit the job after all."""
    missing = set(local_rules()) - defined_rules()
    assert not missing, f"localrules names no rule {sorted(missing)}"


def test_catalog_files():
    catalog = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    assert set(catalog["usage"]) >= {"mandatory-flags", "software-stack-deployment", "report"}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["license"]["text"] in (REPO / "LICENSE").read_text()
    assert "snakemake-executor-plugin-slurm>=2" in pyproject["project"]["dependencies"]
    described = (REPO / "config/README.md").read_text()
    for config in (REPO / "config").glob("*.yaml"):
        assert f"`{config.name}`" in described, config.name
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    for section in schema["properties"]:
        assert f"| `{section}" in described, section


def test_workflow_is_snakefmt_clean():
    """The Snakefile and rule files are formatted by snakefmt (line length from pyproject.toml), as
    the workflow catalog expects; `snakefmt Snakefile workflow/` fixes a failure."""
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_catalog_entry_runs_the_root_workflow(tmp_path):
    """workflow/Snakefile, where the catalog looks, plans the root Snakefile's jobs, and finds the
    repository's files (src/, the stand-in recordings of tests/configs/realdata.yaml) from workflow/."""
    config = REPO / "tests/configs/realdata.yaml"
    root = run_workflow(tmp_path, config, "-n")
    entry = run_workflow(tmp_path, config, "-n", "all", snakefile=REPO / "workflow/Snakefile")
    assert job_stats(entry.stdout) == job_stats(root.stdout) != {}


def job_stats(dry_run: str) -> dict[str, int]:
    """Rule -> job count of a dry run's "Job stats" table."""
    table = dry_run.split("Job stats:", 1)[-1].split("\n\n", 1)[0]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


def test_catalog_claims_only_what_is_tested():
    """A deployment method the catalog file marks as working is one a test runs (`--sdm ...`), and
    its `report: true` is backed by a test that builds the report."""
    usage = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    tests = "\n".join(path.read_text() for path in (REPO / "tests").glob("*.py"))
    tested = set(re.findall(r'"--(?:sdm|software-deployment-method)",\s*"(\w+)"', tests))
    for methods, claimed in usage["software-stack-deployment"].items():
        assert not claimed or set(methods.split("+")) <= tested, f"{methods}: no test runs it"
    assert not usage["report"] or '"--report"' in tests


def test_config_timings_agree():
    """The end-to-end run times config/README.md quotes (jobs and wall time) are those the README
    and the config's own header state, and every run time the README quotes is in config/README.md."""
    described = (REPO / "config/README.md").read_text()
    readme = " ".join((REPO / "README.md").read_text().split())
    quoted = {name: TIMING.findall(cell) for name, cell in re.findall(r"^\| `(\w+\.yaml)` \|.*\| (.*) \|$", described, flags=re.M)}
    assert quoted["config.yaml"] and quoted["laptop.yaml"], "config/README.md quotes the default and laptop runs"
    for name, timings in quoted.items():
        header = " ".join(line for line in (REPO / "config" / name).read_text().splitlines() if line.startswith("#"))
        for jobs, time in timings:
            for text, where in ((readme, "README.md"), (header, f"config/{name}")):
                assert re.search(rf"\b{jobs} jobs\b", text) and time in text, f"{where} does not state {jobs} jobs, {time}"
    stated = {timing for timings in quoted.values() for timing in timings}
    assert set(TIMING.findall(readme)) <= stated, "README.md quotes a run time config/README.md does not"
