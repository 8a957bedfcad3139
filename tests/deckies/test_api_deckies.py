"""The deckies API: CRUD, filters, pagination, query counts, the 202 operations, live services and file drops,
for each role. Docker is beside the point here, so the engine facade is the recording fake."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from deckies.choices import DeckyState
from deckies.engine import naming
from deckies.engine.errors import ContainerRefusedError, InvalidPathError
from deckies.models import Decky, DeckyService
from lifecycle.models import DeckyLifecycle, Event
from tests.deckies import fakes
from tests.deckies.factories import DeckyFactory, HostFactory, set_state
from tests.lifecycle.factories import make_row
from topology.models import Topology

pytestmark = pytest.mark.django_db

DECKIES = "/api/v1/deckies/"


@pytest.fixture(autouse=True)
def fake(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path) -> fakes.FakeEngine:
    settings.DECNET_DATA_DIR = tmp_path
    return fakes.install(monkeypatch)


@pytest.fixture
def run_tasks(django_capture_on_commit_callbacks: Any) -> Any:
    """Run on-commit hooks (the django-q2 tasks run inline in the test settings) inside the block."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def _deployed(decky: Decky) -> Decky:
    return set_state(decky, DeckyState.RUNNING)


def _ssh_container(decky: Decky, project: str | None = None) -> str:
    return naming.container_name(project or naming.fleet_project(), naming.service_key(decky.name, "ssh"))


def _poll(client: APIClient, location: str) -> list[dict[str, Any]]:
    response = client.get(location)
    assert response.status_code == 200
    return list(response.json()["rows"])


# --- authentication and roles ---------------------------------------------------------------------------------------


class TestAuth:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("get", DECKIES),
            ("get", f"{DECKIES}x/"),
            ("post", DECKIES),
            ("post", f"{DECKIES}deploy/"),
            ("post", f"{DECKIES}x/mutate/"),
            ("post", f"{DECKIES}files/"),
            ("get", f"{DECKIES}lifecycle/?ids=x"),
        ],
    )
    def test_anonymous_is_refused(self, anon_client: APIClient, method: str, path: str) -> None:
        assert getattr(anon_client, method)(path).status_code in (401, 403)

    def test_invalid_token_is_refused(self, anon_client: APIClient) -> None:
        anon_client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
        response = anon_client.get(DECKIES)
        # Session authentication comes first in the settings, so DRF answers 403 rather than 401.
        assert response.status_code in (401, 403)
        assert response.json()["detail"] == "Invalid token."

    def test_token_authentication(self, anon_client: APIClient, viewer: User) -> None:
        token = Token.objects.create(user=viewer)
        anon_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        assert anon_client.get(DECKIES).status_code == 200

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("post", DECKIES),
            ("patch", f"{DECKIES}{{name}}/"),
            ("delete", f"{DECKIES}{{name}}/"),
            ("post", f"{DECKIES}deploy/"),
            ("post", f"{DECKIES}{{name}}/deploy/"),
            ("post", f"{DECKIES}{{name}}/mutate/"),
            ("post", f"{DECKIES}{{name}}/teardown/"),
            ("post", f"{DECKIES}{{name}}/services/"),
            ("delete", f"{DECKIES}{{name}}/services/ssh/"),
            ("post", f"{DECKIES}files/"),
            ("delete", f"{DECKIES}files/"),
        ],
    )
    def test_viewer_cannot_write(self, viewer_client: APIClient, method: str, path: str) -> None:
        decky = DeckyFactory.create()
        response = getattr(viewer_client, method)(path.format(name=decky.name), {}, format="json")
        assert response.status_code == 403
        assert not DeckyLifecycle.objects.exists()


# --- CRUD -----------------------------------------------------------------------------------------------------------


