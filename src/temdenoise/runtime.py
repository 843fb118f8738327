"""Per-job runtime set-up shared by every workflow script: log redirection, threads, seeds, device.

Each Snakemake job must use exactly the threads its rule declares, so that ``--cores N`` is
honoured: torch, numba, BLAS/OpenMP pools and dask are all limited here.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import random
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from temdenoise import provenance
from temdenoise.families import declare_config_families

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMBA_NUM_THREADS",
)


def limit_threads(threads: int) -> None:
    """Limit every thread pool of this process to ``threads``.

    The environment variables cover pools created later (a lazily imported torch or numba reads
    them at start-up); pools that already exist are limited directly. Nothing heavy is imported
    here, so light jobs (noise, metrics, tables) do not pay for torch.
    """
    threads = max(1, int(threads))
    # dask reads DASK_* variables into its config when first imported (abTEM imports it), so a
    # job that imports abTEM after this call gets a threaded scheduler of ``threads`` workers.
    os.environ["DASK_SCHEDULER"] = "threads"
    os.environ["DASK_NUM_WORKERS"] = str(threads)
    for variable in THREAD_VARIABLES:
        # numba re-reads NUMBA_NUM_THREADS and refuses a change once its pool runs: only
        # numba.set_num_threads below may limit a numba that is already loaded.
        if not (variable == "NUMBA_NUM_THREADS" and "numba" in sys.modules):
            os.environ[variable] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if "numba" in sys.modules:
        numba = sys.modules["numba"]
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    if "dask" in sys.modules:
        sys.modules["dask"].config.set(scheduler="threads", num_workers=threads)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when loaded) torch."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


# cuBLAS gives the same sums run after run only with a fixed workspace per stream (CUDA >= 10.2),
# read when cuBLAS starts: set before the job's first CUDA operation.
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


def deterministic_torch(enabled: bool) -> None:
    """The config's ``deterministic``. On: torch picks a deterministic kernel wherever it has one
    (cuDNN's included) and warns, naming the operation, where it has none (the job logs the
    warning: :func:`job`); cuBLAS gets its fixed workspace. Off: torch's defaults, the fastest
    kernels, whose sums on a GPU may differ from run to run. Imports torch."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    import torch

    torch.use_deterministic_algorithms(enabled, warn_only=True)


def job_device_setting(setting: str, gpus: int) -> str:
    """The device setting a job computes with: ``auto`` becomes ``cpu`` for a job that asked for no
    GPU (its rule's ``gpu`` resource is 0), so that it neither uses a GPU its scheduler did not
    give it nor competes with the GPU jobs for one; an explicit setting (``cpu``, ``cuda:1``) stands."""
    return "cpu" if setting == "auto" and gpus <= 0 else setting


def resolve_device(device: str = "auto") -> str:
    """``auto`` picks CUDA when present, else CPU; anything else is returned as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


GPU_LOCK_DIR_VARIABLE = "TEMDENOISE_GPU_LOCK_DIR"


def _local_gpu_ids() -> list[str]:
    """GPU ids this process may use, found without initialising CUDA (which would freeze them)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [gpu for gpu in visible.split(",") if gpu.strip()]
    devices = [name for name in os.listdir("/dev") if re.fullmatch(r"nvidia\d+", name)]
    return sorted((name.removeprefix("nvidia") for name in devices), key=int)


@contextlib.contextmanager
def gpu_slots(count: int, poll_seconds: float = 5.0) -> Iterator[list[str]]:
    """Give a local GPU job its own ``count`` GPUs, held until the job ends.

    Snakemake's ``--resources gpu=N`` caps how many GPU jobs run at once but assigns no device, so
    each job claims free GPUs through one lock file per GPU (``fcntl.flock``; the kernel releases it
    when the process dies) in ``$TEMDENOISE_GPU_LOCK_DIR`` (default: a folder in the system temp
    dir, shared by every workflow on the machine) and restricts ``CUDA_VISIBLE_DEVICES`` to them.
    Under SLURM (``SLURM_JOB_ID`` set) the scheduler already did this, so nothing is claimed.
    Waits while every GPU is taken. Yields the claimed ids (empty when nothing was claimed).
    """
    gpu_ids = _local_gpu_ids()
    if count <= 0 or "SLURM_JOB_ID" in os.environ or not gpu_ids:
        yield []
        return
    if count > len(gpu_ids):
        raise RuntimeError(f"job asks for gpu={count} but this machine has {len(gpu_ids)} GPUs")
    default_dir = Path(tempfile.gettempdir()) / "temdenoise-gpu-locks"
    lock_dir = Path(os.environ.get(GPU_LOCK_DIR_VARIABLE, default_dir))
    lock_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as held:
        claimed: list[str] = []
        while True:
            for gpu in gpu_ids:
                if len(claimed) == count:
                    break
                if gpu in claimed:
                    continue
                lock = open(lock_dir / f"gpu{gpu}.lock", "w")
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    lock.close()
                    continue
                held.callback(lock.close)
                claimed.append(gpu)
            if len(claimed) == count:
                break
            logging.getLogger("temdenoise").info(
                "all GPUs busy; waiting for %d", count - len(claimed)
            )
            time.sleep(poll_seconds)
        previous = os.environ.get("CUDA_VISIBLE_DEVICES")
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(claimed)
        try:
            yield claimed
        finally:
            if previous is None:
                del os.environ["CUDA_VISIBLE_DEVICES"]
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = previous


