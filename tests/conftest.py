"""Shared fixtures: running the workflow in a scratch directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_NATURAL = REPO.parent / "shared" / "data" / "natural"


DRY_RUN_JOB = re.compile(r"^( *)(?:local)?rule (\w+):\n((?:\1    .*\n)*)", re.MULTILINE)


def dry_run_jobs(text: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, printed fields such as ``input``, ``wildcards``, ``resources``) of every job of a
    ``snakemake -n`` printout, the members of a group job included (printed indented under it)."""
    return [(rule, dict(re.findall(rf"^{indent}    (\w+): (.*)$", body, re.MULTILINE)))
            for indent, rule, body in DRY_RUN_JOB.findall(text)]


OVERLAYS = {REPO / "tests" / "configs" / "paper_mini.yaml": REPO / "config" / "paper.yaml"}
"""Config files that are overlays, each with the config it is read after (never a config alone)."""


def load_config(path: Path) -> dict:
    """The config at ``path`` as Snakemake reads it (an overlay merged into its base, key by key)."""
    from snakemake.utils import update_config

    config: dict = {}
    for file in [OVERLAYS[path], path] if path in OVERLAYS else [path]:
        update_config(config, yaml.safe_load(file.read_text()))
    return config


PAPER_NATURAL_FOLDERS = {"Train400": 4, "BSD68": 2, "Set12": 2}
"""The image folders config/paper.yaml reads under ``data/natural`` (docs/usage.md, "The natural-image
sets"), with the number of tiny stand-in images :func:`make_paper_natural_folders` writes."""


def make_paper_natural_folders(workdir: Path) -> None:
    """Tiny 8-bit PNG stand-ins for the natural-image folders of config/paper.yaml in ``workdir``,
    so that the paper config parses and dry-runs without the real sets."""
    import numpy as np
    from skimage import io

    rng = np.random.default_rng(0)
    for folder, count in PAPER_NATURAL_FOLDERS.items():
        path = workdir / "data" / "natural" / folder
        path.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image = rng.integers(0, 256, (48, 48), dtype=np.uint8)
            io.imsave(path / f"{index:02d}.png", image, check_contrast=False)


def run_workflow(
    workdir: Path,
    config: dict | Path | list[Path],
    *args: str,
    check: bool = True,
    env: dict | None = None,
    snakefile: Path = REPO / "Snakefile",
) -> subprocess.CompletedProcess:
    """Run ``snakemake`` on ``snakefile`` (the repository's root Snakefile) in ``workdir`` with ``config``
    (a list: several config files, merged in order by Snakemake, e.g. paper.yaml and an overlay)."""
    if isinstance(config, dict):
        path = workdir / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        config = path
    configs = [str(path) for path in config] if isinstance(config, list) else [str(config)]
    command = [
        sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", str(workdir),
        "--configfile", *configs, "--cores", "2", *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}")
    return result


@pytest.fixture
def workflow_runner(tmp_path):
    return lambda config, *args, **kwargs: run_workflow(tmp_path, config, *args, **kwargs)
