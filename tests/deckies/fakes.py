"""The one stand-in for the engine, for failure injection and for API tests where Docker is beside the point.

Only :mod:`deckies.engine.runtime` and :mod:`deckies.engine.readiness` functions are replaced; everything above
them (requests, the job layer, handlers, state machines, rendering: every ``render`` callback is called) runs for
real. ``fail[name] = exc`` makes that function raise; ``not_ready[decky] = problems`` makes a decky fail readiness.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from deckies.engine import readiness, runtime
from deckies.engine.specs import Scope

FAKED = (
    "deploy_deckies",
    "teardown_deckies",
    "add_service",
    "remove_service",
    "deploy_project",
    "remove_project",
    "drop_file",
    "delete_file",
    "containers",
    "engine_ping",
)


@dataclass
class FakeEngine:
    """``calls`` lists ``(function, what it was asked about)``."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    fail: dict[str, BaseException] = field(default_factory=dict)
    not_ready: dict[str, tuple[str, ...]] = field(default_factory=dict)
    observed: dict[str, list[runtime.ContainerState]] = field(default_factory=dict)
    rendered: dict[str, Any] = field(default_factory=dict)
    #: Called while readiness is being waited for (to simulate a request arriving in the middle of an operation).
    during_ready: Callable[[], object] | None = None

    def _call(self, name: str, record: Any) -> None:
        self.calls.append((name, record))
        if name in self.fail:
            raise self.fail[name]

    def names(self, function: str) -> list[Any]:
        return [record for name, record in self.calls if name == function]

    def deploy_deckies(self, scope: Scope, render: Any, names: Sequence[str]) -> None:
        self.rendered[scope.project] = render()
        self._call("deploy_deckies", sorted(names))

    def teardown_deckies(self, scope: Scope, render_remaining: Any, render_with: Any, names: Sequence[str]) -> None:
        render_remaining()
        self._call("teardown_deckies", sorted(names))

    def add_service(self, scope: Scope, render: Any, decky: str, slug: str) -> None:
        rendered = render()
        self._call("add_service", (decky, slug, sorted(rendered.keys.get(decky, ("", {}))[1])))

    def remove_service(self, scope: Scope, render: Any, decky: str, slug: str) -> None:
        self._call("remove_service", (decky, slug))

    def deploy_project(self, scope: Scope, render: Any) -> runtime.TopologyDeployReport:
        rendered = render()
        self.rendered[scope.project] = rendered
        self._call("deploy_project", scope.project)
        return runtime.TopologyDeployReport(
            decky_running=dict.fromkeys(rendered.keys, True), addresses=rendered.addresses
        )

    def remove_project(self, scope: Scope, render: Any = None) -> None:
        self._call("remove_project", scope.project)

    def drop_file(self, scope: Scope, container: str, path: str, content: bytes, mode: int, mtime: Any) -> str:
        self._call("drop_file", (container, path, content, mode, mtime))
        return container

    def delete_file(self, scope: Scope, container: str, path: str) -> str:
        self._call("delete_file", (container, path))
        return container

    def containers(self, scope: Scope, decky: str | None = None) -> list[runtime.ContainerState]:
        self._call("containers", decky)
        found = [c for cs in self.observed.values() for c in cs]
        return [c for c in found if decky is None or c.decky == decky]

    def engine_ping(self, url: str) -> str:
        self._call("engine_ping", url)
        return "20.10-fake"

    def check_decky(
        self, scope: Scope, decky: str, services: Sequence[readiness.ServiceCheck], timeout: float
    ) -> readiness.DeckyReadiness:
        self.calls.append(("check_decky", decky))
        return readiness.DeckyReadiness(decky, self.not_ready.get(decky, ()))

    def wait_ready(
        self, scope: Scope, deckies: Mapping[str, Sequence[readiness.ServiceCheck]], timeout: float
    ) -> dict[str, readiness.DeckyReadiness]:
        if self.during_ready is not None:
            self.during_ready()
        return {name: self.check_decky(scope, name, checks, timeout) for name, checks in deckies.items()}


def install(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    """Replace the engine's functions with a fresh :class:`FakeEngine`'s methods."""
    fake = FakeEngine()
    for name in FAKED:
        monkeypatch.setattr(runtime, name, getattr(fake, name))
    monkeypatch.setattr(readiness, "check_decky", fake.check_decky)
    monkeypatch.setattr(readiness, "wait_ready", fake.wait_ready)
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
        runtime.engine_ping(runtime.default_url())
    except Exception:
        return False
    return True


def unique_prefix() -> str:
    """A short per-run name prefix so concurrent runs on one engine never share a container name."""
    return f"o{secrets.token_hex(2)}-"
