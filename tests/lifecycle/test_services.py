"""Lifecycle rows: creation, the status machine (every legal and illegal move), immutability, events, leases."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from lifecycle import services
from lifecycle.choices import LEGAL_LIFECYCLE_MOVES, LifecycleStatus
from lifecycle.exceptions import LifecycleImmutableError, LifecycleNotFoundError
from lifecycle.models import DeckyLifecycle, Event
from lifecycle.selectors import lifecycle_poll
from lifecycle.services import RowSpec

pytestmark = pytest.mark.django_db


def create(decky: str = "decky-01", operation: str = "deploy", **kwargs: object) -> DeckyLifecycle:
    (row,) = services.lifecycle_create([RowSpec(decky_name=decky, operation=operation, **kwargs)])  # type: ignore[arg-type]
    return row


def fetch(lid: uuid.UUID) -> DeckyLifecycle:
    return DeckyLifecycle.objects.get(pk=lid)


def at(status: str) -> DeckyLifecycle:
    """A row brought to ``status`` through legal moves."""
    row = create()
    if status == LifecycleStatus.PENDING:
        return row
    if status != LifecycleStatus.RUNNING:
        return services.lifecycle_update(row.pk, status=status, error="x" if status == "failed" else None)
    return services.lifecycle_start(row.pk)


def test_create_returns_id_and_defaults_pending() -> None:
    row = fetch(create().pk)
    assert (row.decky_name, row.operation, row.status, row.error, row.completed_at) == (
        "decky-01",
        "deploy",
        "pending",
        None,
        None,
    )
    assert row.job is not None
    assert row.started_at is not None


def test_rows_created_together_share_a_job_and_one_insert(django_assert_num_queries: DjangoAssertNumQueries) -> None:
    specs = [RowSpec(decky_name=f"d{i}", operation="deploy") for i in range(50)]
    # One INSERT for the rows, one for their events.
    with django_assert_num_queries(2):
        rows = services.lifecycle_create(specs)
    assert len({row.job for row in rows}) == 1
    assert DeckyLifecycle.objects.count() == 50


def test_a_spec_may_name_its_own_job() -> None:
    job = uuid.uuid4()
    rows = services.lifecycle_create(
        [RowSpec(decky_name="a", operation="deploy", job=job), RowSpec(decky_name="b", operation="deploy")]
    )
    assert rows[0].job == job
    assert rows[1].job != job


@pytest.mark.parametrize("source", list(LifecycleStatus.values))
@pytest.mark.parametrize("target", list(LifecycleStatus.values))
def test_every_move_of_the_machine(source: str, target: str) -> None:
    """The table of legal moves, exercised in full: legal ones move, every other one is refused unchanged."""
    row = at(source)
    before = fetch(row.pk)
    if target in LEGAL_LIFECYCLE_MOVES[source]:
        moved = services.lifecycle_update(row.pk, status=target, error="e" if target == "failed" else None)
        assert moved.status == target
        assert (moved.completed_at is not None) == (target in {"succeeded", "failed"})
    else:
        with pytest.raises(LifecycleImmutableError):
            services.lifecycle_update(row.pk, status=target, error="late")
        after = fetch(row.pk)
        assert (after.status, after.error, after.completed_at, after.updated_at) == (
            before.status,
            before.error,
            before.completed_at,
            before.updated_at,
        )


def test_machine_table_is_the_documented_one() -> None:
    assert {
        "pending": {"running", "succeeded", "failed"},
        "running": {"succeeded", "failed"},
        "succeeded": set(),
        "failed": set(),
    } == LEGAL_LIFECYCLE_MOVES


def test_failure_carries_error_and_message() -> None:
    row = services.lifecycle_fail(create().pk, RuntimeError("engine down"), message="deploy of d failed")
    assert (row.error, row.message, row.status) == ("RuntimeError: engine down", "deploy of d failed", "failed")


def test_retry_writes_a_new_row() -> None:
    first = create().pk
    services.lifecycle_fail(first, RuntimeError("engine down"))
    second = create().pk
    assert first != second
    assert fetch(second).status == "pending"


def test_update_unknown_row_is_not_found() -> None:
    with pytest.raises(LifecycleNotFoundError):
        services.lifecycle_update(uuid.uuid4(), status="running")


def test_error_text_is_bounded() -> None:
    row = services.lifecycle_update(create().pk, status="failed", error="x" * 10_000)
    assert len(row.error or "") == 2000


def test_unknown_operation_and_status_rejected() -> None:
    with pytest.raises(ValueError, match="unknown lifecycle operation"):
        create(operation="explode")
    with pytest.raises(ValueError, match="starts pending or running"):
        services.lifecycle_create([RowSpec(decky_name="d", operation="deploy")], status="succeeded")
    with pytest.raises(ValueError, match="unknown lifecycle status"):
        services.lifecycle_move([create().pk], to="exploded")


def test_status_changes_are_recorded_as_events() -> None:
    lid = create("web-01").pk
    services.lifecycle_start(lid)
    services.lifecycle_succeed(lid, "web-01 is up")
    events = Event.objects.filter(topic="decky.web-01.lifecycle").order_by("id")
    assert [event.payload["status"] for event in events] == ["pending", "running", "succeeded"]
    assert events.last().payload["message"] == "web-01 is up"  # type: ignore[union-attr]


def test_topology_rows_have_their_own_topic() -> None:
    topology = uuid.uuid4()
    row = DeckyLifecycle(decky_name="gw", topology_id=topology, operation="deploy", status="pending")
    assert services.lifecycle_topic(row) == f"topology.{topology}.decky.gw.lifecycle"


def test_only_the_holding_worker_finishes_a_row() -> None:
    row = create()
    services.lifecycle_move([row.pk], to="running", worker="a@h:1:1", lease_until=timezone.now())
    assert services.lifecycle_move([row.pk], to="succeeded", only_worker="b@h:2:2") == []
    assert fetch(row.pk).status == "running"
    (done,) = services.lifecycle_move([row.pk], to="succeeded", only_worker="a@h:1:1")
    assert (done.status, done.lease_expires_at) == ("succeeded", None)


def test_renew_extends_only_rows_the_worker_holds() -> None:
    mine, theirs = create(), create()
    soon = timezone.now() + timedelta(seconds=5)
    services.lifecycle_move([mine.pk], to="running", worker="me@h:1:1", lease_until=soon)
    services.lifecycle_move([theirs.pk], to="running", worker="them@h:2:2", lease_until=soon)
    later = timezone.now() + timedelta(minutes=5)
    assert services.lifecycle_renew([mine.pk, theirs.pk], worker="me@h:1:1", until=later) == 1
    assert fetch(mine.pk).lease_expires_at == later
    assert fetch(theirs.pk).lease_expires_at == soon


def test_mark_queued_hands_a_row_over_once_per_cutoff() -> None:
    row = create()
    cutoff = timezone.now()
    assert services.lifecycle_mark_queued([row.pk], not_since=cutoff) == [row.pk]
    assert services.lifecycle_mark_queued([row.pk], not_since=cutoff) == []
    assert fetch(row.pk).queue_count == 1


def test_poll_orders_by_start_and_omits_unknown_ids() -> None:
    first, second = create("a"), create("b")
    DeckyLifecycle.objects.filter(pk=first.pk).update(started_at=timezone.now() + timedelta(minutes=5))
    rows = lifecycle_poll(ids=[str(first.pk), str(second.pk), "garbage", str(uuid.uuid4())])
    assert [row.pk for row in rows] == [second.pk, first.pk]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_terminal_writes_have_one_winner() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row-level concurrency is measured on PostgreSQL")
    lid = create().pk
    services.lifecycle_start(lid)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def finish(index: int) -> None:
        barrier.wait()
        try:
            services.lifecycle_update(lid, status="succeeded" if index % 2 else "failed", error=f"w{index}")
            outcomes.append("won")
        except LifecycleImmutableError:
            outcomes.append("lost")
        finally:
            connection.close()

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
