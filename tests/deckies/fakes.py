"""A recording stand-in for the engine facade, for API tests where Docker is beside the point and for failure
injection. Only :mod:`deckies.engine.runtime` functions are replaced; everything above them runs for real."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field
from typing import Any

import pytest

from deckies.engine import runtime

FAKED = (
    "deploy_deckies",
    "teardown_decky",
    "add_service",
    "remove_service",
    "write_fleet_compose",
    "drop_file",
    "delete_file",
    "decky_containers",
    "engine_ping",
)


@dataclass
class FakeEngine:
    """``calls`` lists ``(function, decky names or args)``; ``fail[name] = exc`` makes that function raise."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    fail: dict[str, BaseException] = field(default_factory=dict)
    containers: dict[str, list[runtime.ContainerState]] = field(default_factory=dict)

    def _call(self, name: str, record: Any) -> None:
        self.calls.append((name, record))
        if name in self.fail:
            raise self.fail[name]

    def names(self, function: str) -> list[Any]:
        return [record for name, record in self.calls if name == function]

    def deploy_deckies(self, deckies: Any) -> None:
        self._call("deploy_deckies", sorted(d.name for d in deckies))

    def teardown_decky(self, decky: Any) -> None:
        self._call("teardown_decky", decky.name)

    def add_service(self, decky: Any, slug: str) -> None:
        self._call("add_service", (decky.name, slug, sorted(s.slug for s in decky.services.all())))

    def remove_service(self, decky: Any, slug: str) -> None:
        self._call("remove_service", (decky.name, slug))

    def write_fleet_compose(self, host: Any = None, **kwargs: Any) -> str:
        self._call("write_fleet_compose", None if host is None else host.name)
        return "/dev/null"

    def drop_file(self, decky: Any, path: str, content: bytes, mode: int = 0o644, mtime: Any = None) -> str:
        self._call("drop_file", (decky.name, path, content, mode, mtime))
        return f"decnet-fleet-{decky.name}-ssh"

    def delete_file(self, decky: Any, path: str) -> str:
        self._call("delete_file", (decky.name, path))
        return f"decnet-fleet-{decky.name}-ssh"

    def decky_containers(self, decky: Any) -> list[runtime.ContainerState]:
        self._call("decky_containers", decky.name)
        return list(self.containers.get(decky.name, []))

    def engine_ping(self, host: Any = None) -> str:
        self._call("engine_ping", None if host is None else host.name)
        return "20.10-fake"


def install(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    """Replace the engine facade's functions with a fresh :class:`FakeEngine`'s methods."""
    fake = FakeEngine()
    for name in FAKED:
        monkeypatch.setattr(runtime, name, getattr(fake, name))
    return fake


# --- helpers for the tests that use the real Docker engine ------------------------------------------------------------

#: Operations and e2e tests take their LANs from here (the engine's own tests use 10.200.0.0/13), so concurrent runs
#: of the two never ask Docker for overlapping pools.
OPERATIONS_TEST_POOL = ipaddress.IPv4Network("10.208.0.0/13")


def free_subnet() -> str:
    """A random /24 of :data:`OPERATIONS_TEST_POOL` that overlaps no Docker network and no route."""
    from tests.deckies.engine.probes import free_subnets

    return free_subnets(1, pool=OPERATIONS_TEST_POOL)[0]


def docker_reachable() -> bool:
    try:
        runtime.engine_ping(None)
    except Exception:
        return False
    return True


def unique_prefix() -> str:
    """A short per-run name prefix so concurrent runs on one engine never share a container name."""
    return f"o{secrets.token_hex(2)}-"
