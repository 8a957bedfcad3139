"""factory-boy factories for decky-side models and lifecycle rows."""

from __future__ import annotations

from typing import Any

import factory

from deckies.models import Decky, DeckyService, Host, Network
from lifecycle.models import DeckyLifecycle


class NetworkFactory(factory.django.DjangoModelFactory[Network]):
    class Meta:
        model = Network
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"lan-{n}")
    subnet = factory.Sequence(lambda n: f"10.{150 + n // 256}.{n % 256}.0/24")


class HostFactory(factory.django.DjangoModelFactory[Host]):
    class Meta:
        model = Host

    name = factory.Sequence(lambda n: f"host-{n}")
    docker_url = "tcp://127.0.0.1:2375"


class DeckyFactory(factory.django.DjangoModelFactory[Decky]):
    """A fleet decky on one shared network, with ``services`` (default ssh + http) as rows."""

    class Meta:
        model = Decky
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"decky-{n:03d}")
    network = factory.LazyFunction(lambda: NetworkFactory.create(name="factory-lan", subnet="10.149.0.0/24"))
    ip = factory.Sequence(lambda n: f"10.149.0.{n % 250 + 2}")
    hostname = factory.LazyAttribute(lambda o: f"{o.name}.example")
    distro = "debian"
    nmap_os = "linux"

    @factory.post_generation
    def services(obj: Decky, create: bool, extracted: Any, **kwargs: Any) -> None:  # noqa: N805 - factory-boy hook
        if not create:
            return
        slugs = ["ssh", "http"] if extracted is None else list(extracted)
        for position, slug in enumerate(slugs):
            DeckyService.objects.create(decky=obj, slug=slug, config={}, position=position)


class LifecycleFactory(factory.django.DjangoModelFactory[DeckyLifecycle]):
    class Meta:
        model = DeckyLifecycle

    decky_name = factory.Sequence(lambda n: f"decky-{n:03d}")
    operation = "deploy"
    status = "pending"


def set_state(decky: Decky, state: str) -> Decky:
    """Bring ``decky`` to ``state`` through legal moves of the state machine (the shortest path), as operations do."""
    from collections import deque

    from deckies.states import LEGAL_DECKY_MOVES, decky_state_set

    current = Decky.objects.get(pk=decky.pk).state
    paths: deque[list[str]] = deque([[current]])
    seen = {current}
    while paths:
        path = paths.popleft()
        if path[-1] == state:
            for step in path[1:]:
                decky_state_set(decky, step)
            decky.refresh_from_db()
            return decky
        for following in sorted(LEGAL_DECKY_MOVES[path[-1]]):
            if following not in seen:
                seen.add(following)
                paths.append([*path, following])
    raise ValueError(f"no legal path from {current} to {state}")
