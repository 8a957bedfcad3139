"""Operations: request semantics, the task body's state machine, live service changes, failure injection, and one
real-engine pass (deploy → mutate → add/remove service → file drop → teardown) on a private subnet.

The engine is faked only to inject failures; success paths either need no Docker (desired-state changes re-render
the compose file) or run against the real engine (``docker`` marker).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from deckies import operations
from deckies.catalogue.errors import ConfigValidationError, UnknownServiceError
from deckies.choices import DeckyState
from deckies.engine import runtime
from deckies.engine.errors import ComposeCommandError, ContainerRefusedError, EngineUnavailableError
from deckies.models import Decky, DeckyService
from deckies.services import decky_create
from decnet_site.exceptions import UnprocessableError
from lifecycle import services as lifecycle_services
from lifecycle.choices import ERROR_MAX_LENGTH
from lifecycle.models import DeckyLifecycle, Event
from tests.deckies import fakes
from tests.deckies.factories import DeckyFactory, NetworkFactory
from topology.exceptions import TopologyNotEditableError
from topology.models import Topology
from topology.services import topology_transition

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def data_dir(settings: Any, tmp_path: Path) -> Path:
    settings.DECNET_DATA_DIR = tmp_path
    return tmp_path


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Record what would be enqueued instead of running it (django-q2 runs tasks inline in the test settings)."""
    calls: list[tuple[Any, ...]] = []

    def fake_async_task(func: str, *args: Any, **kwargs: Any) -> str:
        calls.append((func, *args))
        return "task-id"

    monkeypatch.setattr("django_q.tasks.async_task", fake_async_task)
    return calls


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> fakes.FakeEngine:
    return fakes.install(monkeypatch)


def _deployed(decky: Decky) -> Decky:
    Decky.objects.filter(pk=decky.pk).update(state=DeckyState.RUNNING)
    decky.refresh_from_db()
    return decky


def _topology_decky(status: str = "pending") -> Decky:
    topology = Topology.objects.create(name=f"maze-{uuid.uuid4().hex[:6]}")
    decky = DeckyFactory.create(topology=topology, network=None, ip=None)
    path = {"pending": [], "active": ["deploying", "active"], "deploying": ["deploying"]}[status]
    for step in path:
        topology_transition(topology_id=topology.pk, to=step)
    return decky


# --- requests -----------------------------------------------------------------------------------------------------