class TestRead:
    def test_list_representation(self, viewer_client: APIClient) -> None:
        decky = DeckyFactory.create(services=["ssh", "http"], archetype="linux-server")
        row = make_row(decky=decky, operation="deploy")
        body = viewer_client.get(DECKIES).json()
        assert body["count"] == 1
        (item,) = body["results"]
        assert item["name"] == decky.name
        assert item["services"] == ["ssh", "http"]
        assert item["service_config"] == {"ssh": {}, "http": {}}
        assert item["network"] == "factory-lan"
        assert item["host"] is None
        assert item["latest_lifecycle"]["id"] == str(row.pk)
        for key in ("hostname", "ip", "distro", "archetype", "nmap_os", "mutate_interval", "last_mutated", "state"):
            assert key in item

    def test_topology_deckies_are_not_in_the_fleet(self, viewer_client: APIClient) -> None:
        topology = Topology.objects.create(name="maze")
        DeckyFactory.create(topology=topology, network=None, ip=None, name="inside")
        DeckyFactory.create(name="outside")
        names = [item["name"] for item in viewer_client.get(DECKIES).json()["results"]]
        assert names == ["outside"]
        assert viewer_client.get(f"{DECKIES}inside/").status_code == 404

    def test_latest_lifecycle_is_the_newest_row(self, viewer_client: APIClient) -> None:
        decky = DeckyFactory.create()
        make_row(decky=decky, operation="deploy")
        newest = make_row(decky=decky, operation="mutate")
        assert viewer_client.get(f"{DECKIES}{decky.name}/").json()["latest_lifecycle"]["id"] == str(newest.pk)

    def test_list_query_count_does_not_grow_with_the_page(
        self, viewer_client: APIClient, django_assert_max_num_queries: Any
    ) -> None:
        for _ in range(25):
            decky = DeckyFactory.create(services=["ssh", "http", "ftp"])
            make_row(decky=decky, operation="deploy")
        viewer_client.get(DECKIES)  # warm the permission cache of the user
        with django_assert_max_num_queries(6):
            body = viewer_client.get(f"{DECKIES}?limit=25").json()
        assert len(body["results"]) == 25
        assert all(item["latest_lifecycle"] is not None for item in body["results"])

    def test_pagination(self, viewer_client: APIClient) -> None:
        names = sorted(DeckyFactory.create().name for _ in range(5))
        body = viewer_client.get(f"{DECKIES}?limit=2&offset=2").json()
        assert body["count"] == 5
        assert [item["name"] for item in body["results"]] == names[2:4]
        assert body["next"]
        assert body["previous"]

    def test_filters(self, viewer_client: APIClient) -> None:
        host = HostFactory.create(name="edge")
        a = DeckyFactory.create(services=["ssh"], archetype="deaddeck", host=host)
        b = _deployed(DeckyFactory.create(services=["http", "ftp"], archetype="web-server"))

        def names(query: str) -> list[str]:
            response = viewer_client.get(f"{DECKIES}?{query}")
            assert response.status_code == 200, response.json()
            return [item["name"] for item in response.json()["results"]]

        assert names("state=running") == [b.name]
        assert names("state=pending&state=running") == sorted([a.name, b.name])
        assert names("archetype=deaddeck") == [a.name]
        assert names("host=edge") == [a.name]
        assert names("host=local") == [b.name]
        assert names("service=ftp") == [b.name]
        assert names("service=ssh") == [a.name]

    def test_bad_filter_is_400(self, viewer_client: APIClient) -> None:
        assert viewer_client.get(f"{DECKIES}?state=exploded").status_code == 400

    def test_secret_config_is_masked_for_viewers(self, viewer_client: APIClient, operator_client: APIClient) -> None:
        decky = DeckyFactory.create(services=["ssh"])
        DeckyService.objects.filter(decky=decky).update(config={"password": "hunter2", "user": "root"})
        seen = viewer_client.get(f"{DECKIES}{decky.name}/").json()["service_config"]["ssh"]
        assert seen == {"password": "********", "user": "root"}
        assert operator_client.get(f"{DECKIES}{decky.name}/").json()["service_config"]["ssh"]["password"] == "hunter2"

    def test_unknown_decky_is_404(self, viewer_client: APIClient) -> None:
        response = viewer_client.get(f"{DECKIES}nope/")
        assert response.status_code == 404
        assert response.json()["code"] == "decky_not_found"


