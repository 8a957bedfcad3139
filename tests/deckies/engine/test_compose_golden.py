"""The renderer's output pinned byte for byte, and the properties the goldens rely on."""

from __future__ import annotations

import random
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from deckies import scopes
from deckies.engine import compose, naming, runner, runtime
from deckies.engine.errors import RenderError
from deckies.services import decky_create
from tests.deckies.engine.builders import (
    fleet_yaml,
    make_custom_service,
    make_fleet,
    make_network,
    make_topology,
    reload,
    topology_rendered,
)
from tests.deckies.engine.conftest import assert_golden
from tests.deckies.factories import set_state
from topology.models import LAN, Edge, Topology

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("default_names")]

TOPOLOGY_ID = uuid.UUID("0c0ffee0-1234-4abc-8def-0123456789ab")
FLEET_IPS = ("10.77.0.10", "10.77.0.11", "10.77.0.12")


@pytest.fixture
def fleet_bridge() -> list:
    make_custom_service()
    network = make_network("decnet-lan", "10.77.0.0/24")
    return make_fleet(network, FLEET_IPS, extra_services={"web-01": ["tarpit_byos", "smtp_relay"]})


@pytest.fixture
def fleet_macvlan() -> list:
    network = make_network("office", "192.168.50.0/24", driver="macvlan", parent="eth0")
    return make_fleet(
        network,
        ("192.168.50.21", "192.168.50.22", "192.168.50.23"),
        macs=("02:42:C0:A8:32:15", "02:42:c0:a8:32:16", ""),
    )


@pytest.fixture
def topology():
    return make_topology(("10.60.0.0/24", "10.60.1.0/24"), topology_id=TOPOLOGY_ID)


