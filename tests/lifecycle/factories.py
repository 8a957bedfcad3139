"""Lifecycle rows for tests, made through the services (so events and jobs are as in production)."""

from __future__ import annotations

from typing import Any

from deckies.models import Decky
from lifecycle import services
from lifecycle.models import DeckyLifecycle
from lifecycle.services import RowSpec


def make_row(
    decky_name: str | None = None,
    operation: str = "deploy",
    *,
    decky: Decky | None = None,
    status: str = "pending",
    **params: Any,
) -> DeckyLifecycle:
    """One row, acting on ``decky`` when given (by reference and name) or only on ``decky_name``."""
    spec = RowSpec(
        decky_name=decky.name if decky is not None else str(decky_name),
        operation=operation,
        decky_id=None if decky is None else decky.pk,
        topology_id=None if decky is None else decky.topology_id,
        params=params,
    )
    (row,) = services.lifecycle_create([spec], status=status)
    return row
