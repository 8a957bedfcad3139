"""The deckies' management commands through ``call_command``: success, bad input (CommandError) and an empty
database. Docker is faked here; ``test_reconcile`` and ``test_operations`` run the real engine end to end."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import threading
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from deckies.catalogue.archetypes import all_archetypes
from deckies.catalogue.distros import all_distros
from deckies.catalogue.services import all_services, per_decky_service_slugs
from deckies.choices import DeckyState
from deckies.engine import naming
from deckies.engine.errors import EngineError
from deckies.fleet_import import fleet_import
from deckies.management.commands import quickstart
from deckies.management.names import split_names
from deckies.models import Decky
from decnet_site.tables import render_table
from lifecycle.models import DeckyLifecycle
from tests.deckies import fakes
from tests.deckies.factories import set_state
from tests.lifecycle.factories import make_row
from topology.models import Topology

FIXTURES = Path(__file__).parent / "fixtures"
SMALL = (FIXTURES / "small_fleet.ini").read_text()


def run(*args: str, **kwargs: Any) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **kwargs)
    return out.getvalue()


@pytest.fixture
def small(db: None) -> list[str]:
    fleet_import(text=SMALL, source="small.ini")
    return ["web-01", "web-02", "files"]


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path) -> fakes.FakeEngine:
    """The engine, faked: the commands' operations run for real above it."""
    settings.DECNET_DATA_DIR = tmp_path
    return fakes.install(monkeypatch)


# --- tables -----------------------------------------------------------------------------------------------------------


def test_render_table_aligns_and_handles_empty_and_colour() -> None:
    text = render_table(["A", "BB"], [["x", None], ["\x1b[32mlong\x1b[0m", ["p", "q"]]])
    lines = text.splitlines()
    assert lines[0] == "A     BB"
    assert lines[2] == "x     -"
    assert lines[3].endswith("p, q")
    assert render_table(["A"], [], empty="nothing") == "nothing"
    with pytest.raises(ValueError, match="cells"):
        render_table(["A"], [["x", "y"]])


def test_split_names() -> None:
    assert split_names(None) is None
    assert split_names(" a, b,a ") == ["a", "b"]
    with pytest.raises(CommandError):
        split_names(",")
    with pytest.raises(CommandError, match="Bad_Name"):
        split_names("ok,Bad_Name")


# --- catalogue --------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_catalogue_commands() -> None:
    services = run("services")
    assert all(spec.slug in services for spec in all_services())
    assert "fleet singleton" in services
    assert {row["slug"] for row in json.loads(run("services", "--json"))} == {s.slug for s in all_services()}
    archetypes = run("archetypes")
    assert all(a.slug in archetypes for a in all_archetypes())
    assert len(json.loads(run("archetypes", "--json"))) == 15
    distros = run("distros")
    assert all(d.slug in distros for d in all_distros())
    assert json.loads(run("distros", "--json"))[0]["slug"] == "debian"


def test_services_lists_custom_services(small: list[str]) -> None:
    fleet_import(text="[custom-app]\nbinary = registry.local/app:1\nports = 81\n[x]\nservices = app\n")
    rows = {row["slug"]: row for row in json.loads(run("services", "--json"))}
    assert rows["app"]["kind"] == "custom"
    assert rows["app"]["tcp_ports"] == [81]


# --- import_fleet -----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_import_fleet_dry_run_then_apply() -> None:
    path = str(FIXTURES / "full_fleet.ini")
    out = run("import_fleet", path, "--dry-run")
    assert "Dry run (additive): 11 to create" in out
    assert "lan-10-31-0-0-24" in out
    assert "tarpit" in out
    assert not Decky.objects.exists()
    out = run("import_fleet", path)
    assert "Imported (additive): 11 create" in out
    assert "manage.py deploy --names web-01,web-02,web-03,dc" in out
    assert Decky.objects.count() == 11


@pytest.mark.django_db
def test_import_fleet_json_and_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    data = json.loads(run("import_fleet", str(FIXTURES / "small_fleet.ini"), "--dry-run", "--json"))
    assert data["created"] == ["web-01", "web-02", "files"]
    assert data["applied"] is False

    class Stdin:
        buffer = __import__("io").BytesIO(SMALL.encode())

    monkeypatch.setattr(sys, "stdin", Stdin)
    assert "Imported (additive): 3 create" in run("import_fleet", "-")


