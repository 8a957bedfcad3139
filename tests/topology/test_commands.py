"""The topology app's extensions of the fleet commands: ``deploy``/``teardown``/``render_compose --topology`` and
the topologies section of ``status``."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from deckies.engine import naming
from topology import services
from topology.models import Topology


def run(*args: str, **kwargs: Any) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **kwargs)
    return out.getvalue()


@pytest.fixture
def maze(db: None) -> Topology:
    return Topology.objects.create(name="maze")


@pytest.fixture
def topology_operations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Record the requests the commands make instead of deploying (the topology API tests cover the real ones)."""
    from topology import operations

    calls: list[tuple[str, Any]] = []

    def record(name: str) -> Any:
        def request(**kwargs: Any) -> tuple[Topology, list[Any]]:
            calls.append((name, kwargs))
            return kwargs["topology"], []

        return request

    monkeypatch.setattr(operations, "topology_deploy_request", record("deploy"))
    monkeypatch.setattr(operations, "topology_teardown_request", record("teardown"))
    return calls


def test_topology_deploy_and_teardown_call_the_topology_operations(
    maze: Topology, topology_operations: list[tuple[str, Any]]
) -> None:
    out = run("deploy", "--topology", "maze")
    assert "deploy of topology maze" in out
    assert "queued" in out
    run("deploy", "--topology", maze.short_id, "--sync")
    run("teardown", "--topology", str(maze.pk))
    assert [(name, kwargs["topology"].pk, kwargs["run_inline"]) for name, kwargs in topology_operations] == [
        ("deploy", maze.pk, False),
        ("deploy", maze.pk, True),
        ("teardown", maze.pk, False),
    ]
    dry = run("teardown", "--topology", "maze", "--dry-run")
    assert "Dry run: topology maze" in dry
    assert len(topology_operations) == 3


def test_topology_commands_bad_input(maze: Topology) -> None:
    with pytest.raises(CommandError, match="no topology"):
        run("deploy", "--topology", "nowhere")
    with pytest.raises(CommandError, match="validation error"):
        run("deploy", "--topology", "maze")
    with pytest.raises(CommandError, match="illegal transition"):
        run("teardown", "--topology", "maze")
    with pytest.raises(CommandError, match="exactly one"):
        run("teardown", "--topology", "maze", "--all")


def test_render_compose_of_a_topology(maze: Topology) -> None:
    lan = services.lan_create(topology_id=maze.pk, name="dmz", subnet="10.222.0.0/24", is_dmz=True).value
    gw = services.topology_decky_create(topology_id=maze.pk, name="gw", services=["ssh"]).value
    services.edge_create(topology_id=maze.pk, decky_id=gw.pk, lan_id=lan.pk)
    document = yaml.safe_load(run("render_compose", "--topology", "maze"))
    assert document["name"] == naming.topology_project(maze.pk)
    assert set(document["services"]) == {"gw", "gw-ssh"}
    with pytest.raises(CommandError, match="no topology"):
        run("render_compose", "--topology", "nope")
    with pytest.raises(CommandError, match="applies to the fleet"):
        run("render_compose", "--topology", "x", "--host", "y")


def test_status_lists_topologies(maze: Topology) -> None:
    assert "maze" in run("status")
    data = json.loads(run("status", "--json"))
    assert (data["topologies"][0]["name"], data["topologies"][0]["deckies"]) == ("maze", 0)


@pytest.mark.django_db
def test_deploy_names_and_topology_are_exclusive() -> None:
    with pytest.raises(CommandError, match="not both"):
        run("deploy", "--names", "a", "--topology", "b")
