"""Lifecycle rows (one per operation attempt) and the append-only event log."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from lifecycle.choices import OPEN_STATUSES, TERMINAL_STATUSES, LifecycleOperation, LifecycleStatus


class DeckyLifecycle(models.Model):
    """One attempt of one operation on one decky: ``pending`` → ``running`` → ``succeeded`` | ``failed``.

    Rows are immutable once terminal (every status write is a conditional ``UPDATE`` in :mod:`lifecycle.services`,
    and the admin is read-only); a retry writes a new row. ``decky_name`` is the seed's contract and keeps the name
    for history; ``decky`` and ``topology`` are the real references (``SET_NULL``, so a row outlives what it acted
    on). Rows submitted together share a ``job`` id and are run by one task (a topology deploy, a bulk deploy).

    A running row is *leased* by the process that runs it (``worker`` = ``cluster@host:pid:start``): the process
    renews ``lease_expires_at`` while it works, and a row whose lease lapsed is failed by the reaper with an
    explanation, so no row stays open when its worker is gone.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    decky_name = models.CharField(max_length=128, db_index=True, help_text="Decky the operation acts on.")
    decky = models.ForeignKey(
        "deckies.Decky",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="lifecycle_rows",
        help_text="The decky, while it exists.",
    )
    topology = models.ForeignKey(
        "topology.Topology",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="lifecycle_rows",
        help_text="The topology the decky belongs to (empty: the flat fleet).",
    )
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
    message = models.TextField(blank=True, default="", help_text="What happened, in words (success or failure).")
    job = models.UUIDField(null=True, blank=True, db_index=True, help_text="Rows submitted together, run by one task.")
    params = models.JSONField(default=dict, blank=True, help_text="Parameters of the operation (service, trigger).")
    actor = models.CharField(max_length=150, blank=True, default="", help_text="Who asked for the operation.")
    worker = models.CharField(max_length=200, blank=True, default="", help_text="Process that claimed the row.")
    lease_expires_at = models.DateTimeField(null=True, blank=True, help_text="Renewed by the worker while it runs.")
    queued_at = models.DateTimeField(null=True, blank=True, help_text="When the task was last handed to the broker.")
    queue_count = models.PositiveSmallIntegerField(default=0, help_text="How often the reaper handed it over again.")
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
        indexes = [
            models.Index(fields=["decky_name", "operation", "status"], name="lifecycle_open_lookup"),
            # The reaper's and the request path's questions: open rows of a decky, lapsed leases, old pending rows.
            models.Index(fields=["decky", "status"], name="lifecycle_decky_status"),
            models.Index(fields=["status", "lease_expires_at"], name="lifecycle_status_lease"),
            # Lists, the dashboard's time ranges and the age sweep all read rows by when they started.
            models.Index(fields=["started_at"], name="lifecycle_started_at"),
        ]

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
