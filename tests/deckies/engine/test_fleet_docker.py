"""The fleet engine against the real Docker engine: deploy, greetings, TTL, live service changes, file drops and
teardown without leftovers.

One module-scoped fleet of three deckies (linux, windows, embedded; two services each) on a fresh subnet; names
carry a per-run prefix so concurrent runs on the same engine never meet. Rows the module needs across tests are
committed with the DB blocker lifted and deleted again in the finaliser, like the containers.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import pytest
from django.test import override_settings

from deckies.choices import DeckyState
from deckies.engine import docker_api, naming, runtime
from deckies.engine.errors import ContainerRefusedError, InvalidPathError
from deckies.models import Decky, DeckyService, Network
from lifecycle.models import Event
from tests.deckies.engine import builders, probes
from tests.deckies.engine.builders import FLEET_TRIO, DeckySpec, make_fleet, make_network, reload
from tests.deckies.factories import set_state

pytestmark = [pytest.mark.docker, pytest.mark.django_db]

TTL = {"linux": 64, "windows": 128, "embedded": 255}


class Fleet:
    """What the module deployed: the deckies (by short name), their IPs, the network and the Docker client."""

    def __init__(self, prefix: str, network: Network, deckies: list[Decky], data_dir: Path) -> None:
        self.prefix = prefix
        self.network = network
        self.deckies = {d.name.removeprefix(prefix): d for d in deckies}
        self.data_dir = data_dir
        self.api = docker.APIClient(version="auto", timeout=30)

    def decky(self, short: str) -> Decky:
        return reload([self.deckies[short]])[0]

    def container(self, short: str, slug: str | None = None) -> str:
        name = self.deckies[short].name
        key = naming.base_key(name) if slug is None else naming.service_key(name, slug)
        return naming.container_name(naming.fleet_project(), key)

    def snapshot(self) -> dict[str, tuple[str, str]]:
        """{container name: (id, StartedAt)} of every container of this run."""
        out = {}
        for short in self.deckies:
            for state in builders.containers(self.decky(short)):
                info = self.api.inspect_container(state.name)
                out[state.name] = (info["Id"], info["State"]["StartedAt"])
        return out


def _set_state(deckies: list[Decky], state: str) -> None:
    for decky in deckies:
        set_state(decky, state)


@pytest.fixture(scope="module")
def fleet(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    prefix = f"t{secrets.token_hex(2)}-"
    subnet = probes.free_subnets(1)[0]
    data_dir = tmp_path_factory.mktemp("engine-fleet")
    overrides = override_settings(DECNET_DATA_DIR=data_dir)
    overrides.enable()
    try:
        with django_db_blocker.unblock():
            network = make_network(f"{prefix}lan", subnet)
            deckies = make_fleet(network, [probes.host(subnet, 10 + i) for i in range(3)], prefix=prefix)
        state = Fleet(prefix, network, deckies, data_dir)
        try:
            with django_db_blocker.unblock():
                builders.deploy(deckies)
                _set_state(deckies, DeckyState.RUNNING)  # what the operations layer records after success
            yield state
        finally:
            with django_db_blocker.unblock():
                _cleanup(state)
    finally:
        overrides.disable()


def _cleanup(state: Fleet) -> None:
    labels_by_decky = [{naming.LABEL_DECKY: d.name} for d in state.deckies.values()]
    for decky in Decky.objects.filter(pk__in=[d.pk for d in state.deckies.values()]):
        with contextlib.suppress(Exception):
            builders.teardown([decky])
    for labels in labels_by_decky:
        docker_api.remove_containers(None, docker_api.list_containers(None, labels))
    name = naming.network_name(naming.fleet_project(), state.network.name)
    docker_api.remove_networks(None, [n for n in state.api.networks(names=[name]) if n["Name"] == name])
    Decky.objects.filter(pk__in=[d.pk for d in state.deckies.values()]).delete()
    Network.objects.filter(pk=state.network.pk).delete()
    # The module-wide fixture writes outside any test's transaction: leave no event behind for later tests.
    Event.objects.filter(topic__startswith=f"decky.{state.prefix}").delete()
    state.api.close()


# --- the deployed fleet ----------------------------------------------------------------------------------------------


def test_every_container_runs_with_labels(fleet: Fleet) -> None:
    for spec in FLEET_TRIO:
        short = spec["name"]
        states = builders.containers(fleet.decky(short))
        assert {(s.service, s.status) for s in states} == {(None, "running")} | {
            (slug, "running") for slug in spec["services"]
        }
        assert all(s.decky == fleet.deckies[short].name and s.topology_id is None for s in states)
    names = {s.name for s in runtime.containers(builders.fleet_scope())}
    assert fleet.container("web-01") in names
    assert fleet.container("iot-01", "smtp") in names
    info = fleet.api.inspect_container(fleet.container("win-01"))
    assert info["Config"]["Labels"][naming.COMPOSE_PROJECT_LABEL] == naming.fleet_project()
    assert info["HostConfig"]["Init"] is True
    assert info["Config"]["Hostname"] == "SRV-BIRCH-17"


@pytest.mark.parametrize("spec", FLEET_TRIO, ids=lambda s: s["name"])
def test_services_greet_on_the_decky_ip(fleet: Fleet, spec: DeckySpec) -> None:
    decky = fleet.deckies[spec["name"]]
    for slug in spec["services"]:
        said = probes.wait_for_greeting(str(decky.ip), slug)
        assert said, slug


@pytest.mark.parametrize("spec", FLEET_TRIO, ids=lambda s: s["name"])
def test_ttl_on_the_wire_matches_the_os_family(fleet: Fleet, spec: DeckySpec) -> None:
    decky = fleet.deckies[spec["name"]]
    assert probes.icmp_ttl(str(decky.ip)) == TTL[spec["nmap_os"]]


def test_redeploy_changes_nothing(fleet: Fleet) -> None:
    before = fleet.snapshot()
    builders.deploy([fleet.decky("web-01"), fleet.decky("iot-01")])
    assert fleet.snapshot() == before


# --- live service changes --------------------------------------------------------------------------------------------


def test_add_and_remove_one_service_touches_only_that_container(fleet: Fleet) -> None:
    before = fleet.snapshot()
    win = fleet.decky("win-01")
    DeckyService.objects.create(decky=win, slug="redis", config={}, position=9)
    win = fleet.decky("win-01")
    builders.add_service(win, "redis")
    added = fleet.container("win-01", "redis")
    probes.wait_for_greeting(str(win.ip), "redis")
    after_add = fleet.snapshot()
    assert set(after_add) == set(before) | {added}
    assert {k: v for k, v in after_add.items() if k != added} == before

    DeckyService.objects.filter(decky=win, slug="redis").delete()
    builders.remove_service(fleet.decky("win-01"), "redis")
    assert fleet.snapshot() == before
    assert "win-01-redis" not in (fleet.data_dir / "compose" / "fleet-local.yml").read_text()


def test_deploy_removes_services_no_longer_desired(fleet: Fleet) -> None:
    """How mutate applies: the decky's service list changed, deploy brings the file and containers in line."""
    web = fleet.decky("web-01")
    DeckyService.objects.create(decky=web, slug="ftp", config={}, position=5)
    builders.deploy([fleet.decky("web-01")])
    before = fleet.snapshot()
    assert fleet.container("web-01", "ftp") in before

    DeckyService.objects.filter(decky=web, slug="ftp").delete()
    builders.deploy([fleet.decky("web-01")])
    after = fleet.snapshot()
    assert fleet.container("web-01", "ftp") not in after
    assert after == {k: v for k, v in before.items() if k != fleet.container("web-01", "ftp")}