@pytest.mark.django_db
def test_import_fleet_errors_name_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(CommandError) as caught:
        run("import_fleet", str(FIXTURES / "bad_fleet.ini"))
    message = str(caught.value)
    assert "bad_fleet.ini:3:" in message
    assert "bad_fleet.ini:17:" in message
    with pytest.raises(CommandError, match=r"collide_fleet.ini:8:"):
        run("import_fleet", str(FIXTURES / "collide_fleet.ini"))
    with pytest.raises(CommandError, match="cannot read"):
        run("import_fleet", str(tmp_path / "missing.ini"))
    big = tmp_path / "big.ini"
    big.write_bytes(b"#" * (512 * 1024 + 1))
    with pytest.raises(CommandError, match="limit"):
        run("import_fleet", str(big))
    latin = tmp_path / "latin.ini"
    latin.write_bytes(b"[caf\xe9]\nservices = ssh\n")
    with pytest.raises(CommandError, match=r"latin.ini:1: the file is not UTF-8"):
        run("import_fleet", str(latin))
    assert not Decky.objects.exists()


def test_import_fleet_replace_refusal_is_a_command_error(small: list[str]) -> None:
    Decky.objects.filter(name="files").update(state=DeckyState.RUNNING)
    with pytest.raises(CommandError, match="teardown --names files"):
        run("import_fleet", str(FIXTURES / "full_fleet.ini"), "--replace")


# --- status -----------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_status_on_an_empty_database() -> None:
    out = run("status")
    assert "Fleet deckies (0)" in out
    assert "no fleet decky" in out
    assert "(no topology)" in out  # the topology app's section of the same command
    assert json.loads(run("status", "--json")) == {"fleet": [], "topologies": []}


def test_status_shows_deckies_topologies_and_last_operation(small: list[str]) -> None:
    row = make_row(decky=Decky.objects.get(name="files"), operation="deploy")
    Topology.objects.create(name="maze")
    out = run("status")
    assert "web-01" in out
    assert "10.32.0.9" in out
    assert "ftp, ssh" in out
    assert "deploy pending" in out
    assert "maze" in out
    data = json.loads(run("status", "--json"))
    files = next(d for d in data["fleet"] if d["name"] == "files")
    assert files["last_operation"]["id"] == str(row.pk)
    assert files["network"] == "lan-10-32-0-0-28"
    assert data["topologies"][0]["name"] == "maze"
    assert data["topologies"][0]["deckies"] == 0


# --- render_compose ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_render_compose_of_the_full_fixture_has_every_service(tmp_path: Path) -> None:
    run("import_fleet", str(FIXTURES / "full_fleet.ini"))
    document = yaml.safe_load(run("render_compose"))
    services = document["services"]
    rendered = {spec["labels"].get(naming.LABEL_SERVICE) for spec in services.values()} - {None}
    assert set(per_decky_service_slugs()) <= rendered
    assert "tarpit" in rendered
    bases = {key for key, spec in services.items() if spec["labels"][naming.LABEL_ROLE] == naming.ROLE_BASE}
    assert len(bases) == 11
    assert services["dc"]["networks"]["lan-10-31-0-0-24"]["ipv4_address"] == "10.31.0.10"
    assert services["trap-tarpit"]["image"] == "decnet/base:1"
    assert json.loads(services["web-02-http"]["environment"]["DECNET_SERVICE_CONFIG"])["server_header"] == (
        "Microsoft-IIS/10.0"
    )
    target = tmp_path / "fleet.yml"
    assert "Wrote" in run("render_compose", "--output", str(target))
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert yaml.safe_load(target.read_text()) == document


@pytest.mark.django_db
def test_render_compose_bad_input() -> None:
    with pytest.raises(CommandError, match="no fleet decky"):
        run("render_compose")
    with pytest.raises(CommandError, match="no Docker host"):
        run("render_compose", "--host", "elsewhere")


# --- deploy / teardown / mutate (queued) ------------------------------------------------------------------------------


def test_deploy_queues_and_prints_lifecycle_ids(small: list[str], engine: fakes.FakeEngine) -> None:
    out = run("deploy")
    rows = list(DeckyLifecycle.objects.filter(operation="deploy"))
    assert sorted(row.decky_name for row in rows) == sorted(small)
    assert "3 deploy operation(s) queued" in out
    assert all(str(row.pk) in out for row in rows)
    assert "manage.py wait" in out
    run("deploy", "--names", "files")
    assert DeckyLifecycle.objects.filter(operation="deploy").count() == 3  # the open row is reused


@pytest.mark.django_db
def test_deploy_bad_input(engine: fakes.FakeEngine) -> None:
    with pytest.raises(CommandError, match="no deckies"):
        run("deploy")
    with pytest.raises(CommandError, match="unknown decky name"):
        run("deploy", "--names", "ghost")
    with pytest.raises(CommandError, match="invalid decky name"):
        run("deploy", "--names", "UPPER")
    assert engine.calls == []


