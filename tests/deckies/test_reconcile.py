"""The fleet reconciler against a faked engine (missing, extra, drifted, orphans, busy, unreachable), and once
against the real Docker engine: a fleet imported from INI, deployed, broken by hand, reported and healed."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import docker
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from deckies import reconcile as reconcile_module
from deckies.choices import DeckyState
from deckies.engine import docker_api, naming, runtime
from deckies.engine.errors import EngineUnavailableError
from deckies.fleet_import import fleet_import
from deckies.models import Decky, Network
from deckies.reconcile import reconcile
from lifecycle.models import DeckyLifecycle
from tests.deckies.engine import builders
from tests.deckies.factories import set_state
from tests.lifecycle.factories import make_row

FLEET = "[general]\nnet = 10.51.0.0/24\n[web]\nservices = ssh, http\n[db]\nservices = mysql\n[idle]\nservices = ftp\n"


def container(decky: str, service: str | None, status: str = "running") -> runtime.ContainerState:
    key = naming.base_key(decky) if service is None else naming.service_key(decky, service)
    return runtime.ContainerState(naming.container_name(naming.fleet_project(), key), decky, service, status)


def healthy_containers() -> list[runtime.ContainerState]:
    return [container("web", None), container("web", "ssh"), container("web", "http"), container("db", None),
            container("db", "mysql")]  # fmt: skip


class FakeEngine:
    """``runtime.containers`` answers ``containers`` (or raises ``error``); removals are recorded, never done."""

    def __init__(self) -> None:
        self.containers: list[runtime.ContainerState] = healthy_containers()
        self.error: Exception | None = None
        self.removed: list[str] = []
        self.listed = 0

    def fleet_containers(self, scope: Any = None, decky: Any = None) -> list[runtime.ContainerState]:
        self.listed += 1
        if self.error is not None:
            raise self.error
        return list(self.containers)

    def list_containers(self, url: Any, labels: Any, **kwargs: Any) -> list[docker_api.ContainerInfo]:
        return [docker_api.ContainerInfo(c.name, c.name, c.status, {}) for c in self.containers]

    def remove_containers(self, url: Any, containers: Any, **kwargs: Any) -> list[str]:
        names = [c.name for c in containers]
        self.removed.extend(names)
        return names


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(runtime, "containers", fake.fleet_containers)
    monkeypatch.setattr(reconcile_module.docker_api, "list_containers", fake.list_containers)
    monkeypatch.setattr(reconcile_module.docker_api, "remove_containers", fake.remove_containers)
    return fake


@pytest.fixture
def deployed(db: None) -> dict[str, Decky]:
    """web (ssh, http) and db (mysql) running; idle (ftp) pending."""
    fleet_import(text=FLEET, source="t.ini")
    for decky in Decky.objects.filter(name__in=["web", "db"]):
        set_state(decky, DeckyState.RUNNING)
    return {d.name: d for d in Decky.objects.all()}


def by_name(report: reconcile_module.ReconcileReport) -> dict[str, reconcile_module.DeckyReport]:
    return {entry.name: entry for entry in report.deckies}


def repair_rows() -> list[DeckyLifecycle]:
    return list(DeckyLifecycle.objects.filter(operation="repair").order_by("decky_name"))


def states() -> dict[str, tuple[str, str]]:
    return {d.name: (d.state, d.last_error) for d in Decky.objects.all()}


# --- faked engine -----------------------------------------------------------------------------------------------------


def test_matching_fleet_is_healthy(engine: FakeEngine, deployed: dict[str, Decky]) -> None:
    report = reconcile()
    assert report.healthy
    assert report.engine_error is None
    assert not report.orphans
    entries = by_name(report)
    assert entries["web"].expected == ["base", "ssh", "http"]
    assert sorted(entries["web"].running) == ["base", "http", "ssh"]
    assert entries["idle"].wanted is False
    assert entries["idle"].healthy


def test_missing_containers_are_recorded_and_healed_with_one_repair_each(engine: FakeEngine, deployed: Any) -> None:
    engine.containers = [c for c in healthy_containers() if c.service != "http" and c.decky != "db"]
    report = reconcile()
    entries = by_name(report)
    assert entries["web"].missing == ["http"]
    assert entries["db"].missing == ["base", "mysql"]
    assert not report.healthy
    assert not repair_rows()
    # What was seen is written onto the deckies, with the reason.
    assert states()["web"] == ("degraded", "reconcile: missing http")
    assert states()["db"] == ("degraded", "reconcile: missing base, mysql")
    assert entries["web"].actions == ["state degraded"]

    healed = reconcile(heal=True)
    rows = repair_rows()
    assert [(row.decky_name, row.params["reason"], row.actor) for row in rows] == [
        ("db", "missing base, mysql", "reconciler"),
        ("web", "missing http", "reconciler"),
    ]
    assert sorted(healed.lifecycle_ids) == sorted(str(row.pk) for row in rows)
    assert by_name(healed)["web"].actions == [f"repair {rows[1].pk}"]
    assert engine.removed == []


def test_a_decky_that_answers_again_is_running_again(engine: FakeEngine, deployed: Any) -> None:
    engine.containers = [c for c in healthy_containers() if c.service != "http"]
    reconcile()
    assert states()["web"][0] == "degraded"
    engine.containers = healthy_containers()
    reconcile()
    assert states()["web"] == ("running", "")


def test_drifted_containers_are_redeployed(engine: FakeEngine, deployed: Any) -> None:
    engine.containers = [*healthy_containers()[:2], container("web", "http", "exited"), *healthy_containers()[3:]]
    report = reconcile(heal=True)
    web = by_name(report)["web"]
    assert [(c.service, c.status) for c in web.drifted] == [("http", "exited")]
    assert web.missing == []
    assert [row.decky_name for row in repair_rows()] == ["web"]


def test_extra_containers_are_healed_by_repair_or_teardown(engine: FakeEngine, deployed: Any) -> None:
    extra_service = container("web", "ftp")
    idle_base = container("idle", None)
    engine.containers = [*healthy_containers(), extra_service, idle_base]
    report = reconcile()
    assert [c.name for c in by_name(report)["web"].extra] == [extra_service.name]
    assert [c.name for c in by_name(report)["idle"].extra] == [idle_base.name]
    healed = reconcile(heal=True)
    # A deployed decky with a service it no longer has is repaired (the engine drops what is not desired); a decky
    # that should have no container is torn down. Nothing is removed behind the job layer's back.
    assert [row.decky_name for row in repair_rows()] == ["web"]
    assert DeckyLifecycle.objects.get(decky__name="idle").operation == "teardown"
    assert engine.removed == []
    assert healed.removed == []


def test_orphans_are_containers_of_unknown_deckies(engine: FakeEngine, deployed: Any) -> None:
    ghost = container("ghost", "ssh")
    engine.containers = [*healthy_containers(), ghost]
    report = reconcile()
    assert [c.name for c in report.orphans] == [ghost.name]
    assert not report.healthy
    reconcile(heal=True)
    assert engine.removed == []  # another control plane may own it
    reconcile(heal=True, remove_orphans=True)
    assert engine.removed == [ghost.name]


def test_busy_and_ambiguous_deckies_are_never_healed(engine: FakeEngine, deployed: Any) -> None:
    engine.containers = [c for c in healthy_containers() if c.decky != "web"] + [container("idle", None)]
    make_row(decky=Decky.objects.get(name="web"), operation="mutate", status="running")
    set_state(Decky.objects.get(name="idle"), DeckyState.FAILED)
    report = reconcile(heal=True)
    entries = by_name(report)
    assert entries["web"].busy
    assert entries["web"].missing == ["base", "ssh", "http"]
    assert entries["web"].actions[0].startswith("skipped: mutate running")
    assert entries["idle"].actions == ["skipped: state failed; deploy or tear it down"]
    assert engine.removed == []
    assert not repair_rows()
    assert states()["web"][0] == "running"  # a busy decky's state is the operation's to write


def test_unreachable_engine_reports_and_changes_nothing(engine: FakeEngine, deployed: Any) -> None:
    engine.error = EngineUnavailableError("Docker engine at unix:///nope is unreachable")
    before = list(Decky.objects.values_list("name", "state", "ip").order_by("name"))
    report = reconcile(heal=True)
    assert report.engine_error
    assert "unreachable" in report.engine_error
    assert not report.healthy
    assert {e.name: e.missing for e in report.deckies} == {"db": [], "idle": [], "web": []}
    assert by_name(report)["web"].expected == ["base", "ssh", "http"]
    assert list(Decky.objects.values_list("name", "state", "ip").order_by("name")) == before
    assert not DeckyLifecycle.objects.exists()
    assert engine.removed == []
    assert report.lifecycle_ids == []


def test_report_as_dict(engine: FakeEngine, deployed: Any) -> None:
    engine.containers = healthy_containers()[:-1]
    data = reconcile().as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["healthy"] is False
    db = next(entry for entry in data["deckies"] if entry["name"] == "db")
    assert db["missing"] == ["mysql"]


def test_command_prints_and_heals(engine: FakeEngine, deployed: Any) -> None:
    engine.containers = healthy_containers()[:-1]
    out = StringIO()
    call_command("reconcile", stdout=out)
    assert "missing mysql" in out.getvalue()
    assert "--heal" in out.getvalue()
    out = StringIO()
    call_command("reconcile", "--heal", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["heal"] is True
    assert len(data["lifecycle_ids"]) == 1


def test_command_healthy_and_empty(engine: FakeEngine, db: None) -> None:
    engine.containers = []
    out = StringIO()
    call_command("reconcile", stdout=out)
    assert "no fleet decky" in out.getvalue()
    assert "match the database" in out.getvalue()


def test_command_exits_3_when_the_engine_is_unreachable(engine: FakeEngine, deployed: Any) -> None:
    engine.error = EngineUnavailableError("down")
    out = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("reconcile", "--heal", stdout=out)
    assert caught.value.returncode == 3
    assert "unreachable" in out.getvalue()
    assert "unknown" in out.getvalue()


def test_command_rejects_bad_options(engine: FakeEngine, db: None) -> None:
    with pytest.raises(CommandError, match="only apply with --heal"):
        call_command("reconcile", "--sync", stdout=StringIO())
    with pytest.raises(CommandError, match="only apply with --heal"):
        call_command("reconcile", "--remove-orphans", stdout=StringIO())
    with pytest.raises(CommandError, match="no Docker host"):
        call_command("reconcile", "--host", "nowhere", stdout=StringIO())


# --- the real engine --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _data_dir(path: Path) -> Iterator[None]:
    with override_settings(DECNET_DATA_DIR=path):
        yield


def _cleanup(names: list[str], network: str) -> None:
    deckies = list(Decky.objects.filter(name__in=names, topology__isnull=True))
    with contextlib.suppress(Exception):
        builders.teardown(builders.reload(deckies))
    for name in names:
        docker_api.remove_containers(None, docker_api.list_containers(None, {naming.LABEL_DECKY: name}))
    client = docker.APIClient(version="auto", timeout=30)
    try:
        docker_name = naming.network_name(naming.fleet_project(), network)
        for found in client.networks(names=[docker_name]):
            if found["Name"] == docker_name:
                with contextlib.suppress(docker.errors.APIError):
                    client.remove_network(found["Id"])
    finally:
        client.close()


@pytest.mark.docker
@pytest.mark.django_db(transaction=True)
def test_real_engine_deploy_break_report_heal(tmp_path: Path) -> None:
    from tests.deckies.engine import probes

    subnet = probes.free_subnets(1)[0]
    prefix = f"rc{secrets.token_hex(2)}"
    ini = (
        f"[general]\nnet = {subnet}\n\n"
        f"[{prefix}-web]\narchetype = linux-server\n\n[{prefix}-web.ssh]\nuser = admin\n\n"
        f"[{prefix}-ftp]\nservices = ftp\n"
    )
    ini_path = tmp_path / "fleet.ini"
    ini_path.write_text(ini)
    names = [f"{prefix}-web", f"{prefix}-ftp"]
    network = None
    with _data_dir(tmp_path):
        try:
            call_command("import_fleet", str(ini_path), stdout=StringIO())
            network = Network.objects.get(subnet=subnet).name
            out = StringIO()
            call_command("deploy", "--names", ",".join(names), "--sync", stdout=out)
            assert "2 deploy operation(s) succeeded" in out.getvalue()

            status = StringIO()
            call_command("status", "--json", stdout=status)
            fleet = {d["name"]: d for d in json.loads(status.getvalue())["fleet"]}
            assert all(fleet[name]["state"] == "running" for name in names)
            assert all(fleet[name]["last_operation"]["status"] == "succeeded" for name in names)

            first = StringIO()
            call_command("reconcile", "--json", stdout=first)
            report = json.loads(first.getvalue())
            ours = {d["name"]: d for d in report["deckies"] if d["name"] in names}
            assert all(d["healthy"] for d in ours.values()), ours

            victim = naming.container_name(naming.fleet_project(), naming.service_key(names[0], "http"))
            client = docker.from_env(version="auto", timeout=30)
            try:
                client.containers.get(victim).remove(force=True)
            finally:
                client.close()

            broken = StringIO()
            call_command("reconcile", "--json", stdout=broken)
            web = next(d for d in json.loads(broken.getvalue())["deckies"] if d["name"] == names[0])
            assert web["missing"] == ["http"]
            assert not web["healthy"]

            healing = StringIO()
            call_command("reconcile", "--heal", "--sync", stdout=healing)
            assert "repair" in healing.getvalue()
            web_row = Decky.objects.get(name=names[0])
            assert web_row.state == DeckyState.RUNNING

            after = StringIO()
            call_command("reconcile", "--json", stdout=after)
            ours = {d["name"]: d for d in json.loads(after.getvalue())["deckies"] if d["name"] in names}
            assert all(d["healthy"] for d in ours.values()), ours
            assert probes.wait_for_greeting(str(web_row.ip), "http")

            down = StringIO()
            call_command("teardown", "--names", ",".join(names), "--sync", stdout=down)
            assert "2 teardown operation(s) succeeded" in down.getvalue()
            assert not docker_api.list_containers(None, {naming.LABEL_DECKY: names[0]})
        finally:
            if network is not None:
                _cleanup(names, network)