def test_redeploy_applies_a_base_change_to_that_decky_only(fleet: Fleet) -> None:
    """A new OS family changes the base's sysctls: compose recreates that decky (base and the services in its
    namespace) and they answer again with the new TTL; the other deckies keep their containers."""
    before = fleet.snapshot()
    iot = fleet.deckies["iot-01"]
    try:
        Decky.objects.filter(pk=iot.pk).update(nmap_os="windows")
        builders.deploy([fleet.decky("iot-01")])
        assert probes.icmp_ttl(str(iot.ip)) == 128
        probes.wait_for_greeting(str(iot.ip), "redis")
        after = fleet.snapshot()
        others = {k: v for k, v in before.items() if "-iot-01" not in k}
        assert {k: v for k, v in after.items() if "-iot-01" not in k} == others
        assert after[fleet.container("iot-01")] != before[fleet.container("iot-01")]
    finally:
        Decky.objects.filter(pk=iot.pk).update(nmap_os="embedded")
        builders.deploy([fleet.decky("iot-01")])
    assert probes.icmp_ttl(str(iot.ip)) == 255
    for slug in FLEET_TRIO[2]["services"]:
        probes.wait_for_greeting(str(iot.ip), slug)


def test_add_service_to_a_decky_that_is_not_running_is_refused(fleet: Fleet) -> None:
    ghost = Decky.objects.create(
        name=f"{fleet.prefix}ghost", network=fleet.network, ip=probes.host(str(fleet.network.subnet), 40)
    )
    DeckyService.objects.create(decky=ghost, slug="ftp", config={})
    with pytest.raises(ContainerRefusedError, match="not running"):
        builders.add_service(reload([ghost])[0], "ftp")


