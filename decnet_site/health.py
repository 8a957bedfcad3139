"""``GET /api/v1/health/``: is everything the control plane needs reachable?

Checks the database, the task broker (Redis ``PING`` when ``REDIS_URL`` is set, else the ORM broker's table) and the
worker cluster's heartbeat (django-q2 cluster stats, else the schedules it keeps advancing), plus whatever the apps
register (:func:`register_checks`: the Docker engines, the attack collector, …). 200 when every check passes, else
503; the body has each check's detail either way. Every check is bounded by a timeout and never raises.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

logger = logging.getLogger(__name__)

#: A schedule whose next run is this far in the past means no cluster is running its scheduler.
SCHEDULE_GRACE = timedelta(minutes=3)


class CheckSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    detail = serializers.CharField()
    latency_ms = serializers.FloatField()


class HealthSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    checks = serializers.DictField(child=CheckSerializer())


def _timed(check: Callable[[], str]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        detail, ok = check(), True
    except Exception as exc:
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return {"ok": ok, "detail": detail[:500], "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return f"{connection.vendor} reachable"


def check_broker() -> str:
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        try:
            if not client.ping():
                raise ConnectionError("Redis did not answer PING")
        finally:
            client.close()
        return "redis PONG"
    from django_q.models import OrmQ

    return f"orm broker reachable ({OrmQ.objects.count()} queued)"


def check_cluster() -> str:
    from django_q.models import Schedule
    from django_q.status import Stat

    try:
        stats = list(Stat.get_all())
    except Exception as exc:  # the stats backend is a cache; its failure must not hide the schedule evidence
        logger.info("cluster stats unavailable: %s", exc)
        stats = []
    if stats:
        return f"{len(stats)} cluster(s): " + ", ".join(sorted({str(stat.status) for stat in stats}))
    # Stats of an ORM-broker cluster live in a per-process cache; the scheduler's progress is visible to all.
    repeating = Schedule.objects.exclude(repeats=0)
    if not repeating.exists():
        raise RuntimeError("no cluster heartbeat and no schedules to judge by (run manage.py setup_schedules)")
    stalest = repeating.order_by("next_run").values_list("next_run", flat=True).first()
    if stalest is not None and stalest < timezone.now() - SCHEDULE_GRACE:
        raise RuntimeError(f"no cluster heartbeat; schedules overdue since {stalest.isoformat()}")
    return "schedules are advancing"


#: Each returns ``{check name: callable giving a detail string or raising}``; registered by the apps.
CheckProvider = Callable[[], dict[str, Callable[[], str]]]
_providers: list[CheckProvider] = []


def register_checks(provider: CheckProvider) -> None:
    """Add the checks ``provider`` names to every health report (idempotent; call from ``AppConfig.ready``)."""
    if provider not in _providers:
        _providers.append(provider)


def timed(check: Callable[[], str]) -> dict[str, Any]:
    """Run one check: ``{ok, detail, latency_ms}``; an exception is a failed check, never an error."""
    return _timed(check)


def health_report() -> dict[str, Any]:
    """Run every check; ``{"ok": bool, "checks": {name: {ok, detail, latency_ms}}}``."""
    checks = {
        "database": _timed(check_database),
        "broker": _timed(check_broker),
        "cluster": _timed(check_cluster),
    }
    for provider in _providers:
        try:
            named = provider()
        except Exception as exc:  # e.g. a table is unreadable; the database check already says why
            name = getattr(provider, "__name__", "checks")
            checks[name] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:500], "latency_ms": 0.0}
            continue
        for name, check in named.items():
            checks[name] = _timed(check)
    return {"ok": all(check["ok"] for check in checks.values()), "checks": checks}


class HealthView(APIView):
    """Health of the database, broker, worker cluster and Docker engines (viewer role)."""

    @extend_schema(
        summary="Health of the control plane's dependencies",
        responses={
            200: HealthSerializer,
            503: OpenApiResponse(HealthSerializer, description="At least one check failed; see `checks`."),
            401: OpenApiResponse(description="Not authenticated."),
            403: OpenApiResponse(description="Not authenticated (session) or not allowed."),
        },
    )
    def get(self, request: Request) -> Response:
        report = health_report()
        return Response(report, status=200 if report["ok"] else 503)