class TestRequests:
    def test_deploy_creates_one_pending_row_per_decky_and_queues_after_commit(
        self, queued: list[Any], django_capture_on_commit_callbacks: Any
    ) -> None:
        a, b = DeckyFactory.create(), DeckyFactory.create()
        with django_capture_on_commit_callbacks(execute=True):
            rows = operations.deploy_request(deckies=[b, a])
            assert queued == []  # nothing leaves before the rows are committed
        assert [row.decky_name for row in rows] == [b.name, a.name]
        assert {row.status for row in rows} == {"pending"}
        assert sorted(call[1] for call in queued) == sorted(str(row.pk) for row in rows)
        assert {call[0] for call in queued} == {operations.OPERATION_TASK}

    def test_open_row_for_same_operation_is_returned_and_nothing_queued(
        self, queued: list[Any], django_capture_on_commit_callbacks: Any
    ) -> None:
        decky = DeckyFactory.create()
        with django_capture_on_commit_callbacks(execute=True):
            (first,) = operations.deploy_request(deckies=[decky])
        with django_capture_on_commit_callbacks(execute=True):
            (again,) = operations.deploy_request(deckies=[decky])
        assert again.pk == first.pk
        assert len(queued) == 1

    def test_running_row_is_reused_too(self, queued: list[Any]) -> None:
        decky = DeckyFactory.create()
        row = lifecycle_services.lifecycle_create(decky_name=decky.name, operation="teardown", status="running")
        assert operations.teardown_request(decky=decky).pk == row.pk

    def test_other_open_operation_is_refused_with_its_id(self, queued: list[Any]) -> None:
        decky = DeckyFactory.create()
        row = lifecycle_services.lifecycle_create(decky_name=decky.name, operation="deploy")
        with pytest.raises(operations.OperationInProgressError) as caught:
            operations.teardown_request(decky=decky)
        assert caught.value.status_code == 409
        assert caught.value.extra == {"lifecycle_id": str(row.pk), "operation": "deploy"}

    def test_bulk_deploy_is_all_or_nothing(self, queued: list[Any]) -> None:
        free, busy = DeckyFactory.create(), DeckyFactory.create()
        lifecycle_services.lifecycle_create(decky_name=busy.name, operation="mutate")
        with pytest.raises(operations.OperationInProgressError):
            operations.deploy_request(deckies=[free, busy])
        assert not DeckyLifecycle.objects.filter(decky_name=free.name).exists()

    def test_topology_deckies_are_the_wrong_scope(self) -> None:
        decky = _topology_decky()
        with pytest.raises(operations.WrongScopeError) as deploy:
            operations.deploy_request(deckies=[decky])
        with pytest.raises(operations.WrongScopeError):
            operations.teardown_request(decky=decky)
        assert deploy.value.status_code == 422

    def test_mutate_commits_new_services_before_the_task(self, queued: list[Any]) -> None:
        decky = DeckyFactory.create(services=["ssh", "http"], archetype="linux-server")
        DeckyService.objects.filter(decky=decky, slug="ssh").update(config={"user": "kept"})
        row = operations.mutate_request(decky=decky, rng=random.Random(3), actor="alice")
        decky.refresh_from_db()
        new = decky.service_slugs
        assert row.operation == "mutate"
        assert row.status == "pending"
        assert set(new) <= {"ssh", "http"}
        assert set(new) != {"ssh", "http"}
        assert decky.last_mutated is not None
        if "ssh" in new:
            assert DeckyService.objects.get(decky=decky, slug="ssh").config == {"user": "kept"}
        event = Event.objects.get(topic=f"decky.{decky.name}.mutation")
        assert event.payload["old_services"] == ["ssh", "http"]
        assert event.payload["new_services"] == new
        assert event.payload["trigger"] == "operator"
        assert event.payload["actor"] == "alice"

    def test_mutate_with_an_open_mutate_row_does_not_pick_again(self, queued: list[Any]) -> None:
        decky = DeckyFactory.create()
        first = operations.mutate_request(decky=decky)
        services_after_first = Decky.objects.get(pk=decky.pk).service_slugs
        assert operations.mutate_request(decky=decky).pk == first.pk
        assert Decky.objects.get(pk=decky.pk).service_slugs == services_after_first

    def test_mutate_without_services_available_is_404(self, monkeypatch: pytest.MonkeyPatch) -> None:
        decky = DeckyFactory.create()
        monkeypatch.setattr(operations, "pick_new_services", lambda *args, **kwargs: None)
        with pytest.raises(operations.NoServicesAvailableError) as caught:
            operations.mutate_request(decky=decky)
        assert caught.value.status_code == 404
        assert not DeckyLifecycle.objects.exists()

    def test_queue_refusal_fails_the_rows_and_is_503(
        self, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
    ) -> None:
        def broken(*args: Any, **kwargs: Any) -> None:
            raise ConnectionError("redis is down")

        monkeypatch.setattr("django_q.tasks.async_task", broken)
        a, b = DeckyFactory.create(), DeckyFactory.create()
        with (
            pytest.raises(operations.QueueUnavailableError) as caught,
            django_capture_on_commit_callbacks(execute=True),
        ):
            operations.deploy_request(deckies=[a, b])
        assert caught.value.status_code == 503
        rows = DeckyLifecycle.objects.filter(decky_name__in=[a.name, b.name])
        assert {row.status for row in rows} == {"failed"}
        assert all((row.error or "").startswith("QueueUnavailableError: ") for row in rows)

    def test_auto_mutate_requests_only_due_deckies(self, queued: list[Any]) -> None:
        now = timezone.now()
        due = _deployed(DeckyFactory.create(mutate_interval=timedelta(minutes=5)))
        Decky.objects.filter(pk=due.pk).update(last_mutated=now - timedelta(minutes=6))
        fresh = _deployed(DeckyFactory.create(mutate_interval=timedelta(minutes=5)))
        Decky.objects.filter(pk=fresh.pk).update(last_mutated=now - timedelta(minutes=1))
        DeckyFactory.create(mutate_interval=timedelta(minutes=1))  # not deployed
        busy = _deployed(DeckyFactory.create(mutate_interval=timedelta(minutes=1)))
        Decky.objects.filter(pk=busy.pk).update(last_mutated=now - timedelta(hours=1))
        lifecycle_services.lifecycle_create(decky_name=busy.name, operation="teardown")
        rows = operations.auto_mutate_due()
        assert [row.decky_name for row in rows] == [due.name]
        event = Event.objects.get(topic=f"decky.{due.name}.mutation")
        assert event.payload["trigger"] == "scheduled"


# --- the task body ------------------------------------------------------------------------------------------------


