"""Topology deploy / teardown operations with the engine faked (failure injection), their tasks, and the sweep."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from deckies.engine import compose, runtime
from deckies.engine.errors import ComposeCommandError, EngineUnavailableError
from deckies.models import Decky
from deckies.operations import QueueUnavailableError
from lifecycle.models import Event
from topology import operations, services, tasks
from topology.exceptions import TopologyValidationError, VersionConflict
from topology.models import LAN, Edge, Topology, TopologyStatusEvent
from topology.status import TopologyStatusError

from .factories import Maze, make_maze

pytestmark = pytest.mark.django_db


@dataclass
class FakeTopologyEngine:
    """Stands in for the engine's topology functions; ``fail[name]`` raises, ``down`` lists deckies not running,
    ``during_deploy`` runs inside the deploy call (to simulate a concurrent request)."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    fail: dict[str, BaseException] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    during_deploy: Callable[[Topology], object] | None = None

    def deploy_topology(self, topology: Topology) -> runtime.TopologyDeployReport:
        self.calls.append(("deploy", topology.name))
        if self.during_deploy is not None:
            self.during_deploy(topology)
        if "deploy" in self.fail:
            raise self.fail["deploy"]
        lans = list(topology.lans.all())
        deckies = list(topology.deckies.all())
        edges = list(topology.edges.all())
        ips = compose.allocate_edge_ips(lans, deckies, edges)
        lan_name = {lan.pk: lan.name for lan in lans}
        decky_name = {decky.pk: decky.name for decky in deckies}
        report = runtime.TopologyDeployReport()
        for edge in edges:
            report.addresses.setdefault(decky_name[edge.decky_id], {})[lan_name[edge.lan_id]] = ips[edge.pk]
        project = f"decnet-t-{topology.short_id}"
        for decky in sorted(deckies, key=lambda d: d.name):
            report.decky_running[decky.name] = decky.name not in self.down
            if decky.name in self.down:
                report.not_running.append(f"{project}-{decky.name}-ssh")
        return report

    def teardown_topology(self, topology: Topology) -> None:
        self.calls.append(("teardown", topology.name))
        if "teardown" in self.fail:
            raise self.fail["teardown"]


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeTopologyEngine:
    fake = FakeTopologyEngine()
    monkeypatch.setattr(runtime, "deploy_topology", fake.deploy_topology)
    monkeypatch.setattr(runtime, "teardown_topology", fake.teardown_topology)
    return fake


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
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            moved = operations.topology_deploy_request(topology=maze.topology, actor="alice")
        assert moved.status == "deploying"
        assert len(callbacks) >= 1
        assert queued == [
            (
                "topology.tasks.topology_deploy_task",
                (str(maze.topology.pk),),
                {
                    "task_name": f"topology_deploy_task-{maze.topology.pk}",
                    "group": "decnet-topologies",
                    "timeout": queued[0][2]["timeout"],
                },
            )
        ]
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

    def test_runs_through_the_real_task_queue_in_sync_mode(
        self, maze: Maze, engine: FakeTopologyEngine, django_capture_on_commit_callbacks: Any
    ) -> None:
        # Test settings run django-q2 tasks inline: this exercises the dotted task path end to end.
        with django_capture_on_commit_callbacks(execute=True):
            operations.topology_deploy_request(topology=maze.topology)
        assert status_of(maze.topology) == "active"
        assert engine.calls == [("deploy", "maze")]


