"""API latency benchmark: the 202 operation endpoints and the lifecycle poll, with queries per request.

It creates a throwaway test database next to the configured one (``test_<name>``, dropped at the end; PostgreSQL
when ``DATABASE_URL`` points at it, else SQLite), fills it with a fleet of deckies, and drives the API in process
with Django's test client and an operator token (authentication, permissions, serialisation and the exception
handler are all on the path). Tasks are really enqueued on the configured broker (a private Redis database when
``REDIS_URL`` is set, else the ORM broker) but no worker consumes them: the 202 figures are what an operator
waits for, not the Docker work behind them. Nothing touches Docker.

Measured, each as median and p99 in milliseconds plus database queries per request:

- ``POST /deckies/{name}/deploy/`` and ``POST /deckies/{name}/mutate/`` (202, a fresh lifecycle row each);
- ``POST /deckies/deploy/`` for the whole fleet (one 202 with a row per decky);
- ``GET /deckies/lifecycle/?ids=…`` with 1 and 50 ids (the polling loop);
- ``GET /deckies/?limit=50`` (the fleet list, with services and newest lifecycle row).

    DATABASE_URL=postgres://… REDIS_URL=redis://… .venv/bin/python bench/api_bench.py [--deckies 50] [--rounds 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "decnet_site.test_settings")


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def measure(name: str, rounds: int, request: Callable[[int], Any], expect: int) -> dict[str, Any]:
    """Run ``request(i)`` ``rounds`` times; latency in ms (median, p99) and queries per request (max)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    timings: list[float] = []
    queries: list[int] = []
    for index in range(rounds):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = request(index)
            timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != expect:
            raise SystemExit(f"{name}: expected {expect}, got {response.status_code}: {response.content[:300]!r}")
        queries.append(len(captured.captured_queries))
    return {
        "endpoint": name,
        "rounds": rounds,
        "median_ms": round(statistics.median(timings), 2),
        "p99_ms": round(_percentile(timings, 0.99), 2),
        "queries": max(queries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deckies", type=int, default=50, help="fleet size (default 50)")
    parser.add_argument("--rounds", type=int, default=200, help="requests per read endpoint (default 200)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    import django

    django.setup()
    import tempfile

    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment, teardown_test_environment
    from django_q.conf import Conf
    from rest_framework.authtoken.models import Token

    settings.DECNET_DATA_DIR = Path(tempfile.mkdtemp(prefix="decnet-api-bench-"))
    # Enqueue for real (the test settings run tasks inline), on a broker queue nobody consumes.
    Conf.SYNC = False
    if settings.REDIS_URL:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(settings.REDIS_URL)
        Conf.REDIS = urlunsplit((parts.scheme, parts.netloc, "/14", "", ""))
    queue_name = Conf.CLUSTER_NAME

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    test_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        from django.utils import timezone

        from deckies.services import decky_create
        from lifecycle.models import DeckyLifecycle

        user = User.objects.create_user(username="bench-operator", password="unused-password-1")
        user.groups.add(Group.objects.get(name="operator"))
        token = Token.objects.create(user=user).key
        client = Client(HTTP_AUTHORIZATION=f"Token {token}", SERVER_NAME="localhost")
        names = [f"bench-{index:03d}" for index in range(args.deckies)]
        for name in names:
            decky_create(name=name, services=["ssh", "http"])
        # Warm-up: URL resolver, permission cache, broker connection (the first enqueue opens it).
        decky_create(name="bench-warm-up", services=["ssh"])
        client.get("/api/v1/deckies/")
        client.post("/api/v1/deckies/bench-warm-up/deploy/")

        def close_open_rows() -> None:
            now = timezone.now()
            DeckyLifecycle.objects.filter(status__in=["pending", "running"]).update(status="failed", completed_at=now)

        results = []
        results.append(
            measure(
                "POST /deckies/{name}/deploy/",
                len(names),
                lambda i: client.post(f"/api/v1/deckies/{names[i]}/deploy/"),
                202,
            )
        )
        close_open_rows()
        results.append(
            measure(
                "POST /deckies/{name}/mutate/",
                len(names),
                lambda i: client.post(f"/api/v1/deckies/{names[i]}/mutate/"),
                202,
            )
        )
        close_open_rows()
        bulk = {"rounds": 5}

        def bulk_deploy(_: int) -> Any:
            response = client.post("/api/v1/deckies/deploy/", {}, content_type="application/json")
            close_open_rows()
            return response

        results.append(measure(f"POST /deckies/deploy/ ({len(names)} deckies)", bulk["rounds"], bulk_deploy, 202))
        ids = [str(pk) for pk in DeckyLifecycle.objects.values_list("pk", flat=True)[:50]]
        results.append(
            measure(
                "GET /deckies/lifecycle/?ids=<1 id>",
                args.rounds,
                lambda i: client.get(f"/api/v1/deckies/lifecycle/?ids={ids[i % len(ids)]}"),
                200,
            )
        )
        many = ",".join(ids)
        results.append(
            measure(
                f"GET /deckies/lifecycle/?ids=<{len(ids)} ids>",
                args.rounds,
                lambda i: client.get(f"/api/v1/deckies/lifecycle/?ids={many}"),
                200,
            )
        )
        results.append(
            measure("GET /deckies/?limit=50", args.rounds, lambda i: client.get("/api/v1/deckies/?limit=50"), 200)
        )
    finally:
        if settings.REDIS_URL:
            import redis

            redis.from_url(Conf.REDIS).delete(f"django_q:{queue_name}:q")
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()

    engine = connection.vendor
    broker = "redis" if settings.REDIS_URL else "orm"
    if args.json:
        print(json.dumps({"database": engine, "test_database": test_name, "broker": broker, "results": results}))
        return
    print(f"database: {engine} ({test_name}), broker: {broker}, fleet: {args.deckies} deckies")
    print(f"{'endpoint':<42} {'rounds':>6} {'median ms':>10} {'p99 ms':>8} {'queries':>8}")
    for row in results:
        print(
            f"{row['endpoint']:<42} {row['rounds']:>6} {row['median_ms']:>10.2f} {row['p99_ms']:>8.2f} "
            f"{row['queries']:>8}"
        )


if __name__ == "__main__":
    main()
