"""Observed state heals itself: a host reboot's worth of engine restart under a deployed fleet, repaired by the
scheduled reconcile alone.

A private Docker engine (its own socket, data root and bridge; the machine's engine is never restarted) runs a
fleet deployed through the API by a real worker cluster with its schedules. The engine is stopped and started
again: base containers come back (``restart: unless-stopped``) but the service containers, whose network namespace
belonged to the old base, stay exited. Nobody types a command: within a couple of minutes the scheduled reconcile
records the drift, queues one ``repair`` row per decky, and every decky answers on all its ports again.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from deckies.catalogue.images import BASE_FAMILY, image_ref
from deckies.engine import naming
from deckies.models import Decky, Network
from lifecycle.models import DeckyLifecycle
from tests.deckies.engine import probes
from tests.e2e.cluster import Worker, operator_user, poll_until_terminal, redis_url_with_db, wait_for
from tests.engines import PrivateEngine, private_engine
from tests.netsafety import require_local_bridge

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

SERVICES = {"ssh": 22, "http": 80, "smtp": 25}


@pytest.fixture
def engine() -> Iterator[PrivateEngine]:
    with private_engine("restart") as started:
        started.load_images(
            [image_ref(BASE_FAMILY), image_ref("cowrie"), image_ref("opencanary"), image_ref("listeners")]
        )
        yield started


def _broken(engine: PrivateEngine, names: list[str]) -> set[str]:
    """The deckies with a container that is not running once the restarted engine has settled."""
    client = engine.client()
    try:
        wait_for(
            lambda: all(c.status != "restarting" for c in client.containers.list(all=True)), 30, "the engine to settle"
        )
        return {
            c.labels.get(naming.LABEL_DECKY, "")
            for c in client.containers.list(all=True)
            if c.status != "running" and c.labels.get(naming.LABEL_DECKY) in names
        }
    finally:
        client.close()


def _answers(ip: str) -> bool:
    for slug in SERVICES:
        try:
            probes.wait_for_greeting(ip, slug, timeout=2)
        except AssertionError:
            return False
    return True


def test_a_restarted_engine_is_healed_by_the_schedule_alone(
    engine: PrivateEngine, settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not django_settings.REDIS_URL or connection.vendor != "postgresql":
        pytest.skip("needs Redis and PostgreSQL (a worker process shares the database)")
    from django_q.conf import Conf

    redis_url = redis_url_with_db(django_settings.REDIS_URL, random.randint(8, 15))
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "REDIS", redis_url)
    monkeypatch.setattr(Conf, "ORM", None)
    settings.DECNET_DATA_DIR = tmp_path
    settings.DECNET_DEFAULT_DOCKER_URL = engine.url
    db = connection.settings_dict
    worker = Worker(
        {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "decnet_site.settings",
            "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
            f"/{db['NAME']}",
            "REDIS_URL": redis_url,
            "DECNET_DATA_DIR": str(tmp_path),
            "DECNET_SECRET_KEY": django_settings.SECRET_KEY,
            "DECNET_DOCKER_URL": engine.url,
            "DECNET_AUTO_HEAL": "1",
            "DECNET_DB_CONN_MAX_AGE": "0",
        },
        tmp_path / "qcluster.log",
    )
    log = tmp_path / "qcluster.log"
    subnet = probes.free_subnets(1)[0]
    network = Network.objects.create(name="restartlan", subnet=subnet)
    client = APIClient()
    client.force_authenticate(operator_user())
    names = ["rs-web", "rs-mail"]
    for name in names:
        response = client.post(
            "/api/v1/deckies/", {"name": name, "services": list(SERVICES), "network": network.name}, format="json"
        )
        assert response.status_code == 201, response.json()
    call_command("setup_schedules", stdout=StringIO())
    worker.start()
    try:
        rows = poll_until_terminal(client, client.post("/api/v1/deckies/deploy/", {"names": names}, format="json"), log)
        assert {row["status"] for row in rows} == {"succeeded"}, rows
        ips = [str(Decky.objects.get(name=name).ip) for name in names]
        for ip in ips:
            require_local_bridge(ip)
            assert _answers(ip)

        broken: set[str] = set()
        for _attempt in range(3):  # which service containers lose the race at engine start varies; one must
            engine.restart()  # what a host reboot does to the containers
            broken = _broken(engine, names)
            if broken:
                break
        assert broken, "no service container stayed down after three engine restarts"

        wait_for(lambda: all(_answers(ip) for ip in ips), 240, "every decky to answer again after the restart", log)
        repairs = DeckyLifecycle.objects.filter(operation="repair", decky__name__in=names, status="succeeded")
        wait_for(lambda: {row.decky_name for row in repairs} >= broken, 60, "a repair row per broken decky", log)
        for row in repairs:
            assert row.actor == "reconciler"
            assert row.message.startswith("repaired (not running"), row.message
        assert set(Decky.objects.filter(name__in=names).values_list("state", flat=True)) == {"running"}
    finally:
        worker.stop()
