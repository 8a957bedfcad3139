"""The job layer: submit after commit, claim once, run, finish atomically with the target's state, fail refused or
lost work with an explanation, and the reaper for workers that vanished."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from lifecycle import jobs, reaper, services
from lifecycle.jobs import Outcome
from lifecycle.models import DeckyLifecycle
from lifecycle.services import RowSpec
from lifecycle.workers import WorkerId, current_worker, process_started_at

pytestmark = pytest.mark.django_db


class Recorder:
    """A test operation: returns ``outcome`` (or raises ``raises``) and remembers what ``record`` saw, and whether
    it ran inside a transaction."""

    def __init__(self, outcome: Outcome | None = None, raises: BaseException | None = None) -> None:
        self.outcome = outcome or Outcome.success("done")
        self.raises = raises
        self.ran: list[list[uuid.UUID]] = []
        self.recorded: list[list[tuple[uuid.UUID, bool, str]]] = []
        self.recorded_in_transaction: list[bool] = []

    def run(self, rows: Sequence[DeckyLifecycle]) -> Mapping[uuid.UUID, Outcome]:
        self.ran.append([row.pk for row in rows])
        assert all(row.status == "running" and row.worker for row in rows)
        if self.raises is not None:
            raise self.raises
        return {row.pk: self.outcome for row in rows}

    def record(self, finished: Sequence[tuple[DeckyLifecycle, Outcome]]) -> None:
        self.recorded.append([(row.pk, outcome.ok, outcome.message) for row, outcome in finished])
        self.recorded_in_transaction.append(connection.in_atomic_block)


@pytest.fixture
def operation(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Recorder]:
    def install(outcome: Outcome | None = None, raises: BaseException | None = None) -> Recorder:
        recorder = Recorder(outcome, raises)
        monkeypatch.setitem(jobs._registry, ("repair", jobs.FLEET), recorder)
        return recorder

    return install


def rows(count: int = 1) -> list[DeckyLifecycle]:
    return services.lifecycle_create([RowSpec(decky_name=f"d{i}", operation="repair") for i in range(count)])


def fetch(row: DeckyLifecycle) -> DeckyLifecycle:
    return DeckyLifecycle.objects.get(pk=row.pk)


def test_run_claims_runs_and_records_in_one_transaction(operation: Callable[..., Recorder]) -> None:
    recorder = operation(Outcome.success("all good"))
    created = rows(3)
    assert created[0].job is not None
    outcomes = jobs.run_job(created[0].job)
    assert [sorted(ids) for ids in recorder.ran] == [sorted(row.pk for row in created)]
    assert all(outcome.ok for outcome in outcomes.values())
    assert recorder.recorded_in_transaction == [True]
    for row in created:
        stored = fetch(row)
        assert (stored.status, stored.message, stored.lease_expires_at) == ("succeeded", "all good", None)
        assert stored.worker == str(current_worker())


def test_a_second_delivery_claims_nothing(operation: Callable[..., Recorder]) -> None:
    recorder = operation()
    (row,) = rows()
    jobs.run_job(row.job or row.pk)
    assert jobs.run_job(row.job or row.pk) == {}
    assert len(recorder.ran) == 1


def test_an_exception_fails_every_row_with_its_text(operation: Callable[..., Recorder]) -> None:
    recorder = operation(raises=RuntimeError("compose exploded"))
    created = rows(2)
    jobs.run_job(created[0].job or created[0].pk)
    for row in created:
        stored = fetch(row)
        assert (stored.status, stored.error) == ("failed", "RuntimeError: compose exploded")
    assert [ok for _pk, ok, _msg in recorder.recorded[0]] == [False, False]


def test_a_stopped_worker_fails_the_rows_and_stops(operation: Callable[..., Recorder]) -> None:
    operation(raises=KeyboardInterrupt())
    (row,) = rows()
    with pytest.raises(KeyboardInterrupt):
        jobs.run_job(row.job or row.pk)
    stored = fetch(row)
    assert stored.status == "failed"
    assert "was stopped (KeyboardInterrupt)" in (stored.error or "")


def test_a_row_without_an_outcome_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    class Silent(Recorder):
        def run(self, rows: Sequence[DeckyLifecycle]) -> Mapping[uuid.UUID, Outcome]:
            return {}

    monkeypatch.setitem(jobs._registry, ("repair", jobs.FLEET), Silent())
    (row,) = rows()
    jobs.run_job(row.job or row.pk)
    assert "no outcome" in (fetch(row).error or "")


def test_submit_waits_for_the_commit(
    operation: Callable[..., Recorder], django_capture_on_commit_callbacks: Any
) -> None:
    recorder = operation()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        created = rows()
        jobs.submit(created, run_inline=True)
        assert recorder.ran == []
    for callback in callbacks:
        callback()
    assert fetch(created[0]).status == "succeeded"


def test_a_refused_enqueue_fails_the_rows_and_answers_503(
    operation: Callable[..., Recorder], monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    recorder = operation()

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr("django_q.tasks.async_task", refuse)
    created = rows(2)
    with (
        pytest.raises(jobs.QueueUnavailableError, match="broker down"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        jobs.submit(created)
    for row in created:
        stored = fetch(row)
        assert stored.status == "failed"
        assert "the task queue refused the operation: broker down" in (stored.error or "")
    assert [ok for _pk, ok, _msg in recorder.recorded[0]] == [False, False]


def test_new_rows_are_stamped_queued_and_a_job_is_one_task(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[Any, ...]] = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda *args, **kwargs: sent.append(args))
    created = rows(2)
    assert all(fetch(row).queued_at is not None for row in created)
    jobs.enqueue(created[0].job or created[0].pk)
    assert sent == [(jobs.JOB_TASK, str(created[0].job))]
    assert all(fetch(row).queue_count == 0 for row in created)  # only the reaper's hand-overs count


# --- the reaper -------------------------------------------------------------------------------------------------------


def running(row: DeckyLifecycle, worker: str, lease: timedelta) -> DeckyLifecycle:
    (moved,) = services.lifecycle_move([row.pk], to="running", worker=worker, lease_until=timezone.now() + lease)
    return moved


def test_reaper_fails_lapsed_leases_through_the_operation(operation: Callable[..., Recorder]) -> None:
    recorder = operation()
    lapsed, alive = rows(2)
    running(lapsed, "decnet@elsewhere:4242:1", timedelta(seconds=-1))
    running(alive, "decnet@elsewhere:4243:1", timedelta(minutes=1))
    report = reaper.reap()
    assert report.lapsed == [str(lapsed.pk)]
    stored = fetch(lapsed)
    assert stored.status == "failed"
    assert "worker decnet@elsewhere:4242:1 stopped while running repair: its lease lapsed" in stored.message
    assert fetch(alive).status == "running"
    assert recorder.recorded == [[(lapsed.pk, False, stored.message)]]


def test_reaper_fails_rows_past_the_age_limit(operation: Callable[..., Recorder], settings: Any) -> None:
    operation()
    (old,) = rows()
    # A worker that keeps renewing its lease but never finishes (wedged): only the age limit ends it.
    running(old, "decnet@elsewhere:1:1", timedelta(minutes=5))
    DeckyLifecycle.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(hours=2))
    settings.DECNET_LIFECYCLE_STALE_AFTER = 3600
    assert reaper.reap().stale == [str(old.pk)]
    assert "no outcome recorded within 3600 s" in (fetch(old).error or "")


def test_reaper_requeues_lost_pending_jobs_when_the_broker_is_idle(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.DECNET_LIFECYCLE_REQUEUE_AFTER = 60
    sent: list[str] = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, job, **kwargs: sent.append(job))
    monkeypatch.setattr(reaper, "_broker_idle", lambda: True)
    lost, fresh = rows(), rows()
    past = timezone.now() - timedelta(minutes=5)
    DeckyLifecycle.objects.filter(pk=lost[0].pk).update(started_at=past, queued_at=past)
    report = reaper.reap()
    assert report.requeued == [str(lost[0].pk)]
    assert sent == [str(lost[0].job)]
    assert fetch(lost[0]).queue_count == 1
    assert fetch(fresh[0]).queue_count == 0
    monkeypatch.setattr(reaper, "_broker_idle", lambda: False)
    DeckyLifecycle.objects.filter(pk=lost[0].pk).update(queued_at=past)
    assert reaper.reap().requeued == []


@pytest.fixture
def dead_pid() -> WorkerId:
    """The identity of a process of this host that has exited."""
    process = subprocess.Popen(["true"])
    process.wait()
    me = current_worker()
    return WorkerId(cluster=me.cluster, host=me.host, pid=process.pid, start="1")


def test_at_start_rows_of_dead_local_workers_fail_at_once(
    operation: Callable[..., Recorder], dead_pid: WorkerId
) -> None:
    operation()
    dead, alive, elsewhere = rows(3)
    running(dead, str(dead_pid), timedelta(minutes=5))
    running(alive, str(current_worker()), timedelta(minutes=5))
    running(elsewhere, f"{dead_pid.cluster}@other-host:{dead_pid.pid}:1", timedelta(minutes=5))
    report = reaper.reap_at_start()
    assert report.dead == [str(dead.pk)]
    assert "the process is gone" in fetch(dead).message
    assert fetch(alive).status == fetch(elsewhere).status == "running"


def test_worker_identity_round_trips_and_tells_the_living_from_the_dead(dead_pid: WorkerId) -> None:
    me = current_worker()
    assert WorkerId.parse(str(me)) == me
    assert me.is_local()
    assert me.is_alive()
    assert not dead_pid.is_alive()
    assert WorkerId.parse("garbage") is None
    started = process_started_at(os.getpid())
    assert started is not None
    assert started <= timezone.now()