def test_teardown_modes(small: list[str], engine: fakes.FakeEngine) -> None:
    with pytest.raises(CommandError, match="exactly one"):
        run("teardown")
    with pytest.raises(CommandError, match="exactly one"):
        run("teardown", "--all", "--names", "files")
    assert "nothing to tear down" in run("teardown", "--all")
    set_state(Decky.objects.get(name="files"), DeckyState.RUNNING)
    dry = run("teardown", "--all", "--dry-run")
    assert "files" in dry
    assert "1 decky(s) would be torn down" in dry
    assert not DeckyLifecycle.objects.exists()
    out = run("teardown", "--names", "files")
    assert "1 teardown operation(s) queued" in out
    assert DeckyLifecycle.objects.get().operation == "teardown"
    with pytest.raises(CommandError, match="unknown decky"):
        run("teardown", "--names", "ghost")


@pytest.mark.django_db
def test_teardown_on_an_empty_database() -> None:
    assert "nothing to tear down" in run("teardown", "--all")


def test_mutate_modes(small: list[str], engine: fakes.FakeEngine) -> None:
    assert "No decky is due" in run("mutate")
    assert "No deployed fleet decky" in run("mutate", "--all")
    out = run("mutate", "--names", "web-01")
    assert "1 mutate operation(s) queued" in out
    assert DeckyLifecycle.objects.get().decky_name == "web-01"
    with pytest.raises(CommandError, match="not both"):
        run("mutate", "--names", "web-01", "--all")
    with pytest.raises(CommandError, match="--watch mutates due deckies only"):
        run("mutate", "--watch", "--all")
    with pytest.raises(CommandError, match="positive"):
        run("mutate", "--watch", "--interval", "0")


