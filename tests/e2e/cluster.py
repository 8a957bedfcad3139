"""What the end-to-end tests share: a real ``manage.py qcluster`` process group, an operator account, polling."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.contrib.auth.models import Group, Permission, User
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"succeeded", "failed"}


def redis_url_with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


class Worker:
    """One ``manage.py qcluster`` process group against the test database and a private Redis database."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **extra_env: str) -> None:
        handle = open(self.log, "ab")  # noqa: SIM115 - kept open for the life of the process
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env={**self.env, **extra_env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()

    def kill(self) -> None:
        """SIGKILL the whole process group: no worker gets to run a ``finally``."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM to the cluster's main process (its own graceful stop), then SIGKILL whatever of it is left."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        self.proc = None


def operator_user() -> User:
    """A member of the operator role. Built here, not by the shared fixture: an earlier transactional test's flush
    removes the groups the roles migration created (permissions come back with post_migrate, groups do not)."""
    group, _ = Group.objects.get_or_create(name="operator")
    group.permissions.set(Permission.objects.filter(content_type__app_label__in=["deckies", "topology", "lifecycle"]))
    user = User.objects.create_user(username=f"e2e-{secrets.token_hex(3)}", password=secrets.token_urlsafe(12))
    user.groups.add(group)
    return user


def wait_for(condition: Callable[[], Any], timeout: float, what: str, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    pytest.fail(f"timed out after {timeout} s waiting for {what}\n--- worker log ---\n{tail}")


def poll_until_terminal(client: APIClient, response: Any, log: Path, timeout: float = 240) -> list[dict[str, Any]]:
    assert response.status_code == 202, response.content
    location = response["Location"]

    def done() -> list[dict[str, Any]] | None:
        rows = client.get(location).json()["rows"]
        return rows if rows and all(row["status"] in TERMINAL for row in rows) else None

    rows: list[dict[str, Any]] = wait_for(done, timeout, f"lifecycle rows at {location}", log)
    return rows
