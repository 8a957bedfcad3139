"""Applying an INI plan: additive and replace modes, networks, addresses, collisions, atomicity."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from deckies import fleet_import as fleet_import_module
from deckies.choices import DeckyState, NetworkDriver
from deckies.fleet_import import fleet_import, network_name_for
from deckies.ini import IniConflictError, IniError
from deckies.models import CustomService, Decky, DeckyService, Network
from deckies.services import DEFAULT_NETWORK_NAME
from decnet_site.exceptions import ConflictError
from lifecycle.models import DeckyLifecycle, Event
from topology.models import LAN, Topology

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures"
FULL = (FIXTURES / "full_fleet.ini").read_text()
SMALL = (FIXTURES / "small_fleet.ini").read_text()


def run(text: str, **kwargs: Any) -> fleet_import_module.ImportPlan:
    return fleet_import(text=text, source="t.ini", **kwargs)


def fleet() -> dict[str, Decky]:
    return {d.name: d for d in Decky.objects.filter(topology__isnull=True).prefetch_related("services")}


def configs(decky: Decky) -> dict[str, dict[str, Any]]:
    return {row.slug: row.config for row in DeckyService.objects.filter(decky=decky)}


def set_state(name: str, state: str) -> None:
    Decky.objects.filter(name=name, topology__isnull=True).update(state=state)


# --- the full fixture -------------------------------------------------------------------------------------------------


def test_full_fixture_creates_every_decky_with_its_shape() -> None:
    plan = run(FULL)
    assert plan.applied
    assert plan.mode == "additive"
    deckies = fleet()
    assert sorted(deckies) == sorted(
        ["web-01", "web-02", "web-03", "dc", "db-01", "db-02", "mail", "shell", "iot", "infra", "trap"]
    )
    network = Network.objects.get(subnet="10.31.0.0/24")
    assert network.name == network_name_for("10.31.0.0/24") == "lan-10-31-0-0-24"
    assert network.gateway == "10.31.0.1"
    assert network.driver == NetworkDriver.BRIDGE
    assert all(d.network_id == network.pk and d.state == DeckyState.PENDING for d in deckies.values())
    assert deckies["dc"].ip == "10.31.0.10"
    assert deckies["infra"].ip == "10.31.0.20"
    assert deckies["web-01"].ip == "10.31.0.2"
    assert len({d.ip for d in deckies.values()}) == 11
    assert deckies["dc"].nmap_os == "windows_server"
    assert deckies["dc"].archetype == "domain-controller"
    assert deckies["db-01"].mutate_interval == timedelta(days=2)
    assert deckies["web-01"].mutate_interval == timedelta(hours=6)
    assert deckies["shell"].distro == "rocky9"
    assert configs(deckies["web-02"])["http"]["server_header"] == "Microsoft-IIS/10.0"
    assert configs(deckies["mail"])["smtp_relay"]["upstream_port"] == 587
    assert configs(deckies["web-01"])["ftp"] == {}
    assert deckies["trap"].service_slugs == ["ssh", "tarpit"]
    custom = CustomService.objects.get(slug="tarpit")
    assert (custom.image, custom.command, custom.ports) == ("decnet/base:1", ["sleep", "infinity"], [2222, 2223])
    event = Event.objects.get(topic="fleet.import")
    assert event.payload["log_target"] == "10.31.0.250:514"
    assert len(event.payload["created"]) == 11
    assert any("log_target" in warning for warning in plan.warnings)


def test_dry_run_writes_nothing_and_plans_the_same() -> None:
    dry = run(FULL, dry_run=True)
    assert not dry.applied
    assert not Decky.objects.exists()
    assert not Network.objects.exists()
    assert not CustomService.objects.exists()
    assert not Event.objects.filter(topic="fleet.import").exists()
    real = run(FULL)
    assert [d.as_dict() | {"state": None} for d in dry.deckies] == [d.as_dict() for d in real.deckies]
    assert dry.as_dict()["network"] == real.as_dict()["network"] | {"action": "create"}


def test_plan_as_dict_is_json_ready() -> None:
    data = run(SMALL, dry_run=True).as_dict()
    assert data["created"] == ["web-01", "web-02", "files"]
    assert data["deckies"][0]["personas"] == ["ssh"]
    assert data["network"]["subnet"] == "10.32.0.0/28"


# --- additive collisions ----------------------------------------------------------------------------------------------


def test_additive_name_collision_names_the_line() -> None:
    run(SMALL)
    with pytest.raises(IniConflictError) as caught:
        run("[general]\nnet = 10.32.0.0/28\n\n[other]\nservices = ssh\n\n[files]\nservices = ssh\n")
    assert [i.line for i in caught.value.issues] == [7]
    assert "already exists in the fleet" in str(caught.value)
    assert sorted(fleet()) == ["files", "web-01", "web-02"]


def test_additive_ip_collision_with_the_fleet() -> None:
    run(SMALL)
    with pytest.raises(IniConflictError) as caught:
        run("[general]\nnet = 10.32.0.0/28\n[other]\nservices = ssh\nip = 10.32.0.9\n")
    assert [i.line for i in caught.value.issues] == [5]
    assert "used by fleet decky files" in str(caught.value)


def test_additive_allocation_skips_taken_addresses() -> None:
    run(SMALL)
    plan = run("[general]\nnet = 10.32.0.0/28\n[more]\nservices = ssh\namount = 2\n")
    assert [d.ip for d in plan.deckies] == ["10.32.0.4", "10.32.0.5"]


def test_address_exhaustion_is_a_conflict() -> None:
    with pytest.raises(IniConflictError, match="no free address") as caught:
        run("[general]\nnet = 10.40.0.0/29\n[many]\nservices = ssh\namount = 6\n")
    assert caught.value.issues[0].line == 3
    assert not Decky.objects.exists()


@pytest.mark.parametrize(
    ("ip", "fragment"), [("10.32.0.1", "the gateway"), ("10.32.0.15", "not a usable"), ("10.99.0.1", "outside")]
)
def test_bad_explicit_addresses(ip: str, fragment: str) -> None:
    with pytest.raises(IniError, match=fragment):
        run(f"[general]\nnet = 10.32.0.0/28\n[a]\nservices = ssh\nip = {ip}\n")


# --- networks ---------------------------------------------------------------------------------------------------------


def test_without_general_the_default_network_is_used(settings: Any) -> None:
    settings.DECNET_FLEET_SUBNET = "10.41.0.0/24"
    run("[a]\nservices = ssh\n")
    network = Network.objects.get()
    assert (network.name, network.subnet, network.gateway_address) == (
        DEFAULT_NETWORK_NAME,
        "10.41.0.0/24",
        "10.41.0.1",
    )
    assert fleet()["a"].ip == "10.41.0.2"
    run("[b]\nservices = ssh\n")
    assert fleet()["b"].network_id == network.pk
    assert fleet()["b"].ip == "10.41.0.3"


def test_interface_makes_a_macvlan_network() -> None:
    plan = run("[general]\nnet = 192.168.77.0/24\ngw = 192.168.77.254\ninterface = eth0\n[a]\nservices = ssh\n")
    network = Network.objects.get()
    assert (network.driver, network.parent_interface, network.gateway) == ("macvlan", "eth0", "192.168.77.254")
    assert fleet()["a"].ip == "192.168.77.1"
    assert any("macvlan" in warning for warning in plan.warnings)


def test_existing_network_changes_only_when_nothing_on_it_is_deployed() -> None:
    run(SMALL)
    plan = run("[general]\nnet = 10.32.0.0/28\ngw = 10.32.0.14\n[x]\nservices = ssh\n")
    assert plan.network.action == "update"
    assert Network.objects.get().gateway == "10.32.0.14"
    set_state("files", DeckyState.RUNNING)
    with pytest.raises(IniConflictError, match="carries deployed deckies"):
        run("[general]\nnet = 10.32.0.0/28\ngw = 10.32.0.13\n[y]\nservices = ssh\n")
    assert Network.objects.get().gateway == "10.32.0.14"


def test_new_network_must_not_overlap_fleet_networks_or_topology_lans() -> None:
    run(SMALL)
    with pytest.raises(IniConflictError, match="overlaps fleet network") as caught:
        run("[general]\nnet = 10.32.0.0/24\n[x]\nservices = ssh\n")
    assert caught.value.issues[0].line == 2
    topology = Topology.objects.create(name="maze")
    LAN.objects.create(topology=topology, name="dmz", subnet="10.60.1.0/24", is_dmz=True)
    with pytest.raises(IniConflictError, match="topology LAN"):
        run("[general]\nnet = 10.60.0.0/16\n[x]\nservices = ssh\n")


# --- replace ----------------------------------------------------------------------------------------------------------


def test_replace_deletes_undeployed_deckies_not_in_the_file() -> None:
    run(FULL)
    plan = run(SMALL, replace=True)
    assert plan.mode == "replace"
    assert sorted(plan.delete) == sorted(["web-03", "dc", "db-01", "db-02", "mail", "shell", "iot", "infra", "trap"])
    assert sorted(fleet()) == ["files", "web-01", "web-02"]
    assert set(plan.updated) == {"web-01", "web-02"}
    assert plan.created == ["files"]
    assert CustomService.objects.filter(slug="tarpit").exists()


@pytest.mark.parametrize(
    "state", [DeckyState.RUNNING, DeckyState.DEGRADED, DeckyState.FAILED, DeckyState.TEARDOWN_FAILED]
)
def test_replace_refuses_to_delete_deckies_that_may_have_containers(state: str) -> None:
    run(FULL)
    set_state("dc", state)
    set_state("mail", state)
    before = {name: (d.ip, d.service_slugs) for name, d in fleet().items()}
    with pytest.raises(IniConflictError) as caught:
        run(SMALL, replace=True)
    assert "dc" in str(caught.value)
    assert "mail" in str(caught.value)
    assert "teardown --names dc,mail" in str(caught.value)
    assert {name: (d.ip, d.service_slugs) for name, d in fleet().items()} == before


def test_replace_refuses_deckies_with_an_open_operation() -> None:
    run(FULL)
    DeckyLifecycle.objects.create(decky_name="trap", operation="deploy", status="pending")
    with pytest.raises(IniConflictError, match="trap"):
        run(SMALL, replace=True)
    DeckyLifecycle.objects.create(decky_name="web-01", operation="deploy", status="running")
    with pytest.raises(IniConflictError, match="in progress") as caught:
        run(FULL, replace=True)
    assert caught.value.issues[0].line == 11


def test_replace_redefines_in_place_keeping_hostname_and_address() -> None:
    run(SMALL)
    before = fleet()
    text = SMALL.replace("[web.ssh]\nuser = admin\n", "").replace("archetype = linux-server", "services = ssh, mysql")
    run(text, replace=True)
    after = fleet()
    assert after["web-01"].pk == before["web-01"].pk
    assert after["web-01"].hostname == before["web-01"].hostname
    assert after["web-01"].ip == before["web-01"].ip
    assert after["web-01"].service_slugs == ["ssh", "mysql"]
    assert configs(after["web-01"])["ssh"] == {}  # the persona left the file, so it left the decky
    assert after["web-01"].archetype == ""


def test_replace_may_swap_addresses() -> None:
    run("[general]\nnet = 10.42.0.0/24\n[a]\nservices = ssh\nip = 10.42.0.5\n[b]\nservices = ssh\nip = 10.42.0.6\n")
    run(
        "[general]\nnet = 10.42.0.0/24\n[a]\nservices = ssh\nip = 10.42.0.6\n[b]\nservices = ssh\nip = 10.42.0.5\n",
        replace=True,
    )
    assert (fleet()["a"].ip, fleet()["b"].ip) == ("10.42.0.6", "10.42.0.5")


def test_replace_refuses_to_move_a_deployed_decky_to_another_network() -> None:
    run(SMALL)
    set_state("files", DeckyState.RUNNING)
    text = "[general]\nnet = 10.43.0.0/24\n[files]\nservices = ftp, ssh\n"
    with pytest.raises(IniConflictError, match="tear it down before moving it"):
        run(text, replace=True)


def test_additive_import_may_target_an_existing_network_by_subnet() -> None:
    run(SMALL)
    run("[general]\nnet = 10.32.0.0/28\n[z]\nservices = ssh\n")
    assert Network.objects.count() == 1


# --- custom services --------------------------------------------------------------------------------------------------


def test_custom_services_are_persisted_and_compared() -> None:
    text = "[custom-app]\nbinary = registry.local/app:1\nports = 8080\n[a]\nservices = app\n"
    assert run(text).custom_services[0].action == "create"
    again = text.replace("[a]", "[b]")
    assert run(again).custom_services[0].action == "unchanged"
    changed = again.replace("8080", "9090").replace("[b]", "[c]")
    with pytest.raises(IniConflictError, match="different definition"):
        run(changed)
    plan = run(changed.replace("[c]\nservices = app\n", "[a]\nservices = app\n[b]\nservices = app\n"), replace=True)
    assert plan.custom_services[0].action == "update"
    assert CustomService.objects.get(slug="app").ports == [9090]


def test_decky_may_use_a_stored_custom_service() -> None:
    CustomService.objects.create(slug="honey", image="registry.local/honey:2", command=[], ports=[7000])
    run("[a]\nservices = ssh, honey\n")
    assert fleet()["a"].service_slugs == ["ssh", "honey"]


# --- atomicity --------------------------------------------------------------------------------------------------------


def test_a_failure_half_way_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = fleet_import_module.decky_create
    calls = []

    def flaky(**kwargs: Any) -> Decky:
        calls.append(kwargs["name"])
        if len(calls) == 3:
            raise ConflictError("boom")
        return real(**kwargs)

    monkeypatch.setattr(fleet_import_module, "decky_create", flaky)
    with pytest.raises(ConflictError, match="boom"):
        run(FULL)
    assert calls == ["web-01", "web-02", "web-03"]
    assert not Decky.objects.exists()
    assert not Network.objects.exists()
    assert not CustomService.objects.exists()
