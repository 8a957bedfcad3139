"""The topology status machine: seven states and their legal moves.

``torn_down`` is terminal. ``degraded`` is entered when a post-deploy check or a live change finds containers
that are not running. Nothing writes ``Topology.status`` except :func:`topology.services.topology_transition`,
which checks moves here.
"""

from __future__ import annotations

from django.db import models

from decnet_site.exceptions import ConflictError


class TopologyStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DEPLOYING = "deploying", "Deploying"
    ACTIVE = "active", "Active"
    DEGRADED = "degraded", "Degraded"
    FAILED = "failed", "Failed"
    TEARING_DOWN = "tearing_down", "Tearing down"
    TORN_DOWN = "torn_down", "Torn down"


ALL_STATUSES: frozenset[str] = frozenset(TopologyStatus.values)
TRANSITIONAL_STATUSES: frozenset[str] = frozenset({TopologyStatus.DEPLOYING, TopologyStatus.TEARING_DOWN})
TERMINAL_STATUSES: frozenset[str] = frozenset({TopologyStatus.TORN_DOWN})
#: Statuses in which the topology's containers exist, so changes to its deckies are applied live.
LIVE_STATUSES: frozenset[str] = frozenset({TopologyStatus.ACTIVE, TopologyStatus.DEGRADED})
#: Child rows (LANs, deckies, edges) may be edited only before the first deploy.
EDITABLE_STATUSES: frozenset[str] = frozenset({TopologyStatus.PENDING})
#: A topology may be deleted only when nothing of it can be running.
DELETABLE_STATUSES: frozenset[str] = frozenset(
    {TopologyStatus.PENDING, TopologyStatus.TORN_DOWN, TopologyStatus.FAILED}
)

_LEGAL: dict[str, frozenset[str]] = {
    TopologyStatus.PENDING: frozenset({TopologyStatus.DEPLOYING, TopologyStatus.TORN_DOWN}),
    TopologyStatus.DEPLOYING: frozenset(
        {TopologyStatus.ACTIVE, TopologyStatus.FAILED, TopologyStatus.DEGRADED, TopologyStatus.TEARING_DOWN}
    ),
    TopologyStatus.ACTIVE: frozenset({TopologyStatus.DEGRADED, TopologyStatus.TEARING_DOWN}),
    TopologyStatus.DEGRADED: frozenset({TopologyStatus.ACTIVE, TopologyStatus.TEARING_DOWN}),
    TopologyStatus.FAILED: frozenset({TopologyStatus.TEARING_DOWN}),
    TopologyStatus.TEARING_DOWN: frozenset({TopologyStatus.TORN_DOWN, TopologyStatus.DEGRADED}),
    TopologyStatus.TORN_DOWN: frozenset(),
}


class TopologyStatusError(ConflictError):
    """An unknown status or an illegal move; carries the legal next states of the current one."""

    code = "illegal_transition"


def legal_next(current: str) -> frozenset[str]:
    """The statuses ``current`` may move to; raises :class:`TopologyStatusError` for an unknown status."""
    if current not in _LEGAL:
        raise TopologyStatusError(f"unknown status: {current!r}", legal_next=[])
    return _LEGAL[current]


def assert_transition(current: str, new: str) -> None:
    """Return if ``current → new`` is legal, else raise :class:`TopologyStatusError` naming the legal moves."""
    if current not in ALL_STATUSES:
        raise TopologyStatusError(f"unknown current status: {current!r}", legal_next=[])
    if new not in ALL_STATUSES:
        raise TopologyStatusError(f"unknown new status: {new!r}", legal_next=sorted(_LEGAL[current]))
    if new not in _LEGAL[current]:
        raise TopologyStatusError(
            f"illegal transition: {current!r} → {new!r}", current=current, legal_next=sorted(_LEGAL[current])
        )