def _row(decky: Decky, operation: str = "deploy") -> DeckyLifecycle:
    return lifecycle_services.lifecycle_create(decky_name=decky.lifecycle_key, operation=operation)


class TestRunOperation:
    def test_engine_error_fails_row_and_decky(self, fake: fakes.FakeEngine) -> None:
        decky = DeckyFactory.create()
        fake.fail["deploy_deckies"] = ComposeCommandError("compose up failed", stderr_tail="no space left")
        row = _row(decky)
        operations.run_operation(row.pk)
        row.refresh_from_db()
        decky.refresh_from_db()
        assert row.status == "failed"
        assert row.completed_at is not None
        assert row.error == "ComposeCommandError: compose up failed"
        assert decky.state == DeckyState.FAILED
        assert decky.last_error == row.error
        topics = list(Event.objects.filter(topic__startswith=f"decky.{decky.name}.").values_list("topic", flat=True))
        assert f"decky.{decky.name}.state" in topics

    @pytest.mark.parametrize(
        "exc", [KeyError("boom"), RuntimeError("x" * 5000), EngineUnavailableError("no docker")], ids=str
    )
    def test_any_exception_fails_the_row_with_a_bounded_error(self, fake: fakes.FakeEngine, exc: BaseException) -> None:
        decky = DeckyFactory.create()
        fake.fail["deploy_deckies"] = exc
        row = _row(decky)
        operations.run_operation(row.pk)
        row.refresh_from_db()
        assert row.status == "failed"
        assert (row.error or "").startswith(f"{type(exc).__name__}: ")
        assert len(row.error or "") <= ERROR_MAX_LENGTH

    def test_base_exception_fails_the_row_then_propagates(self, fake: fakes.FakeEngine) -> None:
        decky = DeckyFactory.create()
        fake.fail["deploy_deckies"] = SystemExit(3)
        row = _row(decky)
        with pytest.raises(SystemExit):
            operations.run_operation(row.pk)
        row.refresh_from_db()
        assert row.status == "failed"
        assert row.error == "SystemExit: 3"

    def test_a_missing_decky_fails_the_row(self) -> None:
        row = lifecycle_services.lifecycle_create(decky_name="ghost", operation="deploy")
        operations.run_operation(row.pk)
        row.refresh_from_db()
        assert row.status == "failed"
        assert (row.error or "").startswith("DeckyNotFoundError: ")

    def test_terminal_and_unknown_rows_are_not_run_again(self, fake: fakes.FakeEngine) -> None:
        decky = DeckyFactory.create()
        row = _row(decky)
        lifecycle_services.lifecycle_fail(row.pk, "swept")
        operations.run_operation(row.pk)
        operations.run_operation(uuid.uuid4())
        assert fake.calls == []
        row.refresh_from_db()
        assert row.error == "swept"

    def test_a_row_swept_mid_run_keeps_the_sweep_verdict(self, monkeypatch: pytest.MonkeyPatch) -> None:
        decky = DeckyFactory.create()
        row = _row(decky)

        def swept_meanwhile(deckies: Any) -> None:
            lifecycle_services.lifecycle_fail(row.pk, "worker lost")

        monkeypatch.setattr(runtime, "deploy_deckies", swept_meanwhile)
        operations.run_operation(row.pk)
        row.refresh_from_db()
        assert row.status == "failed"
        assert row.error == "worker lost"

    def test_teardown_failure_after_tearing_down(self, fake: fakes.FakeEngine) -> None:
        decky = _deployed(DeckyFactory.create())
        fake.fail["teardown_decky"] = EngineUnavailableError("engine gone")
        row = _row(decky, "teardown")
        operations.run_operation(row.pk)
        decky.refresh_from_db()
        states = [e.payload["state"] for e in Event.objects.filter(topic=f"decky.{decky.name}.state").order_by("id")]
        assert states == ["tearing_down", "failed"]
        assert decky.state == DeckyState.FAILED

    def test_mutate_of_an_undeployed_decky_only_rewrites_desired_state(self, data_dir: Path) -> None:
        decky = DeckyFactory.create()
        row = operations.mutate_request(decky=decky, rng=random.Random(1))
        operations.run_operation(row.pk)
        row.refresh_from_db()
        decky.refresh_from_db()
        assert row.status == "succeeded"
        assert decky.state == DeckyState.PENDING
        assert (data_dir / "compose").is_dir()

    def test_mutate_of_a_deployed_decky_redeploys_only_it(self, fake: fakes.FakeEngine) -> None:
        decky, other = _deployed(DeckyFactory.create()), _deployed(DeckyFactory.create())
        fake.fail["deploy_deckies"] = ComposeCommandError("image missing")
        row = operations.mutate_request(decky=decky)
        operations.run_operation(row.pk)
        assert fake.names("deploy_deckies") == [[decky.name]]
        assert other.name not in str(fake.calls)


