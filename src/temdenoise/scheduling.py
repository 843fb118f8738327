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

Upstream: https://github.com/snakemake/snakemake/issues/2967. The patch is applied only to the
Snakemake releases in :data:`CONFIRMED_VERSIONS`, where the pile-up was measured here
(``benchmarks/bench_scheduler.py``), and only while the method still arms a bare
``threading.Timer``; on any other release it prints one warning line and changes nothing, so an
upstream fix is never overridden. To confirm a new release, run ``benchmarks/bench_scheduler.py``
with it and add it here when the unpatched runs show the pile-up.
"""

from __future__ import annotations

import inspect
import sys
import threading
from typing import Any

PATCHED = "_temdenoise_one_pending"

# Snakemake releases whose scheduler was measured to pile up timers (benchmarks/bench_scheduler.py).
CONFIRMED_VERSIONS = ("9.27.1",)


def _skip(reason: str) -> bool:
    sys.stderr.write(f"temdenoise: Snakemake scheduler timer patch not applied ({reason}; snakemake#2967)\n")
    return False


def one_pending_reevaluation(version: str | None = None) -> bool:
    """Patch ``JobScheduler._schedule_reevalutation`` (Snakemake's spelling); return whether patched.

    ``version`` is the Snakemake release to judge by (default: the installed one). A release not in
    :data:`CONFIRMED_VERSIONS`, or one whose method no longer arms a bare timer, is left alone with
    a one-line warning on stderr.
    """
    try:
        import snakemake
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:
        return _skip("Snakemake's JobScheduler not found")
    version = version or snakemake.__version__
    if version not in CONFIRMED_VERSIONS:
        return _skip(f"the timer pile-up is confirmed for Snakemake {', '.join(CONFIRMED_VERSIONS)}, not {version}")
    original = getattr(JobScheduler, "_schedule_reevalutation", None)
    if original is None:
        return _skip("JobScheduler._schedule_reevalutation no longer exists")
    if getattr(original, PATCHED, False):
        return True
    if "threading.Timer(" not in inspect.getsource(original):
        return _skip("JobScheduler._schedule_reevalutation no longer arms a bare threading.Timer")

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
