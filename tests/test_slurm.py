"""The tiny workflow through `profiles/slurm` on a real single-node SLURM cluster.

One SLURM run and one local run of the same config, each with the first attempt of every
`FAIL_RULE` job failing on purpose (`TEMDENOISE_FAIL_ONCE`), are checked for: every non-local job
ran as a SLURM job that SLURM itself records as completed; GPU jobs were allocated a GPU and CPU
jobs none; failed jobs were retried (on SLURM: resubmitted with twice the memory and time) and the
workflow completed; the result tables of both runs are equal.

The cluster comes from `tests/slurm/cluster.sh start` (run by `.ci/run`); when it is not running
the tests start it themselves if they can (root, packages installed) and are skipped otherwise,
unless `TEMDENOISE_REQUIRE_SLURM=1` (CI) turns the skip into a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
CLUSTER_SCRIPT = REPO / "tests" / "slurm" / "cluster.sh"
TINY_CONFIG = REPO / "tests" / "slurm" / "tiny.yaml"
# Every job of this rule fails once; it runs beside the longer training job, so its retry costs
# the test no time.
FAIL_RULE = "fit_classical"
# The run stops at the tables: plots and the HTML report add nothing here but minutes.
TARGET = "results/tables/psnr.csv"
# Rules whose jobs ask for a GPU in TINY_CONFIG.
GPU_RULES = {"train"}

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _cluster(action: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CLUSTER_SCRIPT), action], capture_output=True, text=True)


def _unavailable(reason: str) -> None:
    if os.environ.get("TEMDENOISE_REQUIRE_SLURM") == "1":
        pytest.fail(f"SLURM is required here (TEMDENOISE_REQUIRE_SLURM=1): {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running cluster; started (and stopped afterwards) here when nobody started it."""
    if _cluster("status").returncode == 0:
        yield
        return
    if os.geteuid() != 0 or not shutil.which("slurmctld"):
        _unavailable("no SLURM cluster running; as root: bash tests/slurm/cluster.sh start")
    started = _cluster("start")
    if started.returncode != 0:
        _unavailable(f"tests/slurm/cluster.sh start failed:\n{started.stderr[-2000:]}")
    yield
    _cluster("stop")


class WorkflowRun:
    """The workflow on TINY_CONFIG, run in the background in ``workdir`` (two runs overlap: the
    SLURM run mostly waits for the scheduler)."""

    def __init__(self, workdir: Path, *options: str):
        self.workdir = workdir
        command = [
            sys.executable, "-m", "snakemake",
            "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir),
            "--configfile", str(TINY_CONFIG),
            *options,
            TARGET,
        ]  # fmt: skip
        env = {**os.environ, "TEMDENOISE_FAIL_ONCE": FAIL_RULE, "OMP_NUM_THREADS": "1"}
        self.log = workdir / "snakemake.out"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
            )

    def output(self) -> str:
        """Wait for the run to end; Snakemake's output, asserting the workflow succeeded."""
        try:
            self.process.wait(timeout=1800)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        output = self.log.read_text()
        assert self.process.returncode == 0, f"workflow failed in {self.workdir}:\n{output[-4000:]}"
        return output


@pytest.fixture(scope="module")
def local_process(tmp_path_factory) -> WorkflowRun:
    return WorkflowRun(tmp_path_factory.mktemp("local"), "--cores", "2", "--retries", "1")


@pytest.fixture(scope="module")
def local_run(local_process) -> tuple[Path, str]:
    return local_process.workdir, local_process.output()


@pytest.fixture(scope="module")
def slurm_run(local_process, slurm_cluster, tmp_path_factory) -> tuple[Path, str]:
    run = WorkflowRun(
        tmp_path_factory.mktemp("slurm"),
        "--profile", str(REPO / "profiles" / "slurm"),
        "--slurm-status-command", "squeue",
        # Poll every few seconds (the default, 40 s, suits a busy real cluster, not a test).
        "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-keep-successful-logs",
        "--jobs", "4",
        "--verbose",  # logs each sbatch call
    )  # fmt: skip
    return run.workdir, run.output()


def finished_jobs(output: str) -> dict[str, str]:
    """Snakemake job id -> rule, for every job that finished."""
    return dict(re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", output))


def local_rules(output: str) -> set[str]:
    return set(re.findall(r"^localrule (\w+):", output, flags=re.MULTILINE))


def submissions(output: str) -> list[tuple[str, str]]:
    """(Snakemake job id, SLURM job id) of every sbatch submission, retries included, in order."""
    return re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output)


def slurm_records(slurm_ids: list[str]) -> dict[str, dict[str, str]]:
    """What SLURM itself recorded of each job: state, memory, time limit, GPU request, comment."""
    fields = ["JobID", "State", "MinMemory", "TimeLimit", "tres-per-job", "Comment"]
    listing = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--jobs", ",".join(slurm_ids),
         "--Format", ",".join(f"{field}:200" for field in fields)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    records = {}
    for line in listing.splitlines():
        values = line.split()
        records[values[0]] = dict(zip(fields, values))
    return records


