"""Lifecycle rows (one per operation attempt) and the append-only event log."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from lifecycle.choices import OPEN_STATUSES, TERMINAL_STATUSES, LifecycleOperation, LifecycleStatus


class DeckyLifecycle(models.Model):
    """One attempt of one operation on one decky: ``pending`` → ``running`` → ``succeeded`` | ``failed``.

    Rows are immutable once terminal (enforced by :mod:`lifecycle.services` with conditional updates, and by the
    admin); a retry writes a new row. ``decky_name`` is a loose key (no foreign key) so a row outlives its decky,
    as an audit record should. Topology deckies are recorded as ``t:<topology id>:<decky name>``.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    decky_name = models.CharField(max_length=128, db_index=True, help_text="Decky the operation acts on.")
    # NULL (not "") means the local engine, as in the seed table and its API shape.
    host_uuid = models.CharField(  # noqa: DJ001
        max_length=64, null=True, blank=True, db_index=True, help_text="Docker host; empty for the local engine."
    )
    operation = models.CharField(max_length=32, choices=LifecycleOperation.choices, db_index=True)
    status = models.CharField(
        max_length=16, choices=LifecycleStatus.choices, default=LifecycleStatus.PENDING, db_index=True
    )
    error = models.TextField(  # noqa: DJ001 - NULL means "no error", distinct from an empty message
        null=True, blank=True, help_text="'<ErrorType>: <message>' when the attempt failed."
    )
    started_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "decky_lifecycle"
        ordering = ("started_at",)
        verbose_name = "lifecycle row"
        constraints = [
            models.CheckConstraint(condition=Q(status__in=list(LifecycleStatus.values)), name="lifecycle_status_valid"),
            models.CheckConstraint(
                condition=Q(operation__in=list(LifecycleOperation.values)), name="lifecycle_operation_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=sorted(TERMINAL_STATUSES), completed_at__isnull=False)
                | Q(status__in=sorted(OPEN_STATUSES), completed_at__isnull=True),
                name="lifecycle_completed_iff_terminal",
            ),
        ]
        indexes = [models.Index(fields=["decky_name", "operation", "status"], name="lifecycle_open_lookup")]

    def __str__(self) -> str:
        return f"{self.operation} {self.decky_name} [{self.status}]"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Event(models.Model):
    """Append-only log of every state change, addressed by a dotted topic.

    Topics follow DECNET's bus: ``decky.<name>.lifecycle``, ``decky.<name>.service.added``,
    ``decky.<name>.service.removed``, ``decky.<name>.mutation``, ``topology.<id>.status``, ...
    """

    topic = models.CharField(max_length=200, db_index=True)
    type = models.CharField(max_length=64, db_index=True)
    payload = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ("-at", "-id")

    def __str__(self) -> str:
        return f"{self.topic} ({self.type})"
