"""Keep Snakemake's scheduler loop from waking itself ever more often as a run goes on.

Snakemake 9's ``JobScheduler`` re-arms a rate-limit timer (``threading.Timer`` of the
``--max-jobs-per-timespan`` window) at the end of every pass of its loop and never cancels the one
already pending. A timer's firing wakes the loop, which arms the next timer, so the number of live
timers never falls, and every wake-up that is not a timer's (a job finishing) adds one for good.
After N such wake-ups the loop runs N / window times a second. Measured in the laptop config
(``profiles/default``: greedy selector, 5 s window): 314 live timers after 310 jobs, 178,000
timer threads started, and the ``snakemake`` process at 21% of a core while a 2-thread training
job waited on the other 179% of the two cores. The timers are also not daemon threads, so Python
waits for the last one when a run ends.

:func:`one_pending_reevaluation` replaces the method with one that keeps at most one daemon timer
pending: the loop still re-evaluates once per window after each pass (what the rate limiter
needs), but timers no longer pile up. The workflow calls it from ``workflow/rules/common.smk``.
"""

from __future__ import annotations

import threading
from typing import Any

PATCHED = "_temdenoise_one_pending"


def one_pending_reevaluation() -> bool:
    """Patch ``JobScheduler._schedule_reevalutation`` (Snakemake's spelling); return whether patched.

    A Snakemake without that method (a later release that reworked its loop) is left alone.
    """
    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:
        return False
    original = getattr(JobScheduler, "_schedule_reevalutation", None)
    if original is None:
        return False
    if getattr(original, PATCHED, False):
        return True

    def schedule_reevaluation(self: Any, delay: float) -> None:
        if getattr(self, "_pending_reevaluation", None) is not None:
            return

        def fire() -> None:
            # Cleared before the wake-up, so the pass it triggers arms the next timer.
            self._pending_reevaluation = None
            self._open_jobs.release()

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        self._pending_reevaluation = timer
        timer.start()

    setattr(schedule_reevaluation, PATCHED, True)
    JobScheduler._schedule_reevalutation = schedule_reevaluation
    return True
