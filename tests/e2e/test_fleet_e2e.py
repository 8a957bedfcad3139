"""End to end: the API, a real ``manage.py qcluster`` worker (on Redis, and on the ORM broker), the real engine.

Three deckies are created, deployed, one is mutated (the others must not restart), a service is added and removed
live, a file is dropped, and everything is torn down, base containers included; containers are checked at each step.
A second test deploys six deckies, SIGKILLs the worker cluster's process group while they are in flight, starts it
again, and shows that within 60 s no row is left pending or running, every failed row says why, and deploying the
same deckies again creates new rows that succeed, on both brokers.

Isolation from concurrent runs: decky and network names carry a per-run prefix, the LAN comes from a private pool,
compose files go to a temporary data dir, and the worker and this process share a Redis database of their own.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from rest_framework.test import APIClient

from deckies.engine import docker_api, naming
from deckies.models import Decky, Network
from lifecycle.models import DeckyLifecycle
from tests.deckies import fakes
from tests.deckies.engine import builders
from tests.e2e.cluster import Worker, operator_user, poll_until_terminal, redis_url_with_db, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=["redis", "orm"])
def e2e(
    request: pytest.FixtureRequest, settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    broker = request.param
    if broker == "redis" and not django_settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set")
    if not fakes.docker_reachable():
        pytest.skip("the Docker engine is not reachable")
    from django_q.conf import Conf

    # This process enqueues for the real worker instead of running tasks inline (the test settings' sync mode).
    monkeypatch.setattr(Conf, "SYNC", False)
    redis_url = ""
    if broker == "redis":
        import redis

        redis_url = redis_url_with_db(django_settings.REDIS_URL, random.randint(8, 15))
        redis.from_url(redis_url).delete(f"django_q:{Conf.CLUSTER_NAME}:q")
        monkeypatch.setattr(Conf, "REDIS", redis_url)
        monkeypatch.setattr(Conf, "ORM", None)
    else:
        monkeypatch.setattr(Conf, "ORM", "default")
    settings.DECNET_DATA_DIR = tmp_path

    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    if connection.vendor != "postgresql":
        pytest.skip("the e2e test shares its database with a worker process, which needs PostgreSQL")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "decnet_site.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,  # empty: the ORM broker on the same database
        "DECNET_DATA_DIR": str(tmp_path),
        "DECNET_SECRET_KEY": django_settings.SECRET_KEY,
        "DECNET_WORKERS": "2",
        "DECNET_DB_CONN_MAX_AGE": "0",
    }
    env.pop("Q_CLUSTER_NAME", None)
    worker = Worker(env, tmp_path / "qcluster.log")
    prefix = f"e{fakes.unique_prefix()}"
    network = Network.objects.create(name=f"{prefix}lan", subnet=fakes.free_subnet())
    client = APIClient()
    client.force_authenticate(operator_user())
    state = {
        "client": client,
        "worker": worker,
        "prefix": prefix,
        "network": network,
        "log": tmp_path / "qcluster.log",
        "broker": broker,
    }
    try:
        yield state
    finally:
        worker.stop()
        leftovers = builders.reload(list(Decky.objects.filter(name__startswith=prefix)))
        with contextlib.suppress(Exception):
            if leftovers:
                builders.teardown(leftovers)
        with contextlib.suppress(Exception):
            networks = docker_api.list_networks(None, {"org.decnet.project": naming.fleet_project()})
            docker_api.remove_networks(
                None, [n for n in networks if str(n.get("Name", "")).endswith(network.name)], only_unused=True
            )


def _containers(name: str) -> dict[str | None, str]:
    decky = Decky.objects.select_related("network", "host", "topology").get(name=name, topology__isnull=True)
    return {c.service: c.status for c in builders.containers(decky)}


def _started(name: str) -> dict[str, str]:
    decky = Decky.objects.select_related("network", "host", "topology").get(name=name, topology__isnull=True)
    out = {}
    for state in builders.containers(decky):
        info = docker_api.inspect_container(None, state.name) or {}
        out[state.name] = f"{info.get('Id')}@{(info.get('State') or {}).get('StartedAt')}"
    return out


@pytest.mark.redis
@pytest.mark.parametrize("e2e", ["redis"], indirect=True)
def test_fleet_lifecycle_through_the_api(e2e: dict[str, Any]) -> None:
    client: APIClient = e2e["client"]
    prefix, log = e2e["prefix"], e2e["log"]
    names = [f"{prefix}{suffix}" for suffix in ("web", "db", "files")]
    shapes = {names[0]: ["ssh", "http"], names[1]: ["mysql", "redis"], names[2]: ["ftp", "ssh"]}
    for name, services in shapes.items():
        response = client.post(
            "/api/v1/deckies/",
            {"name": name, "services": services, "network": e2e["network"].name, "archetype": ""},
            format="json",
        )
        assert response.status_code == 201, response.json()
    e2e["worker"].start()

    rows = poll_until_terminal(client, client.post("/api/v1/deckies/deploy/", {"names": names}, format="json"), log)
    assert {row["status"] for row in rows} == {"succeeded"}, rows
    assert len(rows) == 3
    for name, services in shapes.items():
        expected: dict[str | None, str] = {None: "running", **dict.fromkeys(services, "running")}
        assert _containers(name) == expected
        assert client.get(f"/api/v1/deckies/{name}/").json()["state"] == "running"

    # Mutate one decky: its containers follow the new services, the other deckies are not restarted.
    untouched = {name: _started(name) for name in names[1:]}
    rows = poll_until_terminal(client, client.post(f"/api/v1/deckies/{names[0]}/mutate/"), log)
    assert rows[0]["status"] == "succeeded", rows
    mutated = client.get(f"/api/v1/deckies/{names[0]}/").json()["services"]
    assert set(_containers(names[0])) == {None, *mutated}
    assert {name: _started(name) for name in names[1:]} == untouched

    # An additive deploy (a new decky, then "deploy everything") starts the newcomer and restarts nobody.
    newcomer = f"{prefix}late"
    response = client.post(
        "/api/v1/deckies/", {"name": newcomer, "services": ["ftp"], "network": e2e["network"].name}, format="json"
    )
    assert response.status_code == 201, response.json()
    running_before = {name: _started(name) for name in names}
    rows = poll_until_terminal(client, client.post("/api/v1/deckies/deploy/", {}, format="json"), log)
    assert {row["status"] for row in rows} == {"succeeded"}, rows
    assert _containers(newcomer) == {None: "running", "ftp": "running"}
    assert {name: _started(name) for name in names} == running_before
    names.append(newcomer)

    # Live service add / remove on another decky touches only that container.
    before = _started(names[1])
    response = client.post(f"/api/v1/deckies/{names[1]}/services/", {"name": "ftp"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["services"] == ["mysql", "redis", "ftp"]
    assert _containers(names[1])["ftp"] == "running"
    after_add = _started(names[1])
    assert {k: v for k, v in after_add.items() if k in before} == before
    response = client.delete(f"/api/v1/deckies/{names[1]}/services/ftp/")
    assert response.status_code == 200
    assert response.json()["services"] == ["mysql", "redis"]
    assert "ftp" not in _containers(names[1])
    assert _started(names[1]) == before

    # A file dropped into the ssh decky lands in its ssh container with the mode asked for.
    import base64

    response = client.post(
        "/api/v1/deckies/files/",
        {
            "decky_name": names[2],
            "path": "/tmp/loot/passwords.txt",
            "content_b64": base64.b64encode(b"s3cret").decode(),
            "mode": 0o600,
            "mtime_offset": -86400,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    container = response.json()["container"]
    content, mode, mtime = docker_api.read_file(None, container, "/tmp/loot/passwords.txt")
    assert content == b"s3cret"
    assert mode & 0o7777 == 0o600
    assert mtime < time.time() - 80000
    assert (
        client.delete(
            "/api/v1/deckies/files/", {"decky_name": names[2], "path": "/tmp/loot/passwords.txt"}, format="json"
        ).status_code
        == 200
    )

    # Tear everything down: no container of any decky survives, bases included.
    for name in names:
        rows = poll_until_terminal(client, client.post(f"/api/v1/deckies/{name}/teardown/"), log)
        assert rows[0]["status"] == "succeeded", rows
        assert _containers(name) == {}
        assert client.get(f"/api/v1/deckies/{name}/").json()["state"] == "torn_down"
    lifecycle = DeckyLifecycle.objects.filter(decky_name__in=names)
    assert not lifecycle.filter(status__in=["pending", "running"]).exists()


OPEN = ("pending", "running")


def test_a_killed_cluster_leaves_no_row_stuck(e2e: dict[str, Any]) -> None:
    """The issue's scenario: six deploys through the API, the cluster SIGKILLed 0.7 s later, then started again."""
    client: APIClient = e2e["client"]
    log = e2e["log"]
    names = [f"{e2e['prefix']}k{index}" for index in range(6)]
    for name in names:
        response = client.post(
            "/api/v1/deckies/",
            {"name": name, "services": ["ssh", "http"], "network": e2e["network"].name},
            format="json",
        )
        assert response.status_code == 201, response.json()
    e2e["worker"].start()
    wait_for(
        lambda: DeckyLifecycle.objects.exists() or "running" in log.read_text(errors="replace"), 30, "the cluster", log
    )
    time.sleep(1.0)  # the cluster is up
    first: dict[str, str] = {}
    for name in names:
        response = client.post(f"/api/v1/deckies/{name}/deploy/")
        assert response.status_code == 202, response.content
        (first[name],) = response.json()["lifecycle_ids"]
    time.sleep(0.7)
    e2e["worker"].kill()
    killed_at = time.monotonic()
    open_at_kill = DeckyLifecycle.objects.filter(pk__in=first.values(), status__in=OPEN).count()
    assert open_at_kill > 0, "the kill must land while work is in flight"

    e2e["worker"].start()

    def settled() -> bool:
        return not DeckyLifecycle.objects.filter(pk__in=first.values(), status__in=OPEN).exists()

    wait_for(settled, 60, "every row of the killed cluster to end", log)
    assert time.monotonic() - killed_at < 60
    rows = list(DeckyLifecycle.objects.filter(pk__in=first.values()))
    for row in rows:
        if row.status == "failed":
            assert "stopped while running deploy" in row.message, row.message
            assert row.completed_at is not None
    # A dead row never blocks a new request: deploying again creates new rows, and they succeed.
    second = poll_until_terminal(client, client.post("/api/v1/deckies/deploy/", {"names": names}, format="json"), log)
    assert {row["id"] for row in second}.isdisjoint(first.values())
    assert {row["status"] for row in second} == {"succeeded"}, second
    for name in names:
        assert _containers(name) == {None: "running", "ssh": "running", "http": "running"}
