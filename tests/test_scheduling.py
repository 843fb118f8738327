"""The scheduler patch keeps one daemon re-evaluation timer pending, and still wakes the loop; it
is applied only to the Snakemake releases where the pile-up was confirmed."""

from __future__ import annotations

import threading
import time

from snakemake.scheduling.job_scheduler import JobScheduler

from temdenoise.scheduling import CONFIRMED_VERSIONS, one_pending_reevaluation


class LoopStandIn:
    """The semaphore of a JobScheduler that the re-evaluation timer releases; the test gives it the
    (patched) method."""

    def __init__(self) -> None:
        self._open_jobs = threading.Semaphore(0)


def live_timers() -> int:
    return sum(isinstance(thread, threading.Timer) and thread.is_alive() for thread in threading.enumerate())


def test_one_timer_pending_per_window_and_each_fires_a_wakeup():
    # Judged as a confirmed release whatever is installed: the installed one's internals must
    # still be the patched ones (else the patch is stale and this fails).
    assert one_pending_reevaluation(version=CONFIRMED_VERSIONS[0])
    assert one_pending_reevaluation(version=CONFIRMED_VERSIONS[0]), "a second call must keep the patch"
    LoopStandIn._schedule_reevalutation = JobScheduler._schedule_reevalutation
    loop = LoopStandIn()
    before = live_timers()
    for _ in range(50):   # 50 passes of the loop inside one window (Snakemake's own arms 50 timers)
        loop._schedule_reevalutation(0.2)
    assert live_timers() - before == 1
    assert loop._pending_reevaluation.daemon, "a pending timer must not hold up the end of a run"
    assert not loop._open_jobs.acquire(timeout=0.05), "woke before the window ended"
    assert loop._open_jobs.acquire(timeout=2.0), "the pending timer never woke the loop"
    assert not loop._open_jobs.acquire(timeout=0.3), "50 passes must give one wake-up, not 50"
    # The pass that the wake-up triggers arms the next timer (the rate limiter relies on it).
    loop._schedule_reevalutation(0.05)
    assert loop._open_jobs.acquire(timeout=2.0)
    time.sleep(0.05)
    assert live_timers() == before


def test_unconfirmed_release_is_left_alone_with_one_warning_line(capsys):
    method = JobScheduler._schedule_reevalutation
    assert not one_pending_reevaluation(version="9.99.0")
    assert JobScheduler._schedule_reevalutation is method
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and "not applied" in warning and "9.99.0" in warning
    assert "snakemake#2967" in warning
