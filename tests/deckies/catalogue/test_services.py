"""The service registry, the container environment contract and bring-your-own services."""

from __future__ import annotations

import json

import pytest

from deckies.catalogue import images
from deckies.catalogue.errors import ConfigValidationError, UnknownServiceError
from deckies.catalogue.fields import FieldType
from deckies.catalogue.services import (
    ServiceSpec,
    all_services,
    container_environment,
    fleet_singletons,
    get_service,
    make_custom_service,
    per_decky_service_slugs,
    per_decky_services,
    validate_service_config,
)

# slug -> TCP ports, from the reference catalogue.
EXPECTED_PORTS: dict[str, tuple[int, ...]] = {
    "conpot": (502, 161, 80),
    "dns": (53,),
    "docker_api": (2375, 2376),
    "elasticsearch": (9200,),
    "ftp": (21,),
    "http": (80,),  # 443 belongs to https; both share one network namespace
    "https": (443,),
    "imap": (143, 993),
    "k8s": (6443, 8080),
    "ldap": (389, 636),
    "llmnr": (5355, 5353),
    "mongodb": (27017,),
    "mqtt": (1883,),
    "mssql": (1433,),
    "mysql": (3306,),
    "pop3": (110, 995),
    "postgres": (5432,),
    "rdp": (3389,),
    "redis": (6379,),
    "sip": (5060,),
    "smb": (445, 139),
    "smtp": (25, 587),
    "smtp_relay": (25, 587),
    "sniffer": (),
    "snmp": (161,),
    "ssh": (22,),
    "telnet": (23,),
    "tftp": (69,),
    "vnc": (5900,),
}

EXPECTED_KEYS: dict[str, tuple[str, ...]] = {
    "ssh": ("password", "user", "user_password", "hostname"),
    "telnet": ("password", "user", "user_password", "hostname"),
    "http": ("server_header", "response_code", "fake_app", "extra_headers", "custom_body", "http_versions"),
    "https": (
        "server_header",
        "response_code",
        "fake_app",
        "extra_headers",
        "custom_body",
        "http_versions",
        "tls_cn",
        "tls_cert",
        "tls_key",
    ),
    "dns": (
        "zone_mode",
        "domain",
        "bind_version",
        "nsid",
        "extra_records",
        "real_recursive",
        "upstream",
        "forward_budget",
        "forward_window",
        "state_path",
    ),
    "mysql": ("version",),
    "redis": ("version", "os_string"),
    "rdp": ("nla",),
    "smtp": ("banner", "mta"),
    "smtp_relay": (
        "banner",
        "mta",
        "upstream_host",
        "upstream_port",
        "upstream_user",
        "upstream_pass",
        "upstream_sender",
        "probe_limit",
    ),
    "ftp": ("banner",),
    "mssql": ("version",),
    "vnc": ("version",),
    "postgres": ("version",),
    "mongodb": ("version",),
    "elasticsearch": ("version", "cluster_name"),
    "imap": ("banner",),
    "pop3": ("banner",),
    "ldap": ("base_dn",),
    "k8s": ("version",),
    "docker_api": ("version",),
    "sip": ("user_agent",),
    "snmp": ("community", "sys_descr"),
}

EXPECTED_DEFAULTS = [
    ("ftp", "banner", "ProFTPD 1.3.8 Server"),
    ("mysql", "version", "8.0.36"),
    ("redis", "version", "7.2.4"),
    ("ssh", "user", "ubuntu"),
    ("ssh", "password", "admin"),
    ("http", "response_code", 200),
    ("http", "http_versions", ("http/1.1",)),
    ("rdp", "nla", False),
    ("dns", "zone_mode", "auth"),
    ("dns", "upstream", "8.8.8.8:53"),
    ("smtp_relay", "upstream_port", 25),
    ("smtp_relay", "probe_limit", 1),
    ("smtp", "mta", "postfix"),
]


def test_registry_has_exactly_the_reference_services() -> None:
    assert {spec.slug for spec in all_services()} == set(EXPECTED_PORTS)
    assert len(all_services()) == 29
    assert [spec.slug for spec in all_services()] == sorted(EXPECTED_PORTS)


def test_registry_matches_the_image_contract() -> None:
    assert {spec.slug for spec in all_services()} == set(images.SERVICE_IMAGE_FAMILY)


