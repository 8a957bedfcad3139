"""The topology change form with its LAN, decky and edge inlines, posted as a browser posts it: one save is one
versioned edit (a stale page is refused, the version moves by one), children change only while pending, and a
topology decky needs a service, as through the API."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from deckies.models import Decky
from topology import services
from topology.models import LAN, Edge, Topology

from .factories import Maze, make_maze

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    admin_user.is_staff = True
    admin_user.save()
    client = Client()
    client.force_login(admin_user)
    return client


def management(prefix: str, rows: list[dict[str, Any]], initial: int) -> dict[str, Any]:
    data: dict[str, Any] = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        data |= {f"{prefix}-{index}-{key}": value for key, value in row.items()}
    return data


def change_form(maze: Maze, *, version: int, extra_lans: Any = (), decky_rows: Any = None,
                **fields: Any) -> dict[str, Any]:  # fmt: skip
    """The full POST of the change page as loaded at ``version``, optionally with new LANs and deckies."""
    topology = maze.topology
    lans = [
        {
            "id": lan.pk,
            "topology": topology.pk,
            "name": lan.name,
            "subnet": lan.subnet,
            "is_dmz": "on" if lan.is_dmz else "",
        }
        for lan in LAN.objects.filter(topology=topology).order_by("name")
    ]
    for lan in lans:
        if not lan["is_dmz"]:
            del lan["is_dmz"]
    deckies = [
        {"id": d.pk, "topology": topology.pk, "name": d.name, "service_list": ", ".join(d.service_slugs),
         "hostname": d.hostname, "archetype": d.archetype, "distro": d.distro, "nmap_os": d.nmap_os}
        for d in Decky.objects.filter(topology=topology).order_by("name").prefetch_related("services")
    ]  # fmt: skip
    edges = [
        {"id": e.pk, "topology": topology.pk, "decky": e.decky_id, "lan": e.lan_id, "ip": e.ip or ""}
        for e in Edge.objects.filter(topology=topology).order_by("pk")
    ]
    data = {"name": topology.name, "description": topology.description, "expected_version": version}
    data |= management("lans", [*lans, *extra_lans], len(lans))
    data |= management("deckies", [*deckies, *(decky_rows or [])], len(deckies))
    data |= management("edges", edges, len(edges))
    data |= management("status_events", [], 0)
    return data | fields


def post(client: Client, maze: Maze, data: dict[str, Any]) -> Any:
    return client.post(reverse("admin:topology_topology_change", args=[maze.topology.pk]), data, follow=True)


def text(response: Any) -> str:
    return html.unescape(response.content.decode())


def version(maze: Maze) -> int:
    return Topology.objects.values_list("version", flat=True).get(pk=maze.topology.pk)


def test_one_save_with_inline_changes_is_one_version(admin_client: Client) -> None:
    maze = make_maze()
    before = version(maze)
    new_lan = {"topology": maze.topology.pk, "name": "lab", "subnet": "10.201.9.0/24"}
    new_decky = {"topology": maze.topology.pk, "name": "lab1", "service_list": "ssh, ftp", "hostname": "lab1",
                 "archetype": "", "distro": "debian", "nmap_os": "linux"}  # fmt: skip
    response = post(admin_client, maze, change_form(maze, version=before, extra_lans=[new_lan],
                                                    decky_rows=[new_decky], description="v2"))  # fmt: skip
    assert response.status_code == 200
    assert "Not saved" not in text(response)
    assert LAN.objects.filter(topology=maze.topology, name="lab").exists()
    lab1 = Decky.objects.get(topology=maze.topology, name="lab1")
    assert lab1.service_slugs == ["ssh", "ftp"]
    assert Topology.objects.get(pk=maze.topology.pk).description == "v2"
    assert version(maze) == before + 1


def test_a_stale_page_is_refused(admin_client: Client) -> None:
    maze = make_maze()
    loaded = version(maze)
    services.lan_create(topology_id=maze.topology.pk, name="other")  # someone else saved meanwhile
    response = post(admin_client, maze, change_form(maze, version=loaded, description="mine"))
    assert "Not saved: Version conflict: expected" in text(response)
    assert Topology.objects.get(pk=maze.topology.pk).description != "mine"
    assert version(maze) == loaded + 1


def test_a_topology_decky_needs_a_service(admin_client: Client) -> None:
    maze = make_maze()
    bare = {"topology": maze.topology.pk, "name": "bare", "service_list": "", "hostname": "", "archetype": "",
            "distro": "debian", "nmap_os": "linux"}  # fmt: skip
    response = post(admin_client, maze, change_form(maze, version=version(maze), decky_rows=[bare]))
    assert "A decky needs at least one service" in text(response)
    assert not Decky.objects.filter(name="bare").exists()


def test_unknown_service_in_an_inline_is_refused_and_nothing_is_written(admin_client: Client) -> None:
    maze = make_maze()
    before = version(maze)
    bad = {"topology": maze.topology.pk, "name": "bad", "service_list": "nonsense", "hostname": "", "archetype": "",
           "distro": "debian", "nmap_os": "linux"}  # fmt: skip
    new_lan = {"topology": maze.topology.pk, "name": "lab", "subnet": "10.201.9.0/24"}
    response = post(admin_client, maze, change_form(maze, version=before, extra_lans=[new_lan], decky_rows=[bad]))
    assert "Not saved: unknown service 'nonsense'" in text(response)
    # The whole save is one transaction: the LAN of the same post is not there either.
    assert not LAN.objects.filter(topology=maze.topology, name="lab").exists()
    assert version(maze) == before


def test_children_cannot_change_unless_pending(admin_client: Client) -> None:
    maze = make_maze()
    services.topology_transition(topology_id=maze.topology.pk, to="deploying")
    before = version(maze)
    new_lan = {"topology": maze.topology.pk, "name": "late", "subnet": "10.201.9.0/24"}
    admin_client.post(
        reverse("admin:topology_topology_change", args=[maze.topology.pk]),
        change_form(maze, version=before, extra_lans=[new_lan]),
        follow=True,
    )
    assert not LAN.objects.filter(name="late").exists()
    assert version(maze) == before


def test_add_creates_a_pending_topology(admin_client: Client) -> None:
    data = {"name": "fresh", "description": "", "expected_version": ""}
    for prefix in ("lans", "deckies", "edges", "status_events"):
        data |= management(prefix, [], 0)
    response = admin_client.post(reverse("admin:topology_topology_add"), data, follow=True)
    assert response.status_code == 200
    topology = Topology.objects.get(name="fresh")
    assert (topology.status, topology.version) == ("pending", 1)
