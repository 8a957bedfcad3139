"""DeckyLifecycle service tests: every case of DECNET's lifecycle repository tests, plus immutability."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from lifecycle import services
from lifecycle.exceptions import LifecycleImmutableError, LifecycleNotFoundError
from lifecycle.models import DeckyLifecycle, Event

pytestmark = pytest.mark.django_db


def _row(lid: uuid.UUID) -> DeckyLifecycle:
    (row,) = services.lifecycle_get_by_ids([lid])
    return row


def test_create_returns_id_and_defaults_pending() -> None:
    row = services.lifecycle_create(decky_name="decky-01", operation="deploy")
    assert isinstance(row.pk, uuid.UUID)
    fetched = _row(row.pk)
    assert fetched.decky_name == "decky-01"
    assert fetched.operation == "deploy"
    assert fetched.status == "pending"
    assert fetched.error is None
    assert fetched.completed_at is None
    assert fetched.started_at is not None
    assert fetched.updated_at is not None


def test_update_terminal_stamps_completed_at() -> None:
    lid = services.lifecycle_create(decky_name="decky-01", operation="mutate").pk
    services.lifecycle_update(lid, status="running")
    assert _row(lid).status == "running"
    assert _row(lid).completed_at is None
    services.lifecycle_update(lid, status="succeeded")
    assert _row(lid).status == "succeeded"
    assert _row(lid).completed_at is not None


def test_update_failure_carries_error() -> None:
    lid = services.lifecycle_create(decky_name="decky-01", operation="deploy").pk
    services.lifecycle_update(lid, status="failed", error="compose blew up")
    row = _row(lid)
    assert row.status == "failed"
    assert row.error == "compose blew up"
    assert row.completed_at is not None


def test_update_stamps_updated_at() -> None:
    row = services.lifecycle_create(decky_name="d", operation="deploy")
    updated = services.lifecycle_update(row.pk, status="running")
    assert updated.updated_at > row.updated_at


def test_get_by_ids_empty_list_returns_empty() -> None:
    assert services.lifecycle_get_by_ids([]) == []


def test_get_by_ids_unknown_id_silently_omitted() -> None:
    lid = services.lifecycle_create(decky_name="d", operation="deploy").pk
    rows = services.lifecycle_get_by_ids([lid, "no-such-id", uuid.uuid4()])
    assert [row.pk for row in rows] == [lid]


def test_get_by_ids_ordered_by_started_at() -> None:
    first = services.lifecycle_create(decky_name="a", operation="deploy").pk
    second = services.lifecycle_create(decky_name="b", operation="deploy").pk
    services.lifecycle_update(first, started_at=timezone.now() + timedelta(minutes=5))
    assert [row.pk for row in services.lifecycle_get_by_ids([first, second])] == [second, first]


def test_find_open_matches_pending_and_running() -> None:
    lid = services.lifecycle_create(decky_name="decky-01", operation="deploy").pk
    found = services.lifecycle_find_open("decky-01", "deploy")
    assert found is not None
    assert found.pk == lid
    services.lifecycle_update(lid, status="running")
    found = services.lifecycle_find_open("decky-01", "deploy")
    assert found is not None
    assert found.status == "running"


def test_find_open_skips_terminal_rows() -> None:
    lid = services.lifecycle_create(decky_name="decky-01", operation="deploy").pk
    services.lifecycle_update(lid, status="succeeded")
    assert services.lifecycle_find_open("decky-01", "deploy") is None


def test_find_open_host_uuid_filter() -> None:
    a = services.lifecycle_create(decky_name="d", operation="deploy", host_uuid="h1").pk
    services.lifecycle_create(decky_name="d", operation="deploy", host_uuid="h2")
    found = services.lifecycle_find_open("d", "deploy", host_uuid="h1")
    assert found is not None
    assert found.pk == a


def test_find_open_distinguishes_operations() -> None:
    services.lifecycle_create(decky_name="d", operation="deploy")
    assert services.lifecycle_find_open("d", "mutate") is None


def test_sweep_marks_stale_rows_failed() -> None:
    stale = services.lifecycle_create(decky_name="old", operation="deploy").pk
    services.lifecycle_update(stale, started_at=timezone.now() - timedelta(hours=2))
    fresh = services.lifecycle_create(decky_name="new", operation="deploy").pk
    cutoff = timezone.now() - timedelta(hours=1)
    swept = services.lifecycle_sweep_stale(cutoff, reason="master restarted during operation")
    assert swept == 1
    rows = {row.pk: row for row in services.lifecycle_get_by_ids([stale, fresh])}
    assert rows[stale].status == "failed"
    assert rows[stale].error == "master restarted during operation"
    assert rows[stale].completed_at is not None
    assert rows[fresh].status == "pending"


def test_sweep_no_op_when_no_stale_rows() -> None:
    services.lifecycle_create(decky_name="d", operation="deploy")
    assert services.lifecycle_sweep_stale(timezone.now() - timedelta(hours=1), reason="x") == 0


def test_sweep_is_one_update_statement(django_assert_num_queries: DjangoAssertNumQueries) -> None:
    for index in range(5):
        row = services.lifecycle_create(decky_name=f"d{index}", operation="deploy")
        services.lifecycle_update(row.pk, started_at=timezone.now() - timedelta(hours=3))
    # One UPDATE for the rows, one INSERT for the audit event.
    with django_assert_num_queries(2):
        assert services.lifecycle_sweep_stale(timezone.now() - timedelta(hours=1), reason="restart") == 5


def test_sweep_leaves_terminal_rows_alone() -> None:
    done = services.lifecycle_create(decky_name="d", operation="deploy").pk
    services.lifecycle_update(done, started_at=timezone.now() - timedelta(hours=3))
    services.lifecycle_update(done, status="succeeded")
    assert services.lifecycle_sweep_stale(timezone.now() - timedelta(hours=1), reason="x") == 0
    assert _row(done).status == "succeeded"


# --- immutability --------------------------------------------------------------------------------------


@pytest.mark.parametrize("terminal", ["succeeded", "failed"])
@pytest.mark.parametrize("next_status", ["pending", "running", "succeeded", "failed"])
def test_terminal_rows_are_immutable(terminal: str, next_status: str) -> None:
    lid = services.lifecycle_create(decky_name="d", operation="deploy").pk
    services.lifecycle_update(lid, status=terminal, error="boom" if terminal == "failed" else None)
    before = _row(lid)
    with pytest.raises(LifecycleImmutableError):
        services.lifecycle_update(lid, status=next_status, error="late")
    after = _row(lid)
    assert (after.status, after.error, after.completed_at, after.updated_at) == (
        before.status,
        before.error,
        before.completed_at,
        before.updated_at,
    )


def test_terminal_row_error_cannot_be_rewritten() -> None:
    lid = services.lifecycle_create(decky_name="d", operation="deploy").pk
    services.lifecycle_update(lid, status="failed", error="original")
    with pytest.raises(LifecycleImmutableError):
        services.lifecycle_update(lid, error="rewritten")
    assert _row(lid).error == "original"


def test_running_cannot_go_back_to_pending() -> None:
    lid = services.lifecycle_create(decky_name="d", operation="deploy").pk
    services.lifecycle_update(lid, status="running")
    with pytest.raises(LifecycleImmutableError):
        services.lifecycle_update(lid, status="pending")


def test_retry_writes_a_new_row() -> None:
    first = services.lifecycle_create(decky_name="d", operation="deploy").pk
    services.lifecycle_fail(first, RuntimeError("engine down"))
    second = services.lifecycle_create(decky_name="d", operation="deploy").pk
    assert first != second
    assert _row(first).error == "RuntimeError: engine down"
    assert _row(second).status == "pending"


def test_update_unknown_row_is_not_found() -> None:
    with pytest.raises(LifecycleNotFoundError):
        services.lifecycle_update(uuid.uuid4(), status="running")


def test_error_text_is_bounded() -> None:
    lid = services.lifecycle_create(decky_name="d", operation="deploy").pk
    services.lifecycle_update(lid, status="failed", error="x" * 10_000)
    assert len(_row(lid).error or "") == 2000


def test_unknown_operation_rejected() -> None:
    with pytest.raises(ValueError, match="unknown lifecycle operation"):
        services.lifecycle_create(decky_name="d", operation="explode")


def test_status_changes_are_recorded_as_events() -> None:
    lid = services.lifecycle_create(decky_name="web-01", operation="deploy").pk
    services.lifecycle_start(lid)
    services.lifecycle_succeed(lid)
    statuses = [
        event.payload["status"] for event in Event.objects.filter(topic="decky.web-01.lifecycle").order_by("id")
    ]
    assert statuses == ["pending", "running", "succeeded"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_terminal_writes_have_one_winner() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row-level concurrency is measured on PostgreSQL")
    lid = services.lifecycle_create(decky_name="d", operation="deploy").pk
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