# --- live service changes -------------------------------------------------------------------------------------------


class TestServiceChanges:
    def test_add_to_an_undeployed_decky_updates_desired_state_and_records_it(self) -> None:
        decky = DeckyFactory.create(services=["ssh"])
        services = operations.service_add(decky=decky, slug="ftp", config={}, actor="bob")
        assert services == ["ssh", "ftp"]
        row = DeckyLifecycle.objects.get(decky_name=decky.name, operation="service_add")
        assert row.status == "succeeded"
        event = Event.objects.get(topic=f"decky.{decky.name}.service.added")
        assert event.payload["services"] == ["ssh", "ftp"]
        assert event.payload["live"] is False

    def test_remove_from_an_undeployed_decky(self) -> None:
        decky = DeckyFactory.create(services=["ssh", "http"])
        assert operations.service_remove(decky=decky, slug="http") == ["ssh"]
        assert DeckyLifecycle.objects.get(operation="service_remove").status == "succeeded"
        assert Event.objects.filter(topic=f"decky.{decky.name}.service.removed").count() == 1

    def test_config_is_validated_and_stored(self) -> None:
        decky = DeckyFactory.create(services=["ssh"])
        operations.service_add(decky=decky, slug="mysql", config={"version": "8.0.36"})
        assert DeckyService.objects.get(decky=decky, slug="mysql").config == {"version": "8.0.36"}

    @pytest.mark.parametrize(
        ("slug", "config", "error", "status"),
        [
            ("nonsense", {}, UnknownServiceError, 422),
            ("sniffer", {}, UnprocessableError, 422),
            ("http", {"response_code": "abc"}, ConfigValidationError, 400),
        ],
    )
    def test_add_refusals(self, slug: str, config: dict[str, Any], error: type[Exception], status: int) -> None:
        decky = DeckyFactory.create(services=["ssh"])
        with pytest.raises(error):
            operations.service_add(decky=decky, slug=slug, config=config)
        assert Decky.objects.get(pk=decky.pk).service_slugs == ["ssh"]
        assert not DeckyLifecycle.objects.exists()

    def test_add_present_and_remove_absent_are_409_and_unknown_remove_is_422(self) -> None:
        decky = DeckyFactory.create(services=["ssh", "http"])
        with pytest.raises(operations.ServiceConflictError):
            operations.service_add(decky=decky, slug="ssh")
        with pytest.raises(operations.ServiceConflictError):
            operations.service_remove(decky=decky, slug="ftp")
        with pytest.raises(UnknownServiceError):
            operations.service_remove(decky=decky, slug="no-such-service")

    def test_the_last_service_cannot_be_removed(self) -> None:
        decky = DeckyFactory.create(services=["ssh"])
        with pytest.raises(operations.ServiceConflictError):
            operations.service_remove(decky=decky, slug="ssh")

    def test_refused_while_another_operation_is_open(self) -> None:
        decky = DeckyFactory.create(services=["ssh"])
        lifecycle_services.lifecycle_create(decky_name=decky.name, operation="deploy")
        with pytest.raises(operations.OperationInProgressError):
            operations.service_add(decky=decky, slug="ftp")

    def test_live_add_failure_is_rolled_back(self, fake: fakes.FakeEngine) -> None:
        decky = _deployed(DeckyFactory.create(services=["ssh"]))
        fake.fail["add_service"] = ContainerRefusedError("base is not running")
        with pytest.raises(ContainerRefusedError):
            operations.service_add(decky=decky, slug="ftp")
        # The engine was asked with the service already in the desired list ...
        assert fake.names("add_service") == [(decky.name, "ftp", ["ftp", "ssh"])]
        # ... and the desired state is put back, the attempt recorded as failed.
        assert Decky.objects.get(pk=decky.pk).service_slugs == ["ssh"]
        row = DeckyLifecycle.objects.get(operation="service_add")
        assert row.status == "failed"
        assert row.error == "ContainerRefusedError: base is not running"
        assert not Event.objects.filter(topic__endswith=".service.added").exists()

    def test_live_remove_failure_restores_the_service(self, fake: fakes.FakeEngine) -> None:
        decky = _deployed(DeckyFactory.create(services=["ssh", "http"]))
        DeckyService.objects.filter(decky=decky, slug="http").update(config={"server_header": "nginx"})
        fake.fail["remove_service"] = EngineUnavailableError("engine gone")
        with pytest.raises(EngineUnavailableError):
            operations.service_remove(decky=decky, slug="http")
        assert DeckyService.objects.get(decky=decky, slug="http").config == {"server_header": "nginx"}
        assert DeckyLifecycle.objects.get(operation="service_remove").status == "failed"

    def test_pending_topology_decky_changes_desired_state_and_bumps_version(self, fake: fakes.FakeEngine) -> None:
        decky = _topology_decky("pending")
        assert decky.topology_id is not None
        version = Topology.objects.get(pk=decky.topology_id).version
        operations.service_add(decky=decky, slug="ftp")
        assert fake.names("add_service") == []
        assert Topology.objects.get(pk=decky.topology_id).version == version + 1
        row = DeckyLifecycle.objects.get(operation="service_add")
        assert row.decky_name == f"t:{decky.topology_id}:{decky.name}"
        assert Event.objects.filter(topic=f"decky.t:{decky.topology_id}:{decky.name}.service.added").exists()

    def test_active_topology_decky_goes_to_the_engine(self, fake: fakes.FakeEngine) -> None:
        decky = _topology_decky("active")
        fake.fail["add_service"] = ContainerRefusedError("not running")
        with pytest.raises(ContainerRefusedError):
            operations.service_add(decky=decky, slug="ftp")
        assert [call[:2] for call in fake.names("add_service")] == [(decky.name, "ftp")]

    def test_deploying_topology_decky_is_refused(self) -> None:
        decky = _topology_decky("deploying")
        with pytest.raises(TopologyNotEditableError):
            operations.service_add(decky=decky, slug="ftp")
        with pytest.raises(TopologyNotEditableError):
            operations.mutate_request(decky=decky)