def _compose_config_ok(path: Path) -> None:
    """compose itself accepts the file (schema, network_mode/depends_on references); no engine involved."""
    proc = subprocess.run(
        runner.build_argv("golden", path, ["config", "--quiet"]), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def test_fleet_bridge_golden(fleet_bridge: list, tmp_path: Path) -> None:
    text = fleet_yaml(include=fleet_bridge)
    assert_golden("fleet_bridge.yml", text)
    (tmp_path / "f.yml").write_text(text)
    _compose_config_ok(tmp_path / "f.yml")


def test_fleet_macvlan_golden(fleet_macvlan: list, tmp_path: Path) -> None:
    text = fleet_yaml(include=fleet_macvlan)
    assert_golden("fleet_macvlan.yml", text)
    (tmp_path / "f.yml").write_text(text)
    _compose_config_ok(tmp_path / "f.yml")


def test_topology_golden(topology, tmp_path: Path) -> None:
    text = topology_rendered(topology).yaml
    assert_golden("topology.yml", text)
    (tmp_path / "t.yml").write_text(text)
    _compose_config_ok(tmp_path / "t.yml")


def test_render_is_order_independent_and_repeatable(fleet_bridge: list) -> None:
    first = fleet_yaml(include=fleet_bridge)
    shuffled = list(reload(fleet_bridge))
    random.Random(7).shuffle(shuffled)
    assert fleet_yaml(include=shuffled) == first
    assert "&id" not in first
    assert "*id" not in first


def test_fleet_document_shape(fleet_bridge: list) -> None:
    doc = yaml.safe_load(fleet_yaml(include=fleet_bridge))
    assert doc["name"] == naming.fleet_project()
    services = doc["services"]
    base = services["win-01"]
    assert base["container_name"] == "decnet-fleet-win-01"
    assert base["sysctls"]["net.ipv4.ip_default_ttl"] == "128"
    assert base["command"] == ["sleep", "infinity"]
    assert base["init"] is True
    assert base["stop_grace_period"] == "1s"
    assert base["cap_add"] == ["NET_ADMIN"]
    assert base["networks"] == {"decnet-lan": {"ipv4_address": "10.77.0.11"}}
    assert "mac_address" not in base  # bridge: the engine picks the MAC
    assert base["labels"] == {
        "org.decnet.decky": "win-01",
        "org.decnet.project": "decnet-fleet",
        "org.decnet.role": "base",
        "org.decnet.scope": "fleet",
    }
    relay = services["web-01-smtp-relay"]  # "_" becomes "-" in keys and names
    assert relay["container_name"] == "decnet-fleet-web-01-smtp-relay"
    assert relay["labels"]["org.decnet.service"] == "smtp_relay"
    assert relay["network_mode"] == "service:web-01"
    assert relay["depends_on"] == ["web-01"]
    assert relay["restart"] == "unless-stopped"
    assert relay["logging"] == {"driver": "json-file", "options": {"max-file": "5", "max-size": "10m"}}
    assert relay["environment"]["DECNET_SERVICE"] == "smtp_relay"
    byos = services["web-01-tarpit-byos"]
    assert byos["image"] == "decnet/base:1"
    assert byos["command"] == ["sleep", "infinity"]
    assert set(byos["environment"]) == {"DECNET_DECKY", "DECNET_HOSTNAME"}
    network = doc["networks"]["decnet-lan"]
    assert network["name"] == "decnet-fleet-decnet-lan"
    assert network["driver"] == "bridge"
    assert network["ipam"] == {"config": [{"subnet": "10.77.0.0/24", "gateway": "10.77.0.1"}]}
    assert "external" not in network


def test_macvlan_network_and_mac(fleet_macvlan: list) -> None:
    doc = yaml.safe_load(fleet_yaml(include=fleet_macvlan))
    net = doc["networks"]["office"]
    assert net["driver"] == "macvlan"
    assert net["driver_opts"] == {"parent": "eth0", "macvlan_mode": "bridge"}
    assert doc["services"]["web-01"]["mac_address"] == "02:42:c0:a8:32:15"
    assert "mac_address" not in doc["services"]["iot-01"]  # empty: random


def test_topology_document_shape(topology) -> None:
    rendered = topology_rendered(topology)
    doc = rendered.document
    assert doc["name"] == "decnet-t-0c0ffee0"
    assert doc["networks"]["corp"]["internal"] is True
    assert doc["networks"]["dmz"]["internal"] is False
    assert doc["networks"]["corp"]["name"] == "decnet-t-0c0ffee0-corp"
    gw = doc["services"]["gw"]
    # The bridge decky is on both LANs; addresses allocated skipping the gateway .1, in decky-name order.
    assert gw["networks"] == {"corp": {"ipv4_address": "10.60.1.2"}, "dmz": {"ipv4_address": "10.60.0.2"}}
    assert gw["sysctls"]["net.ipv4.ip_forward"] == "1"
    assert doc["services"]["web"]["networks"] == {"dmz": {"ipv4_address": "10.60.0.3"}}
    assert doc["services"]["db"]["networks"] == {"corp": {"ipv4_address": "10.60.1.20"}}
    # Topology deckies get their OS family's sysctls too (DECNET forgot them).
    assert doc["services"]["db"]["sysctls"]["net.ipv4.ip_default_ttl"] == "255"
    assert doc["services"]["web-http"]["container_name"] == "decnet-t-0c0ffee0-web-http"
    assert doc["services"]["web-http"]["labels"]["org.decnet.topology"] == str(TOPOLOGY_ID)
    assert rendered.addresses == {
        "db": {"corp": "10.60.1.20"},
        "gw": {"corp": "10.60.1.2", "dmz": "10.60.0.2"},
        "web": {"dmz": "10.60.0.3"},
    }
    # Nothing allocated was written back.
    assert not topology.edges.filter(ip__isnull=False).exclude(decky__name="db").exists()


def test_names_never_collide_across_scopes(topology, fleet_bridge: list) -> None:
    fleet_names = set(scopes.render_fleet(None, include=fleet_bridge).container_names().values())
    other = make_topology(("10.61.0.0/24", "10.61.1.0/24"), name="maze-2")
    first = set(topology_rendered(topology).container_names().values())
    second = set(topology_rendered(other).container_names().values())
    assert not (first & second)
    assert not (first & fleet_names)
    assert not (second & fleet_names)


def test_edge_ip_outside_lan_is_refused(topology) -> None:
    edge = topology.edges.get(decky__name="web")
    edge.ip = "10.99.0.5"
    edge.save()
    with pytest.raises(RenderError, match="not a host address"):
        topology_rendered(topology)


def test_explicit_gateway_address_is_refused(topology) -> None:
    edge = topology.edges.get(decky__name="web")
    edge.ip = "10.60.0.1"
    edge.save()
    with pytest.raises(RenderError, match="gateway"):
        topology_rendered(topology)


def test_full_lan_is_refused() -> None:
    topology = make_topology(("10.62.0.0/29", "10.62.1.0/29"), name="tiny")
    # /29: hosts .1-.6, .1 is the gateway; fill the DMZ so gw's allocation has no room.
    dmz = LAN.objects.get(topology=topology, name="dmz")
    for index in range(5):
        extra = decky_create(name=f"filler-{index}", services=["ssh"], topology_id=topology.pk, hostname=f"f{index}")
        Edge.objects.create(topology=topology, decky=extra, lan=dmz, ip=f"10.62.0.{index + 2}")
    with pytest.raises(RenderError, match="no free address"):
        topology_rendered(Topology.objects.get(pk=topology.pk))


def test_decky_without_lan_is_refused(topology) -> None:
    topology.edges.filter(decky__name="web").delete()
    with pytest.raises(RenderError, match="no LAN"):
        topology_rendered(topology)


def test_name_clash_is_refused(fleet_bridge: list) -> None:
    clash = decky_create(name="win-01-ftp", services=["ssh"], ip="10.77.0.40", hostname="x")
    with pytest.raises(RenderError, match="already uses"):
        fleet_yaml(include=[*fleet_bridge, *reload([clash])])


def test_fleet_selection_follows_state(fleet_bridge: list) -> None:
    web, win, iot = fleet_bridge
    set_state(win, "running")
    set_state(iot, "failed")
    assert [d.name for d in scopes.fleet_plans(None)] == ["win-01"]
    assert [d.name for d in scopes.fleet_plans(None, include=[web])] == ["web-01", "win-01"]
    assert [d.name for d in scopes.fleet_plans(None, include=[web], exclude=[win.name])] == ["web-01"]
    doc = yaml.safe_load(fleet_yaml())
    assert set(doc["services"]) == {"win-01", "win-01-ftp", "win-01-mysql"}


def test_empty_fleet_renders_no_services() -> None:
    rendered = compose.render_fleet([])
    assert rendered.document == {"name": "decnet-fleet", "services": {}}


def test_write_fleet_compose_is_atomic_and_private(fleet_bridge: list, engine_data_dir: Path) -> None:
    scope = scopes.fleet_scope(None)
    path = Path(runtime.write_file(scope, scopes.render_fleet(None, include=fleet_bridge)))
    assert path == engine_data_dir / "compose" / "fleet-local.yml"
    assert path.read_text() == fleet_yaml(include=fleet_bridge)
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
