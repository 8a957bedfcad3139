"""The decky runtime-state machine: every legal and illegal move, the compare-and-set writer, and the rule that
nothing in the code base writes a status or a state except through its machine."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

from deckies.choices import DeckyState
from deckies.models import Decky, StateWriteError
from deckies.states import LEGAL_DECKY_MOVES, DeckyStateError, assert_move, decky_state_set
from lifecycle.models import Event
from tests.deckies.factories import DeckyFactory, set_state

STATES = sorted(DeckyState.values)
LEGAL = {
    ("pending", "running"), ("pending", "degraded"), ("pending", "failed"), ("pending", "tearing_down"),
    ("running", "degraded"), ("running", "failed"), ("running", "tearing_down"),
    ("degraded", "running"), ("degraded", "failed"), ("degraded", "tearing_down"),
    ("failed", "running"), ("failed", "degraded"), ("failed", "tearing_down"),
    ("tearing_down", "torn_down"), ("tearing_down", "teardown_failed"),
    ("torn_down", "running"), ("torn_down", "degraded"), ("torn_down", "failed"), ("torn_down", "tearing_down"),
    ("teardown_failed", "running"), ("teardown_failed", "degraded"), ("teardown_failed", "failed"),
    ("teardown_failed", "tearing_down"), ("teardown_failed", "torn_down"),
}  # fmt: skip


def test_the_table_is_the_documented_one() -> None:
    assert {(a, b) for a, targets in LEGAL_DECKY_MOVES.items() for b in targets} == LEGAL


@pytest.mark.django_db
@pytest.mark.parametrize(("current", "new"), list(itertools.product(STATES, STATES)))
def test_every_move(current: str, new: str) -> None:
    decky = set_state(DeckyFactory.create(), current)
    events_before = Event.objects.filter(topic=f"decky.{decky.name}.state").count()
    if (current, new) in LEGAL or current == new:
        assert decky_state_set(decky, new, error="why") == current
        stored = Decky.objects.get(pk=decky.pk)
        assert (stored.state, stored.last_error) == (new, "why")
        appended = Event.objects.filter(topic=f"decky.{decky.name}.state").count() - events_before
        assert appended == (0 if current == new else 1)
    else:
        with pytest.raises(DeckyStateError) as caught:
            decky_state_set(decky, new)
        assert caught.value.status_code == 409
        assert caught.value.extra["legal_next"] == sorted(LEGAL_DECKY_MOVES[current])
        assert Decky.objects.get(pk=decky.pk).state == current


def test_unknown_states_are_refused() -> None:
    with pytest.raises(DeckyStateError, match="unknown"):
        assert_move("running", "exploded")


@pytest.mark.django_db
def test_save_refuses_a_state_written_by_hand() -> None:
    decky = DeckyFactory.create()
    decky.state = DeckyState.RUNNING
    with pytest.raises(StateWriteError):
        decky.save()
    with pytest.raises(StateWriteError):
        Decky(name="new", state=DeckyState.RUNNING).save()


ROOT = Path(__file__).resolve().parents[2]
#: The only modules allowed to write these columns: each machine's own writer.
WRITERS = {
    "state": {"deckies/states.py"},
    # deckies/services.py writes Host.status, which the operator sets (enabled or not); it is not a machine's.
    "status": {"topology/services.py", "lifecycle/services.py", "deckies/services.py"},
}


def test_nothing_else_writes_a_status_or_a_state() -> None:
    """A scan of the code (not the tests or migrations) for ``.update(state=…)`` / ``.update(status=…)`` and
    ``.state = …`` / ``.status = …`` assignments outside the machines' writers."""
    offenders = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith((".venv/", "tests/", "var/", "images/", "bench/")) or "/migrations/" in relative:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            fields: set[str] = set()
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update":
                fields = {kw.arg for kw in node.keywords if kw.arg}
            elif isinstance(node, ast.Assign):
                fields = {t.attr for t in node.targets if isinstance(t, ast.Attribute)}
            for field in fields & set(WRITERS):
                if relative not in WRITERS[field]:
                    offenders.append(f"{relative}:{getattr(node, 'lineno', '?')} writes {field}")
    assert offenders == []
