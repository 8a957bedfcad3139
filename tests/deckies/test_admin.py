"""Admin actions deploy / mutate / teardown: they call the operations and link to the lifecycle rows."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from deckies.choices import DeckyState
from deckies.models import Decky
from lifecycle.models import DeckyLifecycle
from tests.deckies import fakes
from tests.deckies.factories import DeckyFactory, set_state
from tests.lifecycle.factories import make_row

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:deckies_decky_changelist"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Any) -> fakes.FakeEngine:
    settings.DECNET_DATA_DIR = tmp_path
    return fakes.install(monkeypatch)


@pytest.fixture
def staff(operator: User) -> Client:
    operator.is_staff = True
    operator.save()
    client = Client()
    client.force_login(operator)
    return client


def _act(client: Client, action: str, deckies: list[Decky]) -> Any:
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [d.pk for d in deckies]},
        follow=True,
    )


def test_changelist_offers_the_actions(staff: Client) -> None:
    DeckyFactory.create()
    body = staff.get(reverse(CHANGELIST)).content.decode()
    for action in ("deploy_selected", "mutate_selected", "teardown_selected"):
        assert action in body


def test_deploy_action_runs_and_links_to_rows(
    staff: Client, fake: fakes.FakeEngine, django_capture_on_commit_callbacks: Any
) -> None:
    a, b = DeckyFactory.create(), DeckyFactory.create()
    with django_capture_on_commit_callbacks(execute=True):
        response = _act(staff, "deploy_selected", [a, b])
    assert response.status_code == 200
    rows = DeckyLifecycle.objects.filter(operation="deploy")
    assert {row.status for row in rows} == {"succeeded"}
    text = response.content.decode()
    assert "Deploy requested for 2 decky(s)" in text
    assert reverse("admin:lifecycle_deckylifecycle_changelist") + "?id__in=" in text
    assert sorted(call[0] for call in fake.names("deploy_deckies")) == sorted([a.name, b.name])
    # The link opens the changelist filtered to exactly those rows.
    link = text.split('href="')[1].split('"')[0].replace("&amp;", "&")
    assert staff.get(link).status_code == 200


def test_mutate_and_teardown_actions(
    staff: Client, fake: fakes.FakeEngine, django_capture_on_commit_callbacks: Any
) -> None:
    decky = set_state(DeckyFactory.create(), DeckyState.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        _act(staff, "mutate_selected", [decky])
    with django_capture_on_commit_callbacks(execute=True):
        _act(staff, "teardown_selected", [decky])
    assert list(DeckyLifecycle.objects.order_by("started_at").values_list("operation", "status")) == [
        ("mutate", "succeeded"),
        ("teardown", "succeeded"),
    ]
    assert Decky.objects.get(pk=decky.pk).state == DeckyState.TORN_DOWN


def test_a_refused_decky_is_reported_without_hiding_the_others(staff: Client, fake: fakes.FakeEngine) -> None:
    busy, free = DeckyFactory.create(name="busy"), DeckyFactory.create(name="free")
    make_row(decky=busy, operation="deploy")
    response = _act(staff, "teardown_selected", [busy, free])
    text = response.content.decode()
    assert "Teardown refused: busy" in text
    assert "Teardown requested for 1 decky(s)" in text


def test_viewers_do_not_get_the_actions(viewer: User) -> None:
    viewer.is_staff = True
    viewer.save()
    client = Client()
    client.force_login(viewer)
    DeckyFactory.create()
    body = client.get(reverse(CHANGELIST)).content.decode()
    assert "deploy_selected" not in body
