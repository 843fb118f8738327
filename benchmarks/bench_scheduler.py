"""CPU that Snakemake's own scheduler burns while jobs wait for cores, with and without profiles/default.

Run: ``python benchmarks/bench_scheduler.py [--finished 150] [--wait 20] [--pending 4]``

A synthetic workflow in a temporary folder, run with ``--cores 2``: ``--finished`` trivial jobs
first (high priority), then a 1-thread job that sleeps ``--wait`` seconds while ``--pending``
ready 2-thread jobs wait for both cores (as the laptop config's training jobs wait while a
1-thread job runs), then those. Snakemake 9 leaves one more live rate-limit timer per finished job,
and each timer wakes the scheduler; with its default ILP selector every wake-up with waiting jobs
starts a CBC solver process. The script runs the workflow twice, side by side: with this
repository's ``profiles/default`` (greedy selector, 5 s window) and with Snakemake's defaults
(``--workflow-profile none``). It prints, for each, the wall time and the CPU seconds of Snakemake
and all its child processes (the jobs themselves use almost none), and the ratio of the two.
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


def run(workdir: Path, profile: bool) -> tuple[float, float]:
    """Wall and CPU seconds of one run of the synthetic workflow in ``workdir``."""
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
        (workdir / "Snakefile").write_text(SNAKEFILE.format(finished=args.finished, wait=args.wait, pending=args.pending))
        shutil.copytree(REPO / "profiles" / "default", workdir / "profiles" / "default")
        results = {label: run(workdir, profile) for label, profile in (("profiles/default", True), ("Snakemake defaults", False))}
    print(f"{args.finished} finished jobs, then {args.wait} s with {args.pending} 2-thread jobs waiting")
    for label, (wall, cpu) in results.items():
        print(f"{label:>20}: wall {wall:6.1f} s, CPU of snakemake and children {cpu:6.1f} s")
    ratio = results["Snakemake defaults"][1] / results["profiles/default"][1]
    print(f"scheduler CPU, defaults / profiles/default: {ratio:.1f}x")


if __name__ == "__main__":
    main()
