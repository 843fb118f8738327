"""Every package a rule's script imports is in that rule's conda environment (envs/*.yaml).

For each rule with ``conda:`` and ``script:``, the script's imports are read from its syntax tree
(top-level and function-local alike), following ``temdenoise`` imports into the package's own
modules transitively, plus the family modules that the registry imports by name and the optional
packages that pandas and scikit-image import when a function is called (IMPLIED_BY_CALL). Import names are
mapped to conda-forge package names; an import name with no mapping fails the test, so a new
dependency cannot pass unnoticed. No conda is run: this checks the env files' contents, not that
they solve (docs/usage.md, "Deployment").
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from temdenoise.families import BUILTIN_FAMILIES, EXTRA_MODULES

SRC = REPO / "src"

# Import name -> conda-forge package name, for every third-party package the jobs import.
CONDA_PACKAGE = {
    "abtem": "abtem",
    "ase": "ase",
    "jinja2": "jinja2",
    "matplotlib": "matplotlib",
    "mpl_toolkits": "matplotlib",
    "numpy": "numpy",
    "pandas": "pandas",
    "pywt": "pywavelets",
    "scipy": "scipy",
    "seaborn": "seaborn",
    "skimage": "scikit-image",
    "tabulate": "tabulate",
    "threadpoolctl": "threadpoolctl",
    "tifffile": "tifffile",
    "rsciio": "rosettasciio",
    "dask": "dask-core",
    "mrcfile": "mrcfile",
    "h5py": "h5py",
    "torch": "pytorch",
    "tqdm": "tqdm",
    "yaml": "pyyaml",
}
# Functions whose library imports an optional package when called (pandas: tabulate for Markdown,
# jinja2 for LaTeX through its Styler; scikit-image: PyWavelets): a call of one counts as an import.
IMPLIED_BY_CALL = {"to_markdown": "tabulate", "to_latex": "jinja2", "denoise_wavelet": "pywt"}
# Packages of the optional extras (pyproject [project.optional-dependencies], e.g. BM3D under a
# non-commercial licence, bioimageio for the on-demand model export): never in an env file, installed by
# the user who accepts their terms or wants them; a config that lists a family needing one fails before
# any job without it (temdenoise.families.missing_extra), an export job at its start (temdenoise.export).
OPTIONAL = {module.split(".")[0] for modules in EXTRA_MODULES.values() for module in modules}
# Modules that import others by name at run time (the registry loads the declared families).
DYNAMIC_IMPORTS = {"temdenoise.registry": [info.module for info in BUILTIN_FAMILIES.values()]}


def rules_with_envs() -> list[tuple[str, Path, Path]]:
    """(rule, env file, script) of every rule of workflow/rules/*.smk that has both."""
    found = []
    for smk in sorted((REPO / "workflow/rules").glob("*.smk")):
        for block in re.split(r"^(?=rule \w+:)", smk.read_text(), flags=re.M)[1:]:
            name = re.match(r"rule (\w+):", block).group(1)
            conda = re.search(r'^    conda:\s*\n\s+"([^"]+)"', block, flags=re.M)
            script = re.search(r'^    script:\s*\n\s+"([^"]+)"', block, flags=re.M)
            if conda and script:
                found.append((name, (smk.parent / conda.group(1)).resolve(), (smk.parent / script.group(1)).resolve()))
    return found


def module_file(module: str) -> Path | None:
    """The source file of a ``temdenoise`` module (a package's ``__init__.py``), None if none."""
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(path: Path, module: str | None) -> set[str]:
    """Absolute names imported by one file (relative imports resolved against ``module``)."""
    names = set()
    package = module if path.name == "__init__.py" else (module or "").rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(filter(None, [*parts, base]))
            names.add(base)
            # `from temdenoise import registry` imports a submodule
            names.update(f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}"))
        elif isinstance(node, ast.Call):
            called = getattr(node.func, "attr", getattr(node.func, "id", None))
            if called in IMPLIED_BY_CALL:
                names.add(IMPLIED_BY_CALL[called])
    return names


def third_party_imports(script: Path) -> set[str]:
    """Top-level names of every non-standard-library package the script reaches."""
    seen, queue, external = set(), [(script, None)], set()
    while queue:
        path, module = queue.pop()
        for name in imports_of(path, module) | set(DYNAMIC_IMPORTS.get(module, [])):
            top = name.split(".")[0]
            if top == "temdenoise":
                # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
                parts = name.split(".")
                for depth in range(1, len(parts) + 1):
                    prefix = ".".join(parts[:depth])
                    source = module_file(prefix)
                    if source is not None and prefix not in seen:
                        seen.add(prefix)
                        queue.append((source, prefix))
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                external.add(top)
    return external


def env_packages(env: Path) -> dict[str, str]:
    """Package name -> version spec of an env file's conda dependencies."""
    packages = {}
    for dependency in yaml.safe_load(env.read_text())["dependencies"]:
        name, spec = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", dependency).groups()
        packages[name.lower()] = spec
    return packages


RULES = rules_with_envs()


def test_rules_were_found():
    assert len(RULES) >= 25 and {"train", "udvd_augmentation", "simulate"} <= {r for r, _, _ in RULES}


@pytest.mark.parametrize("rule, env, script", RULES, ids=[r for r, _, _ in RULES])
def test_rule_env_holds_every_imported_package(rule, env, script):
    imported = third_party_imports(script) - OPTIONAL
    unmapped = sorted(imported - set(CONDA_PACKAGE))
    assert not unmapped, f"{script.name} imports {unmapped}: add their conda package names to CONDA_PACKAGE"
    missing = sorted({CONDA_PACKAGE[name] for name in imported} - set(env_packages(env)))
    assert not missing, f"rule {rule}: {env.name} lacks {missing}, imported by {script.name}"


@pytest.mark.parametrize("env", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_pins_every_package(env):
    unpinned = [name for name, spec in env_packages(env).items() if not re.fullmatch(r"==?[0-9][0-9A-Za-z.]*", spec)]
    assert not unpinned, f"{env.name}: no exact version for {unpinned}"


def test_optional_extras_are_pinned_extras_of_the_package():
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra, modules in EXTRA_MODULES.items():
        pinned = {re.match(r"([A-Za-z0-9_.\-]+)==[0-9]", spec).group(1) for spec in extras[extra]}
        assert set(modules) <= pinned, f"extra {extra}: {sorted(modules)} not all pinned in pyproject"
