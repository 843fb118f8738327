"""The Snakefile parses with nothing but Snakemake: lint and dry runs import no heavy package.

The workflow catalog and module users lint and dry-run a workflow in an environment with Snakemake
alone. Here every third-party package that temdenoise's jobs need (and Snakemake does not) is
blocked by a ``sitecustomize`` on the subprocess's PYTHONPATH: an import statement of any of them
run for the workflow's code (any frame of the call stack in this repository) raises
ModuleNotFoundError, as it would there. Snakemake's plugins installed here (the SLURM executor
imports pandas) may still import them: they are not installed in such an environment. The package
itself is not on that path either: the Snakefile must find its own ``src/``. (`.ci/run` also lints
in a real Snakemake-only venv.)
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO, make_paper_natural_folders, run_workflow

# Runtime dependencies of the jobs that are not dependencies of Snakemake (pyproject.toml).
BLOCKED = (
    "torch", "numpy", "scipy", "pandas", "abtem", "ase", "skimage", "pywt", "matplotlib", "seaborn",
    "tifffile", "tqdm", "threadpoolctl",
)

# Hooks the import statement itself: a module already imported (the SLURM plugin imports pandas,
# hence numpy, when Snakemake starts) would otherwise be handed out from sys.modules.
BLOCKER = f'''
import builtins
import sys

def from_repository():
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.startswith({str(REPO) + "/"!r}):
            return True
        frame = frame.f_back
    return False

original_import = builtins.__import__

def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name.split(".")[0] in {BLOCKED!r} and from_repository():
        raise ModuleNotFoundError(f"{{name}} is blocked: the workflow must parse without it", name=name)
    return original_import(name, globals, locals, fromlist, level)

builtins.__import__ = guarded_import
'''


@pytest.fixture
def snakemake_only(tmp_path):
    """Environment overrides for a subprocess in which the heavy packages cannot be imported."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    return {"PYTHONPATH": str(site)}


def test_blocker_blocks_the_repository_only(snakemake_only):
    """The blocker refuses numpy to code of this repository and lets other code import it."""
    as_repository = f"exec(compile('import numpy', {str(REPO / 'workflow/rules/x.smk')!r}, 'exec'))"
    env = {**os.environ, **snakemake_only}
    refused = subprocess.run([sys.executable, "-c", as_repository], capture_output=True, text=True, env=env)
    assert refused.returncode != 0 and "numpy is blocked" in refused.stderr
    allowed = subprocess.run([sys.executable, "-c", "import numpy"], capture_output=True, text=True, env=env)
    assert allowed.returncode == 0, allowed.stderr


@pytest.mark.parametrize(
    "config",
    ["config/config.yaml", "config/laptop.yaml", "config/paper.yaml", "tests/configs/tiny.yaml", "tests/configs/realdata.yaml"],
)
def test_dry_run_without_heavy_packages(snakemake_only, tmp_path, config):
    work = tmp_path / "work"
    work.mkdir()
    make_paper_natural_folders(work)  # the image folders paper.yaml reads
    result = run_workflow(work, REPO / config, "-n", env=snakemake_only)
    assert "This was a dry-run" in result.stdout


def test_lint_without_heavy_packages(snakemake_only, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    result = run_workflow(work, REPO / "config/config.yaml", "--lint", env=snakemake_only)
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr
