"""The deckies' scheduled task entry points: each calls one service and returns what it did."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from deckies import tasks
from deckies.choices import DeckyState
from deckies.models import Decky
from lifecycle.models import DeckyLifecycle
from tests.deckies import fakes
from tests.deckies.factories import DeckyFactory, set_state

pytestmark = pytest.mark.django_db


def test_auto_mutate_task_counts_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    fakes.install(monkeypatch)
    decky = set_state(DeckyFactory.create(mutate_interval=timedelta(minutes=1)), DeckyState.RUNNING)
    Decky.objects.filter(pk=decky.pk).update(last_mutated=timezone.now() - timedelta(minutes=2))
    assert tasks.auto_mutate_task() == 1
    assert tasks.auto_mutate_task() == 0  # last_mutated was committed with the request: not due again
    assert DeckyLifecycle.objects.filter(operation="mutate").count() == 1


def test_reconcile_task_returns_the_report_of_every_scope(monkeypatch: pytest.MonkeyPatch, settings: object) -> None:
    fakes.install(monkeypatch)
    set_state(DeckyFactory.create(name="web"), DeckyState.RUNNING)
    report = tasks.reconcile_task()
    assert report["engine_error"] is None
    assert report["heal"] is True  # DECNET_AUTO_HEAL is on by default
    (web,) = report["deckies"]
    assert (web["name"], web["missing"]) == ("web", ["base", "ssh", "http"])
    assert DeckyLifecycle.objects.get(decky__name="web").operation == "repair"
