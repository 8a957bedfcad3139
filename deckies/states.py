"""The decky runtime-state machine: what the engine last did to a decky or observed of it.

``state`` answers "what is running?", not "what should run?" (that is the decky's fields and services). Nothing
writes ``Decky.state`` except :func:`decky_state_set`, a compare-and-set under the decky's row lock that appends a
``…state`` event in the same transaction; ``Decky.save()`` refuses any other change of it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from deckies.choices import DeckyState
from deckies.models import Decky
from decnet_site.exceptions import ConflictError
from lifecycle.services import event_emit

logger = logging.getLogger(__name__)

_S = DeckyState
#: state -> states it may move to. Staying in a state is always allowed (it only refreshes error and last_seen).
LEGAL_DECKY_MOVES: dict[str, frozenset[str]] = {
    _S.PENDING: frozenset({_S.RUNNING, _S.DEGRADED, _S.FAILED, _S.TEARING_DOWN}),
    _S.RUNNING: frozenset({_S.DEGRADED, _S.FAILED, _S.TEARING_DOWN}),
    _S.DEGRADED: frozenset({_S.RUNNING, _S.FAILED, _S.TEARING_DOWN}),
    _S.FAILED: frozenset({_S.RUNNING, _S.DEGRADED, _S.TEARING_DOWN}),
    _S.TEARING_DOWN: frozenset({_S.TORN_DOWN, _S.TEARDOWN_FAILED}),
    _S.TORN_DOWN: frozenset({_S.RUNNING, _S.DEGRADED, _S.FAILED, _S.TEARING_DOWN}),
    _S.TEARDOWN_FAILED: frozenset({_S.RUNNING, _S.DEGRADED, _S.FAILED, _S.TEARING_DOWN, _S.TORN_DOWN}),
}


class DeckyStateError(ConflictError):
    """An unknown state or an illegal move (409); carries the legal next states."""

    code = "illegal_transition"


def can_move(current: str, new: str) -> bool:
    """Whether ``current → new`` is legal (staying put always is)."""
    return current == new or new in LEGAL_DECKY_MOVES.get(current, frozenset())


def assert_move(current: str, new: str) -> None:
    """Return if ``current → new`` is legal, else raise :class:`DeckyStateError` naming the legal moves."""
    if current not in LEGAL_DECKY_MOVES or new not in LEGAL_DECKY_MOVES:
        raise DeckyStateError(f"unknown decky state: {current!r} → {new!r}", legal_next=[])
    if not can_move(current, new):
        raise DeckyStateError(
            f"illegal decky state move: {current!r} → {new!r}",
            current=current,
            legal_next=sorted(LEGAL_DECKY_MOVES[current]),
        )


def state_topic(decky: Decky, suffix: str) -> str:
    """``decky.<name>.<suffix>`` for a fleet decky, ``topology.<id>.decky.<name>.<suffix>`` in a topology."""
    if decky.topology_id is None:
        return f"decky.{decky.name}.{suffix}"
    return f"topology.{decky.topology_id}.decky.{decky.name}.{suffix}"


def decky_state_set(decky: Decky | int, to: str, *, error: str = "", seen: bool = False) -> str | None:
    """Move a decky's state to ``to`` with ``error`` as its ``last_error`` (empty clears it); returns the previous
    state, or None when the decky no longer exists.

    Contract: runs in (or opens) a transaction and takes the decky's row lock; the move must be legal from the
    stored state (else :class:`DeckyStateError`). A change appends a ``…state`` event; ``seen`` stamps
    ``last_seen`` (the engine just saw it running).
    """
    pk = decky if isinstance(decky, int) else decky.pk
    with transaction.atomic():
        row = Decky.objects.select_for_update().filter(pk=pk).values_list("state", "name", "topology_id").first()
        if row is None:
            return None
        previous, name, topology_id = row
        assert_move(previous, to)
        now = timezone.now()
        changes: dict[str, Any] = {"state": to, "last_error": error[:4000], "updated_at": now}
        if seen:
            changes["last_seen"] = now
        Decky.objects.filter(pk=pk).update(**changes)
        if isinstance(decky, Decky):
            decky.state, decky.last_error = to, error
            decky._loaded_state = to
        if previous != to:
            target = decky if isinstance(decky, Decky) else Decky(pk=pk, name=name, topology_id=topology_id)
            event_emit(
                topic=state_topic(target, "state"),
                type="state",
                payload={
                    "decky_name": name,
                    "topology_id": None if topology_id is None else str(topology_id),
                    "previous_state": previous,
                    "state": to,
                    "error": error or None,
                },
            )
    return str(previous)
