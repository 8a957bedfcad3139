"""The topology and lifecycle admin cannot put rows into an illegal state."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from lifecycle import services as lifecycle_services
from tests.lifecycle.factories import make_row
from topology import services
from topology.models import LAN, Topology

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "r@example.com", "pw"))
    return client


def _inline_management(prefix: str, total: int = 0) -> dict[str, str]:
    return {f"{prefix}-TOTAL_FORMS": str(total), f"{prefix}-INITIAL_FORMS": "0"}


def test_admin_creates_topology_through_services(admin_client_: Client) -> None:
    data = {"name": "maze-admin", "description": ""}
    for prefix in ("lans", "deckies", "edges", "status_events"):
        data.update(_inline_management(prefix))
    response = admin_client_.post(reverse("admin:topology_topology_add"), data)
    assert response.status_code == 302, response.content[:2000]
    topology = Topology.objects.get(name="maze-admin")
    assert (topology.status, topology.version) == ("pending", 1)


def test_status_is_not_an_admin_field(admin_client_: Client) -> None:
    topology = services.topology_create(name="maze")
    page = admin_client_.get(reverse("admin:topology_topology_change", args=[topology.pk]))
    assert page.status_code == 200
    assert b'name="status"' not in page.content
    assert b'name="version"' not in page.content


def test_inlines_locked_once_not_pending(admin_client_: Client) -> None:
    topology = services.topology_create(name="maze")
    LAN.objects.create(topology=topology, name="dmz", subnet="10.1.0.0/24", is_dmz=True)
    services.topology_transition(topology_id=topology.pk, to="deploying")
    page = admin_client_.get(reverse("admin:topology_topology_change", args=[topology.pk]))
    assert b'name="lans-0-subnet"' not in page.content
    assert b'name="name"' not in page.content


def test_terminal_lifecycle_row_cannot_be_edited_in_admin(admin_client_: Client) -> None:
    row = make_row("d", "deploy")
    lifecycle_services.lifecycle_fail(row.pk, "boom")
    url = reverse("admin:lifecycle_deckylifecycle_change", args=[row.pk])
    admin_client_.post(url, {"status": "pending", "error": ""})
    row.refresh_from_db()
    assert (row.status, row.error) == ("failed", "boom")
    assert b'name="status"' not in admin_client_.get(url).content
