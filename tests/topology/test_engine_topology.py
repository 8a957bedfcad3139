"""Topology deploy and teardown through the operations layer against the real Docker engine.

A DMZ and an internal LAN joined by a bridge decky deploy to ``active``: the containers exist, the internal LAN's
network is ``internal``, addresses the engine allocated are saved on the edges and each decky is ``running``.
Teardown ends ``torn_down`` and leaves no container or network behind. A deploy the engine refuses (an image
missing) ends ``failed`` with the engine's reason and creates nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from deckies.engine import docker_api, naming
from deckies.models import CustomService, Decky
from lifecycle.models import DeckyLifecycle
from tests.deckies import fakes
from topology import operations, services
from topology.models import Edge, Topology, TopologyStatusEvent

pytestmark = [pytest.mark.docker, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _engine(settings: Any, tmp_path: Any) -> None:
    if not fakes.docker_reachable():
        pytest.skip("the Docker engine is not reachable")
    settings.DECNET_DATA_DIR = tmp_path


def _two_subnets() -> tuple[str, str]:
    first = fakes.free_subnet()
    for _ in range(50):
        second = fakes.free_subnet()
        if second != first:
            return first, second
    raise RuntimeError("no second free test subnet")


def _labels(topology: Topology) -> dict[str, str]:
    return {naming.LABEL_TOPOLOGY: str(topology.pk)}


def _sweep(topology: Topology) -> None:
    docker_api.remove_containers(None, docker_api.list_containers(None, _labels(topology)))
    docker_api.remove_networks(None, docker_api.list_networks(None, _labels(topology)))


@pytest.fixture
def maze() -> Iterator[Topology]:
    """Built as the API builds it: ``dmz`` (web), internal ``corp`` (db), ``gw`` bridging both; no address set."""
    dmz_subnet, corp_subnet = _two_subnets()
    topology = services.topology_create(name=f"engine-{secrets.token_hex(3)}")
    dmz = services.lan_create(topology_id=topology.pk, name="dmz", subnet=dmz_subnet, is_dmz=True).value
    corp = services.lan_create(topology_id=topology.pk, name="corp", subnet=corp_subnet).value
    gw, web, db = (
        services.topology_decky_create(topology_id=topology.pk, name=name, services=[svc], hostname=f"{name}01").value
        for name, svc in (("gw", "ssh"), ("web", "http"), ("db", "redis"))
    )
    for decky, lan, bridge in ((gw, dmz, True), (gw, corp, True), (web, dmz, False), (db, corp, False)):
        services.edge_create(
            topology_id=topology.pk, decky_id=decky.pk, lan_id=lan.pk, is_bridge=bridge, forwards_l3=bridge
        )
    try:
        yield Topology.objects.get(pk=topology.pk)
    finally:
        _sweep(topology)


def _status(topology: Topology) -> str:
    return Topology.objects.values_list("status", flat=True).get(pk=topology.pk)


def test_deploy_to_active_then_teardown_leaves_nothing(maze: Topology, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _, rows = operations.topology_deploy_request(topology=maze, run_inline=True, actor="test")
    assert {row.decky_name for row in rows} == {"gw", "web", "db"}
    finished = {row.decky_name: row for row in DeckyLifecycle.objects.filter(pk__in=[row.pk for row in rows])}
    assert {row.status for row in finished.values()} == {"succeeded"}, [row.message for row in finished.values()]
    assert "on corp" in finished["gw"].message
    assert "on dmz" in finished["gw"].message
    reasons = list(TopologyStatusEvent.objects.filter(topology=maze).values_list("reason", flat=True))
    assert _status(maze) == "active", reasons

    project = naming.topology_project(maze.pk)
    names = {c.name for c in docker_api.list_containers(None, _labels(maze)) if c.running}
    assert names == {f"{project}-{key}" for key in ("gw", "gw-ssh", "web", "web-http", "db", "db-redis")}
    api = docker.APIClient(version="auto", timeout=30)
    try:
        assert api.inspect_network(f"{project}-corp")["Internal"] is True
        assert api.inspect_network(f"{project}-dmz")["Internal"] is False
    finally:
        api.close()
    assert set(Decky.objects.filter(topology=maze).values_list("state", flat=True)) == {"running"}
    assert not Edge.objects.filter(topology=maze, ip__isnull=True).exists()

    with django_capture_on_commit_callbacks(execute=True):
        operations.topology_teardown_request(topology=maze, run_inline=True, actor="test")
    assert _status(maze) == "torn_down"
    assert docker_api.list_containers(None, _labels(maze)) == []
    assert docker_api.list_networks(None, _labels(maze)) == []
    assert set(Decky.objects.filter(topology=maze).values_list("state", flat=True)) == {"torn_down"}


def test_refused_deploy_fails_with_the_engine_reason(maze: Topology, django_capture_on_commit_callbacks: Any) -> None:
    CustomService.objects.create(slug="absent-byos", image="decnet/absent:404", command=[], ports=[8080])
    web = Decky.objects.get(topology=maze, name="web")
    web.services.create(slug="absent-byos", config={}, position=5)
    with django_capture_on_commit_callbacks(execute=True):
        operations.topology_deploy_request(topology=maze, run_inline=True)
    assert _status(maze) == "failed"
    reason = TopologyStatusEvent.objects.filter(topology=maze).order_by("-at").values_list("reason", flat=True)[0]
    assert reason.startswith("ImageMissingError")
    assert "decnet/absent:404" in reason
    assert docker_api.list_containers(None, _labels(maze)) == []
    assert docker_api.list_networks(None, _labels(maze)) == []
