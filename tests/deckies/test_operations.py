"""Decky operations: request semantics, what each operation does and records through the job layer, live service
changes, failure injection, and one real-engine pass (deploy → mutate → add/remove service → file drop → teardown).

The engine is faked only to inject failures and to keep Docker out of request-semantics tests; the success path
runs against the real engine (``docker`` marker).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from deckies import live, operations
from deckies.catalogue.errors import ConfigValidationError, UnknownServiceError
from deckies.choices import DeckyState
from deckies.engine import runtime
from deckies.engine.errors import ComposeCommandError, ContainerRefusedError, EngineUnavailableError
from deckies.models import Decky, DeckyService
from deckies.scopes import fleet_scope
from deckies.services import decky_create
from decnet_site.exceptions import UnprocessableError
from lifecycle import jobs
from lifecycle.choices import ERROR_MAX_LENGTH
from lifecycle.models import DeckyLifecycle, Event
from tests.deckies import fakes
from tests.deckies.factories import DeckyFactory, NetworkFactory, set_state
from tests.lifecycle.factories import make_row

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


def run(row: DeckyLifecycle) -> DeckyLifecycle:
    """Run a row's job here, as a worker would, and return the row as stored."""
    jobs.run_job(row.job or row.pk)
    row.refresh_from_db()
    return row


# --- requests -----------------------------------------------------------------------------------------------------


