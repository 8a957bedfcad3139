"""factory-boy factories for topology models."""

from __future__ import annotations

import factory

from topology.models import LAN, Topology


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
