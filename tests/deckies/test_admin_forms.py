"""The admin's change forms, posted as a browser posts them: every invariant the API enforces holds here too,
because the admin saves through the same services (no decky without a service, no duplicate address, allocation
of an empty one, catalogue checks, no delete of what is deployed or in use, state never written by hand)."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from deckies.choices import DeckyState
from deckies.models import CustomService, Decky, DeckyService, Host, Network
from tests.deckies.factories import DeckyFactory, HostFactory, NetworkFactory, set_state

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    admin_user.is_staff = True
    admin_user.save()
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def network() -> Network:
    return NetworkFactory.create(name="office", subnet="10.90.0.0/24")


def decky_form(network: Network, services: list[tuple[str, str]], **fields: Any) -> dict[str, Any]:
    """The POST body of the decky add/change form with its service inline."""
    data: dict[str, Any] = {
        "name": "web-01",
        "network": network.pk,
        "host": "",
        "hostname": "",
        "ip": "",
        "mac_address": "",
        "distro": "debian",
        "archetype": "",
        "nmap_os": "linux",
        "mutate_interval": "",
        "services-TOTAL_FORMS": str(len(services)),
        "services-INITIAL_FORMS": "0",
        "services-MIN_NUM_FORMS": "0",
        "services-MAX_NUM_FORMS": "1000",
    }
    for index, (slug, config) in enumerate(services):
        data |= {
            f"services-{index}-slug": slug,
            f"services-{index}-config": config,
            f"services-{index}-position": index,
        }
    return data | fields


def add(client: Client, data: dict[str, Any]) -> Any:
    return client.post(reverse("admin:deckies_decky_add"), data, follow=True)


def errors(response: Any) -> str:
    return html.unescape(response.content.decode())


def test_add_allocates_the_address_and_saves_the_services(admin_client: Client, network: Network) -> None:
    response = add(admin_client, decky_form(network, [("ssh", '{"user": "ops"}'), ("http", "{}")]))
    assert response.status_code == 200
    decky = Decky.objects.get(name="web-01")
    assert decky.ip == "10.90.0.2"  # the first free address after the gateway, as the API allocates it
    assert decky.hostname  # generated from the distro
    assert list(decky.services.values_list("slug", flat=True)) == ["ssh", "http"]
    assert DeckyService.objects.get(decky=decky, slug="ssh").config["user"] == "ops"
    assert decky.state == DeckyState.PENDING


def test_a_decky_without_a_service_is_refused(admin_client: Client, network: Network) -> None:
    response = add(admin_client, decky_form(network, []))
    assert "A decky needs at least one service." in errors(response)
    assert not Decky.objects.exists()


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ([("nonsense", "{}")], "unknown service"),
        ([("sniffer", "{}")], "fleet_singleton"),
        ([("http", '{"response_code": "abc"}')], "response_code"),
        ([("ssh", "{}"), ("ssh", "{}")], "duplicate"),
    ],
)
def test_catalogue_rules_apply(admin_client: Client, network: Network, services: Any, message: str) -> None:
    response = add(admin_client, decky_form(network, services))
    assert message in errors(response)
    assert not Decky.objects.exists()


def test_a_duplicate_address_is_refused_with_a_message(admin_client: Client, network: Network) -> None:
    DeckyFactory.create(name="first", network=network, ip="10.90.0.7")
    response = add(admin_client, decky_form(network, [("ssh", "{}")], ip="10.90.0.7"))
    assert "Not saved: 10.90.0.7 is already used by another decky on office" in errors(response)
    assert not Decky.objects.filter(name="web-01").exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("ip", "10.91.0.5", "is not a usable address"), ("nmap_os", "amiga", "unknown OS family"),
     ("distro", "plan9", "unknown distro"), ("name", "Bad Name", "lowercase")],
)  # fmt: skip
def test_bad_fields_are_refused(admin_client: Client, network: Network, field: str, value: str, message: str) -> None:
    response = add(admin_client, decky_form(network, [("ssh", "{}")], **{field: value}))
    assert message in errors(response)
    assert not Decky.objects.exists()


def test_change_replaces_the_services_and_keeps_the_name(admin_client: Client, network: Network) -> None:
    decky = DeckyFactory.create(name="web-01", network=network, ip="10.90.0.9", services=["ssh"])
    data = decky_form(network, [("ftp", "{}")], ip="10.90.0.9", name="renamed")
    data["services-INITIAL_FORMS"] = "0"
    DeckyService.objects.filter(decky=decky).delete()  # the inline posts the full new list
    response = admin_client.post(reverse("admin:deckies_decky_change", args=[decky.pk]), data, follow=True)
    assert response.status_code == 200
    decky.refresh_from_db()
    assert decky.name == "web-01"
    assert decky.service_slugs == ["ftp"]


def test_state_is_never_written_from_the_form(admin_client: Client, network: Network) -> None:
    decky = DeckyFactory.create(name="web-01", network=network, ip="10.90.0.9", services=["ssh"])
    data = decky_form(network, [("ssh", "{}")], ip="10.90.0.9", state="running", last_error="forged")
    DeckyService.objects.filter(decky=decky).delete()
    admin_client.post(reverse("admin:deckies_decky_change", args=[decky.pk]), data, follow=True)
    decky.refresh_from_db()
    assert (decky.state, decky.last_error) == ("pending", "")


def test_a_deployed_decky_cannot_be_deleted(admin_client: Client) -> None:
    decky = set_state(DeckyFactory.create(), DeckyState.RUNNING)
    response = admin_client.post(reverse("admin:deckies_decky_delete", args=[decky.pk]), {"post": "yes"})
    assert response.status_code == 403
    response = admin_client.post(
        reverse("admin:deckies_decky_changelist"),
        {"action": "delete_selected", "_selected_action": [decky.pk], "post": "yes"},
        follow=True,
    )
    assert Decky.objects.filter(pk=decky.pk).exists()


def test_topology_deckies_are_read_only_here(admin_client: Client) -> None:
    from tests.topology.factories import TopologyDeckyFactory

    decky = TopologyDeckyFactory.create()
    page = admin_client.get(reverse("admin:deckies_decky_change", args=[decky.pk]))
    assert page.status_code == 200
    assert b'name="hostname"' not in page.content  # shown, not editable: its topology owns it


def test_hosts_go_through_their_services(admin_client: Client) -> None:
    HostFactory.create(name="edge")
    response = admin_client.post(
        reverse("admin:deckies_host_add"), {"name": "edge", "docker_url": "tcp://10.0.0.9:2376", "status": "active"},
        follow=True,
    )  # fmt: skip
    assert "already exists" in errors(response)
    assert Host.objects.count() == 1
    host = Host.objects.get()
    DeckyFactory.create(host=host)
    response = admin_client.post(reverse("admin:deckies_host_delete", args=[host.pk]), {"post": "yes"}, follow=True)
    assert "Cannot delete host" in errors(response)  # its deckies protect it
    assert Host.objects.filter(pk=host.pk).exists()


def test_custom_services_are_checked_by_the_catalogue(admin_client: Client) -> None:
    base = {"image": "registry.local/app:1", "command": "[]", "ports": "[8080]", "description": ""}
    response = admin_client.post(reverse("admin:deckies_customservice_add"), base | {"slug": "ssh"}, follow=True)
    assert "is a built-in service" in errors(response)
    response = admin_client.post(
        reverse("admin:deckies_customservice_add"), base | {"slug": "app", "image": "not an image!"}, follow=True
    )
    assert "must be an image reference" in errors(response)
    admin_client.post(reverse("admin:deckies_customservice_add"), base | {"slug": "app"}, follow=True)
    service = CustomService.objects.get(slug="app")
    DeckyFactory.create(services=["app"])
    response = admin_client.post(
        reverse("admin:deckies_customservice_delete", args=[service.pk]), {"post": "yes"}, follow=True
    )
    assert "is used by decky(s)" in errors(response)
    assert CustomService.objects.filter(pk=service.pk).exists()


def test_a_network_with_deckies_keeps_its_subnet(admin_client: Client, network: Network) -> None:
    DeckyFactory.create(network=network, ip="10.90.0.5")
    data = {"name": "office", "driver": "bridge", "subnet": "10.92.0.0/24", "gateway": "", "parent_interface": ""}
    response = admin_client.post(reverse("admin:deckies_network_change", args=[network.pk]), data, follow=True)
    assert "its subnet cannot change" in errors(response)
    network.refresh_from_db()
    assert network.subnet == "10.90.0.0/24"
