"""GPU slot claiming for local GPU jobs, the device a job computes on, and the fault injection used
by the retry tests."""

from __future__ import annotations

import contextlib
import os

import pytest

from temdenoise.runtime import (
    CUBLAS_WORKSPACE_CONFIG,
    FAIL_ONCE_VARIABLE,
    GPU_LOCK_DIR_VARIABLE,
    Job,
    fail_once_for_testing,
    gpu_slots,
    job,
)


@pytest.fixture
def two_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.setenv(GPU_LOCK_DIR_VARIABLE, str(tmp_path / "locks"))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)


def test_concurrent_gpu_jobs_get_distinct_devices(two_gpus):
    with gpu_slots(1) as first:
        assert os.environ["CUDA_VISIBLE_DEVICES"] == first[0]
        os.environ["CUDA_VISIBLE_DEVICES"] = "3,5"  # what a second job process would see
        with gpu_slots(1) as second:
            assert os.environ["CUDA_VISIBLE_DEVICES"] == second[0]
        assert {first[0], second[0]} == {"3", "5"}
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"


def test_gpu_is_free_again_after_the_job(two_gpus):
    with gpu_slots(2) as both:
        assert sorted(both) == ["3", "5"]
    with gpu_slots(2) as again:
        assert sorted(again) == ["3", "5"]


def test_waits_while_every_gpu_is_taken(two_gpus, monkeypatch):
    other_job = contextlib.ExitStack()
    other_job.enter_context(gpu_slots(2))
    os.environ["CUDA_VISIBLE_DEVICES"] = "3,5"
    waits = []

    def other_job_ends_while_waiting(seconds: float) -> None:
        waits.append(seconds)
        other_job.close()

    monkeypatch.setattr("temdenoise.runtime.time.sleep", other_job_ends_while_waiting)
    with gpu_slots(1) as claimed:
        assert len(claimed) == 1
    assert len(waits) == 1


def test_asking_for_more_gpus_than_exist_is_an_error(two_gpus):
    with pytest.raises(RuntimeError, match="gpu=3"), gpu_slots(3):
        pass


def test_cpu_jobs_and_slurm_jobs_claim_nothing(two_gpus, monkeypatch):
    with gpu_slots(0) as claimed:
        assert claimed == []
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    with gpu_slots(1) as claimed:
        assert claimed == []
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"


def test_fail_once_fails_each_job_of_the_named_rule_exactly_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(FAIL_ONCE_VARIABLE, "train,evaluate")
    fail_once_for_testing("denoise", {"model": "a"})  # not named: never fails
    for model in ("a", "b"):
        with pytest.raises(RuntimeError, match="injected failure"):
            fail_once_for_testing("train", {"model": model})
        fail_once_for_testing("train", {"model": model})  # the retry succeeds
    monkeypatch.delenv(FAIL_ONCE_VARIABLE)
    fail_once_for_testing("evaluate", {"model": "a"})  # injection off


@pytest.mark.parametrize(
    ("setting", "gpus", "expected"),
    [("auto", 0, "cpu"), ("auto", 1, "cuda"), ("cpu", 1, "cpu"), ("cuda:1", 0, "cuda:1")],
)
def test_a_job_without_a_gpu_request_computes_on_the_cpu_though_one_is_visible(monkeypatch, setting, gpus, expected):
    import logging

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    job = Job(threads=1, seed=0, config={"device": setting}, log=logging.getLogger("test"), gpus=gpus)
    assert job.device == expected


@pytest.fixture
def torch_defaults(monkeypatch):
    """Restores torch's global determinism and the environment after a test that sets them."""
    import torch

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    yield
    torch.use_deterministic_algorithms(False)


class FakeSnakemake:
    """What :func:`temdenoise.runtime.job` reads of Snakemake's ``snakemake`` object."""

    def __init__(self, log: str, config: dict) -> None:
        self.log, self.config, self.rule, self.threads = [log], config, "train", 1
        self.wildcards, self.resources = {}, {"gpu": 0}


@pytest.mark.parametrize("deterministic", [True, False])
def test_deterministic_mode_sets_what_cuda_needs_and_logs_nondeterministic_kernels(deterministic, tmp_path,
                                                                                  torch_defaults):
    import torch

    log = tmp_path / "job.log"
    with job(FakeSnakemake(str(log), {"deterministic": deterministic})) as run:
        assert run.device == "cpu"
        assert torch.are_deterministic_algorithms_enabled() is deterministic
        assert (os.environ.get("CUBLAS_WORKSPACE_CONFIG") == CUBLAS_WORKSPACE_CONFIG) is deterministic
        torch.zeros(3).put_(torch.tensor([0, 0]), torch.tensor([1.0, 2.0]))  # no deterministic kernel
    named = "put_ does not have a deterministic implementation" in log.read_text()
    assert named is deterministic, log.read_text()
