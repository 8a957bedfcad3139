"""API latency benchmark: the 202 operation endpoints, the lifecycle poll and the reads, with queries per request.

It creates a throwaway test database next to the configured one (``test_<name>``, dropped at the end; PostgreSQL
when ``DATABASE_URL`` points at it, else SQLite), fills it with a fleet of deckies (1,000 by default, two services
each), and drives the API in process with Django's test client and an operator token (authentication, the role
check, serialisation and the exception handler are all on the path). Jobs are really enqueued on the configured
broker (a private Redis database when ``REDIS_URL`` is set, else the ORM broker) but no worker consumes them: the
202 figures are what an operator waits for, not the Docker work behind them. Nothing touches Docker.

Every row reports the median and p99 in milliseconds and the database queries of one request (SQL statements;
the transaction's BEGIN/COMMIT, which Django also logs, in a column of their own), counted on the request's own
connection (Django's per-request connection handling is switched off for the run, so the count can
never read 0 for a request that did query).

- ``POST /deckies/{name}/deploy/``, ``…/mutate/``, ``…/teardown/`` (202, one fresh lifecycle row each);
- ``POST /deckies/deploy/`` for the whole fleet (one 202, a row per decky, jobs of 25);
- ``GET /deckies/lifecycle/?ids=…`` with 1, 50 and 200 ids (the polling loop);
- ``GET /deckies/?limit=50`` and ``GET /deckies/{name}/`` (the reads).

    DATABASE_URL=postgres://… REDIS_URL=redis://… .venv/bin/python bench/api_bench.py [--deckies 1000] [--rounds 300]

For the poll measured over real HTTP against DECNET itself, see ``bench/poll_bench.py``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
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


_TRANSACTION_CONTROL = frozenset({"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"})


def measure(
    name: str, rounds: int, request: Callable[[int], Any], expect: int, after: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Run ``request(i)`` ``rounds`` times (``after`` between rounds, untimed and uncounted); latency in ms
    (median, p99), the SQL statements of one request (the largest count seen) and, apart, its transaction
    statements (BEGIN, COMMIT, savepoints), which Django logs as queries too."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    timings: list[float] = []
    queries: list[int] = []
    transaction_statements: list[int] = []
    for index in range(rounds):
        connection.queries_log.clear()  # the log is a bounded deque: a full one would count 0
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = request(index)
            timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != expect:
            raise SystemExit(f"{name}: expected {expect}, got {response.status_code}: {response.content[:300]!r}")
        statements = [query["sql"].split(None, 1)[0].upper() for query in captured.captured_queries]
        control = sum(1 for word in statements if word in _TRANSACTION_CONTROL)
        queries.append(len(statements) - control)
        transaction_statements.append(control)
        if after is not None:
            after()
    if min(queries) == 0:
        raise SystemExit(f"{name}: a request counted 0 queries; the count is not on the request's connection")
    return {
        "endpoint": name,
        "rounds": rounds,
        "median_ms": round(statistics.median(timings), 2),
        "p99_ms": round(_percentile(timings, 0.99), 2),
        "queries": max(queries),
        "transaction_statements": max(transaction_statements),
    }


def _fleet(count: int) -> list[str]:
    """``count`` fleet deckies with ssh + http, written in bulk (the benchmark is about the API, not the import)."""
    import ipaddress

    from deckies.models import Decky, DeckyService
    from deckies.services import network_get_default

    network = network_get_default()
    hosts = ipaddress.IPv4Network("10.0.0.0/16").hosts()
    next(hosts)
    from deckies.models import Network

    Network.objects.filter(pk=network.pk).update(subnet="10.0.0.0/16")
    deckies = Decky.objects.bulk_create(
        Decky(name=f"bench-{index:04d}", network=network, ip=str(next(hosts)), hostname=f"srv-{index:04d}")
        for index in range(count)
    )
    DeckyService.objects.bulk_create(
        DeckyService(decky=decky, slug=slug, config={}, position=position)
        for decky in deckies
        for position, slug in enumerate(("ssh", "http"))
    )
    return [decky.name for decky in deckies]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deckies", type=int, default=1000, help="fleet size (default 1000)")
    parser.add_argument("--rounds", type=int, default=300, help="requests per endpoint (default 300)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    import django

    django.setup()
    import tempfile

    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.core import signals
    from django.db import close_old_connections, connection
    from django.test import Client
    from django.test.utils import setup_test_environment, teardown_test_environment
    from django_q.conf import Conf
    from rest_framework.authtoken.models import Token

    settings.DECNET_DATA_DIR = Path(tempfile.mkdtemp(prefix="decnet-api-bench-"))
    logging.getLogger("django-q").setLevel(logging.WARNING)  # one line per enqueued job would drown the table
    # Enqueue for real (the test settings run tasks inline), on a broker queue nobody consumes.
    Conf.SYNC = False
    if settings.REDIS_URL:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(settings.REDIS_URL)
        Conf.REDIS = urlunsplit((parts.scheme, parts.netloc, "/14", "", ""))
    queue_name = Conf.CLUSTER_NAME
    # One connection for the whole run, so every query of a request is counted on it.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    test_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        from django.utils import timezone

        from lifecycle.models import DeckyLifecycle

        user = User.objects.create_user(username="bench-operator", password="unused-password-1")
        user.groups.add(Group.objects.get(name="operator"))
        token = Token.objects.create(user=user).key
        client = Client(HTTP_AUTHORIZATION=f"Token {token}", SERVER_NAME="localhost")
        names = _fleet(args.deckies)
        rounds = min(args.rounds, len(names))
        # Warm-up: URL resolver, broker connection (the first enqueue opens it).
        client.get("/api/v1/deckies/")
        client.post(f"/api/v1/deckies/{names[-1]}/deploy/")

        def close_open_rows() -> None:
            now = timezone.now()
            DeckyLifecycle.objects.filter(status__in=["pending", "running"]).update(
                status="failed", completed_at=now, message="closed by the benchmark"
            )

        close_open_rows()
        results = []

        def post_verb(verb: str, i: int) -> Any:
            return client.post(f"/api/v1/deckies/{names[i]}/{verb}/")

        for verb in ("deploy", "mutate", "teardown"):
            results.append(measure(f"POST /deckies/{{name}}/{verb}/", rounds, functools.partial(post_verb, verb), 202))
            close_open_rows()
        results.append(
            measure(
                f"POST /deckies/deploy/ ({len(names)} deckies)",
                5,
                lambda i: client.post("/api/v1/deckies/deploy/", {}, content_type="application/json"),
                202,
                after=close_open_rows,
            )
        )
        ids = [str(pk) for pk in DeckyLifecycle.objects.values_list("pk", flat=True)[:200]]

        def poll(count: int, i: int) -> Any:
            chosen = ids[i % len(ids)] if count == 1 else ",".join(ids[:count])
            return client.get(f"/api/v1/deckies/lifecycle/?ids={chosen}")

        for count in (1, 50, 200):
            label = f"GET /deckies/lifecycle/?ids=<{count} id{'s' if count > 1 else ''}>"
            results.append(measure(label, args.rounds, functools.partial(poll, count), 200))
        results.append(
            measure("GET /deckies/?limit=50", args.rounds, lambda i: client.get("/api/v1/deckies/?limit=50"), 200)
        )
        results.append(
            measure(
                "GET /deckies/{name}/",
                args.rounds,
                lambda i: client.get(f"/api/v1/deckies/{names[i % len(names)]}/"),
                200,
            )
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
    print(f"{'endpoint':<44} {'rounds':>6} {'median ms':>10} {'p99 ms':>8} {'queries':>8} {'+ tx':>5}")
    for row in results:
        print(
            f"{row['endpoint']:<44} {row['rounds']:>6} {row['median_ms']:>10.2f} {row['p99_ms']:>8.2f} "
            f"{row['queries']:>8} {row['transaction_statements']:>5}"
        )


if __name__ == "__main__":
    main()