# --- file drops ------------------------------------------------------------------------------------------------------


def _stat(fleet: Fleet, container: str, path: str) -> tuple[str, str, str]:
    exec_id = fleet.api.exec_create(container, ["stat", "-c", "%a %Y %U:%G", path])["Id"]
    mode, mtime, owner = fleet.api.exec_start(exec_id).decode().split()
    return mode, mtime, owner


def test_drop_file_into_the_ssh_container(fleet: Fleet) -> None:
    content = "creds: admin / Winter2026!\n\u00e9t\u00e9\n".encode()
    stamp = datetime(2024, 3, 14, 15, 9, 26, tzinfo=UTC)
    target = builders.drop_file(fleet.decky("web-01"), "/home/ubuntu/notes/passwords.txt", content, 0o600, stamp)
    assert target == fleet.container("web-01", "ssh")  # DECNET's rule: the ssh container when there is one
    data, mode, mtime = docker_api.read_file(None, target, "/home/ubuntu/notes/passwords.txt")
    assert (data, mode, mtime) == (content, 0o600, stamp.timestamp())
    assert _stat(fleet, target, "/home/ubuntu/notes/passwords.txt") == ("600", str(int(stamp.timestamp())), "root:root")

    assert builders.delete_file(fleet.decky("web-01"), "/home/ubuntu/notes/passwords.txt") == target
    with pytest.raises(ContainerRefusedError):
        docker_api.read_file(None, target, "/home/ubuntu/notes/passwords.txt")
    builders.delete_file(fleet.decky("web-01"), "/home/ubuntu/notes/passwords.txt")  # absent: still fine


def test_drop_file_into_the_base_without_ssh(fleet: Fleet) -> None:
    stamp = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    target = builders.drop_file(fleet.decky("win-01"), "/srv/share/run.sh", b"#!/bin/sh\necho hi\n", 0o4755, stamp)
    assert target == fleet.container("win-01")
    data, mode, mtime = docker_api.read_file(None, target, "/srv/share/run.sh")
    assert (data, mode) == (b"#!/bin/sh\necho hi\n", 0o4755)
    assert abs(mtime - stamp.timestamp()) < 1
    exec_id = fleet.api.exec_create(target, ["stat", "-c", "%.6Y", "/srv/share/run.sh"])["Id"]
    assert fleet.api.exec_start(exec_id).decode().strip() == f"{stamp.timestamp():.6f}"
    # The parent that already existed kept its own mode (no directory member was extracted over it).
    exec_id = fleet.api.exec_create(target, ["stat", "-c", "%a", "/srv"])["Id"]
    assert fleet.api.exec_start(exec_id).decode().strip() == "755"
    builders.delete_file(fleet.decky("win-01"), "/srv/share/run.sh")


