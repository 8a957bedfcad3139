"""Topology deploy / teardown through the job layer with the engine faked (failure injection), and the reaper ending
lost topology jobs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from deckies.engine import naming
from deckies.engine.errors import ComposeCommandError, EngineUnavailableError
from deckies.models import Decky
from lifecycle import jobs, reaper
from lifecycle.jobs import QueueUnavailableError
from lifecycle.models import DeckyLifecycle, Event
from tests.deckies import fakes
from topology import operations, services
from topology.exceptions import TopologyValidationError, VersionConflict
from topology.models import LAN, Edge, Topology, TopologyStatusEvent
from topology.status import TopologyStatusError

from .factories import Maze, make_maze

pytestmark = pytest.mark.django_db


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Any) -> fakes.FakeEngine:
    settings.DECNET_DATA_DIR = tmp_path
    return fakes.install(monkeypatch)


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def fake_async_task(func: str, *args: Any, **kwargs: Any) -> str:
        calls.append((func, args, kwargs))
        return "task-id"

    monkeypatch.setattr("django_q.tasks.async_task", fake_async_task)
    return calls


@pytest.fixture
def maze() -> Maze:
    return make_maze()


def moves(topology: Topology) -> list[tuple[str, str]]:
    return [(e.from_status, e.to_status) for e in TopologyStatusEvent.objects.filter(topology=topology).order_by("at")]


def reasons(topology: Topology) -> list[str]:
    return [e.reason for e in TopologyStatusEvent.objects.filter(topology=topology).order_by("at")]


def states(topology: Topology) -> dict[str, str]:
    return dict(Decky.objects.filter(topology=topology).values_list("name", "state"))


def status_of(topology: Topology) -> str:
    return Topology.objects.values_list("status", flat=True).get(pk=topology.pk)


def deployed(maze: Maze, capture: Any) -> None:
    with capture(execute=True):
        operations.topology_deploy_request(topology=maze.topology, run_inline=True)
    assert status_of(maze.topology) == "active"


# --- deploy -----------------------------------------------------------------------------------------------------------


class TestDeployRequest:
    def test_moves_to_deploying_and_queues_after_commit(
        self, maze: Maze, queued: list[Any], django_capture_on_commit_callbacks: Any
    ) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            moved, rows = operations.topology_deploy_request(topology=maze.topology, actor="alice")
        assert moved.status == "deploying"
        # One row per decky, all in one job, referencing the decky and the topology for real.
        assert sorted((row.decky_name, row.decky_id) for row in rows) == sorted(
            (d.name, d.pk) for d in Decky.objects.filter(topology=maze.topology)
        )
        assert {(row.topology_id, row.operation, row.actor) for row in rows} == {(maze.topology.pk, "deploy", "alice")}
        assert len({row.job for row in rows}) == 1
        assert [(call[0], call[1]) for call in queued] == [(jobs.JOB_TASK, (str(rows[0].job),))]
        assert moves(maze.topology) == [("pending", "deploying")]
        assert reasons(maze.topology) == ["deploy requested by alice"]

    def test_nothing_is_queued_before_commit(self, maze: Maze, queued: list[Any]) -> None:
        operations.topology_deploy_request(topology=maze.topology)
        assert queued == []  # the test transaction never commits

    def test_validation_errors_refuse_and_change_nothing(self, maze: Maze, queued: list[Any]) -> None:
        LAN.objects.filter(pk=maze.dmz.pk).update(is_dmz=False)
        with pytest.raises(TopologyValidationError) as caught:
            operations.topology_deploy_request(topology=maze.topology)
        assert [issue["code"] for issue in caught.value.issues] == ["DMZ_MISSING"]
        assert status_of(maze.topology) == "pending"
        assert moves(maze.topology) == []

    def test_warnings_are_named_in_the_reason(self, maze: Maze, queued: list[Any]) -> None:
        LAN.objects.create(topology=maze.topology, name="spare", subnet="10.201.9.0/24")
        operations.topology_deploy_request(topology=maze.topology)
        assert reasons(maze.topology) == ["deploy requested by system; 1 warning(s): LAN_EMPTY"]

    @pytest.mark.parametrize("status", ["deploying", "active", "failed", "torn_down"])
    def test_only_pending_deploys(self, maze: Maze, status: str, queued: list[Any]) -> None:
        path = {
            "deploying": ["deploying"],
            "active": ["deploying", "active"],
            "failed": ["deploying", "failed"],
            "torn_down": ["torn_down"],
        }[status]
        for step in path:
            services.topology_transition(topology_id=maze.topology.pk, to=step)
        with pytest.raises(TopologyStatusError) as caught:
            operations.topology_deploy_request(topology=maze.topology)
        assert caught.value.status_code == 409
        assert "legal_next" in caught.value.extra
        assert status_of(maze.topology) == status

    def test_stale_version_conflicts(self, maze: Maze, queued: list[Any]) -> None:
        with pytest.raises(VersionConflict):
            operations.topology_deploy_request(topology=maze.topology, expected_version=maze.topology.version + 1)
        operations.topology_deploy_request(topology=maze.topology, expected_version=maze.topology.version)
        assert status_of(maze.topology) == "deploying"

    def test_refused_enqueue_fails_the_topology(
        self, maze: Maze, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
    ) -> None:
        def broken(*args: Any, **kwargs: Any) -> str:
            raise ConnectionError("redis down")

        monkeypatch.setattr("django_q.tasks.async_task", broken)
        with pytest.raises(QueueUnavailableError), django_capture_on_commit_callbacks(execute=True):
            operations.topology_deploy_request(topology=maze.topology)
        assert status_of(maze.topology) == "failed"
        assert "redis down" in reasons(maze.topology)[-1]
        assert set(DeckyLifecycle.objects.values_list("status", flat=True)) == {"failed"}

    def test_runs_through_the_real_task_queue_in_sync_mode(
        self, maze: Maze, engine: fakes.FakeEngine, django_capture_on_commit_callbacks: Any
    ) -> None:
        # Test settings run django-q2 tasks inline: this exercises the dotted task path end to end.
        with django_capture_on_commit_callbacks(execute=True):
            _, rows = operations.topology_deploy_request(topology=maze.topology)
        assert status_of(maze.topology) == "active"
        assert engine.names("deploy_project") == [naming.topology_project(maze.topology.pk)]
        assert set(DeckyLifecycle.objects.filter(pk__in=[r.pk for r in rows]).values_list("status", flat=True)) == {
            "succeeded"
        }


class TestRunDeploy:
    def test_success_records_states_addresses_and_active(
        self, maze: Maze, engine: fakes.FakeEngine, django_capture_on_commit_callbacks: Any
    ) -> None:
        deployed(maze, django_capture_on_commit_callbacks)
        assert moves(maze.topology) == [("pending", "deploying"), ("deploying", "active")]
        assert reasons(maze.topology)[-1] == "all 3 decky(s) running"
        assert states(maze.topology) == {"db": "running", "gw": "running", "web": "running"}
        # Addresses the engine allocated are persisted, in decky-name order, skipping the gateway.
        ips = {(e.decky.name, e.lan.name): e.ip for e in Edge.objects.select_related("decky", "lan")}
        assert ips == {
            ("db", "corp"): "10.201.2.2",
            ("gw", "corp"): "10.201.2.3",
            ("gw", "dmz"): "10.201.1.2",
            ("web", "dmz"): "10.201.1.3",
        }
        primary = dict(Decky.objects.filter(topology=maze.topology).values_list("name", "ip"))
        assert primary == {"db": "10.201.2.2", "gw": "10.201.1.2", "web": "10.201.1.3"}
        topics = set(Event.objects.values_list("topic", flat=True))
        assert f"topology.{maze.topology.pk}.status" in topics
        assert f"topology.{maze.topology.pk}.decky.web.state" in topics

    def test_explicit_addresses_are_kept(
        self, maze: Maze, engine: fakes.FakeEngine, django_capture_on_commit_callbacks: Any
    ) -> None:
        Edge.objects.filter(decky=maze.db).update(ip="10.201.2.50")
        deployed(maze, django_capture_on_commit_callbacks)
        assert Edge.objects.get(decky=maze.db).ip == "10.201.2.50"

    def test_containers_not_running_degrade(
        self, maze: Maze, engine: fakes.FakeEngine, django_capture_on_commit_callbacks: Any
    ) -> None:
        engine.not_ready["db"] = ("service ssh: container x-db-ssh is exited",)
        with django_capture_on_commit_callbacks(execute=True):
            operations.topology_deploy_request(topology=maze.topology, run_inline=True)
        assert status_of(maze.topology) == "degraded"
        assert reasons(maze.topology)[-1] == "post-deploy check: 1 decky(s) not ready: db"
        assert states(maze.topology) == {"db": "failed", "gw": "running", "web": "running"}
        assert Decky.objects.get(pk=maze.db.pk).last_error == "db: service ssh: container x-db-ssh is exited"

    def test_engine_error_fails_with_reason_and_stderr(
        self, maze: Maze, engine: fakes.FakeEngine, django_capture_on_commit_callbacks: Any
    ) -> None:
        engine.fail["deploy_project"] = ComposeCommandError(
            "compose up failed", stderr_tail="network overlaps", returncode=1
        )
        with django_capture_on_commit_callbacks(execute=True):
            operations.topology_deploy_request(topology=maze.topology, run_inline=True)
        assert status_of(maze.topology) == "failed"
        reason = reasons(maze.topology)[-1]
        assert reason.startswith("ComposeCommandError: compose up failed")
        assert "stderr: network overlaps" in reason
        assert set(states(maze.topology).values()) == {"failed"}

    def test_any_exception_fails_never_stays_deploying(
        self, maze: Maze, engine: fakes.FakeEngine, django_capture_on_commit_callbacks: Any
    ) -> None:
        engine.fail["deploy_project"] = RuntimeError("boom")
        with django_capture_on_commit_callbacks(execute=True):
            operations.topology_deploy_request(topology=maze.topology, run_inline=True)
        assert status_of(maze.topology) == "failed"
        assert reasons(maze.topology)[-1] == "RuntimeError: boom"

    def test_engine_unavailable_fails(self, maze: Maze, engine: fakes.FakeEngine, queued: list[Any]) -> None:
        _, rows = operations.topology_deploy_request(topology=maze.topology)
        engine.fail["deploy_project"] = EngineUnavailableError("docker is down")
        jobs.run_job(rows[0].job or rows[0].pk)
        assert status_of(maze.topology) == "failed"
        assert set(DeckyLifecycle.objects.values_list("status", flat=True)) == {"failed"}

    def test_worker_stop_fails_and_reraises(self, maze: Maze, engine: fakes.FakeEngine, queued: list[Any]) -> None:
        _, rows = operations.topology_deploy_request(topology=maze.topology)
        engine.fail["deploy_project"] = KeyboardInterrupt()
        with pytest.raises(KeyboardInterrupt):
            jobs.run_job(rows[0].job or rows[0].pk)
        assert status_of(maze.topology) == "failed"

    def test_teardown_during_deploy_wins(self, maze: Maze, engine: fakes.FakeEngine, queued: list[Any]) -> None:
        _, rows = operations.topology_deploy_request(topology=maze.topology)

        engine.during_ready = lambda: operations.topology_teardown_request(topology=maze.topology)
        jobs.run_job(rows[0].job or rows[0].pk)
        # The deploy removed what it created and recorded nothing; the queued teardown finishes the job.
        assert [name for name, _ in engine.calls if name.endswith("_project")] == ["deploy_project", "remove_project"]
        assert status_of(maze.topology) == "tearing_down"
        assert set(states(maze.topology).values()) == {"pending"}
        assert not Edge.objects.filter(ip__isnull=False).exists()


# --- teardown ---------------------------------------------------------------------------------------------------------


class TestTeardown:
    def test_active_to_torn_down(
        self, maze: Maze, engine: fakes.FakeEngine, django_capture_on_commit_callbacks: Any
    ) -> None:
        deployed(maze, django_capture_on_commit_callbacks)
        with django_capture_on_commit_callbacks(execute=True):
            moved, rows = operations.topology_teardown_request(topology=maze.topology, run_inline=True, actor="bob")
        assert moved.status == "tearing_down"
        assert {row.operation for row in rows} == {"teardown"}
        assert status_of(maze.topology) == "torn_down"
        assert moves(maze.topology)[-2:] == [("active", "tearing_down"), ("tearing_down", "torn_down")]
        assert reasons(maze.topology)[-2:] == ["teardown requested by bob", "teardown complete"]
        assert set(states(maze.topology).values()) == {"torn_down"}

    def test_queues_the_teardown_job(
        self, maze: Maze, queued: list[Any], django_capture_on_commit_callbacks: Any
    ) -> None:
        services.topology_transition(topology_id=maze.topology.pk, to="deploying")
        with django_capture_on_commit_callbacks(execute=True):
            _, rows = operations.topology_teardown_request(topology=maze.topology)
        assert [call[:2] for call in queued] == [(jobs.JOB_TASK, (str(rows[0].job),))]

    def test_engine_error_degrades_and_can_retry(
        self, maze: Maze, engine: fakes.FakeEngine, django_capture_on_commit_callbacks: Any
    ) -> None:
        deployed(maze, django_capture_on_commit_callbacks)
        engine.fail["remove_project"] = ComposeCommandError("down failed", stderr_tail="device busy")
        with django_capture_on_commit_callbacks(execute=True):
            operations.topology_teardown_request(topology=maze.topology, run_inline=True)
        assert status_of(maze.topology) == "degraded"
        assert "device busy" in reasons(maze.topology)[-1]
        assert set(states(maze.topology).values()) == {"teardown_failed"}
        del engine.fail["remove_project"]
        with django_capture_on_commit_callbacks(execute=True):
            operations.topology_teardown_request(topology=maze.topology, run_inline=True)
        assert status_of(maze.topology) == "torn_down"

    @pytest.mark.parametrize("path", [[], ["deploying", "tearing_down"], ["torn_down"]])
    def test_refused_from_pending_tearing_down_and_torn_down(self, maze: Maze, path: list[str]) -> None:
        for step in path:
            services.topology_transition(topology_id=maze.topology.pk, to=step)
        with pytest.raises(TopologyStatusError):
            operations.topology_teardown_request(topology=maze.topology)

    @pytest.mark.parametrize("path", [["deploying"], ["deploying", "failed"], ["deploying", "degraded"]])
    def test_allowed_from_deploying_failed_degraded(self, maze: Maze, path: list[str], queued: list[Any]) -> None:
        for step in path:
            services.topology_transition(topology_id=maze.topology.pk, to=step)
        assert operations.topology_teardown_request(topology=maze.topology)[0].status == "tearing_down"

    def test_refused_enqueue_degrades(
        self, maze: Maze, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
    ) -> None:
        services.topology_transition(topology_id=maze.topology.pk, to="deploying")
        services.topology_transition(topology_id=maze.topology.pk, to="active")

        def broken(*args: Any, **kwargs: Any) -> str:
            raise ConnectionError("redis down")

        monkeypatch.setattr("django_q.tasks.async_task", broken)
        with pytest.raises(QueueUnavailableError), django_capture_on_commit_callbacks(execute=True):
            operations.topology_teardown_request(topology=maze.topology)
        assert status_of(maze.topology) == "degraded"


# --- lost workers -----------------------------------------------------------------------------------------------------


def _lost(rows: list[DeckyLifecycle]) -> None:
    """Their worker claimed them, then vanished: the lease lapses."""
    DeckyLifecycle.objects.filter(pk__in=[row.pk for row in rows]).update(
        status="running", worker="decnet@gone:1:1", lease_expires_at=timezone.now() - timedelta(seconds=1)
    )


class TestLostWorkers:
    def test_a_lost_deploy_fails_the_topology_through_the_reaper(self, maze: Maze, queued: list[Any]) -> None:
        _, rows = operations.topology_deploy_request(topology=maze.topology)
        _lost(rows)
        reaper.reap()
        assert status_of(maze.topology) == "failed"
        assert "worker decnet@gone:1:1 stopped while running deploy" in reasons(maze.topology)[-1]
        assert set(states(maze.topology).values()) == {"failed"}

    def test_a_lost_teardown_degrades_the_topology(
        self, maze: Maze, engine: fakes.FakeEngine, queued: list[Any], django_capture_on_commit_callbacks: Any
    ) -> None:
        deployed_rows = operations.topology_deploy_request(topology=maze.topology)[1]
        jobs.run_job(deployed_rows[0].job or deployed_rows[0].pk)
        _, rows = operations.topology_teardown_request(topology=maze.topology)
        _lost(rows)
        reaper.reap()
        assert status_of(maze.topology) == "degraded"
        # From degraded a teardown can be requested again.
        assert operations.topology_teardown_request(topology=maze.topology)[0].status == "tearing_down"


def test_admin_actions_queue_deploy_and_teardown(maze: Maze, queued: list[Any]) -> None:
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(User.objects.create_superuser("root-admin", "r@example.com", "pw"))
    url = reverse("admin:topology_topology_changelist")

    def act(action: str, topology: Topology) -> Any:
        return client.post(url, {"action": action, "index": 0, "_selected_action": [str(topology.pk)]}, follow=True)

    assert b"queued for maze" in act("deploy_selected", maze.topology).content
    assert status_of(maze.topology) == "deploying"
    act("teardown_selected", maze.topology)
    assert status_of(maze.topology) == "tearing_down"
    bad = make_maze(name="bad", subnets=("10.204.1.0/24", "10.204.2.0/24")).topology
    LAN.objects.create(topology=bad, name="dmz2", subnet="10.204.3.0/24", is_dmz=True)
    page = act("deploy_selected", bad)
    assert status_of(bad) == "pending"
    assert b"DMZ_MULTIPLE" in page.content


def test_admin_actions_need_the_operate_permission(maze: Maze, viewer: Any) -> None:
    from django.contrib.auth.models import Permission
    from django.test import Client
    from django.urls import reverse

    viewer.is_staff = True
    viewer.save()
    viewer.user_permissions.add(Permission.objects.get(codename="view_topology"))
    client = Client()
    client.force_login(viewer)
    page = client.get(reverse("admin:topology_topology_changelist"))
    assert page.status_code == 200
    assert b"deploy_selected" not in page.content
