"""Failure injection: a dead engine fails fast and typed, a missing image is caught before compose runs, a failing
compose surfaces its stderr."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from deckies.engine import docker_api, naming, runtime
from deckies.engine.errors import ComposeCommandError, EngineUnavailableError, ImageMissingError, InvalidPathError
from deckies.models import CustomService, Host
from deckies.services import decky_create
from tests.deckies.engine import builders, probes
from tests.deckies.engine.builders import make_network, reload

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["unix:///nonexistent/docker.sock", "tcp://127.0.0.1:1"])
def test_dead_engine_is_unavailable_fast(url: str, engine_data_dir: Path) -> None:
    host = Host.objects.create(name="dead", docker_url=url)
    decky = reload([decky_create(name="lost", services=["ftp"], host=host, ip=None, hostname="lost")])[0]
    for call in (
        lambda: runtime.engine_ping(builders.scopes.host_url(host)),
        lambda: runtime.containers(builders.scopes.fleet_scope(host)),
        lambda: builders.deploy([decky]),
        lambda: builders.teardown([decky]),
        lambda: builders.drop_file(decky, "/tmp/x", b"x"),
    ):
        started = time.monotonic()
        with pytest.raises(EngineUnavailableError) as caught:
            call()
        assert time.monotonic() - started < docker_api.CONNECT_TIMEOUT + 1
        assert caught.value.status_code == 503
    assert not (engine_data_dir / "compose" / "fleet-dead.yml").exists()  # nothing rendered for a dead engine


def test_invalid_path_is_refused_before_the_engine_is_asked(engine_data_dir: Path) -> None:
    host = Host.objects.create(name="dead2", docker_url="unix:///nonexistent/docker.sock")
    decky = reload([decky_create(name="lost2", services=["ftp"], host=host, hostname="x")])[0]
    with pytest.raises(InvalidPathError) as caught:
        builders.drop_file(decky, "etc/passwd", b"x")
    assert caught.value.status_code == 400


@pytest.mark.docker
def test_missing_image_before_compose(engine_data_dir: Path) -> None:
    CustomService.objects.create(slug="gone_byos", image="decnet/gone:404", command=[], ports=[9])
    network = make_network("fail-lan", probes.free_subnets(1)[0])
    decky = reload([decky_create(name="noimg", services=["ftp", "gone_byos"], network=network, hostname="x")])[0]
    with pytest.raises(ImageMissingError) as caught:
        builders.deploy([decky])
    assert caught.value.extra["images"] == ["decnet/gone:404"]
    assert docker_api.list_containers(None, {naming.LABEL_DECKY: "noimg"}) == []


@pytest.mark.docker
def test_compose_failure_carries_stderr(engine_data_dir: Path, settings, tmp_path: Path) -> None:
    fake = tmp_path / "fake-compose"
    fake.write_text(
        "#!/bin/sh\necho 'Error response from daemon: failed to set up container networking' >&2\nexit 17\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    settings.DECNET_COMPOSE_BINARY = str(fake)
    network = make_network("fail-lan2", probes.free_subnets(1)[0])
    decky = reload([decky_create(name="boom", services=["ftp"], network=network, hostname="x")])[0]
    with pytest.raises(ComposeCommandError) as caught:
        builders.deploy([decky])
    assert caught.value.returncode == 17
    assert "failed to set up container networking" in caught.value.stderr_tail
    assert caught.value.as_dict()["stderr_tail"].endswith("container networking")
