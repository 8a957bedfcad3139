"""Lifecycle API: the polling endpoint, the row list/detail with filters, and the event log with topic filters."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from lifecycle import services
from lifecycle.models import DeckyLifecycle, Event
from tests.lifecycle.factories import make_row

pytestmark = pytest.mark.django_db

POLL = "/api/v1/deckies/lifecycle/"
LIST = "/api/v1/lifecycle/"
EVENTS = "/api/v1/events/"


def _rows(n: int, **kwargs: str) -> list[DeckyLifecycle]:
    rows = []
    base = timezone.now() - timedelta(minutes=n)
    for index in range(n):
        row = make_row(kwargs.get("decky", f"d-{index}"), "deploy")
        DeckyLifecycle.objects.filter(pk=row.pk).update(started_at=base + timedelta(minutes=index))
        rows.append(row)
    return rows


class TestPoll:
    def test_repeated_and_comma_ids_ordered_by_start(self, viewer_client: APIClient) -> None:
        a, b, c = _rows(3)
        response = viewer_client.get(f"{POLL}?ids={c.pk}&ids={a.pk},{b.pk}")
        assert response.status_code == 200
        rows = response.json()["rows"]
        assert [row["id"] for row in rows] == [str(a.pk), str(b.pk), str(c.pk)]
        assert set(rows[0]) == {
            "id",
            "decky_name",
            "decky_id",
            "topology_id",
            "host_uuid",
            "operation",
            "status",
            "error",
            "message",
            "actor",
            "worker",
            "started_at",
            "updated_at",
            "completed_at",
        }

    def test_unknown_and_malformed_ids_are_omitted(self, viewer_client: APIClient) -> None:
        (row,) = _rows(1)
        response = viewer_client.get(f"{POLL}?ids={row.pk},{uuid.uuid4()},garbage")
        assert [item["id"] for item in response.json()["rows"]] == [str(row.pk)]

    @pytest.mark.parametrize("query", ["", "?ids=", "?ids=,,", "?other=1"])
    def test_no_ids_is_400(self, viewer_client: APIClient, query: str) -> None:
        response = viewer_client.get(f"{POLL}{query}")
        assert response.status_code == 400
        assert "ids" in response.json()["fields"]

    def test_more_than_200_ids_is_400(self, viewer_client: APIClient) -> None:
        ids = ",".join(str(uuid.uuid4()) for _ in range(201))
        assert viewer_client.get(f"{POLL}?ids={ids}").status_code == 400
        ids = ",".join(str(uuid.uuid4()) for _ in range(200))
        assert viewer_client.get(f"{POLL}?ids={ids}").status_code == 200

    def test_operator_may_poll_and_anonymous_may_not(self, operator_client: APIClient, anon_client: APIClient) -> None:
        (row,) = _rows(1)
        assert operator_client.get(f"{POLL}?ids={row.pk}").status_code == 200
        assert anon_client.get(f"{POLL}?ids={row.pk}").status_code in (401, 403)

    def test_one_query_for_the_rows(self, viewer_client: APIClient, django_assert_max_num_queries: object) -> None:
        rows = _rows(50)
        viewer_client.get(f"{POLL}?ids={rows[0].pk}")
        with django_assert_max_num_queries(4):  # type: ignore[operator]
            viewer_client.get(f"{POLL}?ids={','.join(str(r.pk) for r in rows)}")


class TestLifecycleList:
    def test_newest_first_with_filters(self, viewer_client: APIClient) -> None:
        old, new = _rows(2, decky="web")
        services.lifecycle_fail(old.pk, "boom")
        mutate = make_row("db", "mutate")

        def ids(query: str = "") -> list[str]:
            response = viewer_client.get(f"{LIST}{query}")
            assert response.status_code == 200, response.json()
            return [row["id"] for row in response.json()["results"]]

        assert ids() == [str(mutate.pk), str(new.pk), str(old.pk)]
        assert ids("?decky=web") == [str(new.pk), str(old.pk)]
        assert ids("?operation=mutate") == [str(mutate.pk)]
        assert ids("?status=failed") == [str(old.pk)]
        assert ids("?status=failed&status=pending") == [str(mutate.pk), str(new.pk), str(old.pk)]
        since = (timezone.now() - timedelta(seconds=90)).isoformat().replace("+00:00", "Z")
        assert ids(f"?since={since}") == [str(mutate.pk), str(new.pk)]

    @pytest.mark.parametrize("query", ["?status=bogus", "?operation=explode", "?since=yesterday"])
    def test_bad_filters_are_400(self, viewer_client: APIClient, query: str) -> None:
        assert viewer_client.get(f"{LIST}{query}").status_code == 400

    def test_detail(self, viewer_client: APIClient) -> None:
        (row,) = _rows(1)
        assert viewer_client.get(f"{LIST}{row.pk}/").json()["decky_name"] == row.decky_name
        assert viewer_client.get(f"{LIST}{uuid.uuid4()}/").status_code == 404

    def test_read_only(self, operator_client: APIClient) -> None:
        (row,) = _rows(1)
        assert operator_client.post(LIST, {}, format="json").status_code == 405
        assert operator_client.delete(f"{LIST}{row.pk}/").status_code == 405


class TestEvents:
    @pytest.fixture
    def events(self) -> list[Event]:
        topics = [
            "decky.web-01.lifecycle",
            "decky.web-01.service.added",
            "decky.web-010.state",
            "decky.db.mutation",
            "topology.abc.status",
        ]
        return [services.event_emit(topic=topic, type=topic.rsplit(".", 1)[-1]) for topic in topics]

    def _topics(self, client: APIClient, query: str) -> list[str]:
        response = client.get(f"{EVENTS}{query}")
        assert response.status_code == 200, response.json()
        return sorted(item["topic"] for item in response.json()["results"])

    def test_topic_filters(self, viewer_client: APIClient, events: list[Event]) -> None:
        assert self._topics(viewer_client, "?topic=decky.db.mutation") == ["decky.db.mutation"]
        assert self._topics(viewer_client, "?topic=decky.web-01.") == [
            "decky.web-01.lifecycle",
            "decky.web-01.service.added",
        ]
        assert self._topics(viewer_client, "?topic=decky.web-01.>") == [
            "decky.web-01.lifecycle",
            "decky.web-01.service.added",
        ]
        assert len(self._topics(viewer_client, "?topic_prefix=decky.web-01")) == 3
        assert self._topics(viewer_client, "?type=status") == ["topology.abc.status"]
        assert self._topics(viewer_client, "?topic=decky.web-01") == []

    def test_since_and_detail(self, viewer_client: APIClient, events: list[Event]) -> None:
        Event.objects.filter(pk=events[0].pk).update(at=timezone.now() - timedelta(days=1))
        since = (timezone.now() - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
        assert "decky.web-01.lifecycle" not in self._topics(viewer_client, f"?since={since}")
        body = viewer_client.get(f"{EVENTS}{events[3].pk}/").json()
        assert body["topic"] == "decky.db.mutation"
        assert body["payload"] == {}
        assert viewer_client.get(f"{EVENTS}999999999/").status_code == 404

    def test_newest_first_and_paginated(self, viewer_client: APIClient, events: list[Event]) -> None:
        body = viewer_client.get(f"{EVENTS}?limit=2").json()
        assert sorted(Event.objects.values_list("topic", flat=True)) == sorted(e.topic for e in events)
        assert body["count"] == 5
        assert len(body["results"]) == 2
        assert body["results"][0]["topic"] == "topology.abc.status"

    def test_anonymous_is_refused(self, anon_client: APIClient) -> None:
        assert anon_client.get(EVENTS).status_code in (401, 403)
        assert anon_client.get(LIST).status_code in (401, 403)