@pytest.mark.django_db
def test_mutate_watch_loops_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    out = run("mutate", "--watch", "--interval", "0.01", "--iterations", "3")
    assert out.count("nothing due") == 3
    assert "Stopped after 3 pass(es)" in out

    def interrupt(*args: Any) -> list[Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr("deckies.management.commands.mutate.auto_mutate_due", interrupt)
    assert "Stopped after 0 pass(es)" in run("mutate", "--watch")


def test_mutate_watch_requests_due_deckies(small: list[str], engine: fakes.FakeEngine) -> None:
    set_state(Decky.objects.get(name="files"), DeckyState.RUNNING)
    Decky.objects.filter(name="files").update(
        mutate_interval=timedelta(minutes=1), last_mutated=datetime(2000, 1, 1, tzinfo=UTC)
    )
    out = run("mutate", "--watch", "--interval", "0.01", "--iterations", "1")
    assert "1 mutation(s) requested" in out
    assert DeckyLifecycle.objects.get().decky_name == "files"


# --- --sync (the operation runs in this process, so its transaction must really commit) -------------------------------


@pytest.mark.django_db(transaction=True)
def test_deploy_and_teardown_sync(small: list[str], engine: fakes.FakeEngine) -> None:
    out = run("deploy", "--sync")
    assert "3 deploy operation(s) succeeded" in out
    assert "deploy web-01: running" in out
    assert sorted(name for names in engine.names("deploy_deckies") for name in names) == sorted(small)
    assert set(Decky.objects.values_list("state", flat=True)) == {DeckyState.RUNNING}
    out = run("teardown", "--all", "--sync")
    assert "3 teardown operation(s) succeeded" in out
    assert set(Decky.objects.values_list("state", flat=True)) == {DeckyState.TORN_DOWN}


@pytest.mark.django_db(transaction=True)
def test_deploy_sync_failure_exits_non_zero(small: list[str], engine: fakes.FakeEngine) -> None:
    engine.fail["deploy_deckies"] = EngineError("compose exploded")
    out = StringIO()
    with pytest.raises(CommandError, match="1 of 1 deploy operation"):
        call_command("deploy", "--names", "files", "--sync", stdout=out)
    assert "compose exploded" in out.getvalue()
    assert Decky.objects.get(name="files").state == DeckyState.FAILED


@pytest.mark.django_db(transaction=True)
def test_mutate_sync(small: list[str], engine: fakes.FakeEngine) -> None:
    set_state(Decky.objects.get(name="web-01"), DeckyState.RUNNING)
    before = set(Decky.objects.get(name="web-01").service_slugs)
    out = run("mutate", "--all", "--sync")
    assert "1 mutate operation(s) succeeded" in out
    assert engine.names("deploy_deckies") == [["web-01"]]
    assert set(Decky.objects.get(name="web-01").service_slugs) != before


# --- quickstart -------------------------------------------------------------------------------------------------------


@pytest.fixture
def data_dir(settings: Any, tmp_path: Path) -> Path:
    settings.DECNET_DATA_DIR = tmp_path
    return tmp_path


@pytest.mark.django_db
def test_quickstart_set_up_creates_one_operator(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quickstart, "get_commands", lambda: {})
    out = run("quickstart", "--no-serve", "--no-images")
    user = User.objects.get()
    password_file = data_dir / quickstart.PASSWORD_FILE
    password = password_file.read_text().strip()
    assert user.is_superuser
    assert user.groups.filter(name="operator").exists()
    assert user.check_password(password)
    assert stat.S_IMODE(os.stat(password_file).st_mode) == 0o600
    assert password in out
    assert "http://127.0.0.1:8000/admin/" in out
    again = run("quickstart", "--no-serve", "--no-images")
    assert "Accounts exist; none created." in again
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_quickstart_rejects_a_bad_address() -> None:
    with pytest.raises(CommandError, match="address:port"):
        run("quickstart", "--addr", "localhost")
    with pytest.raises(CommandError, match="address:port"):
        run("quickstart", "--addr", "127.0.0.1:99999")
    assert not User.objects.exists()


@pytest.mark.django_db
def test_quickstart_warns_when_docker_is_unavailable(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import docker

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise docker.errors.DockerException("Error while fetching server API version: connection refused")

    monkeypatch.setattr(docker, "DockerClient", refuse)
    monkeypatch.setattr(quickstart, "get_commands", lambda: {})
    out = run("quickstart", "--no-serve")
    assert "Docker engine unavailable" in out
    assert "connection refused" in out


@pytest.mark.django_db
def test_quickstart_builds_missing_images_and_sets_up_schedules(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import docker

    from deckies.engine import images
    from deckies.management.commands import build_images

    class Client:
        def close(self) -> None:
            pass

    built: list[Any] = []
    scheduled: list[Any] = []
    monkeypatch.setattr(docker, "DockerClient", lambda *a, **k: Client())
    monkeypatch.setattr(images, "missing_images", lambda client: ["decnet/listeners:1"])

    def fake_build(**kwargs: Any) -> list[Any]:
        built.append(kwargs)
        return []

    monkeypatch.setattr(build_images, "build_images", fake_build)
    real_call = quickstart.call_command

    def call(name: str, *args: Any, **kwargs: Any) -> None:
        if name == "setup_schedules":
            scheduled.append(name)
            return
        real_call(name, *args, **kwargs)

    monkeypatch.setattr(quickstart, "call_command", call)
    monkeypatch.setattr(quickstart, "get_commands", lambda: {"setup_schedules": "deckies"})
    out = run("quickstart", "--no-serve")
    assert "Missing: decnet/listeners:1" in out
    assert len(built) == 1
    assert scheduled == ["setup_schedules"]


def _children(script: str) -> Any:
    def child_commands(self: Any, addr: str) -> list[tuple[str, list[str]]]:
        return [("worker", [sys.executable, "-c", script % "worker"]), ("web", [sys.executable, "-c", script % "web"])]

    return child_commands


@pytest.mark.django_db
def test_quickstart_forwards_output_and_fails_when_a_child_exits(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quickstart, "get_commands", lambda: {})
    monkeypatch.setattr(quickstart.Command, "child_commands", _children("print('hello from %s')"))
    out = StringIO()
    with pytest.raises(CommandError, match="exited with code 0"):
        call_command("quickstart", "--no-images", stdout=out)
    assert "[worker] hello from worker" in out.getvalue()
    assert "[web] hello from web" in out.getvalue()
    assert "Admin:    http://127.0.0.1:8000/admin/" in out.getvalue()


@pytest.mark.django_db
def test_quickstart_stops_both_children_on_sigterm(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quickstart, "get_commands", lambda: {})
    script = "import time,sys; print('up %s', flush=True); time.sleep(60)"
    monkeypatch.setattr(quickstart.Command, "child_commands", _children(script))
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(1.5, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.start()
    out = StringIO()
    try:
        call_command("quickstart", "--no-images", "--addr", "127.0.0.1:8765", stdout=out)
    finally:
        timer.cancel()
    text = out.getvalue()
    assert "[worker] up worker" in text
    assert "[web] up web" in text
    assert text.rstrip().endswith("Stopped.")
    assert signal.getsignal(signal.SIGTERM) == before
