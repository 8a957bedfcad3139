"""Decky, host and network choices."""

from __future__ import annotations

from django.db import models


class DeckyState(models.TextChoices):
    """What the engine last observed or did; the desired shape lives in the decky's fields and services."""

    PENDING = "pending", "Pending (not deployed)"
    RUNNING = "running", "Running"
    DEGRADED = "degraded", "Degraded"
    FAILED = "failed", "Failed"
    TEARING_DOWN = "tearing_down", "Tearing down"
    TORN_DOWN = "torn_down", "Torn down"
    TEARDOWN_FAILED = "teardown_failed", "Teardown failed"


#: States in which containers of the decky are expected to exist.
DEPLOYED_STATES: frozenset[str] = frozenset({DeckyState.RUNNING, DeckyState.DEGRADED})


class HostStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    UNREACHABLE = "unreachable", "Unreachable"
    DISABLED = "disabled", "Disabled"


class NetworkDriver(models.TextChoices):
    BRIDGE = "bridge", "Bridge (user-defined)"
    MACVLAN = "macvlan", "macvlan (on a parent interface)"
