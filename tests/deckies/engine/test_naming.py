"""Docker names and labels: namespaced per scope, DNS-safe, never parsed back."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from deckies.engine import naming

TOPOLOGY = uuid.UUID("deadbeef-0000-4000-8000-000000000001")

pytestmark = pytest.mark.usefixtures("default_names")


def test_prefix_keeps_installations_apart(settings: Any) -> None:
    settings.DECNET_NAME_PREFIX = "lab2"
    assert naming.fleet_project() == "lab2-fleet"
    assert naming.topology_project(TOPOLOGY) == "lab2-t-deadbeef"


def test_projects_cannot_collide() -> None:
    assert naming.fleet_project() == "decnet-fleet"
    assert naming.topology_project(TOPOLOGY) == "decnet-t-deadbeef"
    assert naming.topology_project(str(TOPOLOGY)) == naming.topology_project(TOPOLOGY)
    assert naming.project_for(None) == "decnet-fleet"
    assert naming.project_for(TOPOLOGY) == "decnet-t-deadbeef"


def test_container_names_are_namespaced_and_dns_safe() -> None:
    fleet = naming.fleet_project()
    topo = naming.topology_project(TOPOLOGY)
    assert naming.container_name(fleet, naming.base_key("web-01")) == "decnet-fleet-web-01"
    assert naming.container_name(fleet, naming.service_key("web-01", "smtp_relay")) == "decnet-fleet-web-01-smtp-relay"
    assert naming.container_name(topo, naming.service_key("decky-001", "docker_api")) == (
        "decnet-t-deadbeef-decky-001-docker-api"
    )
    assert naming.network_name(topo, "dmz") == "decnet-t-deadbeef-dmz"


def test_labels() -> None:
    labels = naming.container_labels("decnet-t-deadbeef", TOPOLOGY, "gw", "ssh")
    assert labels == {
        "org.decnet.project": "decnet-t-deadbeef",
        "org.decnet.scope": "topology",
        "org.decnet.topology": str(TOPOLOGY),
        "org.decnet.decky": "gw",
        "org.decnet.role": "service",
        "org.decnet.service": "ssh",
    }
    base = naming.container_labels("decnet-fleet", None, "web-01")
    assert base["org.decnet.role"] == "base"
    assert "org.decnet.service" not in base
    assert "org.decnet.topology" not in base
    assert naming.label_filters({"b": "2", "a": "1"}) == ["a=1", "b=2"]


def test_file_stems() -> None:
    host_id = uuid.UUID("11111111-2222-4333-8444-555555555555")
    assert naming.fleet_file_stem(None) == "fleet-local"
    assert naming.fleet_file_stem("edge-1", host_id) == "fleet-edge-1"
    # A name that is not a safe file name, or that would alias the default engine's file, falls back to the uuid.
    assert naming.fleet_file_stem("../etc", host_id) == f"fleet-{host_id.hex}"
    assert naming.fleet_file_stem("local", host_id) == f"fleet-{host_id.hex}"
    assert naming.topology_file_stem(TOPOLOGY) == "topology-deadbeef"