def minutes(time_limit: str) -> int:
    """A SLURM time limit ``[D-][H:]MM:SS`` in minutes."""
    days, _, clock = time_limit.rpartition("-")
    seconds = 0
    for part in clock.split(":"):
        seconds = 60 * seconds + int(part)
    return (int(days or 0) * 86400 + seconds) // 60


def test_every_cluster_job_ran_as_a_completed_slurm_job(slurm_run):
    workdir, output = slurm_run
    jobs = finished_jobs(output)
    local = local_rules(output)
    remote = {job for job, rule in jobs.items() if rule not in local}
    assert remote, "no job was sent to SLURM"
    submitted = submissions(output)
    assert remote <= {job for job, _ in submitted}, "jobs finished without a SLURM submission"
    last_submission = dict(submitted)  # a retried job's final attempt
    records = slurm_records(list(last_submission.values()))
    for job in remote:
        record = records[last_submission[job]]
        assert record["State"] == "COMPLETED", record
        assert record["Comment"].startswith(f"rule_{jobs[job]}"), record
        logs = list((workdir / ".snakemake" / "slurm_logs" / f"rule_{jobs[job]}").rglob(
            f"{last_submission[job]}.log"
        ))
        assert logs, f"no SLURM log of job {job} ({jobs[job]})"


def test_gpu_jobs_were_allocated_a_gpu_and_cpu_jobs_none(slurm_run):
    _, output = slurm_run
    jobs = finished_jobs(output)
    submitted = submissions(output)
    records = slurm_records([slurm_id for _, slurm_id in submitted])
    gpu_jobs = [slurm_id for job, slurm_id in submitted if jobs[job] in GPU_RULES]
    assert gpu_jobs, f"the tiny config should train a network on a GPU ({GPU_RULES})"
    for job, slurm_id in submitted:
        expected = "gres:gpu:1" if jobs[job] in GPU_RULES else "N/A"
        assert records[slurm_id]["tres-per-job"] == expected, (jobs[job], records[slurm_id])
    # The submit command itself, as logged by the executor (--verbose).
    gpu_calls = re.findall(r"sbatch call: .*--comment rule_(\w+?)(?:_wildcards\S*)? .*--gpus=1", output)
    assert set(gpu_calls) == GPU_RULES


def test_every_job_is_submitted_requeueable(slurm_run):
    """The profile's slurm-requeue: every sbatch call asks SLURM to requeue a preempted or failed job."""
    _, output = slurm_run
    calls = re.findall(r"sbatch call: .*", output)
    assert calls and all("--requeue" in call for call in calls), calls[:2]


def test_failed_first_attempts_were_resubmitted_with_more_memory_and_time(slurm_run):
    _, output = slurm_run
    jobs = finished_jobs(output)
    attempts: dict[str, list[str]] = {}
    for job, slurm_id in submissions(output):
        attempts.setdefault(job, []).append(slurm_id)
    failing = [job for job, rule in jobs.items() if rule == FAIL_RULE]
    assert failing
    records = slurm_records([slurm_id for ids in attempts.values() for slurm_id in ids])
    for job in failing:
        first, second = attempts[job]
        assert records[first]["State"] == "FAILED"
        assert records[second]["State"] == "COMPLETED"
        memory = [int(records[slurm_id]["MinMemory"].rstrip("M")) for slurm_id in (first, second)]
        assert memory[1] == 2 * memory[0]
        time_limits = [minutes(records[slurm_id]["TimeLimit"]) for slurm_id in (first, second)]
        assert time_limits[1] == 2 * time_limits[0]
    never_failed = [ids for job, ids in attempts.items() if jobs.get(job) != FAIL_RULE]
    assert all(len(ids) == 1 for ids in never_failed)


def test_local_retry_completes(local_run):
    workdir, output = local_run
    retried = re.findall(r"Error in rule (\w+):", output)
    assert retried and set(retried) == {FAIL_RULE}
    markers = list((workdir / ".snakemake" / "temdenoise-fail-once").iterdir())
    assert len(markers) == len(retried)
    assert "steps (100%) done" in output


def test_slurm_tables_equal_local_tables(slurm_run, local_run):
    slurm_dir, local_dir = slurm_run[0], local_run[0]
    # Result tables and per-image metrics; not benchmarks/ or training logs, which hold timings.
    tables = sorted(
        path.relative_to(local_dir)
        for folder in ("tables", "metrics", "data")
        for path in (local_dir / "results" / folder).rglob("*.csv")
    )
    assert Path(TARGET) in tables
    for path in tables:
        pd.testing.assert_frame_equal(pd.read_csv(slurm_dir / path), pd.read_csv(local_dir / path))
