"""factory-boy factories for topology models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import factory

from deckies.models import Decky, DeckyService
from topology.models import LAN, Edge, Topology


class TopologyFactory(factory.django.DjangoModelFactory[Topology]):
    class Meta:
        model = Topology

    name = factory.Sequence(lambda n: f"maze-{n}")


class LANFactory(factory.django.DjangoModelFactory[LAN]):
    class Meta:
        model = LAN

    topology = factory.SubFactory(TopologyFactory)
    name = factory.Sequence(lambda n: f"lan-{n}")
    subnet = factory.Sequence(lambda n: f"10.{100 + n // 256}.{n % 256}.0/24")
    is_dmz = False


class TopologyDeckyFactory(factory.django.DjangoModelFactory[Decky]):
    """A decky of a topology, with ``services`` (default ssh) as rows; ``.build()`` needs no database."""

    class Meta:
        model = Decky
        skip_postgeneration_save = True

    topology = factory.SubFactory(TopologyFactory)
    name = factory.Sequence(lambda n: f"node-{n:03d}")
    hostname = factory.LazyAttribute(lambda o: f"{o.name}.corp")
    distro = "debian"
    nmap_os = "linux"

    @factory.post_generation
    def services(obj: Decky, create: bool, extracted: Any, **kwargs: Any) -> None:  # noqa: N805 - factory-boy hook
        if not create:
            return
        slugs = ["ssh"] if extracted is None else list(extracted)
        for position, slug in enumerate(slugs):
            DeckyService.objects.create(decky=obj, slug=slug, config={}, position=position)


class EdgeFactory(factory.django.DjangoModelFactory[Edge]):
    """An edge between a decky and a LAN of the same topology (the LAN's topology wins)."""

    class Meta:
        model = Edge

    lan = factory.SubFactory(LANFactory)
    topology = factory.LazyAttribute(lambda o: o.lan.topology)
    decky = factory.SubFactory(TopologyDeckyFactory, topology=factory.SelfAttribute("..topology"))
    ip = None
    is_bridge = False
    forwards_l3 = False


@dataclass
class Maze:
    """A deployable topology: DMZ ``dmz`` with ``web``, internal ``corp`` with ``db``, and ``gw`` bridging both."""

    topology: Topology
    dmz: LAN
    corp: LAN
    web: Decky
    gw: Decky
    db: Decky


def make_maze(
    name: str = "maze", subnets: tuple[str, str] = ("10.201.1.0/24", "10.201.2.0/24"), services: str = "ssh"
) -> Maze:
    """Build :class:`Maze` through the factories (pending, version 1), each decky running ``services``."""
    topology = TopologyFactory.create(name=name)
    dmz = LANFactory.create(topology=topology, name="dmz", subnet=subnets[0], is_dmz=True)
    corp = LANFactory.create(topology=topology, name="corp", subnet=subnets[1])
    slugs = services.split(",")
    web = TopologyDeckyFactory.create(topology=topology, name="web", services=slugs)
    gw = TopologyDeckyFactory.create(topology=topology, name="gw", services=slugs)
    db = TopologyDeckyFactory.create(topology=topology, name="db", services=slugs)
    EdgeFactory.create(lan=dmz, decky=web)
    EdgeFactory.create(lan=dmz, decky=gw, is_bridge=True, forwards_l3=True)
    EdgeFactory.create(lan=corp, decky=gw, is_bridge=True, forwards_l3=True)
    EdgeFactory.create(lan=corp, decky=db)
    topology.refresh_from_db()
    return Maze(topology, dmz, corp, web, gw, db)