# --- the real engine --------------------------------------------------------------------------------------------------


@pytest.fixture
def real_decky(data_dir: Path) -> Iterator[Decky]:
    if not fakes.docker_reachable():
        pytest.skip("the Docker engine is not reachable")
    network = NetworkFactory.create(name=f"{fakes.unique_prefix()}lan", subnet=fakes.free_subnet())
    decky = decky_create(name=f"{fakes.unique_prefix()}ops", services=["ssh", "http"], network=network)
    try:
        yield decky
    finally:
        try:
            runtime.teardown_decky(Decky.objects.get(pk=decky.pk))
        except Exception as exc:  # pragma: no cover - best-effort cleanup
            print(f"cleanup of {decky.name} failed: {exc}")


def _services_running(decky: Decky) -> dict[str | None, str]:
    return {c.service: c.status for c in runtime.decky_containers(Decky.objects.get(pk=decky.pk))}


@pytest.mark.docker
def test_real_engine_round_trip(real_decky: Decky, django_capture_on_commit_callbacks: Any) -> None:
    decky = real_decky
    with django_capture_on_commit_callbacks(execute=True):
        (row,) = operations.deploy_request(deckies=[decky], run_inline=True)
    row.refresh_from_db()
    assert row.status == "succeeded", row.error
    assert Decky.objects.get(pk=decky.pk).state == DeckyState.RUNNING
    assert _services_running(decky) == {None: "running", "ssh": "running", "http": "running"}

    with django_capture_on_commit_callbacks(execute=True):
        row = operations.mutate_request(decky=decky, run_inline=True, rng=random.Random(7))
    row.refresh_from_db()
    assert row.status == "succeeded", row.error
    wanted = set(Decky.objects.get(pk=decky.pk).service_slugs)
    assert set(_services_running(decky)) == {None, *wanted}

    current = Decky.objects.get(pk=decky.pk)
    extra = next(slug for slug in ("ftp", "redis", "vnc") if slug not in wanted)
    assert extra in operations.service_add(decky=current, slug=extra)
    assert _services_running(decky)[extra] == "running"
    operations.service_remove(decky=Decky.objects.get(pk=decky.pk), slug=extra)
    assert extra not in _services_running(decky)

    container = operations.file_drop(decky=Decky.objects.get(pk=decky.pk), path="/tmp/decnet/a.txt", content=b"hi")
    assert container.endswith(decky.name) or container.endswith(f"{decky.name}-ssh")

    with django_capture_on_commit_callbacks(execute=True):
        row = operations.teardown_request(decky=Decky.objects.get(pk=decky.pk), run_inline=True)
    row.refresh_from_db()
    assert row.status == "succeeded", row.error
    assert Decky.objects.get(pk=decky.pk).state == DeckyState.TORN_DOWN
    assert _services_running(decky) == {}  # the base (IP holder) is gone too
