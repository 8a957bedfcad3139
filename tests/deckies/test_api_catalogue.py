"""Catalogue (services with config schemas, archetypes, distros), Docker hosts and the health check, per role."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from deckies.engine.errors import EngineUnavailableError
from deckies.models import CustomService, Host
from tests.deckies import fakes
from tests.deckies.factories import DeckyFactory, HostFactory

pytestmark = pytest.mark.django_db

API = "/api/v1/"


class TestCatalogue:
    def test_services_with_schemas(self, viewer_client: APIClient) -> None:
        CustomService.objects.create(slug="acme-web", image="registry.local/acme:1", ports=[8080])
        body = viewer_client.get(f"{API}services/").json()
        slugs = [item["slug"] for item in body]
        assert "ssh" in slugs
        assert "sniffer" in slugs
        assert slugs[-1] == "acme-web"
        by_slug = {item["slug"]: item for item in body}
        assert by_slug["sniffer"]["fleet_singleton"] is True
        assert by_slug["acme-web"]["custom"] is True
        assert by_slug["acme-web"]["ports"] == [8080]
        keys = {field["key"]: field for field in by_slug["ssh"]["config_schema"]}
        assert keys["password"]["secret"] is True
        assert keys["password"]["default"] is None

    def test_service_detail(self, viewer_client: APIClient) -> None:
        body = viewer_client.get(f"{API}services/http/").json()
        assert body["slug"] == "http"
        assert 80 in body["ports"]
        assert any(field["type"] == "multi_enum" for field in body["config_schema"])
        assert viewer_client.get(f"{API}services/nonsense/").status_code == 404

    def test_archetypes(self, viewer_client: APIClient) -> None:
        body = viewer_client.get(f"{API}archetypes/").json()
        assert len(body) == 15
        detail = viewer_client.get(f"{API}archetypes/deaddeck/").json()
        assert detail["services"] == ["ssh"]
        assert detail["nmap_os"] == "linux"
        assert viewer_client.get(f"{API}archetypes/nope/").status_code == 404

    def test_distros(self, viewer_client: APIClient) -> None:
        body = viewer_client.get(f"{API}distros/").json()
        assert [item["slug"] for item in body][:2] == ["debian", "ubuntu22"]
        assert viewer_client.get(f"{API}distros/rocky9/").json()["hostname_style"] == "rhel"
        assert viewer_client.get(f"{API}distros/plan9/").status_code == 404

    @pytest.mark.parametrize("path", ["services/", "services/ssh/", "archetypes/", "distros/", "hosts/", "health/"])
    def test_anonymous_is_refused(self, anon_client: APIClient, path: str) -> None:
        assert anon_client.get(f"{API}{path}").status_code in (401, 403)

    @pytest.mark.parametrize("path", ["schema/", "docs/"])
    def test_schema_and_docs_are_public(self, anon_client: APIClient, path: str) -> None:
        assert anon_client.get(f"{API}{path}").status_code == 200


class TestHosts:
    def test_crud(self, operator_client: APIClient, viewer_client: APIClient) -> None:
        response = operator_client.post(
            f"{API}hosts/", {"name": "edge-1", "docker_url": "tcp://10.0.0.5:2376"}, format="json"
        )
        assert response.status_code == 201, response.json()
        uuid = response.json()["uuid"]
        assert response.json()["status"] == "active"
        assert [item["name"] for item in viewer_client.get(f"{API}hosts/").json()["results"]] == ["edge-1"]
        assert viewer_client.get(f"{API}hosts/{uuid}/").json()["docker_url"] == "tcp://10.0.0.5:2376"
        response = operator_client.patch(f"{API}hosts/{uuid}/", {"status": "disabled"}, format="json")
        assert response.status_code == 200
        assert response.json()["status"] == "disabled"
        assert viewer_client.get(f"{API}hosts/?status=disabled").json()["count"] == 1
        assert operator_client.delete(f"{API}hosts/{uuid}/").status_code == 204
        assert not Host.objects.exists()

    def test_errors(self, operator_client: APIClient, viewer_client: APIClient) -> None:
        host = HostFactory.create(name="taken")
        body = {"name": "taken", "docker_url": "unix:///var/run/docker.sock"}
        assert operator_client.post(f"{API}hosts/", body, format="json").status_code == 409
        assert operator_client.post(f"{API}hosts/", body | {"name": "x", "docker_url": "ftp://nope"}).status_code == 400
        assert viewer_client.post(f"{API}hosts/", body | {"name": "y"}, format="json").status_code == 403
        missing = "00000000-0000-0000-0000-000000000000"
        assert viewer_client.get(f"{API}hosts/{missing}/").status_code == 404
        assert operator_client.patch(f"{API}hosts/{missing}/", {}, format="json").status_code == 404
        other = HostFactory.create(name="other")
        assert operator_client.patch(f"{API}hosts/{other.uuid}/", {"name": "taken"}, format="json").status_code == 409
        DeckyFactory.create(host=host)
        response = operator_client.delete(f"{API}hosts/{host.uuid}/")
        assert response.status_code == 409
        assert Host.objects.filter(pk=host.pk).exists()


class TestHealth:
    @pytest.fixture
    def fake(self, monkeypatch: pytest.MonkeyPatch) -> fakes.FakeEngine:
        return fakes.install(monkeypatch)

    def test_all_ok(self, viewer_client: APIClient, fake: fakes.FakeEngine, settings: Any) -> None:
        call_command("setup_schedules", stdout=StringIO())
        HostFactory.create(name="edge")
        response = viewer_client.get(f"{API}health/")
        body = response.json()
        assert response.status_code == 200, body
        assert body["ok"] is True
        assert set(body["checks"]) == {"database", "broker", "cluster", "engine:local", "engine:edge"}
        assert fake.names("engine_ping") == [settings.DECNET_DEFAULT_DOCKER_URL, "tcp://127.0.0.1:2375"]

    def test_a_failed_check_is_503_with_detail(self, viewer_client: APIClient, fake: fakes.FakeEngine) -> None:
        call_command("setup_schedules", stdout=StringIO())
        fake.fail["engine_ping"] = EngineUnavailableError("cannot connect to the Docker engine")
        response = viewer_client.get(f"{API}health/")
        assert response.status_code == 503
        check = response.json()["checks"]["engine:local"]
        assert check["ok"] is False
        assert "cannot connect" in check["detail"]
        assert response.json()["checks"]["database"]["ok"] is True

    def test_no_cluster_evidence_is_503(self, viewer_client: APIClient, fake: fakes.FakeEngine) -> None:
        response = viewer_client.get(f"{API}health/")
        assert response.status_code == 503
        assert response.json()["checks"]["cluster"]["ok"] is False

    def test_overdue_schedules_mean_no_cluster(self, viewer_client: APIClient, fake: fakes.FakeEngine) -> None:
        from datetime import timedelta

        from django.utils import timezone
        from django_q.models import Schedule

        call_command("setup_schedules", stdout=StringIO())
        Schedule.objects.update(next_run=timezone.now() - timedelta(hours=1))
        body: dict[str, Any] = viewer_client.get(f"{API}health/").json()
        assert "overdue" in body["checks"]["cluster"]["detail"]

    def test_broker_failure(
        self, viewer_client: APIClient, fake: fakes.FakeEngine, settings: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings.REDIS_URL = "redis://127.0.0.1:1/0"
        call_command("setup_schedules", stdout=StringIO())
        response = viewer_client.get(f"{API}health/")
        assert response.status_code == 503
        assert response.json()["checks"]["broker"]["ok"] is False