class TestRequests:
    def test_deploy_creates_one_pending_row_per_decky_and_queues_after_commit(
        self, queued: list[Any], django_capture_on_commit_callbacks: Any
    ) -> None:
        a, b = DeckyFactory.create(), DeckyFactory.create()
        with django_capture_on_commit_callbacks(execute=True):
            rows = operations.deploy_request(deckies=[b, a], actor="alice")
            assert queued == []  # nothing leaves before the rows are committed
        assert [row.decky_name for row in rows] == [b.name, a.name]
        assert [row.decky_id for row in rows] == [b.pk, a.pk]
        assert {(row.status, row.actor) for row in rows} == {("pending", "alice")}
        # Deckies of one host share a job: one task, one compose call for all of them.
        assert queued == [(jobs.JOB_TASK, str(rows[0].job))]
        assert rows[0].job == rows[1].job

    def test_bulk_deploy_runs_in_jobs_of_a_batch(
        self, queued: list[Any], django_capture_on_commit_callbacks: Any
    ) -> None:
        deckies = [DeckyFactory.create() for _ in range(operations.DEPLOY_BATCH + 3)]
        with django_capture_on_commit_callbacks(execute=True):
            rows = operations.deploy_request(deckies=deckies)
        assert len({row.job for row in rows}) == 2
        assert len(queued) == 2

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
        row = make_row(decky=decky, operation="teardown", status="running")
        assert operations.teardown_request(decky=decky).pk == row.pk

    def test_other_open_operation_is_refused_with_its_id(self, queued: list[Any]) -> None:
        decky = DeckyFactory.create()
        row = make_row(decky=decky, operation="deploy")
        with pytest.raises(operations.OperationInProgressError) as caught:
            operations.teardown_request(decky=decky)
        assert caught.value.status_code == 409
        assert caught.value.extra == {"lifecycle_id": str(row.pk), "operation": "deploy"}

    def test_a_row_whose_worker_is_gone_never_blocks_a_new_request(self, queued: list[Any]) -> None:
        """The issue's scenario: a dead worker's row used to be handed back as the answer for an hour."""
        decky = DeckyFactory.create()
        dead = make_row(decky=decky, operation="deploy")
        DeckyLifecycle.objects.filter(pk=dead.pk).update(
            status="running", worker="decnet@gone:1:1", lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        (fresh,) = operations.deploy_request(deckies=[decky])
        assert fresh.pk != dead.pk
        dead.refresh_from_db()
        assert dead.status == "failed"
        assert "worker decnet@gone:1:1 stopped while running deploy" in dead.message

    def test_bulk_deploy_is_all_or_nothing(self, queued: list[Any]) -> None:
        free, busy = DeckyFactory.create(), DeckyFactory.create()
        make_row(decky=busy, operation="mutate")
        with pytest.raises(operations.OperationInProgressError):
            operations.deploy_request(deckies=[free, busy])
        assert not DeckyLifecycle.objects.filter(decky=free).exists()

    def test_topology_deckies_are_the_wrong_scope(self) -> None:
        from tests.topology.factories import TopologyDeckyFactory

        decky = TopologyDeckyFactory.create()
        with pytest.raises(operations.WrongScopeError) as deploy:
            operations.deploy_request(deckies=[decky])
        with pytest.raises(operations.WrongScopeError):
            operations.teardown_request(decky=decky)
        with pytest.raises(operations.WrongScopeError):
            live.service_add(decky=decky, slug="ftp")
        assert deploy.value.status_code == 422

    def test_mutate_commits_new_services_before_the_job(self, queued: list[Any]) -> None:
        decky = DeckyFactory.create(services=["ssh", "http"], archetype="linux-server")
        DeckyService.objects.filter(decky=decky, slug="ssh").update(config={"user": "kept"})
        row = operations.mutate_request(decky=decky, rng=random.Random(3), actor="alice")
        decky.refresh_from_db()
        new = decky.service_slugs
        assert (row.operation, row.status, row.params) == ("mutate", "pending", {"live": False, "trigger": "operator"})
        assert set(new) <= {"ssh", "http"}
        assert set(new) != {"ssh", "http"}
        assert decky.last_mutated is not None
        if "ssh" in new:
            assert DeckyService.objects.get(decky=decky, slug="ssh").config == {"user": "kept"}
        event = Event.objects.get(topic=f"decky.{decky.name}.mutation")
        assert event.payload["old_services"] == ["ssh", "http"]
        assert event.payload["new_services"] == new
        assert (event.payload["trigger"], event.payload["actor"]) == ("operator", "alice")

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

    def test_queue_refusal_fails_the_rows_and_the_deckies_and_is_503(
        self, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
    ) -> None:
        def broken(*args: Any, **kwargs: Any) -> None:
            raise ConnectionError("redis is down")

        monkeypatch.setattr("django_q.tasks.async_task", broken)
        a, b = DeckyFactory.create(), DeckyFactory.create()
        with (
            pytest.raises(jobs.QueueUnavailableError) as caught,
            django_capture_on_commit_callbacks(execute=True),
        ):
            operations.deploy_request(deckies=[a, b])
        assert caught.value.status_code == 503
        rows = DeckyLifecycle.objects.filter(decky__in=[a, b])
        assert {row.status for row in rows} == {"failed"}
        assert all((row.error or "").startswith("QueueUnavailableError: ") for row in rows)
        assert {d.state for d in Decky.objects.filter(pk__in=[a.pk, b.pk])} == {DeckyState.FAILED}

    def test_auto_mutate_requests_only_due_deckies(self, queued: list[Any]) -> None:
        now = timezone.now()
        due = set_state(DeckyFactory.create(mutate_interval=timedelta(minutes=5)), DeckyState.RUNNING)
        Decky.objects.filter(pk=due.pk).update(last_mutated=now - timedelta(minutes=6))
        fresh = set_state(DeckyFactory.create(mutate_interval=timedelta(minutes=5)), DeckyState.RUNNING)
        Decky.objects.filter(pk=fresh.pk).update(last_mutated=now - timedelta(minutes=1))
        DeckyFactory.create(mutate_interval=timedelta(minutes=1))  # not deployed
        busy = set_state(DeckyFactory.create(mutate_interval=timedelta(minutes=1)), DeckyState.RUNNING)
        Decky.objects.filter(pk=busy.pk).update(last_mutated=now - timedelta(hours=1))
        make_row(decky=busy, operation="teardown")
        rows = operations.auto_mutate_due()
        assert [row.decky_name for row in rows] == [due.name]
        assert rows[0].params == {"live": True, "trigger": "scheduled"}


# --- what each operation does and records ---------------------------------------------------------------------------


class TestRuns:
    def test_deploy_succeeds_only_when_ready_and_says_so(self, fake: fakes.FakeEngine) -> None:
        decky = DeckyFactory.create(services=["ssh", "http"])
        row = run(make_row(decky=decky, operation="deploy"))
        decky.refresh_from_db()
        assert row.status == "succeeded"
        assert row.message == f"{decky.name} is up on {decky.ip}: ssh, http; port(s) 22, 80 accept connections"
        assert (decky.state, decky.last_error) == (DeckyState.RUNNING, "")
        assert decky.last_seen is not None
        assert decky.last_mutated is not None
        assert fake.names("deploy_deckies") == [[decky.name]]

    def test_a_service_that_never_comes_up_fails_the_deploy_naming_it(self, fake: fakes.FakeEngine) -> None:
        decky = DeckyFactory.create(services=["ssh", "http"])
        fake.not_ready[decky.name] = ("service http never accepted connections on port(s) 80 within 60 s",)
        row = run(make_row(decky=decky, operation="deploy"))
        assert row.status == "failed"
        assert "service http never accepted connections on port(s) 80" in row.message
        assert (row.error or "").startswith("NotReadyError: ")
        assert Decky.objects.get(pk=decky.pk).state == DeckyState.FAILED

    def test_engine_error_fails_row_and_decky(self, fake: fakes.FakeEngine) -> None:
        decky = DeckyFactory.create()
        fake.fail["deploy_deckies"] = ComposeCommandError("compose up failed", stderr_tail="no space left")
        row = run(make_row(decky=decky, operation="deploy"))
        decky.refresh_from_db()
        assert (row.status, row.error) == ("failed", "ComposeCommandError: compose up failed")
        assert row.completed_at is not None
        assert decky.state == DeckyState.FAILED
        assert decky.last_error == row.message
        assert Event.objects.filter(topic=f"decky.{decky.name}.state").exists()

    @pytest.mark.parametrize(
        "exc", [KeyError("boom"), RuntimeError("x" * 5000), EngineUnavailableError("no docker")], ids=str
    )
    def test_any_exception_fails_the_row_with_a_bounded_error(self, fake: fakes.FakeEngine, exc: BaseException) -> None:
        decky = DeckyFactory.create()
        fake.fail["deploy_deckies"] = exc
        row = run(make_row(decky=decky, operation="deploy"))
        assert row.status == "failed"
        assert (row.error or "").startswith(f"{type(exc).__name__}: ")
        assert len(row.error or "") <= ERROR_MAX_LENGTH

    def test_a_deleted_decky_fails_its_row(self, fake: fakes.FakeEngine) -> None:
        decky = DeckyFactory.create()
        row = make_row(decky=decky, operation="deploy")
        decky.delete()
        row = run(row)
        assert (row.status, row.decky_id) == ("failed", None)
        assert "no longer exists" in row.message

    def test_teardown_moves_through_tearing_down(self, fake: fakes.FakeEngine) -> None:
        decky = set_state(DeckyFactory.create(), DeckyState.RUNNING)
        row = run(make_row(decky=decky, operation="teardown"))
        assert row.status == "succeeded"
        states = [e.payload["state"] for e in Event.objects.filter(topic=f"decky.{decky.name}.state").order_by("id")]
        assert states == ["running", "tearing_down", "torn_down"]

    def test_teardown_failure_leaves_teardown_failed(self, fake: fakes.FakeEngine) -> None:
        decky = set_state(DeckyFactory.create(), DeckyState.RUNNING)
        fake.fail["teardown_deckies"] = EngineUnavailableError("engine gone")
        run(make_row(decky=decky, operation="teardown"))
        decky.refresh_from_db()
        assert decky.state == DeckyState.TEARDOWN_FAILED
        assert "engine gone" in decky.last_error

    def test_mutate_of_an_undeployed_decky_changes_only_the_desired_state(self, fake: fakes.FakeEngine) -> None:
        decky = DeckyFactory.create()
        row = run(operations.mutate_request(decky=decky, rng=random.Random(1)))
        assert row.status == "succeeded"
        assert "once deployed" in row.message
        assert Decky.objects.get(pk=decky.pk).state == DeckyState.PENDING
        assert fake.names("deploy_deckies") == []

    def test_mutate_of_a_deployed_decky_redeploys_only_it(self, fake: fakes.FakeEngine) -> None:
        decky = set_state(DeckyFactory.create(), DeckyState.RUNNING)
        other = set_state(DeckyFactory.create(), DeckyState.RUNNING)
        row = run(operations.mutate_request(decky=decky))
        assert row.status == "succeeded"
        assert fake.names("deploy_deckies") == [[decky.name]]
        rendered = fake.rendered[fleet_scope(None).project]
        assert other.name in rendered.keys  # the file keeps every deployed decky ...
        assert other.name not in str(fake.names("deploy_deckies"))  # ... but compose only touches this one

    def test_repair_of_a_degraded_decky_brings_it_back(self, fake: fakes.FakeEngine) -> None:
        decky = set_state(DeckyFactory.create(), DeckyState.DEGRADED)
        row = run(operations.repair_request(decky=decky, reason="missing http"))
        assert row.status == "succeeded"
        assert row.message.startswith("repaired (missing http): ")
        assert Decky.objects.get(pk=decky.pk).state == DeckyState.RUNNING


# --- live service changes -------------------------------------------------------------------------------------------


class TestServiceChanges:
    def test_add_to_an_undeployed_decky_updates_desired_state_and_records_it(self) -> None:
        decky = DeckyFactory.create(services=["ssh"])
        assert live.service_add(decky=decky, slug="ftp", config={}, actor="bob") == ["ssh", "ftp"]
        row = DeckyLifecycle.objects.get(decky=decky, operation="service_add")
        assert (row.status, row.actor) == ("succeeded", "bob")
        event = Event.objects.get(topic=f"decky.{decky.name}.service.added")
        assert event.payload["services"] == ["ssh", "ftp"]
        assert event.payload["live"] is False

    def test_remove_from_an_undeployed_decky(self) -> None:
        decky = DeckyFactory.create(services=["ssh", "http"])
        assert live.service_remove(decky=decky, slug="http") == ["ssh"]
        assert DeckyLifecycle.objects.get(operation="service_remove").status == "succeeded"
        assert Event.objects.filter(topic=f"decky.{decky.name}.service.removed").count() == 1

    def test_config_is_validated_and_stored(self) -> None:
        decky = DeckyFactory.create(services=["ssh"])
        live.service_add(decky=decky, slug="mysql", config={"version": "8.0.36"})
        assert DeckyService.objects.get(decky=decky, slug="mysql").config == {"version": "8.0.36"}

    @pytest.mark.parametrize(
        ("slug", "config", "error"),
        [
            ("nonsense", {}, UnknownServiceError),
            ("sniffer", {}, UnprocessableError),
            ("http", {"response_code": "abc"}, ConfigValidationError),
        ],
    )
    def test_add_refusals(self, slug: str, config: dict[str, Any], error: type[Exception]) -> None:
        decky = DeckyFactory.create(services=["ssh"])
        with pytest.raises(error):
            live.service_add(decky=decky, slug=slug, config=config)
        assert Decky.objects.get(pk=decky.pk).service_slugs == ["ssh"]
        assert not DeckyLifecycle.objects.exists()

    def test_add_present_and_remove_absent_are_409_and_unknown_remove_is_422(self) -> None:
        decky = DeckyFactory.create(services=["ssh", "http"])
        with pytest.raises(live.ServiceConflictError):
            live.service_add(decky=decky, slug="ssh")
        with pytest.raises(live.ServiceConflictError):
            live.service_remove(decky=decky, slug="ftp")
        with pytest.raises(UnknownServiceError):
            live.service_remove(decky=decky, slug="no-such-service")

    def test_the_last_service_cannot_be_removed(self) -> None:
        decky = DeckyFactory.create(services=["ssh"])
        with pytest.raises(live.ServiceConflictError):
            live.service_remove(decky=decky, slug="ssh")

    def test_refused_while_another_operation_is_open(self) -> None:
        decky = DeckyFactory.create(services=["ssh"])
        make_row(decky=decky, operation="deploy")
        with pytest.raises(operations.OperationInProgressError):
            live.service_add(decky=decky, slug="ftp")

    def test_live_add_failure_is_rolled_back(self, fake: fakes.FakeEngine) -> None:
        decky = set_state(DeckyFactory.create(services=["ssh"]), DeckyState.RUNNING)
        fake.fail["add_service"] = ContainerRefusedError("base is not running")
        with pytest.raises(ContainerRefusedError):
            live.service_add(decky=decky, slug="ftp")
        # The engine was asked with the service already in the desired file ...
        assert fake.names("add_service") == [(decky.name, "ftp", ["ftp", "ssh"])]
        # ... and the desired state is put back, the attempt recorded as failed.
        assert Decky.objects.get(pk=decky.pk).service_slugs == ["ssh"]
        row = DeckyLifecycle.objects.get(operation="service_add")
        assert (row.status, row.error) == ("failed", "ContainerRefusedError: base is not running")
        assert not Event.objects.filter(topic__endswith=".service.added").exists()

    def test_live_add_waits_for_the_new_service(self, fake: fakes.FakeEngine) -> None:
        decky = set_state(DeckyFactory.create(services=["ssh"]), DeckyState.RUNNING)
        fake.not_ready[decky.name] = ("service ftp: container x is exited",)
        with pytest.raises(Exception, match="service ftp: container x is exited"):
            live.service_add(decky=decky, slug="ftp")
        assert Decky.objects.get(pk=decky.pk).service_slugs == ["ssh"]

    def test_live_remove_failure_restores_the_service(self, fake: fakes.FakeEngine) -> None:
        decky = set_state(DeckyFactory.create(services=["ssh", "http"]), DeckyState.RUNNING)
        DeckyService.objects.filter(decky=decky, slug="http").update(config={"server_header": "nginx"})
        fake.fail["remove_service"] = EngineUnavailableError("engine gone")
        with pytest.raises(EngineUnavailableError):
            live.service_remove(decky=decky, slug="http")
        assert DeckyService.objects.get(decky=decky, slug="http").config == {"server_header": "nginx"}
        assert DeckyLifecycle.objects.get(operation="service_remove").status == "failed"


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
            runtime.teardown_deckies(fleet_scope(None), lambda: _empty(), lambda: _with(decky), [decky.name])
        except Exception as exc:  # pragma: no cover - best-effort cleanup
            print(f"cleanup of {decky.name} failed: {exc}")


def _empty() -> Any:
    from deckies.scopes import render_fleet

    return render_fleet(None, exclude=[d.name for d in Decky.objects.all()])


def _with(decky: Decky) -> Any:
    from deckies.scopes import load_deckies, render_fleet

    return render_fleet(None, include=load_deckies([decky.pk]))


def _services_running(decky: Decky) -> dict[str | None, str]:
    return {c.service: c.status for c in runtime.containers(fleet_scope(None), decky.name)}


@pytest.mark.docker
def test_real_engine_round_trip(real_decky: Decky, django_capture_on_commit_callbacks: Any) -> None:
    decky = real_decky
    with django_capture_on_commit_callbacks(execute=True):
        (row,) = operations.deploy_request(deckies=[decky], run_inline=True)
    row.refresh_from_db()
    assert row.status == "succeeded", row.error
    assert "port(s) 22, 80 accept connections" in row.message
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
    assert extra in live.service_add(decky=current, slug=extra)
    assert _services_running(decky)[extra] == "running"
    live.service_remove(decky=Decky.objects.get(pk=decky.pk), slug=extra)
    assert extra not in _services_running(decky)

    container = live.file_drop(decky=Decky.objects.get(pk=decky.pk), path="/tmp/decnet/a.txt", content=b"hi")
    assert container.endswith(decky.name) or container.endswith(f"{decky.name}-ssh")

    with django_capture_on_commit_callbacks(execute=True):
        row = operations.teardown_request(decky=Decky.objects.get(pk=decky.pk), run_inline=True)
    row.refresh_from_db()
    assert row.status == "succeeded", row.error
    assert Decky.objects.get(pk=decky.pk).state == DeckyState.TORN_DOWN
    assert _services_running(decky) == {}  # the base (IP holder) is gone too