@pytest.mark.parametrize(("slug", "ports"), sorted(EXPECTED_PORTS.items()))
def test_service_ports_and_image(slug: str, ports: tuple[int, ...]) -> None:
    spec = get_service(slug)
    assert spec.slug == slug
    assert spec.ports == ports
    assert spec.image == images.image_for_service(slug)
    assert spec.display_name
    assert spec.description
    assert spec.protocol
    assert not spec.custom
    assert spec.custom_command is None
    assert all(1 <= port <= 65535 for port in (*spec.ports, *spec.udp_ports))


@pytest.mark.parametrize("slug", sorted(EXPECTED_PORTS))
def test_config_keys(slug: str) -> None:
    assert get_service(slug).config_keys == EXPECTED_KEYS.get(slug, ())


@pytest.mark.parametrize(("slug", "key", "default"), EXPECTED_DEFAULTS)
def test_realistic_defaults(slug: str, key: str, default: object) -> None:
    field = next(f for f in get_service(slug).config_schema if f.key == key)
    assert field.default == default


def test_secret_fields() -> None:
    secrets = {(spec.slug, f.key) for spec in all_services() for f in spec.config_schema if f.secret}
    assert secrets == {
        ("ssh", "password"),
        ("ssh", "user_password"),
        ("telnet", "password"),
        ("telnet", "user_password"),
        ("https", "tls_cert"),
        ("https", "tls_key"),
        ("smtp_relay", "upstream_pass"),
    }


def test_https_adds_http3() -> None:
    http = next(f for f in get_service("http").config_schema if f.key == "http_versions")
    https = next(f for f in get_service("https").config_schema if f.key == "http_versions")
    assert http.choices == ("http/1.1", "http/2")
    assert https.choices == ("http/1.1", "http/2", "http/3")


@pytest.mark.parametrize(
    ("slug", "caps"),
    [
        ("ssh", ("NET_BIND_SERVICE",)),
        ("telnet", ("NET_BIND_SERVICE",)),
        ("ldap", ("NET_BIND_SERVICE",)),
        ("smb", ("NET_BIND_SERVICE",)),
        ("smtp", ("NET_BIND_SERVICE",)),
        ("smtp_relay", ("NET_BIND_SERVICE",)),
        ("sniffer", ("NET_RAW", "NET_ADMIN")),
        ("http", ()),
    ],
)
def test_caps(slug: str, caps: tuple[str, ...]) -> None:
    assert get_service(slug).cap_add == caps


def test_dns_publishes_udp_53() -> None:
    assert get_service("dns").udp_ports == (53,)


def test_singletons_are_excluded_from_per_decky_lists() -> None:
    assert [spec.slug for spec in fleet_singletons()] == ["sniffer"]
    assert "sniffer" not in per_decky_service_slugs()
    assert len(per_decky_service_slugs()) == 28
    assert list(per_decky_service_slugs()) == sorted(per_decky_service_slugs())
    assert [spec.slug for spec in per_decky_services()] == list(per_decky_service_slugs())
    assert not any(spec.fleet_singleton for spec in per_decky_services())


def test_unknown_service_lists_available_slugs() -> None:
    with pytest.raises(UnknownServiceError) as info:
        get_service("gopher")
    assert info.value.slug == "gopher"
    assert "ssh" in info.value.available
    assert "unknown service 'gopher'; available: conpot, dns," in str(info.value)


def test_get_service_consults_custom_mapping() -> None:
    custom = {"wiki": make_custom_service("wiki", "registry.local/wiki:1", None, [8080])}
    assert get_service("wiki", custom) is custom["wiki"]
    assert get_service("ssh", custom).slug == "ssh"
    with pytest.raises(UnknownServiceError) as info:
        get_service("gopher", custom)
    assert "wiki" in info.value.available


def test_validate_service_config_names_the_service() -> None:
    assert validate_service_config(get_service("rdp"), {"nla": "yes"}) == {"nla": True}
    with pytest.raises(ConfigValidationError, match="invalid config for service 'rdp'") as info:
        validate_service_config(get_service("rdp"), {"nla": "perhaps", "colour": "red"})
    assert set(info.value.errors) == {"nla", "colour"}