class TestWrite:
    def test_create(self, operator_client: APIClient, fake: fakes.FakeEngine) -> None:
        response = operator_client.post(
            DECKIES,
            {"name": "web-01", "services": ["ssh", "http"], "service_config": {"http": {"response_code": 404}}},
            format="json",
        )
        assert response.status_code == 201, response.json()
        body = response.json()
        assert body["services"] == ["ssh", "http"]
        assert body["service_config"]["http"] == {"response_code": 404}
        assert body["state"] == "pending"
        assert body["ip"]
        assert fake.calls == []  # creating never touches Docker

    def test_create_from_archetype_with_interval_shorthand(self, operator_client: APIClient) -> None:
        response = operator_client.post(
            DECKIES, {"name": "dc-01", "archetype": "domain-controller", "mutate_interval": "30m"}, format="json"
        )
        assert response.status_code == 201, response.json()
        body = response.json()
        assert body["services"] == ["ldap", "smb", "rdp", "llmnr"]
        assert body["nmap_os"] == "windows_server"
        assert body["mutate_interval"] == "00:30:00"

    @pytest.mark.parametrize(
        ("payload", "status", "code"),
        [
            ({"name": "Bad Name", "services": ["ssh"]}, 400, "invalid"),
            ({"name": "files", "services": ["ssh"]}, 400, "invalid"),
            ({"name": "x", "services": ["nonsense"]}, 422, "unknown"),
            ({"name": "x", "services": ["sniffer"]}, 422, "unprocessable"),
            ({"name": "x", "services": ["http"], "service_config": {"http": {"response_code": "x"}}}, 400, None),
            ({"name": "x", "services": ["ssh"], "distro": "plan9"}, 422, "unknown"),
            ({"name": "x", "services": ["ssh"], "ip": "192.0.2.1"}, 400, "invalid"),
            ({"name": "x", "services": ["ssh"], "network": "nope"}, 400, "invalid"),
            ({"name": "x"}, 400, "invalid"),
            ({"name": "x", "services": ["ssh"], "mutate_interval": "forever"}, 400, "invalid"),
            ({"name": "x", "services": ["ssh"], "service_config": {"ssh": {"user": "a\u0000b"}}}, 400, "invalid"),
        ],
    )
    def test_create_errors(self, operator_client: APIClient, payload: dict[str, Any], status: int, code: Any) -> None:
        response = operator_client.post(DECKIES, payload, format="json")
        assert response.status_code == status, response.json()
        if code:
            assert response.json()["code"] == code
        assert not Decky.objects.exists()

    def test_create_duplicate_is_409(self, operator_client: APIClient) -> None:
        DeckyFactory.create(name="dup")
        response = operator_client.post(DECKIES, {"name": "dup", "services": ["ssh"]}, format="json")
        assert response.status_code == 409

    def test_update(self, operator_client: APIClient, fake: fakes.FakeEngine) -> None:
        decky = DeckyFactory.create(services=["ssh"])
        response = operator_client.patch(
            f"{DECKIES}{decky.name}/", {"services": ["ssh", "ftp"], "hostname": "files.corp"}, format="json"
        )
        assert response.status_code == 200, response.json()
        assert response.json()["services"] == ["ssh", "ftp"]
        assert response.json()["hostname"] == "files.corp"
        put = operator_client.put(f"{DECKIES}{decky.name}/", {"nmap_os": "windows"}, format="json")
        assert put.status_code == 200
        assert put.json()["nmap_os"] == "windows"
        assert fake.calls == []

    def test_update_errors(self, operator_client: APIClient) -> None:
        decky = DeckyFactory.create(services=["ssh"])
        assert operator_client.patch(f"{DECKIES}nope/", {}, format="json").status_code == 404
        response = operator_client.patch(f"{DECKIES}{decky.name}/", {"services": ["nonsense"]}, format="json")
        assert response.status_code == 422
        assert operator_client.patch(f"{DECKIES}{decky.name}/", {"services": []}, format="json").status_code == 400

    def test_delete(self, operator_client: APIClient) -> None:
        decky = DeckyFactory.create()
        assert operator_client.delete(f"{DECKIES}{decky.name}/").status_code == 204
        assert not Decky.objects.exists()
        assert operator_client.delete(f"{DECKIES}{decky.name}/").status_code == 404

    def test_delete_while_deployed_is_409(self, operator_client: APIClient) -> None:
        decky = _deployed(DeckyFactory.create())
        response = operator_client.delete(f"{DECKIES}{decky.name}/")
        assert response.status_code == 409
        assert Decky.objects.filter(pk=decky.pk).exists()


