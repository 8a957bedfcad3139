"""Task entry points, the stale-row sweep (task, command and worker start-up hook) and the schedules command."""

from __future__ import annotations

import dataclasses
import sys
import types
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.models import Schedule

from deckies import tasks
from deckies.choices import DeckyState
from deckies.models import Decky
from lifecycle import apps as lifecycle_apps
from lifecycle import services
from lifecycle.models import DeckyLifecycle, Event
from lifecycle.tasks import sweep_stale, sweep_stale_task
from tests.deckies.factories import DeckyFactory

pytestmark = pytest.mark.django_db


def _aged(operation: str = "deploy", *, minutes: int, status: str = "pending", name: str = "d") -> DeckyLifecycle:
    row = services.lifecycle_create(decky_name=name, operation=operation)
    if status == "running":
        services.lifecycle_start(row.pk)
    DeckyLifecycle.objects.filter(pk=row.pk).update(started_at=timezone.now() - timedelta(minutes=minutes))
    row.refresh_from_db()
    return row


class TestTasks:
    def test_run_operation_task_runs_the_row(self) -> None:
        row = services.lifecycle_create(decky_name="ghost", operation="deploy")
        tasks.run_operation_task(str(row.pk))
        row.refresh_from_db()
        assert row.status == "failed"
        assert (row.error or "").startswith("DeckyNotFoundError")

    def test_auto_mutate_task_counts_requests(self) -> None:
        decky = DeckyFactory.create(mutate_interval=timedelta(minutes=1))
        Decky.objects.filter(pk=decky.pk).update(
            state=DeckyState.RUNNING, last_mutated=timezone.now() - timedelta(minutes=2)
        )
        assert tasks.auto_mutate_task() == 1
        assert tasks.auto_mutate_task() == 0  # last_mutated was committed with the request: not due again
        assert DeckyLifecycle.objects.filter(operation="mutate").count() == 1

    def test_reconcile_task_with_the_real_reconciler(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from tests.deckies import fakes

        fakes.install(monkeypatch)
        monkeypatch.setattr("deckies.engine.runtime.fleet_containers", lambda host=None: [])
        report = tasks.reconcile_task()
        assert report is not None
        assert report["heal"] is False
        assert report["engine_error"] is None

    def test_reconcile_task_without_the_reconciler(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "deckies.reconcile", None)
        assert tasks.reconcile_task() is None

    def test_reconcile_task_returns_the_report(self, monkeypatch: pytest.MonkeyPatch) -> None:
        @dataclasses.dataclass
        class Report:
            heal: bool
            drifted: list[str]

        module = types.ModuleType("deckies.reconcile")
        module.reconcile = lambda heal: Report(heal=heal, drifted=["web-01"])  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "deckies.reconcile", module)
        assert tasks.reconcile_task(heal=True) == {"heal": True, "drifted": ["web-01"]}


