"""django-q2 task entry points of the job layer: each loads by key, calls one service and holds no logic.

Tasks are enqueued by dotted path with primary-key arguments only, so a later move to another task runner only
changes the enqueue call.
"""

from __future__ import annotations

from typing import Any

from lifecycle import jobs, reaper


def run_job_task(job_id: str) -> None:
    """Run lifecycle job ``job_id`` (see :func:`lifecycle.jobs.run_job`); failures are recorded on its rows."""
    jobs.run_job(job_id)


def reap_task() -> dict[str, Any]:
    """Scheduled every minute: one sweep of :func:`lifecycle.reaper.reap`; returns what it did."""
    return reaper.reap().as_dict()
