"""The topology API: CRUD of topologies, LANs, deckies and edges, ETag / If-Match concurrency, validation,
deploy and teardown (202), status history, live services on topology deckies, and permissions per role."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from rest_framework.test import APIClient

from deckies.engine import naming
from deckies.models import Decky, DeckyService
from lifecycle.models import Event
from tests.deckies import fakes
from topology import services
from topology.models import LAN, Edge, Topology, TopologyStatusEvent

from .factories import Maze, TopologyDeckyFactory, TopologyFactory, make_maze

pytestmark = pytest.mark.django_db

BASE = "/api/v1/topologies/"


def url(maze: Maze | Topology, *parts: str) -> str:
    topology = maze.topology if isinstance(maze, Maze) else maze
    tail = "".join(f"{part}/" for part in parts)
    return f"{BASE}{topology.pk}/{tail}"


def version_of(maze: Maze | Topology) -> int:
    topology = maze.topology if isinstance(maze, Maze) else maze
    return Topology.objects.values_list("version", flat=True).get(pk=topology.pk)


def status_of(maze: Maze) -> str:
    return Topology.objects.values_list("status", flat=True).get(pk=maze.topology.pk)


def move(maze: Maze, *path: str) -> None:
    for step in path:
        services.topology_transition(topology_id=maze.topology.pk, to=step)


@pytest.fixture
def maze() -> Maze:
    return make_maze()


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Any) -> fakes.FakeEngine:
    """The recording engine fake (topology deploys render for real and always succeed)."""
    settings.DECNET_DATA_DIR = tmp_path
    return fakes.install(monkeypatch)


# --- permissions ------------------------------------------------------------------------------------------------------


def _reads(maze: Maze) -> list[str]:
    edge = Edge.objects.filter(topology=maze.topology).first()
    assert edge is not None
    return [
        BASE,
        url(maze),
        url(maze, "validate"),
        url(maze, "status-events"),
        url(maze, "lans"),
        url(maze, "lans", "dmz"),
        url(maze, "deckies"),
        url(maze, "deckies", "web"),
        url(maze, "edges"),
        url(maze, "edges", str(edge.pk)),
    ]


def _writes(maze: Maze) -> list[tuple[str, str, dict[str, Any]]]:
    edge = Edge.objects.filter(topology=maze.topology).first()
    assert edge is not None
    return [
        ("post", BASE, {"name": "new"}),
        ("patch", url(maze), {"description": "x"}),
        ("put", url(maze), {"name": "renamed"}),
        ("delete", url(maze), {}),
        ("post", url(maze, "deploy"), {}),
        ("post", url(maze, "teardown"), {}),
        ("post", url(maze, "lans"), {"name": "lab"}),
        ("patch", url(maze, "lans", "corp"), {"is_dmz": False}),
        ("delete", url(maze, "lans", "corp"), {}),
        ("post", url(maze, "deckies"), {"name": "x", "services": ["ssh"]}),
        ("patch", url(maze, "deckies", "db"), {"hostname": "h"}),
        ("delete", url(maze, "deckies", "db"), {}),
        ("post", url(maze, "deckies", "db", "services"), {"name": "http"}),
        ("delete", url(maze, "deckies", "db", "services", "ssh"), {}),
        ("post", url(maze, "edges"), {"decky": "db", "lan": "dmz"}),
        ("patch", url(maze, "edges", str(edge.pk)), {"is_bridge": True}),
        ("delete", url(maze, "edges", str(edge.pk)), {}),
    ]


def test_viewer_reads_everything(viewer_client: APIClient, maze: Maze) -> None:
    for path in _reads(maze):
        assert viewer_client.get(path).status_code == 200, path


def test_anonymous_reads_nothing(anon_client: APIClient, maze: Maze) -> None:
    for path in _reads(maze):
        assert anon_client.get(path).status_code in (401, 403), path


@pytest.mark.parametrize("role", ["viewer", "anonymous"])
def test_writes_need_the_operator_role(role: str, viewer_client: APIClient, anon_client: APIClient, maze: Maze) -> None:
    client = viewer_client if role == "viewer" else anon_client
    for method, path, body in _writes(maze):
        response = getattr(client, method)(path, body, format="json")
        expected = {403} if role == "viewer" else {401, 403}
        assert response.status_code in expected, (method, path, response.status_code)
    assert version_of(maze) == 1
    assert status_of(maze) == "pending"


# --- topologies -------------------------------------------------------------------------------------------------------


class TestTopologies:
    def test_create(self, operator_client: APIClient) -> None:
        response = operator_client.post(BASE, {"name": "maze-1", "description": "lab"}, format="json")
        assert response.status_code == 201, response.data
        body = response.json()
        assert set(body) == {
            "id",
            "name",
            "description",
            "status",
            "version",
            "legal_next",
            "status_changed_at",
            "created_at",
            "updated_at",
        }
        assert (body["status"], body["version"], body["legal_next"]) == ("pending", 1, ["deploying", "torn_down"])
        assert response["ETag"] == '"1"'
        assert response["Location"] == f"{BASE}{body['id']}/"

    @pytest.mark.parametrize(
        "body", [{}, {"name": "Bad Name"}, {"name": "x" * 65}, {"name": "ok", "description": ["x"]}]
    )
    def test_create_bad_input(self, operator_client: APIClient, body: dict[str, Any]) -> None:
        response = operator_client.post(BASE, body, format="json")
        assert response.status_code == 400
        assert response.json()["code"] == "invalid"

    def test_create_duplicate_name(self, operator_client: APIClient, maze: Maze) -> None:
        response = operator_client.post(BASE, {"name": "maze"}, format="json")
        assert response.status_code == 409
        assert response.json()["code"] == "conflict"

    def test_list_filter_and_paginate(self, viewer_client: APIClient, django_assert_max_num_queries: Any) -> None:
        for index in range(3):
            TopologyFactory.create(name=f"t-{index}")
        active = TopologyFactory.create(name="t-active")
        services.topology_transition(topology_id=active.pk, to="deploying")
        with django_assert_max_num_queries(4):
            page = viewer_client.get(BASE, {"limit": 2}).json()
        assert page["count"] == 4
        assert len(page["results"]) == 2
        assert page["next"]
        filtered = viewer_client.get(BASE, {"status": "deploying"}).json()
        assert [row["name"] for row in filtered["results"]] == ["t-active"]
        assert filtered["results"][0]["legal_next"] == ["active", "degraded", "failed", "tearing_down"]
        assert viewer_client.get(BASE, {"status": "bogus"}).status_code == 400

    def test_detail_embeds_children_with_etag(
        self, viewer_client: APIClient, maze: Maze, django_assert_max_num_queries: Any
    ) -> None:
        for index in range(5):  # the query count must not grow with the number of rows
            services.lan_create(topology_id=maze.topology.pk, name=f"extra-{index}")
        with django_assert_max_num_queries(13):  # 2 of them load the viewer's permissions
            response = viewer_client.get(url(maze))
        assert response.status_code == 200
        assert response["ETag"] == '"6"'  # every write bumps the version, with or without an expected one
        body = response.json()
        assert [lan["name"] for lan in body["lans"]][:2] == ["corp", "dmz"]
        assert [decky["name"] for decky in body["deckies"]] == ["db", "gw", "web"]
        gw = next(decky for decky in body["deckies"] if decky["name"] == "gw")
        assert gw["addresses"] == {"corp": None, "dmz": None}
        assert gw["services"] == ["ssh"]
        assert gw["topology_version"] == 6
        assert sorted((edge["decky"], edge["lan"]) for edge in body["edges"]) == [
            ("db", "corp"),
            ("gw", "corp"),
            ("gw", "dmz"),
            ("web", "dmz"),
        ]

    @pytest.mark.parametrize("bad", ["not-a-uuid-at-all-but-long-enough-xx", str(uuid.uuid4())])
    def test_unknown_topology_is_404(self, viewer_client: APIClient, bad: str) -> None:
        response = viewer_client.get(f"{BASE}{bad}/")
        assert response.status_code == 404

    def test_patch_bumps_version(self, operator_client: APIClient, maze: Maze) -> None:
        response = operator_client.patch(url(maze), {"description": "v2"}, format="json", HTTP_IF_MATCH='"1"')
        assert response.status_code == 200, response.json()
        assert (response.json()["version"], response["ETag"]) == (2, '"2"')
        assert response.json()["description"] == "v2"

    def test_put_renames(self, operator_client: APIClient, maze: Maze) -> None:
        response = operator_client.put(url(maze), {"name": "maze-2", "expected_version": 1}, format="json")
        assert response.status_code == 200
        assert response.json()["name"] == "maze-2"

    def test_patch_stale_version_conflicts(self, operator_client: APIClient, maze: Maze) -> None:
        response = operator_client.patch(url(maze), {"description": "x", "expected_version": 7}, format="json")
        assert response.status_code == 409
        body = response.json()
        assert (body["code"], body["current"], body["expected"]) == ("version_conflict", 1, 7)
        assert body["detail"]

    def test_patch_not_pending(self, operator_client: APIClient, maze: Maze) -> None:
        move(maze, "deploying")
        response = operator_client.patch(url(maze), {"description": "x"}, format="json")
        assert response.status_code == 409
        assert response.json()["code"] == "not_editable"

    def test_delete_pending(self, operator_client: APIClient, maze: Maze) -> None:
        assert operator_client.delete(url(maze)).status_code == 204
        assert not Topology.objects.filter(pk=maze.topology.pk).exists()
        assert not Decky.objects.filter(topology_id=maze.topology.pk).exists()

    def test_delete_with_if_match(self, operator_client: APIClient, maze: Maze) -> None:
        stale = operator_client.delete(url(maze), HTTP_IF_MATCH='W/"5"')
        assert stale.status_code == 409
        assert stale.json()["code"] == "version_conflict"
        assert operator_client.delete(url(maze), HTTP_IF_MATCH='W/"1"').status_code == 204

    @pytest.mark.parametrize(
        ("path", "code"),
        [(["deploying"], 409), (["deploying", "active"], 409), (["deploying", "failed"], 204), (["torn_down"], 204)],
    )
    def test_delete_only_when_deletable(
        self, operator_client: APIClient, maze: Maze, path: list[str], code: int
    ) -> None:
        move(maze, *path)
        response = operator_client.delete(url(maze))
        assert response.status_code == code
        if code == 409:
            assert response.json()["code"] == "not_editable"

    def test_status_events_newest_first(self, viewer_client: APIClient, maze: Maze) -> None:
        move(maze, "deploying", "failed")
        body = viewer_client.get(url(maze, "status-events")).json()
        assert [(row["from_status"], row["to_status"]) for row in body["results"]] == [
            ("deploying", "failed"),
            ("pending", "deploying"),
        ]
        assert set(body["results"][0]) == {"id", "from_status", "to_status", "reason", "at"}

    def test_validate_reports_issues(self, viewer_client: APIClient, maze: Maze) -> None:
        clean = viewer_client.get(url(maze, "validate"))
        assert clean.status_code == 200
        assert clean.json() == {
            "topology_id": str(maze.topology.pk),
            "valid": True,
            "error_count": 0,
            "warning_count": 0,
            "issues": [],
        }
        LAN.objects.filter(pk=maze.corp.pk).update(is_dmz=True)
        LAN.objects.create(topology=maze.topology, name="spare", subnet="10.201.9.0/24")
        body = viewer_client.get(url(maze, "validate")).json()
        assert (body["valid"], body["error_count"], body["warning_count"]) == (False, 1, 1)
        assert [(i["severity"], i["code"]) for i in body["issues"]] == [
            ("error", "DMZ_MULTIPLE"),
            ("warning", "LAN_EMPTY"),
        ]


# --- If-Match ---------------------------------------------------------------------------------------------------------


class TestIfMatch:
    @pytest.mark.parametrize("header", ['"1"', 'W/"1"', ' W/"1" ', "*"])
    def test_accepted_forms(self, operator_client: APIClient, maze: Maze, header: str) -> None:
        response = operator_client.post(url(maze, "lans"), {"name": "lab"}, format="json", HTTP_IF_MATCH=header)
        assert response.status_code == 201, response.json()
        assert response["ETag"] == '"2"'

    @pytest.mark.parametrize("header", ["1", '"one"', '"1", "2"', "W/1", ""])
    def test_malformed_is_400(self, operator_client: APIClient, maze: Maze, header: str) -> None:
        response = operator_client.post(url(maze, "lans"), {"name": "lab"}, format="json", HTTP_IF_MATCH=header)
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_if_match"
        assert version_of(maze) == 1

    def test_header_and_body_must_agree(self, operator_client: APIClient, maze: Maze) -> None:
        body = {"name": "lab", "expected_version": 1}
        response = operator_client.post(url(maze, "lans"), body, format="json", HTTP_IF_MATCH='"2"')
        assert response.status_code == 400

    def test_stale_header_conflicts(self, operator_client: APIClient, maze: Maze) -> None:
        response = operator_client.post(url(maze, "lans"), {"name": "lab"}, format="json", HTTP_IF_MATCH='"9"')
        assert response.status_code == 409
        assert response.json() | {"detail": ""} == {
            "code": "version_conflict",
            "current": 1,
            "expected": 9,
            "detail": "",
        }
        assert not LAN.objects.filter(name="lab").exists()

    def test_every_write_bumps_even_without_a_version(self, operator_client: APIClient, maze: Maze) -> None:
        response = operator_client.post(url(maze, "lans"), {"name": "lab"}, format="json")
        assert (response.json()["topology_version"], response["ETag"]) == (2, '"2"')
        stale = operator_client.post(url(maze, "lans"), {"name": "lab2"}, format="json", HTTP_IF_MATCH='"1"')
        assert stale.status_code == 409

    def test_delete_routes_take_if_match(self, operator_client: APIClient, maze: Maze) -> None:
        edge = Edge.objects.get(decky=maze.web)
        assert operator_client.delete(url(maze, "edges", str(edge.pk)), HTTP_IF_MATCH='"3"').status_code == 409
        response = operator_client.delete(url(maze, "edges", str(edge.pk)), HTTP_IF_MATCH='"1"')
        assert response.status_code == 204
        assert response["ETag"] == '"2"'
        assert (
            operator_client.delete(url(maze, "deckies", "web"), {"expected_version": 1}, format="json").status_code
            == 409
        )
        assert (
            operator_client.delete(url(maze, "deckies", "web"), {"expected_version": 2}, format="json").status_code
            == 204
        )


# --- LANs -------------------------------------------------------------------------------------------------------------


class TestLANs:
    def test_create_with_auto_subnet(self, operator_client: APIClient, maze: Maze) -> None:
        response = operator_client.post(url(maze, "lans"), {"name": "lab", "expected_version": 1}, format="json")
        assert response.status_code == 201
        body = response.json()
        assert body["subnet"].endswith("/24")
        assert (body["name"], body["is_dmz"], body["topology_version"]) == ("lab", False, 2)
        assert body["topology_id"] == str(maze.topology.pk)

    def test_create_explicit_subnet_and_errors(self, operator_client: APIClient, maze: Maze) -> None:
        ok = operator_client.post(url(maze, "lans"), {"name": "lab", "subnet": "10.201.5.0/24"}, format="json")
        assert ok.status_code == 201
        dup = operator_client.post(url(maze, "lans"), {"name": "lab", "subnet": "10.201.6.0/24"}, format="json")
        assert dup.status_code == 409
        bad = operator_client.post(url(maze, "lans"), {"name": "lab2", "subnet": "10.201.6.1/24"}, format="json")
        assert bad.status_code == 400
        assert operator_client.post(url(maze, "lans"), {"name": "Bad_Name"}, format="json").status_code == 400

    def test_lookup_by_name_or_id(self, viewer_client: APIClient, maze: Maze) -> None:
        by_name = viewer_client.get(url(maze, "lans", "dmz"))
        by_id = viewer_client.get(url(maze, "lans", str(maze.dmz.pk)))
        assert by_name.status_code == by_id.status_code == 200
        assert by_name.json() == by_id.json()
        assert by_name["ETag"] == '"1"'
        assert viewer_client.get(url(maze, "lans", "nope")).status_code == 404
        other = make_maze(name="other", subnets=("10.202.1.0/24", "10.202.2.0/24"))
        assert viewer_client.get(url(maze, "lans", str(other.dmz.pk))).status_code == 404

    def test_list(self, viewer_client: APIClient, maze: Maze, django_assert_max_num_queries: Any) -> None:
        with django_assert_max_num_queries(6):
            response = viewer_client.get(url(maze, "lans"))
        assert [row["name"] for row in response.json()["results"]] == ["corp", "dmz"]
        assert response["ETag"] == '"1"'

    def test_update(self, operator_client: APIClient, maze: Maze) -> None:
        response = operator_client.patch(url(maze, "lans", "corp"), {"name": "core"}, format="json")
        assert response.status_code == 200
        assert response.json()["name"] == "core"
        assert operator_client.patch(url(maze, "lans", "core"), {"subnet": None}, format="json").status_code == 400
        assert operator_client.put(url(maze, "lans", "core"), {"is_dmz": False}, format="json").status_code == 400

    def test_delete_refused_when_it_strands_a_decky(self, operator_client: APIClient, maze: Maze) -> None:
        response = operator_client.delete(url(maze, "lans", "corp"))
        assert response.status_code == 400
        assert response.json()["deckies"] == ["db"]
        Edge.objects.filter(decky=maze.db).delete()
        Decky.objects.filter(pk=maze.db.pk).delete()
        assert operator_client.delete(url(maze, "lans", "corp")).status_code == 204
        assert not Edge.objects.filter(lan_id=maze.corp.pk).exists()

    def test_not_editable_once_deployed(self, operator_client: APIClient, maze: Maze) -> None:
        move(maze, "deploying", "active")
        for method, path, body in [
            ("post", url(maze, "lans"), {"name": "lab"}),
            ("patch", url(maze, "lans", "corp"), {"name": "x"}),
            ("delete", url(maze, "lans", "corp"), {}),
        ]:
            response = getattr(operator_client, method)(path, body, format="json")
            assert response.status_code == 409, (method, path)
            assert response.json()["code"] == "not_editable"


# --- deckies ----------------------------------------------------------------------------------------------------------


class TestDeckies:
    def test_create_with_services_and_config(self, operator_client: APIClient, maze: Maze) -> None:
        body = {
            "name": "mail",
            "services": ["smtp", "ssh"],
            "service_config": {"ssh": {"password": "hunter2"}},
            "hostname": "mx1",
            "nmap_os": "linux",
            "expected_version": 1,
        }
        response = operator_client.post(url(maze, "deckies"), body, format="json")
        assert response.status_code == 201, response.json()
        data = response.json()
        assert (data["name"], data["services"], data["hostname"]) == ("mail", ["smtp", "ssh"], "mx1")
        assert data["service_config"]["ssh"] == {"password": "hunter2"}
        assert (data["topology_version"], response["ETag"]) == (2, '"2"')
        assert data["topology_id"] == str(maze.topology.pk)
        assert data["addresses"] == {}
        assert data["state"] == "pending"

    def test_viewer_sees_secrets_masked(self, viewer_client: APIClient, maze: Maze) -> None:
        DeckyService.objects.filter(decky=maze.db, slug="ssh").update(config={"password": "hunter2"})
        data = viewer_client.get(url(maze, "deckies", "db")).json()
        assert data["service_config"]["ssh"]["password"] == "********"

    def test_create_errors(self, operator_client: APIClient, maze: Maze) -> None:
        cases = [
            ({"name": "x", "services": ["no-such"]}, 422),
            ({"name": "x", "services": ["ssh"], "service_config": {"ssh": {"nope": 1}}}, 400),
            ({"name": "web", "services": ["ssh"]}, 409),
            ({"name": "Bad", "services": ["ssh"]}, 400),
            ({"name": "x"}, 400),
        ]
        for body, code in cases:
            response = operator_client.post(url(maze, "deckies"), body, format="json")
            assert response.status_code == code, (body, response.json())
        assert version_of(maze) == 1

    def test_update_and_services_replace(self, operator_client: APIClient, maze: Maze) -> None:
        response = operator_client.patch(
            url(maze, "deckies", "db"), {"services": ["mysql", "ssh"], "hostname": "db01"}, format="json"
        )
        assert response.status_code == 200, response.json()
        assert (response.json()["services"], response.json()["hostname"]) == (["mysql", "ssh"], "db01")
        assert response.json()["topology_version"] == 2

    def test_delete_cascades_edges(self, operator_client: APIClient, maze: Maze) -> None:
        assert operator_client.delete(url(maze, "deckies", "db")).status_code == 204
        assert not Edge.objects.filter(decky_id=maze.db.pk).exists()
        assert operator_client.get(url(maze, "deckies", "db")).status_code == 404

    def test_list_is_bounded(self, viewer_client: APIClient, maze: Maze, django_assert_max_num_queries: Any) -> None:
        for index in range(5):
            services.edge_create(
                topology_id=maze.topology.pk,
                decky_id=TopologyDeckyFactory.create(topology=maze.topology, name=f"n-{index}").pk,
                lan_id=maze.corp.pk,
            )
        with django_assert_max_num_queries(9):
            response = viewer_client.get(url(maze, "deckies"))
        names = [row["name"] for row in response.json()["results"]]
        assert names == ["db", "gw", "n-0", "n-1", "n-2", "n-3", "n-4", "web"]

    def test_not_editable_once_deployed(self, operator_client: APIClient, maze: Maze) -> None:
        move(maze, "deploying")
        response = operator_client.patch(url(maze, "deckies", "db"), {"hostname": "x"}, format="json")
        assert response.status_code == 409
        assert response.json()["code"] == "not_editable"

    def test_fleet_decky_of_the_same_name_is_not_found_here(self, viewer_client: APIClient, maze: Maze) -> None:
        other = make_maze(name="other", subnets=("10.202.1.0/24", "10.202.2.0/24"))
        Decky.objects.filter(pk=other.web.pk).update(name="only-there")
        assert viewer_client.get(url(maze, "deckies", "only-there")).status_code == 404


# --- edges ------------------------------------------------------------------------------------------------------------


class TestEdges:
    def test_create_by_names_and_lan_id(self, operator_client: APIClient, maze: Maze) -> None:
        by_name = operator_client.post(
            url(maze, "edges"), {"decky": "web", "lan": "corp", "ip": "10.201.2.40", "is_bridge": True}, format="json"
        )
        assert by_name.status_code == 201, by_name.json()
        body = by_name.json()
        assert (body["decky"], body["lan"], body["ip"], body["is_bridge"]) == ("web", "corp", "10.201.2.40", True)
        assert body["topology_version"] == 2
        operator_client.post(url(maze, "deckies"), {"name": "new", "services": ["ssh"]}, format="json")
        by_id = operator_client.post(url(maze, "edges"), {"decky": "new", "lan": str(maze.dmz.pk)}, format="json")
        assert by_id.status_code == 201
        assert (by_id.json()["lan"], by_id.json()["ip"]) == ("dmz", None)

    def test_create_errors(self, operator_client: APIClient, maze: Maze) -> None:
        unknown = operator_client.post(url(maze, "edges"), {"decky": "ghost", "lan": "nope"}, format="json")
        assert unknown.status_code == 400
        assert set(unknown.json()["fields"]) == {"decky", "lan"}
        dup = operator_client.post(url(maze, "edges"), {"decky": "web", "lan": "dmz"}, format="json")
        assert dup.status_code == 409
        outside = operator_client.post(
            url(maze, "edges"), {"decky": "web", "lan": "corp", "ip": "10.9.9.9"}, format="json"
        )
        assert outside.status_code == 400
        other = make_maze(name="other", subnets=("10.202.1.0/24", "10.202.2.0/24"))
        cross = operator_client.post(url(maze, "edges"), {"decky": "web", "lan": str(other.corp.pk)}, format="json")
        assert cross.status_code == 400
        assert version_of(maze) == 1

    def test_update_and_delete(self, operator_client: APIClient, maze: Maze) -> None:
        edge = Edge.objects.get(decky=maze.db)
        response = operator_client.patch(url(maze, "edges", str(edge.pk)), {"ip": "10.201.2.9"}, format="json")
        assert response.status_code == 200
        assert response.json()["ip"] == "10.201.2.9"
        bad = operator_client.patch(url(maze, "edges", str(edge.pk)), {"ip": "10.201.1.9"}, format="json")
        assert bad.status_code == 400
        assert operator_client.delete(url(maze, "edges", str(edge.pk))).status_code == 204
        assert Decky.objects.filter(pk=maze.db.pk).exists()
        assert operator_client.get(url(maze, "edges", str(edge.pk))).status_code == 404

    def test_list(self, viewer_client: APIClient, maze: Maze, django_assert_max_num_queries: Any) -> None:
        with django_assert_max_num_queries(6):
            rows = viewer_client.get(url(maze, "edges")).json()["results"]
        assert [(row["decky"], row["lan"]) for row in rows] == [
            ("db", "corp"),
            ("gw", "corp"),
            ("gw", "dmz"),
            ("web", "dmz"),
        ]


# --- deploy / teardown ------------------------------------------------------------------------------------------------


class TestDeployTeardown:
    def test_deploy_is_202_and_ends_active(
        self, operator_client: APIClient, maze: Maze, engine: fakes.FakeEngine, django_capture_on_commit_callbacks: Any
    ) -> None:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = operator_client.post(url(maze, "deploy"))
        assert response.status_code == 202, response.json()
        ids = response.json()["lifecycle_ids"]
        assert len(ids) == 3  # one row per decky
        assert response["Location"] == f"/api/v1/deckies/lifecycle/?ids={'%2C'.join(ids)}"
        assert response.json()["status"] == "deploying"
        assert response.json()["legal_next"] == ["active", "degraded", "failed", "tearing_down"]
        for callback in callbacks:
            callback()  # what the commit would do: django-q2 runs the task inline under the test settings
        assert status_of(maze) == "active"
        detail = operator_client.get(url(maze)).json()
        assert {d["name"]: d["state"] for d in detail["deckies"]} == {
            "db": "running",
            "gw": "running",
            "web": "running",
        }
        assert detail["deckies"][1]["addresses"] == {"corp": "10.201.2.3", "dmz": "10.201.1.2"}
        history = operator_client.get(url(maze, "status-events")).json()["results"]
        assert [row["to_status"] for row in history] == ["active", "deploying"]
        assert Event.objects.filter(topic=f"topology.{maze.topology.pk}.status").count() == 2

    def test_deploy_validation_errors_are_400_with_issues(self, operator_client: APIClient, maze: Maze) -> None:
        LAN.objects.filter(pk=maze.dmz.pk).update(is_dmz=False)
        response = operator_client.post(url(maze, "deploy"))
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "validation_failed"
        assert body["issues"] == [
            {"severity": "error", "code": "DMZ_MISSING", "message": body["issues"][0]["message"], "target": {}}
        ]
        assert status_of(maze) == "pending"
        assert not TopologyStatusEvent.objects.exists()

    def test_deploy_not_pending_is_409_with_legal_next(self, operator_client: APIClient, maze: Maze) -> None:
        move(maze, "deploying", "failed")
        response = operator_client.post(url(maze, "deploy"))
        assert response.status_code == 409
        assert (response.json()["code"], response.json()["legal_next"]) == ("illegal_transition", ["tearing_down"])

    def test_deploy_with_stale_if_match(self, operator_client: APIClient, maze: Maze) -> None:
        response = operator_client.post(url(maze, "deploy"), HTTP_IF_MATCH='"4"')
        assert response.status_code == 409
        assert response.json()["code"] == "version_conflict"

    def test_deploy_unknown_topology(self, operator_client: APIClient) -> None:
        assert operator_client.post(f"{BASE}{uuid.uuid4()}/deploy/").status_code == 404

    def test_teardown_is_202_and_ends_torn_down(
        self, operator_client: APIClient, maze: Maze, engine: fakes.FakeEngine, django_capture_on_commit_callbacks: Any
    ) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            operator_client.post(url(maze, "deploy"))
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = operator_client.post(url(maze, "teardown"))
        assert response.status_code == 202
        assert response.json()["status"] == "tearing_down"
        assert len(response.json()["lifecycle_ids"]) == 3
        for callback in callbacks:
            callback()
        assert status_of(maze) == "torn_down"
        assert ("remove_project", naming.topology_project(maze.topology.pk)) in engine.calls
        assert operator_client.delete(url(maze)).status_code == 204

    def test_teardown_of_pending_is_409(self, operator_client: APIClient, maze: Maze) -> None:
        response = operator_client.post(url(maze, "teardown"))
        assert response.status_code == 409
        assert response.json()["legal_next"] == ["deploying", "torn_down"]


# --- live services on topology deckies --------------------------------------------------------------------------------


class TestLiveServices:
    def test_add_and_remove_on_a_pending_topology(
        self, operator_client: APIClient, maze: Maze, engine: fakes.FakeEngine
    ) -> None:
        response = operator_client.post(url(maze, "deckies", "db", "services"), {"name": "mysql"}, format="json")
        assert response.status_code == 201, response.json()
        assert response.json() == {
            "decky_name": "db",
            "topology_id": str(maze.topology.pk),
            "services": ["ssh", "mysql"],
        }
        assert response["ETag"] == f'"{version_of(maze)}"'
        removed = operator_client.delete(url(maze, "deckies", "db", "services", "ssh"))
        assert removed.status_code == 200
        assert removed.json()["services"] == ["mysql"]
        assert engine.names("add_service") == []  # nothing runs yet: only the desired state changed

    def test_add_on_an_active_topology_starts_only_that_container(
        self, operator_client: APIClient, maze: Maze, engine: fakes.FakeEngine
    ) -> None:
        move(maze, "deploying", "active")
        response = operator_client.post(
            url(maze, "deckies", "db", "services"), {"name": "http", "config": {}}, format="json"
        )
        assert response.status_code == 201, response.json()
        assert engine.names("add_service") == [("db", "http", ["http", "ssh"])]
        removed = operator_client.delete(url(maze, "deckies", "db", "services", "http"))
        assert removed.status_code == 200
        assert engine.names("remove_service") == [("db", "http")]

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            ({"name": "no-such-service"}, 422),
            ({"name": "ssh"}, 409),
            ({"name": "ssh-x", "config": "nope"}, 400),
            ({"name": "http", "config": {"no_such_key": 1}}, 400),
        ],
    )
    def test_add_errors(
        self, operator_client: APIClient, maze: Maze, engine: fakes.FakeEngine, body: dict[str, Any], code: int
    ) -> None:
        response = operator_client.post(url(maze, "deckies", "db", "services"), body, format="json")
        assert response.status_code == code, response.json()

    def test_remove_errors(self, operator_client: APIClient, maze: Maze, engine: fakes.FakeEngine) -> None:
        assert operator_client.delete(url(maze, "deckies", "db", "services", "http")).status_code == 409
        assert operator_client.delete(url(maze, "deckies", "db", "services", "no-such")).status_code == 422
        assert operator_client.delete(url(maze, "deckies", "db", "services", "ssh")).status_code == 409  # last one
        assert operator_client.delete(url(maze, "deckies", "ghost", "services", "ssh")).status_code == 404

    def test_refused_while_deploying(self, operator_client: APIClient, maze: Maze, engine: fakes.FakeEngine) -> None:
        move(maze, "deploying")
        response = operator_client.post(url(maze, "deckies", "db", "services"), {"name": "http"}, format="json")
        assert response.status_code == 409

    def test_unknown_decky_or_topology(self, operator_client: APIClient, maze: Maze) -> None:
        assert (
            operator_client.post(url(maze, "deckies", "ghost", "services"), {"name": "http"}, format="json").status_code
            == 404
        )
        missing = f"{BASE}{uuid.uuid4()}/deckies/db/services/"
        assert operator_client.post(missing, {"name": "http"}, format="json").status_code == 404
