"""django-q2 task entry points for deckies: each loads by key, calls one service and holds no logic.

Tasks are enqueued by dotted path (``deckies.tasks.<name>``) with primary-key arguments only, so a later move to
another task runner only changes the enqueue call.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from typing import Any

from deckies import operations

logger = logging.getLogger(__name__)


def run_operation_task(lifecycle_id: str) -> None:
    """Run the operation of lifecycle row ``lifecycle_id`` (see :func:`deckies.operations.run_operation`)."""
    operations.run_operation(lifecycle_id)


def auto_mutate_task() -> int:
    """Scheduled every minute: request a mutation of each deployed decky whose interval elapsed; returns how many."""
    return len(operations.auto_mutate_due())


def reconcile_task(heal: bool = False) -> dict[str, Any] | None:
    """Scheduled: compare the database with Docker (``deckies.reconcile.reconcile``) and return the report.

    Returns None (and logs) while the reconciler module is not installed, so the schedule can exist before it.
    """
    try:
        module = importlib.import_module("deckies.reconcile")
    except ModuleNotFoundError as exc:
        if exc.name != "deckies.reconcile":
            raise
        logger.warning("deckies.reconcile is not available; reconcile skipped")
        return None
    report = module.reconcile(heal=heal)
    as_dict = getattr(report, "as_dict", None)
    if callable(as_dict):
        result = as_dict()
        if isinstance(result, dict):
            return result
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return dataclasses.asdict(report)
    return {"report": repr(report)}