@pytest.mark.parametrize("path", ["relative/x", "/etc/../etc/passwd", "/tmp/dir/", "/", "/a/./..", "/x\x00y"])
def test_drop_file_rejects_bad_paths(fleet: Fleet, path: str) -> None:
    with pytest.raises(InvalidPathError):
        builders.drop_file(fleet.decky("win-01"), path, b"x")
    with pytest.raises(InvalidPathError):
        builders.delete_file(fleet.decky("win-01"), path)


def test_drop_file_into_a_stopped_container_is_refused(fleet: Fleet) -> None:
    name = fleet.container("iot-01")
    fleet.api.stop(name, timeout=1)
    try:
        with pytest.raises(ContainerRefusedError, match=r"not running|exited"):
            builders.drop_file(fleet.decky("iot-01"), "/tmp/x", b"x")
        with pytest.raises(ContainerRefusedError):
            builders.delete_file(fleet.decky("iot-01"), "/tmp/x")
    finally:
        # Bring the decky back as it was: base first, then its services (they live in its netns).
        builders.deploy([fleet.decky("iot-01")])
    probes.wait_for_greeting(str(fleet.deckies["iot-01"].ip), "redis")


# --- teardown (last: it empties the module's fleet) ------------------------------------------------------------------


def test_teardown_leaves_nothing_behind(fleet: Fleet) -> None:
    network_name = naming.network_name(naming.fleet_project(), fleet.network.name)
    survivors = fleet.snapshot()

    iot = fleet.decky("iot-01")
    _set_state([iot], DeckyState.TEARING_DOWN)
    builders.teardown([fleet.decky("iot-01")])
    assert builders.containers(iot) == []
    # Base included (DECNET left the IP-holding base running), and nobody else was restarted.
    remaining = {k: v for k, v in survivors.items() if "-iot-01" not in k}
    assert fleet.snapshot() == remaining
    assert fleet.api.networks(names=[network_name]), "the fleet network must stay while deckies run"
    compose_file = fleet.data_dir / "compose" / "fleet-local.yml"
    assert "iot-01" not in compose_file.read_text()

    for short in ("web-01", "win-01"):
        _set_state([fleet.decky(short)], DeckyState.TEARING_DOWN)
        builders.teardown([fleet.decky(short)])

    for decky in fleet.deckies.values():
        assert docker_api.list_containers(None, {naming.LABEL_DECKY: decky.name}) == []
        ours = [
            c
            for c in fleet.api.containers(all=True, filters={"label": f"{naming.COMPOSE_PROJECT_LABEL}=decnet-fleet"})
            if c["Labels"].get(naming.LABEL_DECKY) == decky.name
        ]
        assert ours == []
    assert [n for n in fleet.api.networks(names=[network_name]) if n["Name"] == network_name] == []
    volumes = fleet.api.volumes(filters={"label": f"{naming.COMPOSE_PROJECT_LABEL}=decnet-fleet"})["Volumes"] or []
    assert [v["Name"] for v in volumes if fleet.prefix in v["Name"]] == []
    assert not compose_file.exists()  # nothing left in the fleet of this host


def test_teardown_is_idempotent(fleet: Fleet) -> None:
    builders.teardown([fleet.decky("web-01")])
    assert builders.containers(fleet.decky("web-01")) == []


def test_unique_subnet_helper_avoids_docker_pools() -> None:
    subnets = probes.free_subnets(3)
    assert len(set(subnets)) == 3
    assert all(probes.TEST_POOL.supernet_of(ipaddress.IPv4Network(s)) for s in subnets)
