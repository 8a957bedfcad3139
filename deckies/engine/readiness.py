"""Is a decky ready? Every service container running and every TCP port of its services accepting connections.

The check runs *inside* the decky's network namespace (an exec in its base container, which ships python3), so it
works the same for bridge and macvlan networks and for remote engines, and it never sends a packet outside the
decky. It connects to 127.0.0.1 on each port until all accept or the deadline passes, in short rounds so a service
container that exits is reported at once instead of after the whole wait.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from deckies.engine import docker_api, naming
from deckies.engine.errors import EngineError
from deckies.engine.specs import Scope

#: Seconds one exec may wait for ports before the containers' states are looked at again.
ROUND_SECONDS = 3.0
#: Deckies checked at the same time.
PARALLEL = 8

_PROBE = """
import json, socket, sys, time
ports, limit = json.loads(sys.argv[1]), float(sys.argv[2])
pending, deadline = set(ports), time.monotonic() + limit
while pending:
    for port in sorted(pending):
        sock = socket.socket()
        sock.settimeout(0.5)
        try:
            sock.connect(("127.0.0.1", port))
            pending.discard(port)
        except OSError:
            pass
        finally:
            sock.close()
    if not pending or time.monotonic() >= deadline:
        break
    time.sleep(0.2)
print(json.dumps(sorted(pending)))
"""


@dataclass(frozen=True)
class ServiceCheck:
    """One service of a decky: its container, and the TCP ports it must accept connections on."""

    slug: str
    container: str
    tcp_ports: tuple[int, ...]


@dataclass(frozen=True)
class DeckyReadiness:
    """The verdict on one decky: ``problems`` is empty when it is ready, else one sentence per service that is not."""

    decky: str
    problems: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return not self.problems


def _states(scope: Scope, decky: str) -> dict[str, str]:
    labels = {naming.LABEL_PROJECT: scope.project, naming.LABEL_DECKY: decky}
    return {c.name: c.state for c in docker_api.list_containers(scope.url, labels)}


def check_decky(scope: Scope, decky: str, services: Sequence[ServiceCheck], timeout: float) -> DeckyReadiness:
    """Wait (up to ``timeout`` seconds) until every service of ``decky`` is running and accepting connections."""
    base = naming.container_name(scope.project, naming.base_key(decky))
    deadline = time.monotonic() + timeout
    owner = {port: service for service in services for port in service.tcp_ports}
    pending = sorted(owner)
    while True:
        states = _states(scope, decky)
        problems = []
        if states.get(base) != "running":
            problems.append(f"base container {base} is {states.get(base, 'missing')}")
        for service in services:
            state = states.get(service.container, "missing")
            if state != "running":
                problems.append(f"service {service.slug}: container {service.container} is {state}")
        if problems:
            return DeckyReadiness(decky, tuple(problems))
        if not pending:
            return DeckyReadiness(decky, ())
        remaining = deadline - time.monotonic()
        limit = max(0.5, min(ROUND_SECONDS, remaining))
        try:
            code, output = docker_api.exec_run(
                scope.url, base, ["python3", "-c", _PROBE, json.dumps(pending), str(limit)]
            )
            still = json.loads(output.strip().splitlines()[-1]) if code == 0 and output.strip() else pending
        except (EngineError, ValueError, IndexError) as exc:
            if time.monotonic() >= deadline:
                return DeckyReadiness(decky, (f"readiness probe failed: {exc}",))
            still = pending
        pending = sorted(int(port) for port in still)
        if not pending:
            return DeckyReadiness(decky, ())
        if time.monotonic() >= deadline:
            closed: dict[str, list[int]] = {}
            for port in pending:
                closed.setdefault(owner[port].slug, []).append(port)
            return DeckyReadiness(
                decky,
                tuple(
                    f"service {slug} never accepted connections on port(s) {', '.join(map(str, ports))} "
                    f"within {timeout:.0f} s"
                    for slug, ports in sorted(closed.items())
                ),
            )


def wait_ready(
    scope: Scope, deckies: Mapping[str, Sequence[ServiceCheck]], timeout: float
) -> dict[str, DeckyReadiness]:
    """:func:`check_decky` for several deckies at once (up to :data:`PARALLEL` in parallel)."""
    if not deckies:
        return {}
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(deckies))) as pool:
        futures = {name: pool.submit(check_decky, scope, name, checks, timeout) for name, checks in deckies.items()}
        return {name: future.result() for name, future in futures.items()}
