"""Where a result came from: code version, config, seed, library versions, device and date.

A workflow job records its run with :func:`recording` (entered by :func:`temdenoise.runtime.job`
with the effective config, ``snakemake.config``); while it records, :mod:`temdenoise.io` adds the
record to what it writes: a JSON sidecar ``<name>.csv.provenance.json`` beside every CSV table, a
footer line under every Markdown / LaTeX table, a ``provenance`` key in JSON records (a trained
model's ``info.json``). Outside a job (a test calling a function directly) nothing is added.

Only the standard library is used: library versions come from the installed distributions'
metadata (nothing is imported), the GPU name from the NVIDIA driver's ``/proc`` files, so recording
costs a job a few milliseconds and the Snakefile may import this module.

Provenance differs between runs (the date, possibly the device): comparisons of two runs' results
compare the tables' contents (``pandas.read_csv``), never the files' bytes.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Mapping

# Distribution name -> the name shown; Python is added from the interpreter itself.
LIBRARIES = {"torch": "torch", "abtem": "abTEM", "numpy": "numpy", "scikit-image": "scikit-image",
             "snakemake": "snakemake"}
SIDECAR_SUFFIX = ".provenance.json"
NOT_A_CHECKOUT = "not a git checkout"

# The record of the job running in this process (set by `recording`), None outside a job.
_current: dict[str, Any] | None = None


def config_sha256(config: Mapping[str, Any]) -> str:
    """sha256 of a config as canonical JSON (sorted keys): equal configs hash equal."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def project_version() -> str:
    try:
        return metadata.version("temdenoise")
    except metadata.PackageNotFoundError:
        return "not installed"


def git_commit(root: Path = Path(__file__).resolve().parents[2]) -> str:
    """The commit of the source tree this module was loaded from, ``-dirty`` when tracked files
    differ from it; :data:`NOT_A_CHECKOUT` when it is not a git checkout (an installed package)."""
    if not (root / ".git").exists():
        return NOT_A_CHECKOUT

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return NOT_A_CHECKOUT
    return commit + ("-dirty" if dirty else "")


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape the results ("not installed" when absent)."""
    versions = {"Python": platform.python_version()}
    for distribution, shown in LIBRARIES.items():
        try:
            versions[shown] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[shown] = "not installed"
    return versions


def gpu_names() -> list[str]:
    """Names of the NVIDIA GPUs the driver reports (without initialising CUDA), empty when none."""
    names = []
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("Model:"):
                names.append(line.partition(":")[2].strip())
    return names


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def device_name(setting: str) -> str:
    """The device a job with the config's ``device`` setting computes on: the GPU's name when it
    may use one and one is present, else the CPU model."""
    gpus = gpu_names() if setting != "cpu" else []
    return f"GPU: {', '.join(gpus)}" if gpus else f"CPU: {cpu_model()}"


@functools.cache
def _environment(device_setting: str) -> dict[str, Any]:
    # The same for every record of a process.
    return {"version": project_version(), "git_commit": git_commit(), "versions": library_versions(),
            "device": device_name(device_setting)}


def record(config: Mapping[str, Any], device_setting: str | None = None) -> dict[str, Any]:
    """The provenance of results computed now with the effective ``config``, on the device of
    ``device_setting`` (default: the config's ``device``)."""
    environment = _environment(device_setting or str(config.get("device", "auto")))
    return {
        "project": "temdenoise",
        "version": environment["version"],
        "git_commit": environment["git_commit"],
        "config_sha256": config_sha256(config),
        "seed": config.get("seed"),
        "versions": environment["versions"],
        "device": environment["device"],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


@contextlib.contextmanager
def recording(config: Mapping[str, Any], device_setting: str | None = None) -> Iterator[dict[str, Any]]:
    """Attach the provenance of ``config`` (computed on ``device_setting``, see :func:`record`) to
    every result written in the block (see module doc)."""
    global _current
    previous, _current = _current, record(config, device_setting)
    try:
        yield _current
    finally:
        _current = previous


def current() -> dict[str, Any] | None:
    """The record of the job running in this process, None outside a job."""
    return _current


def footer_line(entry: Mapping[str, Any]) -> str:
    """One line naming everything in a record, for the foot of a Markdown or LaTeX table."""
    versions = ", ".join(f"{name} {version}" for name, version in entry["versions"].items())
    return (f"Provenance: {entry['project']} {entry['version']}, commit {entry['git_commit']}, "
            f"config sha256 {entry['config_sha256']}, seed {entry['seed']}; {versions}; "
            f"{entry['device']}; {entry['date']}.")


def sidecar_path(table: str | Path) -> Path:
    """Where the provenance of a CSV table is written: ``<table>.provenance.json`` beside it."""
    table = Path(table)
    return table.with_name(table.name + SIDECAR_SUFFIX)