def test_every_schema_field_is_well_typed() -> None:
    for spec in all_services():
        for field in spec.config_schema:
            assert isinstance(field.type, FieldType)
            assert field.label


# --- container environment --------------------------------------------------------------------------------------


def test_container_environment_for_builtin() -> None:
    spec = get_service("http")
    config = validate_service_config(spec, {"response_code": "404", "server_header": "nginx", "fake_app": "jenkins"})
    env = container_environment(spec, decky_name="decky-01", hostname="SRV-ATLAS-42", config=config)
    assert env == {
        "DECNET_SERVICE": "http",
        "DECNET_DECKY": "decky-01",
        "DECNET_HOSTNAME": "SRV-ATLAS-42",
        "DECNET_SERVICE_CONFIG": '{"fake_app":"jenkins","response_code":404,"server_header":"nginx"}',
    }
    assert json.loads(env["DECNET_SERVICE_CONFIG"]) == config
    assert all(isinstance(value, str) for value in env.values())


def test_container_environment_empty_config() -> None:
    env = container_environment(get_service("tftp"), decky_name="d", hostname="h", config={})
    assert env["DECNET_SERVICE_CONFIG"] == "{}"
    assert env["DECNET_SERVICE"] == "tftp"


def test_container_environment_for_custom_service() -> None:
    spec = make_custom_service("wiki", "registry.local/wiki:1", "run --port 8080", [8080])
    env = container_environment(spec, decky_name="decky-01", hostname="web01", config={})
    assert env == {"DECNET_DECKY": "decky-01", "DECNET_HOSTNAME": "web01"}


# --- bring your own service -----------------------------------------------------------------------------------------


def test_make_custom_service() -> None:
    spec = make_custom_service("my_app-2", "registry.local:5000/team/app@sha256:abc", 'sh -c "echo hi"', [80, 443, 80])
    assert isinstance(spec, ServiceSpec)
    assert spec.custom
    assert spec.slug == "my_app-2"
    assert spec.image == "registry.local:5000/team/app@sha256:abc"
    assert spec.custom_command == ("sh", "-c", "echo hi")
    assert spec.ports == (80, 443)
    assert spec.config_schema == ()
    assert not spec.fleet_singleton


@pytest.mark.parametrize(("command", "argv"), [(None, None), ("", None), ([], None), (["a", "b c"], ("a", "b c"))])
def test_custom_command_forms(command: str | list[str] | None, argv: tuple[str, ...] | None) -> None:
    assert make_custom_service("app", "app:1", command, []).custom_command == argv


def test_custom_service_takes_no_config() -> None:
    spec = make_custom_service("app", "app:1", None, [9000])
    assert validate_service_config(spec, {}) == {}
    with pytest.raises(ConfigValidationError):
        validate_service_config(spec, {"anything": 1})


@pytest.mark.parametrize(
    ("slug", "image", "command", "ports", "bad_fields"),
    [
        ("Bad Slug", "app:1", None, [80], {"slug"}),
        ("", "app:1", None, [80], {"slug"}),
        ("x" * 65, "app:1", None, [80], {"slug"}),
        ("ssh", "app:1", None, [22], {"slug"}),
        ("sniffer", "app:1", None, [], {"slug"}),
        ("app", "", None, [80], {"image"}),
        ("app", "has space:1", None, [80], {"image"}),
        ("app", "app:1", 'sh -c "unterminated', [80], {"command"}),
        ("app", "app:1", [1, 2], [80], {"command"}),
        ("app", "app:1", None, [0], {"ports"}),
        ("app", "app:1", None, [65536], {"ports"}),
        ("app", "app:1", None, [True], {"ports"}),
        ("app", "app:1", None, ["80"], {"ports"}),
        ("BAD", "", None, [-1], {"slug", "image", "ports"}),
    ],
)
def test_custom_service_validation(
    slug: str, image: str, command: object, ports: list[object], bad_fields: set[str]
) -> None:
    with pytest.raises(ConfigValidationError, match="invalid custom service") as info:
        make_custom_service(slug, image, command, ports)  # type: ignore[arg-type]
    assert set(info.value.errors) == bad_fields


def test_builtin_slug_clash_message() -> None:
    with pytest.raises(ConfigValidationError) as info:
        make_custom_service("ssh", "app:1", None, [22])
    assert info.value.errors["slug"] == ["'ssh' is a built-in service."]