class TestSweep:
    def test_fails_only_stale_open_rows(self, settings: Any) -> None:
        settings.DECNET_LIFECYCLE_STALE_AFTER = 3600
        stale_pending = _aged(minutes=120, name="a")
        stale_running = _aged("mutate", minutes=61, status="running", name="b")
        fresh = _aged(minutes=5, name="c")
        done = _aged(minutes=300, name="d")
        services.lifecycle_succeed(done.pk)
        assert sweep_stale_task() == 2
        by_id = {row.pk: row for row in DeckyLifecycle.objects.all()}
        assert by_id[stale_pending.pk].status == "failed"
        assert by_id[stale_running.pk].status == "failed"
        assert "worker lost during operation" in (by_id[stale_running.pk].error or "")
        assert by_id[stale_running.pk].completed_at is not None
        assert by_id[fresh.pk].status == "pending"
        assert by_id[done.pk].status == "succeeded"
        # Every swept row is an ordinary lifecycle transition: its own event, plus one summary.
        failed = Event.objects.filter(topic="decky.b.lifecycle", payload__status="failed")
        assert failed.count() == 1
        assert Event.objects.get(topic="lifecycle.sweep").payload["count"] == 2
        assert sweep_stale_task() == 0

    def test_dry_run_changes_nothing(self) -> None:
        row = _aged(minutes=120)
        assert sweep_stale(older_than=timedelta(hours=1), dry_run=True) == [str(row.pk)]
        row.refresh_from_db()
        assert row.status == "pending"

    def test_command(self) -> None:
        row = _aged(minutes=45)
        out = StringIO()
        call_command("sweep_lifecycle", "--older-than", "1h", stdout=out)
        assert "failed 0 stale" in out.getvalue()
        call_command("sweep_lifecycle", "--older-than", "30m", "--dry-run", stdout=out)
        assert str(row.pk) in out.getvalue()
        assert "would fail 1" in out.getvalue()
        call_command("sweep_lifecycle", "--older-than", "30m", stdout=out)
        row.refresh_from_db()
        assert row.status == "failed"

    @pytest.mark.parametrize("bad", ["soon", "1w", "-5m", ""])
    def test_command_rejects_bad_durations(self, bad: str) -> None:
        if bad == "":
            return  # empty means "use the setting"
        with pytest.raises(CommandError):
            call_command("sweep_lifecycle", "--older-than", bad, stdout=StringIO())

    def test_worker_start_hook(self, monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
        settings.DECNET_LIFECYCLE_STALE_AFTER = 60
        row = _aged(minutes=2, status="running")
        monkeypatch.setattr(lifecycle_apps, "_swept_in_this_process", False)
        lifecycle_apps.sweep_on_worker_start(sender="django_q", proc_name="Process-1")
        row.refresh_from_db()
        assert row.status == "failed"
        again = _aged(minutes=2)
        lifecycle_apps.sweep_on_worker_start(sender="django_q", proc_name="Process-1")  # once per process
        again.refresh_from_db()
        assert again.status == "pending"

    def test_hook_is_only_connected_in_qcluster(self) -> None:
        assert lifecycle_apps.is_qcluster_process(["manage.py", "qcluster"])
        assert not lifecycle_apps.is_qcluster_process(["manage.py", "runserver"])
        assert not lifecycle_apps.is_qcluster_process(["pytest"])


class TestSchedules:
    def test_idempotent_upsert(self) -> None:
        out = StringIO()
        call_command("setup_schedules", stdout=out)
        assert out.getvalue().count("created:") == 4
        schedules = {s.name: s for s in Schedule.objects.all()}
        assert schedules["decnet-sweep-lifecycle"].func == "lifecycle.tasks.sweep_stale_task"
        assert schedules["decnet-sweep-lifecycle"].minutes == 5
        assert schedules["decnet-auto-mutate"].func == "deckies.tasks.auto_mutate_task"
        assert schedules["decnet-auto-mutate"].minutes == 1
        assert schedules["decnet-reconcile"].func == "deckies.tasks.reconcile_task"
        assert schedules["decnet-sweep-topologies"].func == "topology.tasks.sweep_stuck_task"
        assert all(s.schedule_type == Schedule.MINUTES and s.repeats == -1 for s in schedules.values())

        out = StringIO()
        call_command("setup_schedules", stdout=out)
        assert out.getvalue().count("unchanged:") == 4
        assert Schedule.objects.count() == 4

        Schedule.objects.filter(name="decnet-auto-mutate").update(minutes=30)
        out = StringIO()
        call_command("setup_schedules", "--dry-run", stdout=out)
        assert "would update: decnet-auto-mutate" in out.getvalue()
        assert Schedule.objects.get(name="decnet-auto-mutate").minutes == 30
        call_command("setup_schedules", stdout=StringIO())
        assert Schedule.objects.get(name="decnet-auto-mutate").minutes == 1