class TestRunDeploy:
    def test_success_records_states_addresses_and_active(
        self, maze: Maze, engine: FakeTopologyEngine, django_capture_on_commit_callbacks: Any
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
        assert f"decky.t:{maze.topology.pk}:web.state" in topics

    def test_explicit_addresses_are_kept(
        self, maze: Maze, engine: FakeTopologyEngine, django_capture_on_commit_callbacks: Any
    ) -> None:
        Edge.objects.filter(decky=maze.db).update(ip="10.201.2.50")
        deployed(maze, django_capture_on_commit_callbacks)
        assert Edge.objects.get(decky=maze.db).ip == "10.201.2.50"

    def test_containers_not_running_degrade(
        self, maze: Maze, engine: FakeTopologyEngine, django_capture_on_commit_callbacks: Any
    ) -> None:
        engine.down = {"db"}
        with django_capture_on_commit_callbacks(execute=True):
            operations.topology_deploy_request(topology=maze.topology, run_inline=True)
        assert status_of(maze.topology) == "degraded"
        short = maze.topology.short_id
        assert reasons(maze.topology)[-1] == f"post-deploy check: 1 container(s) not running: decnet-t-{short}-db-ssh"
        assert states(maze.topology) == {"db": "failed", "gw": "running", "web": "running"}
        assert Decky.objects.get(pk=maze.db.pk).last_error == f"not running after deploy: decnet-t-{short}-db-ssh"

    def test_engine_error_fails_with_reason_and_stderr(
        self, maze: Maze, engine: FakeTopologyEngine, django_capture_on_commit_callbacks: Any
    ) -> None:
        engine.fail["deploy"] = ComposeCommandError("compose up failed", stderr_tail="network overlaps", returncode=1)
        with django_capture_on_commit_callbacks(execute=True):
            operations.topology_deploy_request(topology=maze.topology, run_inline=True)
        assert status_of(maze.topology) == "failed"
        reason = reasons(maze.topology)[-1]
        assert reason.startswith("ComposeCommandError: compose up failed")
        assert "stderr: network overlaps" in reason
        assert set(states(maze.topology).values()) == {"failed"}

    def test_any_exception_fails_never_stays_deploying(
        self, maze: Maze, engine: FakeTopologyEngine, django_capture_on_commit_callbacks: Any
    ) -> None:
        engine.fail["deploy"] = RuntimeError("boom")
        with django_capture_on_commit_callbacks(execute=True):
            operations.topology_deploy_request(topology=maze.topology, run_inline=True)
        assert status_of(maze.topology) == "failed"
        assert reasons(maze.topology)[-1] == "RuntimeError: boom"

    def test_engine_unavailable_fails(self, maze: Maze, engine: FakeTopologyEngine) -> None:
        services.topology_transition(topology_id=maze.topology.pk, to="deploying")
        engine.fail["deploy"] = EngineUnavailableError("docker is down")
        operations.run_deploy(maze.topology.pk)
        assert status_of(maze.topology) == "failed"

    def test_worker_stop_fails_and_reraises(self, maze: Maze, engine: FakeTopologyEngine) -> None:
        services.topology_transition(topology_id=maze.topology.pk, to="deploying")
        engine.fail["deploy"] = KeyboardInterrupt()
        with pytest.raises(KeyboardInterrupt):
            operations.run_deploy(maze.topology.pk)
        assert status_of(maze.topology) == "failed"

    def test_not_deploying_is_left_alone(self, maze: Maze, engine: FakeTopologyEngine) -> None:
        operations.run_deploy(maze.topology.pk)
        operations.run_deploy("00000000-0000-0000-0000-000000000000")
        assert engine.calls == []
        assert status_of(maze.topology) == "pending"

    def test_teardown_during_deploy_wins(self, maze: Maze, engine: FakeTopologyEngine, queued: list[Any]) -> None:
        services.topology_transition(topology_id=maze.topology.pk, to="deploying")
        engine.during_deploy = lambda topology: operations.topology_teardown_request(topology=topology)
        operations.run_deploy(maze.topology.pk)
        # The deploy removed what it created and recorded nothing; the queued teardown finishes the job.
        assert engine.calls == [("deploy", "maze"), ("teardown", "maze")]
        assert status_of(maze.topology) == "tearing_down"
        assert set(states(maze.topology).values()) == {"pending"}
        assert not Edge.objects.filter(ip__isnull=False).exists()


# --- teardown ---------------------------------------------------------------------------------------------------------


class TestTeardown:
    def test_active_to_torn_down(
        self, maze: Maze, engine: FakeTopologyEngine, django_capture_on_commit_callbacks: Any
    ) -> None:
        deployed(maze, django_capture_on_commit_callbacks)
        with django_capture_on_commit_callbacks(execute=True):
            moved = operations.topology_teardown_request(topology=maze.topology, run_inline=True, actor="bob")
        assert moved.status == "tearing_down"
        assert status_of(maze.topology) == "torn_down"
        assert moves(maze.topology)[-2:] == [("active", "tearing_down"), ("tearing_down", "torn_down")]
        assert reasons(maze.topology)[-2:] == ["teardown requested by bob", "teardown complete"]
        assert set(states(maze.topology).values()) == {"torn_down"}

    def test_queues_the_teardown_task(
        self, maze: Maze, queued: list[Any], django_capture_on_commit_callbacks: Any
    ) -> None:
        services.topology_transition(topology_id=maze.topology.pk, to="deploying")
        with django_capture_on_commit_callbacks(execute=True):
            operations.topology_teardown_request(topology=maze.topology)
        assert [call[0] for call in queued] == ["topology.tasks.topology_teardown_task"]

    def test_engine_error_degrades_and_can_retry(
        self, maze: Maze, engine: FakeTopologyEngine, django_capture_on_commit_callbacks: Any
    ) -> None:
        deployed(maze, django_capture_on_commit_callbacks)
        engine.fail["teardown"] = ComposeCommandError("down failed", stderr_tail="device busy")
        with django_capture_on_commit_callbacks(execute=True):
            operations.topology_teardown_request(topology=maze.topology, run_inline=True)
        assert status_of(maze.topology) == "degraded"
        assert "device busy" in reasons(maze.topology)[-1]
        assert set(states(maze.topology).values()) == {"teardown_failed"}
        del engine.fail["teardown"]
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
        assert operations.topology_teardown_request(topology=maze.topology).status == "tearing_down"

    def test_run_teardown_ignores_other_statuses(self, maze: Maze, engine: FakeTopologyEngine) -> None:
        operations.run_teardown(maze.topology.pk)
        assert engine.calls == []

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


# --- sweep and tasks --------------------------------------------------------------------------------------------------


def _aged(maze: Maze, path: list[str], minutes: int) -> None:
    for step in path:
        services.topology_transition(topology_id=maze.topology.pk, to=step)
    Topology.objects.filter(pk=maze.topology.pk).update(status_changed_at=timezone.now() - timedelta(minutes=minutes))


class TestSweep:
    def test_stuck_deploying_fails(self, maze: Maze) -> None:
        _aged(maze, ["deploying"], minutes=90)
        assert operations.sweep_stuck(timedelta(hours=1)) == 1
        assert status_of(maze.topology) == "failed"
        assert reasons(maze.topology)[-1].startswith("worker lost during operation")
        assert set(states(maze.topology).values()) == {"failed"}
        assert operations.sweep_stuck(timedelta(hours=1)) == 0

    def test_stuck_tearing_down_degrades(self, maze: Maze) -> None:
        _aged(maze, ["deploying", "active", "tearing_down"], minutes=90)
        assert operations.sweep_stuck(timedelta(hours=1)) == 1
        assert status_of(maze.topology) == "degraded"
        assert reasons(maze.topology)[-1].startswith("worker lost during operation")
        assert set(states(maze.topology).values()) == {"teardown_failed"}

    def test_recent_and_settled_topologies_are_left_alone(self) -> None:
        recent = make_maze(name="recent", subnets=("10.202.1.0/24", "10.202.2.0/24"))
        _aged(recent, ["deploying"], minutes=5)
        settled = make_maze(name="settled", subnets=("10.203.1.0/24", "10.203.2.0/24"))
        _aged(settled, ["deploying", "active"], minutes=600)
        assert operations.sweep_stuck(timedelta(hours=1)) == 0
        assert (status_of(recent.topology), status_of(settled.topology)) == ("deploying", "active")

    def test_sweep_task_uses_the_configured_age(self, maze: Maze, settings: Any) -> None:
        settings.DECNET_LIFECYCLE_STALE_AFTER = 60
        _aged(maze, ["deploying"], minutes=2)
        assert tasks.sweep_stuck_task() == 1


class TestTasks:
    def test_deploy_task_runs_the_deploy(self, maze: Maze, engine: FakeTopologyEngine) -> None:
        services.topology_transition(topology_id=maze.topology.pk, to="deploying")
        tasks.topology_deploy_task(str(maze.topology.pk))
        assert status_of(maze.topology) == "active"

    def test_teardown_task_runs_the_teardown(self, maze: Maze, engine: FakeTopologyEngine) -> None:
        for step in ("deploying", "failed", "tearing_down"):
            services.topology_transition(topology_id=maze.topology.pk, to=step)
        tasks.topology_teardown_task(str(maze.topology.pk))
        assert status_of(maze.topology) == "torn_down"


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