# --- 202 operations -------------------------------------------------------------------------------------------------


class TestOperations:
    def test_deploy_one(self, operator_client: APIClient, fake: fakes.FakeEngine, run_tasks: Any) -> None:
        decky, other = DeckyFactory.create(), _deployed(DeckyFactory.create())
        with run_tasks():
            response = operator_client.post(f"{DECKIES}{decky.name}/deploy/")
        assert response.status_code == 202
        (lifecycle_id,) = response.json()["lifecycle_ids"]
        assert response["Location"] == f"{DECKIES}lifecycle/?ids={lifecycle_id}"
        (row,) = _poll(operator_client, response["Location"])
        assert row["status"] == "succeeded"
        assert row["operation"] == "deploy"
        assert fake.names("deploy_deckies") == [[decky.name]]  # the other decky is left alone
        assert Decky.objects.get(pk=decky.pk).state == DeckyState.RUNNING
        assert Decky.objects.get(pk=other.pk).state == DeckyState.RUNNING

    def test_deploy_failure_is_visible_in_the_poll(
        self, operator_client: APIClient, fake: fakes.FakeEngine, run_tasks: Any
    ) -> None:
        decky = DeckyFactory.create()
        fake.fail["deploy_deckies"] = ContainerRefusedError("address in use")
        with run_tasks():
            response = operator_client.post(f"{DECKIES}{decky.name}/deploy/")
        assert response.status_code == 202
        (row,) = _poll(operator_client, response["Location"])
        assert row["status"] == "failed"
        assert row["error"] == "ContainerRefusedError: address in use"
        assert row["message"] == f"deploy of {decky.name} failed: address in use"
        body = operator_client.get(f"{DECKIES}{decky.name}/").json()
        assert body["state"] == "failed"
        assert body["last_error"] == row["message"]

    def test_deploy_reuses_an_open_row(self, operator_client: APIClient) -> None:
        decky = DeckyFactory.create()
        first = operator_client.post(f"{DECKIES}{decky.name}/deploy/").json()["lifecycle_ids"]
        again = operator_client.post(f"{DECKIES}{decky.name}/deploy/")
        assert again.status_code == 202
        assert again.json()["lifecycle_ids"] == first

    @pytest.mark.parametrize(("verb", "budget"), [("deploy", 4), ("mutate", 8), ("teardown", 4)])
    def test_query_budget(self, operator: User, verb: str, budget: int) -> None:
        """One 202 costs at most ``budget`` SQL statements, token authentication and the role check included
        (BEGIN/COMMIT apart); the open-row read is folded into the lock while nothing is open."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        decky = _deployed(DeckyFactory.create(services=["ssh", "http"]))
        client = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=operator).key}")
        with CaptureQueriesContext(connection) as captured:
            response = client.post(f"{DECKIES}{decky.name}/{verb}/")
        assert response.status_code == 202, response.content
        statements = [query["sql"].split(None, 1)[0].upper() for query in captured.captured_queries]
        counted = [word for word in statements if word not in {"BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"}]
        assert len(counted) <= budget, "\n".join(query["sql"][:160] for query in captured.captured_queries)

    def test_operation_errors(self, operator_client: APIClient) -> None:
        decky = DeckyFactory.create()
        for verb in ("deploy", "mutate", "teardown"):
            assert operator_client.post(f"{DECKIES}nope/{verb}/").status_code == 404
        make_row(decky=decky, operation="deploy")
        response = operator_client.post(f"{DECKIES}{decky.name}/teardown/")
        assert response.status_code == 409
        assert response.json()["code"] == "operation_in_progress"
        assert operator_client.get(f"{DECKIES}{decky.name}/deploy/").status_code == 405

    def test_bulk_deploy_all(self, operator_client: APIClient, fake: fakes.FakeEngine, run_tasks: Any) -> None:
        names = sorted(DeckyFactory.create().name for _ in range(3))
        with run_tasks():
            response = operator_client.post(f"{DECKIES}deploy/", {}, format="json")
        assert response.status_code == 202
        rows = _poll(operator_client, response["Location"])
        assert sorted(row["decky_name"] for row in rows) == names
        assert {row["status"] for row in rows} == {"succeeded"}
        assert fake.names("deploy_deckies") == [names]  # one engine call for the whole job

    def test_bulk_deploy_names(self, operator_client: APIClient, run_tasks: Any) -> None:
        a, _b = DeckyFactory.create(), DeckyFactory.create()
        response = operator_client.post(f"{DECKIES}deploy/", {"names": [a.name]}, format="json")
        assert response.status_code == 202
        assert len(response.json()["lifecycle_ids"]) == 1

    def test_bulk_deploy_errors(self, operator_client: APIClient) -> None:
        assert operator_client.post(f"{DECKIES}deploy/", {}, format="json").status_code == 404  # empty fleet
        DeckyFactory.create()
        response = operator_client.post(f"{DECKIES}deploy/", {"names": ["ghost"]}, format="json")
        assert response.status_code == 404
        assert response.json()["unknown"] == ["ghost"]
        assert operator_client.post(f"{DECKIES}deploy/", {"names": []}, format="json").status_code == 400
        assert operator_client.post(f"{DECKIES}deploy/", {"names": "x"}, format="json").status_code == 400

    def test_mutate(self, operator_client: APIClient, fake: fakes.FakeEngine, run_tasks: Any) -> None:
        decky = _deployed(DeckyFactory.create(services=["ssh", "http"], archetype="linux-server"))
        with run_tasks():
            response = operator_client.post(f"{DECKIES}{decky.name}/mutate/")
        assert response.status_code == 202
        (row,) = _poll(operator_client, response["Location"])
        assert row["operation"] == "mutate"
        assert row["status"] == "succeeded"
        body = operator_client.get(f"{DECKIES}{decky.name}/").json()
        assert set(body["services"]) != {"ssh", "http"}
        assert body["last_mutated"]
        assert fake.names("deploy_deckies") == [[decky.name]]

    def test_mutate_of_an_undeployed_decky_updates_desired_state_only(
        self, operator_client: APIClient, fake: fakes.FakeEngine, run_tasks: Any
    ) -> None:
        decky = DeckyFactory.create()
        with run_tasks():
            response = operator_client.post(f"{DECKIES}{decky.name}/mutate/")
        (row,) = _poll(operator_client, response["Location"])
        assert row["status"] == "succeeded"
        assert "once deployed" in row["message"]
        assert fake.names("deploy_deckies") == []

    def test_mutate_with_no_services_available_is_404(
        self, operator_client: APIClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("deckies.operations.pick_new_services", lambda *args, **kwargs: None)
        decky = DeckyFactory.create()
        response = operator_client.post(f"{DECKIES}{decky.name}/mutate/")
        assert response.status_code == 404
        assert response.json()["code"] == "no_services_available"

    def test_teardown(self, operator_client: APIClient, fake: fakes.FakeEngine, run_tasks: Any) -> None:
        decky = _deployed(DeckyFactory.create())
        with run_tasks():
            response = operator_client.post(f"{DECKIES}{decky.name}/teardown/")
        assert response.status_code == 202
        (row,) = _poll(operator_client, response["Location"])
        assert row["status"] == "succeeded"
        assert fake.names("teardown_deckies") == [[decky.name]]
        assert Decky.objects.get(pk=decky.pk).state == DeckyState.TORN_DOWN
        assert operator_client.delete(f"{DECKIES}{decky.name}/").status_code == 204


# --- live services --------------------------------------------------------------------------------------------------


class TestLiveServices:
    def test_add_and_remove_on_a_running_decky(self, operator_client: APIClient, fake: fakes.FakeEngine) -> None:
        decky = _deployed(DeckyFactory.create(services=["ssh"]))
        response = operator_client.post(
            f"{DECKIES}{decky.name}/services/", {"name": "ftp", "config": {}}, format="json"
        )
        assert response.status_code == 201, response.json()
        assert response.json() == {"decky_name": decky.name, "topology_id": None, "services": ["ssh", "ftp"]}
        assert fake.names("add_service") == [(decky.name, "ftp", ["ftp", "ssh"])]
        response = operator_client.delete(f"{DECKIES}{decky.name}/services/ftp/")
        assert response.status_code == 200
        assert response.json() == {"decky_name": decky.name, "topology_id": None, "services": ["ssh"]}
        assert fake.names("remove_service") == [(decky.name, "ftp")]
        topics = set(Event.objects.values_list("topic", flat=True))
        assert {f"decky.{decky.name}.service.added", f"decky.{decky.name}.service.removed"} <= topics

    def test_add_to_an_undeployed_decky_only_rerenders(
        self, operator_client: APIClient, fake: fakes.FakeEngine
    ) -> None:
        decky = DeckyFactory.create(services=["ssh"])
        response = operator_client.post(f"{DECKIES}{decky.name}/services/", {"name": "ftp"}, format="json")
        assert response.status_code == 201
        assert fake.names("add_service") == []
        assert DeckyLifecycle.objects.get(operation="service_add").status == "succeeded"

    @pytest.mark.parametrize(
        ("payload", "status"),
        [
            ({"name": "ssh"}, 409),
            ({"name": "nonsense"}, 422),
            ({"name": "sniffer"}, 422),
            ({"name": "http", "config": {"response_code": "abc"}}, 400),
            ({"name": "Bad Slug!"}, 400),
            ({"config": {}}, 400),
            ({"name": "http", "config": "x"}, 400),
        ],
    )
    def test_add_errors(self, operator_client: APIClient, payload: dict[str, Any], status: int) -> None:
        decky = DeckyFactory.create(services=["ssh"])
        response = operator_client.post(f"{DECKIES}{decky.name}/services/", payload, format="json")
        assert response.status_code == status, response.json()

    def test_remove_errors(self, operator_client: APIClient) -> None:
        decky = DeckyFactory.create(services=["ssh", "http"])
        assert operator_client.delete(f"{DECKIES}{decky.name}/services/ftp/").status_code == 409
        assert operator_client.delete(f"{DECKIES}{decky.name}/services/nonsense/").status_code == 422
        assert operator_client.delete(f"{DECKIES}nope/services/ssh/").status_code == 404
        assert operator_client.post(f"{DECKIES}nope/services/", {"name": "ftp"}, format="json").status_code == 404

    def test_engine_refusal_is_409_and_rolled_back(self, operator_client: APIClient, fake: fakes.FakeEngine) -> None:
        decky = _deployed(DeckyFactory.create(services=["ssh"]))
        fake.fail["add_service"] = ContainerRefusedError("base not running")
        response = operator_client.post(f"{DECKIES}{decky.name}/services/", {"name": "ftp"}, format="json")
        assert response.status_code == 409
        assert response.json()["code"] == "container_refused"
        assert Decky.objects.get(pk=decky.pk).service_slugs == ["ssh"]


# --- files ----------------------------------------------------------------------------------------------------------


def _drop(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "decky_name": name,
        "path": "/home/admin/notes.txt",
        "content_b64": base64.b64encode(b"pw").decode(),
    } | extra


class TestFiles:
    def test_drop(self, operator_client: APIClient, fake: fakes.FakeEngine) -> None:
        decky = _deployed(DeckyFactory.create())
        response = operator_client.post(f"{DECKIES}files/", _drop(decky.name, mode=0o600), format="json")
        assert response.status_code == 201, response.json()
        assert response.json() == {"message": "ok", "container": _ssh_container(decky)}
        ((name, path, content, mode, mtime),) = fake.names("drop_file")
        assert (name, path, content, mode, mtime) == (
            _ssh_container(decky),
            "/home/admin/notes.txt",
            b"pw",
            0o600,
            None,
        )
        event = Event.objects.get(topic=f"decky.{decky.name}.file.dropped")
        assert event.payload["bytes"] == 2
        assert "content" not in event.payload

    def test_drop_with_mtime_offset(self, operator_client: APIClient, fake: fakes.FakeEngine) -> None:
        decky = _deployed(DeckyFactory.create())
        response = operator_client.post(f"{DECKIES}files/", _drop(decky.name, mtime_offset=-86400), format="json")
        assert response.status_code == 201
        mtime = fake.names("drop_file")[0][4]
        assert mtime is not None

    def test_topology_decky(self, operator_client: APIClient, fake: fakes.FakeEngine) -> None:
        topology = Topology.objects.create(name="maze")
        decky = DeckyFactory.create(topology=topology, network=None, ip=None, name="gw")
        response = operator_client.post(
            f"{DECKIES}files/", _drop(decky.name, topology_id=str(topology.pk)), format="json"
        )
        assert response.status_code == 201
        assert fake.names("drop_file")[0][0] == _ssh_container(decky, naming.topology_project(topology.pk))

    @pytest.mark.parametrize(
        ("change", "status"),
        [
            ({"content_b64": "***"}, 400),
            ({"path": "relative/path"}, 400),
            ({"path": "/etc/../shadow"}, 400),
            ({"mode": 0o10000}, 400),
            ({"mtime_offset": 10**15}, 400),
            ({"decky_name": "ghost"}, 404),
            ({"topology_id": "00000000-0000-0000-0000-000000000000"}, 404),
            ({"topology_id": "not-a-uuid"}, 400),
        ],
    )
    def test_drop_errors(self, operator_client: APIClient, change: dict[str, Any], status: int) -> None:
        decky = _deployed(DeckyFactory.create())
        response = operator_client.post(f"{DECKIES}files/", _drop(decky.name) | change, format="json")
        assert response.status_code == status, response.json()

    def test_container_refusal_is_409(self, operator_client: APIClient, fake: fakes.FakeEngine) -> None:
        decky = DeckyFactory.create()
        fake.fail["drop_file"] = ContainerRefusedError("container is not running")
        response = operator_client.post(f"{DECKIES}files/", _drop(decky.name), format="json")
        assert response.status_code == 409
        assert response.json()["code"] == "container_refused"

    def test_engine_path_refusal_is_400(self, operator_client: APIClient, fake: fakes.FakeEngine) -> None:
        decky = DeckyFactory.create()
        fake.fail["drop_file"] = InvalidPathError("path must be absolute")
        assert operator_client.post(f"{DECKIES}files/", _drop(decky.name), format="json").status_code == 400

    def test_delete(self, operator_client: APIClient, fake: fakes.FakeEngine) -> None:
        decky = _deployed(DeckyFactory.create())
        body = {"decky_name": decky.name, "path": "/tmp/x"}
        response = operator_client.delete(f"{DECKIES}files/", body, format="json")
        assert response.status_code == 200
        assert response.json()["message"] == "ok"
        assert fake.names("delete_file") == [(_ssh_container(decky), "/tmp/x")]
        assert (
            operator_client.delete(f"{DECKIES}files/", body | {"decky_name": "ghost"}, format="json").status_code == 404
        )
        fake.fail["delete_file"] = ContainerRefusedError("gone")
        assert operator_client.delete(f"{DECKIES}files/", body, format="json").status_code == 409

    def test_files_route_wins_over_a_decky_name(self, operator_client: APIClient) -> None:
        # A decky can never be called "files", and GET on the route is not the decky detail.
        assert operator_client.get(f"{DECKIES}files/").status_code == 405
