"""Topology services: status moves with audit events, pending-only edits and optimistic concurrency."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from lifecycle.models import Event
from topology import services
from topology.exceptions import TopologyNotEditableError, TopologyNotFoundError, VersionConflict
from topology.models import LAN, StatusWriteError, Topology, TopologyStatusEvent
from topology.status import TopologyStatusError

from .factories import LANFactory, TopologyFactory

pytestmark = pytest.mark.django_db


def test_create_starts_pending_at_version_one() -> None:
    topology = services.topology_create(name="maze")
    assert (topology.status, topology.version) == ("pending", 1)


def test_transition_writes_status_event_and_bus_event() -> None:
    topology = TopologyFactory.create()
    moved = services.topology_transition(topology_id=topology.pk, to="deploying", reason="operator")
    assert moved.status == "deploying"
    event = TopologyStatusEvent.objects.get(topology=topology)
    assert (event.from_status, event.to_status, event.reason) == ("pending", "deploying", "operator")
    assert Event.objects.filter(topic=f"topology.{topology.pk}.status").count() == 1


def test_illegal_transition_changes_nothing() -> None:
    topology = TopologyFactory.create()
    with pytest.raises(TopologyStatusError):
        services.topology_transition(topology_id=topology.pk, to="active")
    topology.refresh_from_db()
    assert topology.status == "pending"
    assert not TopologyStatusEvent.objects.exists()


def test_transition_unknown_topology() -> None:
    with pytest.raises(TopologyNotFoundError):
        services.topology_transition(topology_id="00000000-0000-0000-0000-000000000000", to="deploying")


def test_status_cannot_be_saved_directly() -> None:
    topology = TopologyFactory.create()
    topology = Topology.objects.get(pk=topology.pk)
    topology.status = "active"
    with pytest.raises(StatusWriteError):
        topology.save()


def test_transitions_do_not_bump_version() -> None:
    topology = TopologyFactory.create()
    services.topology_transition(topology_id=topology.pk, to="deploying")
    topology.refresh_from_db()
    assert topology.version == 1


def test_lan_create_with_matching_version_bumps() -> None:
    topology = TopologyFactory.create()
    services.lan_create(topology_id=topology.pk, name="dmz", subnet="10.9.0.0/24", is_dmz=True, expected_version=1)
    topology.refresh_from_db()
    assert topology.version == 2


def test_every_write_bumps_even_without_an_expected_version() -> None:
    topology = TopologyFactory.create()
    edited = services.lan_create(topology_id=topology.pk, name="dmz")
    topology.refresh_from_db()
    assert topology.version == edited.version == 2


def test_stale_version_conflicts_and_writes_nothing() -> None:
    topology = TopologyFactory.create()
    services.lan_create(topology_id=topology.pk, name="a", expected_version=1)
    with pytest.raises(VersionConflict) as info:
        services.lan_create(topology_id=topology.pk, name="b", expected_version=1)
    assert (info.value.current, info.value.expected) == (2, 1)
    assert info.value.as_dict()["code"] == "version_conflict"
    assert list(LAN.objects.filter(topology=topology).values_list("name", flat=True)) == ["a"]


def test_lan_auto_subnet_avoids_live_topologies() -> None:
    first = services.lan_create(topology_id=TopologyFactory.create().pk, name="x").value
    second = services.lan_create(topology_id=TopologyFactory.create().pk, name="x").value
    assert first.subnet != second.subnet


def test_edits_refused_unless_pending() -> None:
    topology = TopologyFactory.create()
    lan = LANFactory.create(topology=topology)
    services.topology_transition(topology_id=topology.pk, to="deploying")
    with pytest.raises(TopologyNotEditableError):
        services.lan_create(topology_id=topology.pk, name="late")
    with pytest.raises(TopologyNotEditableError):
        services.lan_update(lan_id=lan.pk, is_dmz=True)
    with pytest.raises(TopologyNotEditableError):
        services.lan_delete(lan_id=lan.pk)


def test_update_and_delete_lan_check_version() -> None:
    topology = TopologyFactory.create()
    lan = LANFactory.create(topology=topology)
    services.lan_update(lan_id=lan.pk, is_dmz=True, expected_version=1)
    with pytest.raises(VersionConflict):
        services.lan_delete(lan_id=lan.pk, expected_version=1)
    services.lan_delete(lan_id=lan.pk, expected_version=2)
    topology.refresh_from_db()
    assert topology.version == 3
    assert not LAN.objects.filter(pk=lan.pk).exists()


def test_delete_only_when_deletable() -> None:
    topology = TopologyFactory.create()
    services.topology_transition(topology_id=topology.pk, to="deploying")
    with pytest.raises(TopologyNotEditableError):
        services.topology_delete(topology_id=topology.pk)
    services.topology_transition(topology_id=topology.pk, to="failed")
    services.topology_delete(topology_id=topology.pk)
    assert not Topology.objects.filter(pk=topology.pk).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_writers_one_winner() -> None:
    """20 threads add a LAN with the same expected_version: one succeeds, 19 conflict, version +1."""
    if connection.vendor != "postgresql":
        pytest.skip("row-level concurrency is measured on PostgreSQL")
    topology = services.topology_create(name="race")
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def write(index: int) -> None:
        try:
            barrier.wait()
            services.lan_create(
                topology_id=topology.pk, name=f"lan-{index}", subnet=f"10.50.{index}.0/24", expected_version=1
            )
            result = "ok"
        except VersionConflict as exc:
            result = f"conflict@{exc.expected}"
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    topology.refresh_from_db()
    assert outcomes.count("ok") == 1
    assert outcomes.count("conflict@1") == 19
    assert topology.version == 2
    assert LAN.objects.filter(topology=topology).count() == 1
