"""The compose runner with fake compose binaries: argv, environment, timeouts and error classification."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from deckies.engine import runner
from deckies.engine.errors import ComposeCommandError, EngineConfigError, EngineUnavailableError, ImageMissingError


def _fake(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-compose"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture
def use_fake(settings, tmp_path: Path):
    def install(body: str) -> Path:
        script = _fake(tmp_path, body)
        settings.DECNET_COMPOSE_BINARY = str(script)
        return script

    return install


def test_default_binary_is_the_bundled_v2_binary_not_the_shim(settings) -> None:
    settings.DECNET_COMPOSE_BINARY = ""
    binary = Path(runner.compose_binary())
    assert binary.is_absolute()
    assert binary.name == "docker-compose"
    # The console script in the venv's bin/ swallows the exit status; the package's binary is what runs.
    assert binary.parent.name == "compose"
    assert binary.read_bytes()[:4] == b"\x7fELF"


def test_missing_binary_is_a_config_error(settings, tmp_path: Path) -> None:
    settings.DECNET_COMPOSE_BINARY = str(tmp_path / "nope")
    with pytest.raises(EngineConfigError):
        runner.compose_binary()


def test_argv_env_and_cwd(use_fake, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "seen.json"
    use_fake(
        f'python3 -c \'import json,os,sys; json.dump({{"argv": sys.argv[1:], "host": os.environ.get("DOCKER_HOST"),'
        f' "proj": os.environ.get("COMPOSE_PROJECT_NAME"), "cwd": os.getcwd()}}, open("{out}", "w"))\' "$@"'
    )
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "someone-elses")
    compose_file = tmp_path / "f.yml"
    compose_file.write_text("services: {}\n")
    result = runner.run_compose("decnet-fleet", compose_file, ["up", "-d", "a"], docker_url="unix:///x.sock")
    assert result.returncode == 0
    seen = json.loads(out.read_text())
    assert seen["argv"] == [
        "--ansi", "never", "--progress", "plain", "-p", "decnet-fleet", "-f", str(compose_file), "up", "-d", "a"
    ]  # fmt: skip
    assert seen["host"] == "unix:///x.sock"
    assert seen["proj"] is None  # the caller's COMPOSE_* cannot retarget the call
    assert seen["cwd"] == str(tmp_path)


def test_failure_carries_stderr_tail(use_fake) -> None:
    use_fake("echo 'line one' >&2; i=0; while [ $i -lt 400 ]; do echo \"noise $i\" >&2; i=$((i+1)); done; "
             "echo 'network decnet-x: Pool overlaps with other one on this address space' >&2; exit 3")  # fmt: skip
    with pytest.raises(ComposeCommandError) as caught:
        runner.run_compose("p", None, ["up"], docker_url="unix:///x.sock")
    err = caught.value
    assert err.returncode == 3
    assert err.stderr_tail.endswith("Pool overlaps with other one on this address space")
    assert len(err.stderr_tail) <= runner.STDERR_TAIL_CHARS + 1
    assert "line one" not in err.stderr_tail
    assert err.as_dict()["code"] == "compose_failed"


def test_check_false_returns_the_result(use_fake) -> None:
    use_fake("echo out; echo err >&2; exit 2")
    result = runner.run_compose("p", None, ["ps"], docker_url="unix:///x.sock", check=False)
    assert (result.returncode, result.stdout.strip(), result.stderr.strip()) == (2, "out", "err")


@pytest.mark.parametrize(
    "stderr",
    [
        "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
        "error during connect: Get http://10.0.0.9:2375/v1.41/containers/json: dial tcp 10.0.0.9:2375: i/o timeout",
    ],
)
def test_unreachable_engine(use_fake, stderr: str) -> None:
    use_fake(f"echo '{stderr}' >&2; exit 1")
    with pytest.raises(EngineUnavailableError):
        runner.run_compose("p", None, ["ps"], docker_url="unix:///x.sock")


@pytest.mark.parametrize(
    ("stderr", "image"),
    [
        (" Container decnet-fleet-a  Error response from daemon: No such image: decnet/nope:1", "decnet/nope:1"),
        ("Error response from daemon: pull access denied for acme/tool, repository does not exist", "acme/tool"),
    ],
)
def test_missing_image(use_fake, stderr: str, image: str) -> None:
    use_fake(f"echo '{stderr}' >&2; exit 1")
    with pytest.raises(ImageMissingError) as caught:
        runner.run_compose("p", None, ["up"], docker_url="unix:///x.sock")
    assert caught.value.extra["image"] == image


def test_timeout_kills_the_whole_group(use_fake, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # The fake starts a grandchild that would outlive a plain kill of the direct child.
    use_fake(f"sleep 60 & echo $! > {pidfile}; echo started >&2; wait")
    started = time.monotonic()
    with pytest.raises(ComposeCommandError, match="timed out") as caught:
        runner.run_compose("p", None, ["up"], docker_url="unix:///x.sock", timeout=1)
    assert time.monotonic() - started < 5
    assert caught.value.returncode is None
    assert "started" in caught.value.stderr_tail
    grandchild = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the grandchild survived the timeout")


def test_real_binary_reports_failures(settings, tmp_path: Path) -> None:
    """The real binary (not the exit-status-swallowing shim) turns a bad file into an error."""
    settings.DECNET_COMPOSE_BINARY = ""
    bad = tmp_path / "bad.yml"
    bad.write_text("services:\n  a:\n    image: [not, a, string]\n")
    with pytest.raises(ComposeCommandError):
        runner.run_compose("p", bad, ["config", "--quiet"], docker_url="unix:///nonexistent.sock")