FAIL_ONCE_VARIABLE = "TEMDENOISE_FAIL_ONCE"


def fail_once_for_testing(rule: str, wildcards: dict[str, str]) -> None:
    """Fault injection for the retry tests: fail the first attempt of each job of the rules named
    in ``$TEMDENOISE_FAIL_ONCE`` (comma-separated). A marker file under ``.snakemake/`` of the
    working directory (shared by local and cluster jobs) records that the job already failed once.
    """
    if rule not in os.environ.get(FAIL_ONCE_VARIABLE, "").split(","):
        return
    job_key = hashlib.sha256(repr(sorted(wildcards.items())).encode()).hexdigest()[:12]
    marker = Path(".snakemake", "temdenoise-fail-once", f"{rule}-{job_key}")
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    raise RuntimeError(f"{FAIL_ONCE_VARIABLE}={rule}: injected failure of the first attempt")


@dataclass
class Job:
    """What a workflow script needs from its Snakemake job."""

    threads: int
    seed: int
    config: dict[str, Any]
    log: logging.Logger
    gpus: int = 0

    @property
    def device(self) -> str:
        """The torch device of the config's ``device`` setting for a job asking for ``gpus`` GPUs
        (:func:`job_device_setting`). Every job that computes with torch asks for it first, so it
        also imports torch and sets its determinism (:func:`deterministic_torch`)."""
        deterministic_torch(bool(self.config.get("deterministic", True)))
        return resolve_device(job_device_setting(str(self.config.get("device", "auto")), self.gpus))


@contextlib.contextmanager
def job(snakemake: Any, seed: int | None = None) -> Iterator[Job]:
    """Set up a Snakemake ``script:`` job: output to ``snakemake.log[0]``, threads, seeds, device,
    the config's plugin families, and the provenance that the job's tables carry."""
    log_path = snakemake.log[0] if len(snakemake.log) else None
    stream = open(log_path, "w", buffering=1) if log_path else sys.stderr
    old_out, old_err = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = stream
    logger = logging.getLogger("temdenoise")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    # warnings go to the job's log as well: torch's names each operation without a deterministic kernel
    warnings_logger = logging.getLogger("py.warnings")
    warnings_logger.addHandler(handler)
    logging.captureWarnings(True)
    held_gpus = contextlib.ExitStack()
    try:
        fail_once_for_testing(snakemake.rule, dict(snakemake.wildcards.items()))
        # Claimed before anything initialises CUDA, which freezes the visible devices.
        requested_gpus = int(snakemake.resources.get("gpu", 0) or 0)
        gpus = held_gpus.enter_context(gpu_slots(requested_gpus))
        if gpus:
            logger.info("using GPU(s) %s", ",".join(gpus))
        limit_threads(snakemake.threads)
        config = snakemake.config
        # The config's plugin families, declared as at parse time, so the registry finds them.
        declare_config_families(config.get("plugins", {}))
        job_seed = int(config.get("seed", 0) if seed is None else seed)
        seed_everything(job_seed)
        device_setting = job_device_setting(str(config.get("device", "auto")), requested_gpus)
        with provenance.recording(config, device_setting):
            yield Job(
                threads=snakemake.threads,
                seed=job_seed,
                config=config,
                log=logger,
                gpus=requested_gpus,
            )
    finally:
        held_gpus.close()
        logging.captureWarnings(False)
        warnings_logger.removeHandler(handler)
        logger.removeHandler(handler)
        sys.stdout, sys.stderr = old_out, old_err
        if log_path:
            stream.close()


def derive_seed(master: int, *names: object) -> int:
    """A seed for one piece of work, stable across runs and machines (no Python ``hash``)."""
    digest = hashlib.sha256(repr((int(master), *map(str, names))).encode()).digest()
    return int.from_bytes(digest[:4], "little")
