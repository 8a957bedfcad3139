"""The job layer's commands and start-up hook: ``setup_schedules``, ``sweep_lifecycle``, ``wait``, and what a worker
does when it starts."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_q.models import Schedule

from lifecycle import apps as lifecycle_apps
from lifecycle import services
from lifecycle.models import DeckyLifecycle
from lifecycle.workers import is_qcluster_process, lease_keeper
from tests.lifecycle.factories import make_row

pytestmark = pytest.mark.django_db


class TestSchedules:
    def test_idempotent_upsert_and_retired_schedules_go(self) -> None:
        Schedule.objects.create(name="decnet-sweep-topologies", func="topology.tasks.sweep_stuck_task", minutes=5)
        out = StringIO()
        call_command("setup_schedules", stdout=out)
        assert out.getvalue().count("created:") == 3
        assert "removed: decnet-sweep-topologies" in out.getvalue()
        schedules = {s.name: s for s in Schedule.objects.all()}
        assert set(schedules) == {"decnet-reaper", "decnet-auto-mutate", "decnet-reconcile"}
        assert schedules["decnet-reaper"].func == "lifecycle.tasks.reap_task"
        assert schedules["decnet-auto-mutate"].func == "deckies.tasks.auto_mutate_task"
        assert schedules["decnet-reconcile"].func == "deckies.tasks.reconcile_task"
        assert all(
            s.schedule_type == Schedule.MINUTES and s.repeats == -1 and s.minutes == 1 for s in schedules.values()
        )

        out = StringIO()
        call_command("setup_schedules", stdout=out)
        assert out.getvalue().count("unchanged:") == 3

        Schedule.objects.filter(name="decnet-auto-mutate").update(minutes=30)
        out = StringIO()
        call_command("setup_schedules", "--dry-run", stdout=out)
        assert "would update: decnet-auto-mutate" in out.getvalue()
        assert Schedule.objects.get(name="decnet-auto-mutate").minutes == 30
        call_command("setup_schedules", stdout=StringIO())
        assert Schedule.objects.get(name="decnet-auto-mutate").minutes == 1


def test_sweep_command_runs_the_reaper_once(settings: Any) -> None:
    settings.DECNET_LIFECYCLE_STALE_AFTER = 60
    row = make_row("d", "deploy")
    services.lifecycle_move([row.pk], to="running", worker="x@h:1:1", lease_until=timezone.now() - timedelta(1))
    out = StringIO()
    call_command("sweep_lifecycle", stdout=out)
    assert f"lapsed: {row.pk}" in out.getvalue()
    assert "failed 1 row(s) with a lapsed lease" in out.getvalue()
    assert DeckyLifecycle.objects.get(pk=row.pk).status == "failed"


def test_worker_start_reaps_and_keeps_reaping(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr("lifecycle.reaper.reap_at_start", lambda: calls.append("start"))
    keeper = lease_keeper()
    monkeypatch.setattr(keeper, "run_periodically", lambda periodic: calls.append(periodic.__name__))
    lifecycle_apps.start_worker(sender="django_q", proc_name="Process-1")
    assert calls == ["start", "reap"]


def test_hook_is_only_connected_in_worker_clusters() -> None:
    assert is_qcluster_process(["manage.py", "qcluster"])
    assert is_qcluster_process(["manage.py", "host_worker"])
    assert not is_qcluster_process(["manage.py", "runserver"])
    assert not is_qcluster_process(["pytest"])


def run(*args: str, **kwargs: Any) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **kwargs)
    return out.getvalue()


# --- wait -------------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_wait_outcomes() -> None:
    ok = DeckyLifecycle.objects.create(
        decky_name="a", operation="deploy", status="succeeded", completed_at="2026-01-01T00:00Z"
    )
    bad = DeckyLifecycle.objects.create(
        decky_name="b", operation="deploy", status="failed", error="EngineError: no", completed_at="2026-01-01T00:00Z"
    )
    waiting = DeckyLifecycle.objects.create(decky_name="c", operation="mutate", status="running")
    out = run("wait", str(ok.pk))
    assert "all 1 operation(s) succeeded" in out
    with pytest.raises(CommandError) as caught:
        run("wait", str(ok.pk), str(bad.pk))
    assert caught.value.returncode == 1
    with pytest.raises(CommandError) as caught:
        run("wait", str(waiting.pk), "--timeout", "0.2", "--interval", "0.05")
    assert caught.value.returncode == 2
    assert "c (running)" in str(caught.value)


@pytest.mark.django_db
def test_wait_follows_a_row_to_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    from lifecycle.management.commands import wait as wait_module

    row = DeckyLifecycle.objects.create(decky_name="a", operation="deploy", status="pending")
    real = wait_module.lifecycle_poll
    polls = []

    def advancing(ids: Any) -> Any:
        polls.append(ids)
        if len(polls) == 2:
            DeckyLifecycle.objects.filter(pk=row.pk).update(status="running")
        if len(polls) == 3:
            DeckyLifecycle.objects.filter(pk=row.pk).update(status="succeeded", completed_at="2026-01-01T00:00Z")
        return real(ids=ids)

    monkeypatch.setattr(wait_module, "lifecycle_poll", lambda ids: advancing(ids))
    out = run("wait", str(row.pk), "--interval", "0.01")
    assert out.index("pending") < out.index("running") < out.index("succeeded")


@pytest.mark.django_db
def test_wait_bad_input() -> None:
    with pytest.raises(CommandError, match="not a lifecycle id"):
        run("wait", "nope")
    with pytest.raises(CommandError, match="unknown lifecycle id"):
        run("wait", str(uuid.uuid4()))
    with pytest.raises(CommandError, match="interval"):
        run("wait", str(uuid.uuid4()), "--interval", "0")
