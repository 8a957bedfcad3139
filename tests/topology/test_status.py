"""The topology status machine: every legal and illegal (from, to) pair of the seven states."""

from __future__ import annotations

import itertools

import pytest

from topology.status import ALL_STATUSES, TopologyStatusError, assert_transition, legal_next

LEGAL = {
    ("pending", "deploying"),
    ("pending", "torn_down"),
    ("deploying", "active"),
    ("deploying", "degraded"),
    ("deploying", "failed"),
    ("deploying", "tearing_down"),
    ("active", "degraded"),
    ("active", "tearing_down"),
    ("degraded", "active"),
    ("degraded", "tearing_down"),
    ("failed", "tearing_down"),
    ("tearing_down", "torn_down"),
    ("tearing_down", "degraded"),
}
STATES = sorted(ALL_STATUSES)
ALL_PAIRS = list(itertools.product(STATES, STATES))


def test_there_are_seven_states() -> None:
    assert len(STATES) == 7


@pytest.mark.parametrize(("current", "new"), sorted(LEGAL))
def test_legal_transition_passes(current: str, new: str) -> None:
    assert_transition(current, new)
    assert new in legal_next(current)


@pytest.mark.parametrize(("current", "new"), sorted(set(ALL_PAIRS) - LEGAL))
def test_illegal_transition_raises_with_legal_next(current: str, new: str) -> None:
    with pytest.raises(TopologyStatusError) as info:
        assert_transition(current, new)
    assert info.value.extra["legal_next"] == sorted(legal_next(current))
    assert info.value.status_code == 409


def test_torn_down_is_terminal() -> None:
    assert legal_next("torn_down") == frozenset()


@pytest.mark.parametrize(("current", "new"), [("bogus", "pending"), ("pending", "bogus")])
def test_unknown_status_raises(current: str, new: str) -> None:
    with pytest.raises(TopologyStatusError, match="unknown"):
        assert_transition(current, new)


def test_legal_next_unknown_raises() -> None:
    with pytest.raises(TopologyStatusError):
        legal_next("bogus")
