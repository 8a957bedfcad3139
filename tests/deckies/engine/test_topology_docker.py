"""Topology deploy and teardown against the real engine: one bridge per LAN (internal unless DMZ), a decky
bridging both LANs, verification through ``compose ps``, rollback on failure, nothing left after teardown."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from django.test import override_settings

from deckies.engine import docker_api, naming, runtime
from deckies.engine.errors import ComposeCommandError, ImageMissingError
from deckies.models import CustomService, Decky, DeckyService
from tests.deckies.engine import builders, probes
from tests.deckies.engine.builders import make_topology
from topology.models import LAN, Edge, Topology

pytestmark = [pytest.mark.docker, pytest.mark.django_db]


class Deployed:
    def __init__(self, topology: Topology, report: runtime.TopologyDeployReport, subnets: list[str], data_dir: Path):
        self.topology = topology
        self.report = report
        self.subnets = subnets
        self.data_dir = data_dir
        self.project = naming.topology_project(topology.pk)
        self.api = docker.APIClient(version="auto", timeout=30)

    def labels(self) -> dict[str, str]:
        return {naming.LABEL_TOPOLOGY: str(self.topology.pk)}


def _sweep(topology_id: str) -> None:
    labels = {naming.LABEL_TOPOLOGY: topology_id}
    docker_api.remove_containers(None, docker_api.list_containers(None, labels))
    docker_api.remove_networks(None, docker_api.list_networks(None, labels))


@pytest.fixture(scope="module")
def deployed(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    subnets = probes.free_subnets(2)
    data_dir = tmp_path_factory.mktemp("engine-topology")
    overrides = override_settings(DECNET_DATA_DIR=data_dir)
    overrides.enable()
    topology = None
    try:
        with django_db_blocker.unblock():
            topology = make_topology((subnets[0], subnets[1]), name=f"maze-{secrets.token_hex(3)}")
            report = builders.deploy_topology(topology)
        state = Deployed(topology, report, subnets, data_dir)
        yield state
        state.api.close()
    finally:
        if topology is not None:
            with django_db_blocker.unblock():
                try:
                    builders.teardown_topology(topology)
                except Exception:
                    _sweep(str(topology.pk))
                Topology.objects.filter(pk=topology.pk).delete()
        overrides.disable()


def test_report_says_everything_runs(deployed: Deployed) -> None:
    assert deployed.report.decky_running == {"db": True, "gw": True, "web": True}
    assert deployed.report.not_running == []
    dmz, corp = deployed.subnets
    assert deployed.report.addresses == {
        "db": {"corp": probes.host(corp, 20)},
        "gw": {"corp": probes.host(corp, 2), "dmz": probes.host(dmz, 2)},
        "web": {"dmz": probes.host(dmz, 3)},
    }


def test_networks_one_per_lan_internal_unless_dmz(deployed: Deployed) -> None:
    networks = {n["Name"]: n for n in docker_api.list_networks(None, deployed.labels())}
    short = deployed.project
    assert set(networks) == {f"{short}-dmz", f"{short}-corp"}
    dmz = deployed.api.inspect_network(f"{short}-dmz")
    corp = deployed.api.inspect_network(f"{short}-corp")
    assert dmz["Internal"] is False
    assert corp["Internal"] is True
    assert dmz["IPAM"]["Config"][0]["Subnet"] == deployed.subnets[0]
    # The bridge decky's base is attached to both.
    gw = f"{short}-gw"
    assert {c["Name"] for c in dmz["Containers"].values()} >= {gw, f"{short}-web"}
    assert {c["Name"] for c in corp["Containers"].values()} >= {gw, f"{short}-db"}


def test_every_container_is_namespaced(deployed: Deployed) -> None:
    names = {c.name for c in docker_api.list_containers(None, deployed.labels())}
    assert names == {
        f"{deployed.project}-{key}"
        for key in ("gw", "gw-ssh", "web", "web-http", "web-ftp", "db", "db-mysql", "db-redis")
    }


@pytest.mark.parametrize(
    ("decky", "lan", "slugs", "ttl"),
    [("web", "dmz", ["http", "ftp"], 128), ("db", "corp", ["mysql", "redis"], 255), ("gw", "corp", ["ssh"], 64)],
)
def test_greetings_and_ttl(deployed: Deployed, decky: str, lan: str, slugs: list[str], ttl: int) -> None:
    address = deployed.report.addresses[decky][lan]
    for slug in slugs:
        probes.wait_for_greeting(address, slug)
    assert probes.icmp_ttl(address) == ttl


def test_bridge_decky_forwards(deployed: Deployed) -> None:
    exec_id = deployed.api.exec_create(f"{deployed.project}-gw", ["cat", "/proc/sys/net/ipv4/ip_forward"])["Id"]
    assert deployed.api.exec_start(exec_id).decode().strip() == "1"


def test_decky_containers_of_a_topology_decky(deployed: Deployed) -> None:
    db = Decky.objects.get(topology=deployed.topology, name="db")
    states = builders.containers(db)
    assert {(s.service, s.status, s.topology_id) for s in states} == {
        (None, "running", str(deployed.topology.pk)),
        ("mysql", "running", str(deployed.topology.pk)),
        ("redis", "running", str(deployed.topology.pk)),
    }


def test_live_service_change_on_a_topology_decky(deployed: Deployed) -> None:
    web = Decky.objects.get(topology=deployed.topology, name="web")
    before = {c.name: c.id for c in docker_api.list_containers(None, deployed.labels())}
    DeckyService.objects.create(decky=web, slug="redis", config={}, position=7)
    builders.add_service(Decky.objects.get(pk=web.pk), "redis")
    probes.wait_for_greeting(deployed.report.addresses["web"]["dmz"], "redis")
    DeckyService.objects.filter(decky=web, slug="redis").delete()
    builders.remove_service(Decky.objects.get(pk=web.pk), "redis")
    assert {c.name: c.id for c in docker_api.list_containers(None, deployed.labels())} == before


def test_file_drop_in_a_topology_decky(deployed: Deployed) -> None:
    gw = Decky.objects.get(topology=deployed.topology, name="gw")
    target = builders.drop_file(gw, "/root/.bash_history", b"ssh admin@10.0.0.5\n", 0o600)
    assert target == f"{deployed.project}-gw-ssh"
    assert docker_api.read_file(None, target, "/root/.bash_history")[:2] == (b"ssh admin@10.0.0.5\n", 0o600)


def test_failed_deploy_rolls_back(deployed: Deployed) -> None:
    """A LAN overlapping a live network makes compose fail half-way: what was created is removed again."""
    fresh = probes.free_subnets(1)[0]
    clash = make_topology((fresh, deployed.subnets[1]), name=f"clash-{secrets.token_hex(3)}")
    path = builders.plans.topology_scope(clash).path
    try:
        with pytest.raises(ComposeCommandError) as caught:
            builders.deploy_topology(clash)
        assert caught.value.stderr_tail
        labels = {naming.LABEL_TOPOLOGY: str(clash.pk)}
        assert docker_api.list_containers(None, labels) == []
        assert docker_api.list_networks(None, labels) == []
        assert not path.exists()
    finally:
        _sweep(str(clash.pk))


def test_missing_image_is_reported_before_anything_is_created(deployed: Deployed) -> None:
    subnets = probes.free_subnets(2)
    other = make_topology((subnets[0], subnets[1]), name=f"noimg-{secrets.token_hex(3)}")
    CustomService.objects.create(slug="absent_byos", image="decnet/absent:404", command=[], ports=[8080])
    web = Decky.objects.get(topology=other, name="web")
    DeckyService.objects.create(decky=web, slug="absent_byos", config={}, position=9)
    with pytest.raises(ImageMissingError, match="decnet/absent:404"):
        builders.deploy_topology(other)
    labels = {naming.LABEL_TOPOLOGY: str(other.pk)}
    assert docker_api.list_containers(None, labels) == []
    assert docker_api.list_networks(None, labels) == []


def test_teardown_leaves_nothing_behind(deployed: Deployed) -> None:
    path = builders.plans.topology_scope(deployed.topology).path
    assert path.exists()
    builders.teardown_topology(deployed.topology)
    assert docker_api.list_containers(None, deployed.labels()) == []
    assert docker_api.list_networks(None, deployed.labels()) == []
    project = f"{naming.COMPOSE_PROJECT_LABEL}={deployed.project}"
    assert deployed.api.containers(all=True, filters={"label": project}) == []
    assert deployed.api.networks(filters={"label": project}) == []
    assert (deployed.api.volumes(filters={"label": project})["Volumes"] or []) == []
    assert not path.exists()
    builders.teardown_topology(deployed.topology)  # idempotent


def test_edges_without_ip_stay_unsaved(deployed: Deployed) -> None:
    assert Edge.objects.filter(topology=deployed.topology, ip__isnull=True).count() == 3
    assert LAN.objects.filter(topology=deployed.topology).count() == 2
