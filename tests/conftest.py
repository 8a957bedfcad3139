"""Shared fixtures: API clients per role, and the suite-wide guard that CI never skips real-service tests."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from rest_framework.test import APIClient

REAL_SERVICE_MARKERS = ("docker", "redis", "postgres")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """In CI the real services are a requirement: a skipped docker/redis/postgres test is reported as failed."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and any(item.get_closest_marker(m) for m in REAL_SERVICE_MARKERS):
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} needs a real service and was skipped; CI never skips these ({report.longrepr})"
        )


def _user_in(group_name: str | None, username: str, superuser: bool = False) -> User:
    # Imported late so pure tests can run with the Django plugin disabled.
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(username=username, password="pw-" + username, is_superuser=superuser)
    if group_name:
        user.groups.add(Group.objects.get(name=group_name))
    return user


@pytest.fixture
def viewer(db: None) -> User:
    return _user_in("viewer", "viewer")


@pytest.fixture
def operator(db: None) -> User:
    return _user_in("operator", "operator")


@pytest.fixture
def admin_user(db: None) -> User:
    return _user_in(None, "root", superuser=True)


@pytest.fixture
def anon_client() -> APIClient:
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def viewer_client(viewer: User) -> APIClient:
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(viewer)
    return client


@pytest.fixture
def operator_client(operator: User) -> APIClient:
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(operator)
    return client


@pytest.fixture
def default_names(settings: Any) -> None:
    """Docker names and image references as an installation with default settings renders them (golden files and
    name tests compare against those, whatever prefix this test run uses to keep off other runs' containers)."""
    settings.DECNET_NAME_PREFIX = "decnet"
    settings.DECNET_IMAGE_REPOSITORY = "decnet"
