"""Site-level checks: production settings pass ``check --deploy``, migrations apply from zero on SQLite, the
roles exist, and the admin renders every registered model for a superuser."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "decnet_site.settings", **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_production_settings_pass_check_deploy(tmp_path: Path) -> None:
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "DECNET_DATA_DIR": str(tmp_path),
            "DECNET_SECRET_KEY": secrets.token_urlsafe(64),
            "DECNET_DEBUG": "0",
            "DECNET_ALLOWED_HOSTS": "decnet.example.com",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_secret_key_is_generated_once_and_private(tmp_path: Path) -> None:
    env = {"DECNET_DATA_DIR": str(tmp_path), "DECNET_SECRET_KEY": "", "DATABASE_URL": f"sqlite:///{tmp_path}/d.db"}
    script = "from django.conf import settings; print(settings.SECRET_KEY)"
    first = _manage("shell", "-c", script, env=env)
    second = _manage("shell", "-c", script, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert len(first.stdout.strip()) >= 50
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_migrations_apply_from_zero_on_sqlite(tmp_path: Path) -> None:
    env = {"DECNET_DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}"}
    migrate = _manage("migrate", "--noinput", env=env)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    journal = _manage(
        "shell",
        "-c",
        "from django.db import connection; c=connection.cursor(); "
        "c.execute('PRAGMA journal_mode'); print(c.fetchone()[0])",
        env=env,
    )
    assert journal.stdout.strip().splitlines()[-1] == "wal"


def test_no_missing_migrations(tmp_path: Path) -> None:
    result = _manage(
        "makemigrations", "--check", "--dry-run", env={"DATABASE_URL": f"sqlite:///{tmp_path / 'm.sqlite3'}"}
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_roles_exist_with_expected_rights() -> None:
    viewer = Group.objects.get(name="viewer")
    operator = Group.objects.get(name="operator")
    viewer_codes = set(viewer.permissions.values_list("codename", flat=True))
    operator_codes = set(operator.permissions.values_list("codename", flat=True))
    assert "view_decky" in viewer_codes
    assert "operate_decky" not in viewer_codes
    assert all(code.startswith("view_") for code in viewer_codes)
    assert {"operate_decky", "add_decky", "change_topology", "view_deckylifecycle"} <= operator_codes


@pytest.mark.django_db
def test_admin_renders_every_model_for_superuser() -> None:
    User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(User.objects.get(username="root"))
    for model in admin.site._registry:
        opts = model._meta
        for view in ("changelist", "add"):
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}")
            response = client.get(url)
            assert response.status_code in (200, 403), f"{url} -> {response.status_code}"
        assert client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")).status_code == 200
