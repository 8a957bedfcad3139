"""``POST /api/v1/deckies/import/``: JSON or text/plain INI, operator only, lines on errors, size-limited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from deckies.choices import DeckyState
from deckies.ini import MAX_INI_BYTES
from deckies.models import Decky

pytestmark = pytest.mark.django_db

URL = "/api/v1/deckies/import/"
FIXTURES = Path(__file__).parent / "fixtures"
SMALL = (FIXTURES / "small_fleet.ini").read_text()


def post_json(client: APIClient, body: object) -> Any:
    return client.post(URL, data=json.dumps(body), content_type="application/json")


def post_text(client: APIClient, text: str | bytes, query: str = "") -> Any:
    return client.post(URL + query, data=text, content_type="text/plain")


def test_operator_imports_json(operator_client: APIClient) -> None:
    response = post_json(operator_client, {"ini": SMALL})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["applied"] is True
    assert body["mode"] == "additive"
    assert body["created"] == ["web-01", "web-02", "files"]
    assert body["network"]["subnet"] == "10.32.0.0/28"
    assert body["deckies"][2]["ip"] == "10.32.0.9"
    assert sorted(Decky.objects.values_list("name", flat=True)) == ["files", "web-01", "web-02"]


def test_dry_run_returns_the_plan_and_writes_nothing(operator_client: APIClient) -> None:
    response = post_json(operator_client, {"ini": SMALL, "dry_run": True})
    assert response.status_code == 200
    assert response.json()["applied"] is False
    assert not Decky.objects.exists()


def test_text_plain_body_with_query_options(operator_client: APIClient) -> None:
    response = post_text(operator_client, SMALL, "?dry_run=true")
    assert response.status_code == 200
    assert response.json()["created"] == ["web-01", "web-02", "files"]
    assert not Decky.objects.exists()
    response = post_text(operator_client, "\ufeff" + SMALL)
    assert response.status_code == 201
    assert Decky.objects.count() == 3


def test_replace(operator_client: APIClient) -> None:
    post_json(operator_client, {"ini": (FIXTURES / "full_fleet.ini").read_text()})
    response = post_json(operator_client, {"ini": SMALL, "replace": True})
    assert response.status_code == 201
    assert len(response.json()["deleted"]) == 9
    Decky.objects.filter(name="files").update(state=DeckyState.RUNNING)
    response = post_text(operator_client, "[solo]\nservices = ssh\n", "?replace=1")
    assert response.status_code == 409
    assert "files (running)" in response.json()["detail"]


def test_bad_ini_is_400_with_every_line(operator_client: APIClient) -> None:
    response = post_json(operator_client, {"ini": (FIXTURES / "bad_fleet.ini").read_text()})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_ini"
    assert [issue["line"] for issue in body["issues"]] == [3, 6, 8, 11, 12, 17]
    assert "request body:6:" in body["detail"]


def test_collisions_are_409_with_lines(operator_client: APIClient) -> None:
    response = post_json(operator_client, {"ini": (FIXTURES / "collide_fleet.ini").read_text()})
    assert response.status_code == 409
    assert response.json()["code"] == "ini_conflict"
    assert [issue["line"] for issue in response.json()["issues"]] == [8, 17]
    assert post_json(operator_client, {"ini": SMALL}).status_code == 201
    again = post_json(operator_client, {"ini": SMALL})
    assert again.status_code == 409
    assert {issue["line"] for issue in again.json()["issues"]} == {4, 11}


@pytest.mark.parametrize(
    "body",
    [{}, {"ini": ""}, {"ini": 5}, {"ini": SMALL, "replace": "maybe"}, ["ini"]],
)
def test_malformed_json_bodies_are_400(operator_client: APIClient, body: object) -> None:
    response = post_json(operator_client, body)
    assert response.status_code == 400
    assert not Decky.objects.exists()


def test_non_utf8_text_is_400(operator_client: APIClient) -> None:
    response = post_text(operator_client, b"[caf\xe9]\nservices = ssh\n")
    assert response.status_code == 400
    assert response.json()["issues"][0]["line"] == 1


def test_too_large_is_413(operator_client: APIClient) -> None:
    big = "[a]\nservices = ssh\n" + "#" * MAX_INI_BYTES
    assert post_json(operator_client, {"ini": big}).status_code == 413
    assert post_text(operator_client, big).status_code == 413
    huge = "#" * (3 * MAX_INI_BYTES)
    response = post_json(operator_client, {"ini": huge})
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


def test_roles(anon_client: APIClient, viewer_client: APIClient, operator_client: APIClient) -> None:
    assert post_json(anon_client, {"ini": SMALL}).status_code in (401, 403)
    assert post_json(viewer_client, {"ini": SMALL}).status_code == 403
    assert not Decky.objects.exists()
    assert operator_client.get(URL).status_code == 405


def test_unsupported_media_type(operator_client: APIClient) -> None:
    response = operator_client.post(URL, data=SMALL, content_type="application/xml")
    assert response.status_code == 415
