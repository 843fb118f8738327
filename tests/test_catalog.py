"""The files the Snakemake workflow catalog reads, and the local rules of the Snakefile."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import yaml

from conftest import REPO


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
