"""Schemathesis fuzz of the OpenAPI schema against the WSGI app in process: no operation answers 5xx.

Requests carry an operator token, so every write path is reachable. The engine facade is the recording fake
(Docker is beside the point), tasks never run (their on-commit hooks are discarded with each test's transaction),
and examples are bounded so the module runs in well under a minute. Covers the fleet, lifecycle, event, catalogue
and host routes; ``/health/`` is left out because 503 is its documented answer when a dependency is down.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import Group, User
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from tests.deckies import fakes
from tests.deckies.factories import DeckyFactory

FUZZED_PATHS = r"^/api/v1/(deckies|lifecycle|events|services|archetypes|distros|hosts)/"

# The exhaustive "coverage" phase alone takes longer than the whole budget; examples + random fuzzing fit in it.
CONFIG = SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}}})
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application(), config=CONFIG).include(
    path_regex=FUZZED_PATHS
)


@pytest.fixture
def keep_test_connection() -> Iterator[None]:
    """As Django's test client does: requests must not close the connection that holds the test's transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def token(db: None, keep_test_connection: None, monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Any) -> str:
    settings.DECNET_DATA_DIR = tmp_path
    fakes.install(monkeypatch)
    user = User.objects.create_user(username="fuzz-operator", password="unused-password-1")
    user.groups.add(Group.objects.get(name="operator"))
    DeckyFactory.create(name="web-01", services=["ssh", "http"])  # so name lookups sometimes hit a real row
    return Token.objects.create(user=user).key


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case: Any, token: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=[not_a_server_error])
