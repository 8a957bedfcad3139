"""The SDK adapter's pure parts: path rules and the tar a file drop sends."""

from __future__ import annotations

import io
import tarfile

import pytest

from deckies.engine import docker_api
from deckies.engine.errors import InvalidPathError


@pytest.mark.parametrize(
    ("path", "normalised"),
    [("/etc/motd", "/etc/motd"), ("//var//tmp/./x.txt", "/var/tmp/x.txt"), ("/home/u/..hidden", "/home/u/..hidden")],
)
def test_good_paths(path: str, normalised: str) -> None:
    assert docker_api.check_path(path) == normalised


@pytest.mark.parametrize("path", ["", "etc/passwd", "./x", "/etc/../shadow", "/..", "/tmp/", "/", "/tmp/.", "/a\x00b"])
def test_bad_paths(path: str) -> None:
    with pytest.raises(InvalidPathError) as caught:
        docker_api.check_path(path)
    assert caught.value.status_code == 400


def test_file_tar_carries_exact_mode_mtime_and_owner() -> None:
    data = docker_api.file_tar("/opt/app/secret.env", b"TOKEN=abc\n", 0o100640, 1_700_000_000.25)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        (member,) = archive.getmembers()
        assert member.name == "secret.env"
        assert member.mode == 0o640  # file-type bits are never sent as permission bits
        assert member.mtime == 1_700_000_000.25  # PAX keeps the fraction
        assert (member.uid, member.gid, member.uname) == (0, 0, "root")
        handle = archive.extractfile(member)
        assert handle is not None
        assert handle.read() == b"TOKEN=abc\n"


def test_put_file_validates_before_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(*args: object, **kwargs: object) -> None:
        raise AssertionError("the engine must not be asked")

    monkeypatch.setattr(docker_api, "client", unreachable)
    with pytest.raises(InvalidPathError):
        docker_api.put_file(None, "c", "relative", b"x")
    with pytest.raises(InvalidPathError, match="mode"):
        docker_api.put_file(None, "c", "/tmp/x", b"x", mode=0o17777)
