"""The scheduler patch keeps one daemon re-evaluation timer pending, and still wakes the loop."""

from __future__ import annotations

import threading
import time

from snakemake.scheduling.job_scheduler import JobScheduler

from temdenoise.scheduling import one_pending_reevaluation


class LoopStandIn:
    """The semaphore of a JobScheduler that the re-evaluation timer releases; the test gives it the
    (patched) method."""

    def __init__(self) -> None:
        self._open_jobs = threading.Semaphore(0)


def live_timers() -> int:
    return sum(isinstance(thread, threading.Timer) and thread.is_alive() for thread in threading.enumerate())


def test_one_timer_pending_per_window_and_each_fires_a_wakeup():
    assert one_pending_reevaluation()
    assert one_pending_reevaluation(), "a second call must keep the patch"
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
