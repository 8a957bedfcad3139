"""Lifecycle operations and statuses, with their groups."""

from __future__ import annotations

from django.db import models


class LifecycleOperation(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    MUTATE = "mutate", "Mutate"
    TEARDOWN = "teardown", "Tear down"
    SERVICE_ADD = "service_add", "Add service"
    SERVICE_REMOVE = "service_remove", "Remove service"
    REPAIR = "repair", "Repair"


class LifecycleStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


OPEN_STATUSES: frozenset[str] = frozenset({LifecycleStatus.PENDING, LifecycleStatus.RUNNING})
TERMINAL_STATUSES: frozenset[str] = frozenset({LifecycleStatus.SUCCEEDED, LifecycleStatus.FAILED})

#: status -> statuses a row may move to. Terminal rows never move again; a retry writes a new row.
LEGAL_LIFECYCLE_MOVES: dict[str, frozenset[str]] = {
    LifecycleStatus.PENDING: frozenset({LifecycleStatus.RUNNING, LifecycleStatus.SUCCEEDED, LifecycleStatus.FAILED}),
    LifecycleStatus.RUNNING: frozenset({LifecycleStatus.SUCCEEDED, LifecycleStatus.FAILED}),
    LifecycleStatus.SUCCEEDED: frozenset(),
    LifecycleStatus.FAILED: frozenset(),
}

#: Error text is bounded so a runaway stderr cannot bloat the table.
ERROR_MAX_LENGTH = 2000
