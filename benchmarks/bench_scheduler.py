"""CPU that Snakemake's own scheduler burns while jobs wait for cores: defaults, profiles/default, and
profiles/default with the timer patch of ``temdenoise.scheduling`` (what this workflow runs).

Run: ``python benchmarks/bench_scheduler.py [--finished 150] [--wait 20] [--pending 4]``

A synthetic workflow in a temporary folder, run with ``--cores 2``: ``--finished`` trivial jobs
first (high priority), then a 1-thread job that sleeps ``--wait`` seconds while ``--pending``
ready 2-thread jobs wait for both cores (as the laptop config's training jobs wait while a
1-thread job runs), then those. Snakemake 9 leaves one more live rate-limit timer per finished job,
and each timer wakes the scheduler; with its default ILP selector every wake-up with waiting jobs
starts a CBC solver process. The script runs the workflow three times, side by side: with
Snakemake's defaults (``--workflow-profile none``), with this repository's ``profiles/default``
(greedy selector, 5 s window), and with that profile plus ``one_pending_reevaluation()`` called in
the Snakefile (at most one pending timer, as ``workflow/rules/common.smk`` does). It prints, for
each, the wall time and the CPU seconds of Snakemake and all its child processes (the jobs
themselves use almost none), and the ratios.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PATCH = "from temdenoise.scheduling import one_pending_reevaluation\none_pending_reevaluation()\n"

SNAKEFILE = """
rule all:
    input: expand("finished/{{i}}", i=range({finished})), "slow", expand("pending/{{j}}", j=range({pending}))

rule finished:
    output: "finished/{{i}}"
    priority: 100
    shell: "touch {{output}}"

rule slow:
    input: expand("finished/{{i}}", i=range({finished}))
    output: "slow"
    priority: 50
    shell: "sleep {wait} && touch {{output}}"

rule pending:
    output: "pending/{{j}}"
    threads: 2
    shell: "touch {{output}}"
"""


def children_cpu() -> float:
    """User + system CPU seconds of all waited-for child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(workdir: Path, profile: bool, patch: bool, snakefile: str) -> tuple[float, float]:
    """Wall and CPU seconds of one run of the synthetic workflow in ``workdir``."""
    (workdir / "Snakefile").write_text((PATCH if patch else "") + snakefile)
    for folder in ("finished", "pending", ".snakemake"):
        shutil.rmtree(workdir / folder, ignore_errors=True)
    (workdir / "slow").unlink(missing_ok=True)
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--quiet", "all"]
    if not profile:
        command += ["--workflow-profile", "none"]
    cpu, start = children_cpu(), time.perf_counter()
    subprocess.run(command, cwd=workdir, check=True, capture_output=True)
    return time.perf_counter() - start, children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finished", type=int, default=150, help="jobs that finish before the slow one")
    parser.add_argument("--wait", type=int, default=20, help="seconds the slow job sleeps")
    parser.add_argument("--pending", type=int, default=4, help="ready 2-thread jobs waiting meanwhile")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        snakefile = SNAKEFILE.format(finished=args.finished, wait=args.wait, pending=args.pending)
        shutil.copytree(REPO / "profiles" / "default", workdir / "profiles" / "default")
        settings = {"Snakemake defaults": (False, False), "profiles/default": (True, False),
                    "profile + timer patch": (True, True)}
        results = {label: run(workdir, profile, patch, snakefile) for label, (profile, patch) in settings.items()}
    print(f"{args.finished} finished jobs, then {args.wait} s with {args.pending} 2-thread jobs waiting")
    for label, (wall, cpu) in results.items():
        print(f"{label:>20}: wall {wall:6.1f} s, CPU of snakemake and children {cpu:6.1f} s")
    patched = results["profile + timer patch"][1]
    for label in ("Snakemake defaults", "profiles/default"):
        print(f"scheduler CPU, {label} / profile + timer patch: {results[label][1] / patched:.1f}x")


if __name__ == "__main__":
    main()
