"""The honeypot service registry: what each service is, which ports it listens on and how it is configured.

Built-in services run a locally built image (see :mod:`deckies.catalogue.images`); bring-your-own services
("BYOS", :func:`make_custom_service`) run an operator-supplied image and are not part of the built-in registry:
callers keep them in their own mapping and pass it to :func:`get_service`.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from deckies.catalogue import images
from deckies.catalogue.errors import ConfigValidationError, UnknownServiceError
from deckies.catalogue.fields import ConfigField, ConfigValue, FieldType, validate_config

CUSTOM_SLUG_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
_IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")
NET_BIND_SERVICE = "NET_BIND_SERVICE"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSpec:
    """One service a decky can run.

    ``ports`` are TCP ports inside the decky's network namespace; ``udp_ports`` are only published on topology
    gateways. A ``fleet_singleton`` runs once per fleet and is never assigned to a decky. ``custom`` services
    (BYOS) have no config schema and run ``image`` with ``custom_command`` (``None``: the image's own command).
    """

    slug: str
    display_name: str
    description: str
    ports: tuple[int, ...]
    custom_image: str = ""
    protocol: str = ""
    udp_ports: tuple[int, ...] = ()
    fleet_singleton: bool = False
    config_schema: tuple[ConfigField, ...] = ()
    cap_add: tuple[str, ...] = ()
    custom: bool = False
    custom_command: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        keys = [field.key for field in self.config_schema]
        if len(keys) != len(set(keys)):
            raise ValueError(f"service {self.slug!r} declares a config key twice")

    @property
    def image(self) -> str:
        """The image the service runs: the operator's for a custom service, else its family's local build
        (resolved when asked, since the image repository is a setting)."""
        return self.custom_image if self.custom else images.image_for_service(self.slug)

    @property
    def config_keys(self) -> tuple[str, ...]:
        """The keys of the config schema, in declaration order."""
        return tuple(field.key for field in self.config_schema)


# --- config schemas -------------------------------------------------------------------------------------------------


def _string(key: str, label: str, default: str | None = None, *, help: str = "", placeholder: str = "") -> ConfigField:
    """A plain text field of at most 256 characters."""
    return ConfigField(
        key=key, label=label, type=FieldType.STRING, default=default, help=help, placeholder=placeholder, max_length=256
    )


def _login_schema(default_user: str) -> tuple[ConfigField, ...]:
    """ssh / telnet: a root password, one unprivileged user and the hostname shown in the prompt."""
    return (
        ConfigField(key="password", label="Root password", type=FieldType.PASSWORD, default="admin", secret=True,
                    help="Password accepted for root.", max_length=128),
        ConfigField(key="user", label="User name", type=FieldType.STRING, default=default_user, max_length=32,
                    help="An unprivileged account that accepts logins."),
        ConfigField(key="user_password", label="User password", type=FieldType.PASSWORD, default="admin",
                    secret=True, max_length=128),
        ConfigField(key="hostname", label="Shell hostname", type=FieldType.STRING, max_length=253,
                    placeholder="the decky's hostname", help="Hostname shown in the shell prompt."),
    )  # fmt: skip


HTTP_VERSIONS = ("http/1.1", "http/2")
HTTPS_VERSIONS = (*HTTP_VERSIONS, "http/3")
FAKE_APPS = ("none", "wordpress", "phpmyadmin", "tomcat", "jenkins")


def _http_schema(versions: tuple[str, ...]) -> tuple[ConfigField, ...]:
    return (
        _string("server_header", "Server header", "Apache/2.4.58 (Ubuntu)"),
        ConfigField(key="response_code", label="Response code", type=FieldType.INT, default=200, min_value=100,
                    max_value=599),
        ConfigField(key="fake_app", label="Fake application", type=FieldType.ENUM, default="none", choices=FAKE_APPS,
                    help="Login page and paths of a well-known web application to imitate."),
        ConfigField(key="extra_headers", label="Extra headers", type=FieldType.TEXTAREA,
                    help="JSON object of extra response headers.", placeholder='{"X-Powered-By": "PHP/8.2.12"}'),
        ConfigField(key="custom_body", label="Custom body", type=FieldType.TEXTAREA,
                    help="Response body served instead of the built-in page."),
        ConfigField(key="http_versions", label="HTTP versions", type=FieldType.MULTI_ENUM, default=("http/1.1",),
                    choices=versions),
    )  # fmt: skip


_TLS_SCHEMA = (
    _string("tls_cn", "TLS common name", placeholder="the decky's hostname"),
    ConfigField(key="tls_cert", label="TLS certificate (PEM)", type=FieldType.TEXTAREA, secret=True,
                help="Leave empty for a self-signed certificate."),
    ConfigField(key="tls_key", label="TLS private key (PEM)", type=FieldType.TEXTAREA, secret=True),
)  # fmt: skip

MTAS = ("postfix", "exim", "sendmail")
_SMTP_SCHEMA = (
    _string("banner", "Greeting banner", "ESMTP Postfix (Ubuntu)", help="Text after '220 <hostname>'."),
    ConfigField(key="mta", label="Mail transfer agent", type=FieldType.ENUM, default="postfix", choices=MTAS),
)
_SMTP_RELAY_SCHEMA = (
    *_SMTP_SCHEMA,
    _string("upstream_host", "Upstream relay host", help="Where the few probe messages are really delivered."),
    ConfigField(key="upstream_port", label="Upstream port", type=FieldType.INT, default=25, min_value=1,
                max_value=65535),
    _string("upstream_user", "Upstream user"),
    ConfigField(key="upstream_pass", label="Upstream password", type=FieldType.PASSWORD, secret=True, max_length=256),
    _string("upstream_sender", "Upstream envelope sender"),
    ConfigField(key="probe_limit", label="Probe limit", type=FieldType.INT, default=1, min_value=0, max_value=100,
                help="How many relay-test messages are really delivered before the relay goes quiet."),
)  # fmt: skip

DNS_ZONE_MODES = ("auth", "recursive", "open")
_DNS_SCHEMA = (
    ConfigField(key="zone_mode", label="Zone mode", type=FieldType.ENUM, default="auth", choices=DNS_ZONE_MODES),
    _string("domain", "Domain", placeholder="corp.local"),
    _string("bind_version", "version.bind answer", "9.18.28-1~deb12u2-Debian"),
    _string("nsid", "NSID"),
    ConfigField(key="extra_records", label="Extra records", type=FieldType.TEXTAREA,
                help="Zone-file lines added to the served zone."),
    ConfigField(key="real_recursive", label="Really recurse", type=FieldType.BOOL, default=False),
    _string("upstream", "Upstream resolver", "8.8.8.8:53"),
    ConfigField(key="forward_budget", label="Forward budget", type=FieldType.INT, default=50, min_value=0,
                max_value=100000, help="Queries forwarded upstream per window."),
    _string("forward_window", "Forward window (seconds)", "1.0"),
    _string("state_path", "State path", placeholder="/var/lib/decnet/dns"),
)  # fmt: skip


# --- the registry ---------------------------------------------------------------------------------------------------


def _builtin(
    slug: str,
    display_name: str,
    description: str,
    ports: tuple[int, ...],
    protocol: str,
    *,
    schema: tuple[ConfigField, ...] = (),
    udp_ports: tuple[int, ...] = (),
    cap_add: tuple[str, ...] = (),
    fleet_singleton: bool = False,
) -> ServiceSpec:
    return ServiceSpec(
        slug=slug,
        display_name=display_name,
        description=description,
        ports=ports,
        udp_ports=udp_ports,
        protocol=protocol,
        fleet_singleton=fleet_singleton,
        config_schema=schema,
        cap_add=cap_add,
    )


_BUILTINS: tuple[ServiceSpec, ...] = (
    _builtin("ssh", "SSH", "Interactive SSH server with a fake shell; records logins, commands and dropped files.",
             (22,), "SSH-2.0 (Cowrie)", schema=_login_schema("ubuntu"), cap_add=(NET_BIND_SERVICE,)),
    _builtin("telnet", "Telnet", "Telnet login with a fake shell; records credentials and commands.",
             (23,), "Telnet (Cowrie)", schema=_login_schema("admin"), cap_add=(NET_BIND_SERVICE,)),
    _builtin("ftp", "FTP", "FTP server that records login attempts.", (21,), "FTP",
             schema=(_string("banner", "Greeting banner", "ProFTPD 1.3.8 Server"),)),
    _builtin("tftp", "TFTP", "TFTP server that records read and write requests.", (69,), "TFTP (UDP)",
             udp_ports=(69,)),
    _builtin("http", "HTTP", "Web server with optional fake application login pages.", (80,), "HTTP/1.1",
             schema=_http_schema(HTTP_VERSIONS)),
    _builtin("https", "HTTPS", "TLS web server with optional fake application login pages.", (443,),
             "HTTPS (TLS 1.2/1.3)", schema=(*_http_schema(HTTPS_VERSIONS), *_TLS_SCHEMA)),
    _builtin("smb", "SMB", "Windows file sharing endpoint; records NTLM authentication attempts.", (445, 139),
             "SMB2/NetBIOS", cap_add=(NET_BIND_SERVICE,)),
    _builtin("rdp", "RDP", "Remote Desktop endpoint; records connection attempts and credentials.", (3389,),
             "RDP (X.224/TLS)",
             schema=(ConfigField(key="nla", label="Require NLA", type=FieldType.BOOL, default=False,
                                 help="Advertise Network Level Authentication (CredSSP)."),)),
    _builtin("vnc", "VNC", "VNC server that records authentication attempts.", (5900,), "RFB",
             schema=(_string("version", "RFB version", "RFB 003.008"),)),
    _builtin("smtp", "SMTP", "Mail server that accepts and quarantines messages.", (25, 587), "ESMTP",
             schema=_SMTP_SCHEMA, cap_add=(NET_BIND_SERVICE,)),
    _builtin("smtp_relay", "SMTP open relay", "Apparent open mail relay that quarantines spam runs.", (25, 587),
             "ESMTP (open relay)", schema=_SMTP_RELAY_SCHEMA, cap_add=(NET_BIND_SERVICE,)),
    _builtin("imap", "IMAP", "IMAP mail access that records logins.", (143, 993), "IMAP4rev1",
             schema=(_string("banner", "Greeting banner", "Dovecot (Ubuntu) ready."),)),
    _builtin("pop3", "POP3", "POP3 mail access that records logins.", (110, 995), "POP3",
             schema=(_string("banner", "Greeting banner", "Dovecot (Ubuntu) ready."),)),
    _builtin("ldap", "LDAP", "Directory server that records binds and searches.", (389, 636), "LDAPv3",
             schema=(_string("base_dn", "Naming context", "DC=corp,DC=local"),), cap_add=(NET_BIND_SERVICE,)),
    _builtin("llmnr", "LLMNR / mDNS", "Name-resolution responder that records poisoning and lookups.", (5355, 5353),
             "LLMNR, mDNS", udp_ports=(5355, 5353)),
    _builtin("mysql", "MySQL", "MySQL server that records login attempts.", (3306,), "MySQL protocol 10",
             schema=(_string("version", "Server version", "8.0.36"),)),
    _builtin("postgres", "PostgreSQL", "PostgreSQL server that records login attempts.", (5432,), "PostgreSQL v3",
             schema=(_string("version", "Server version", "16.2"),)),
    _builtin("mssql", "Microsoft SQL Server", "SQL Server endpoint that records login attempts.", (1433,), "TDS",
             schema=(_string("version", "Server version", "15.0.2000.5"),)),
    _builtin("mongodb", "MongoDB", "MongoDB server that records handshakes and commands.", (27017,), "MongoDB wire",
             schema=(_string("version", "Server version", "7.0.5"),)),
    _builtin("redis", "Redis", "Redis server that records commands.", (6379,), "RESP",
             schema=(_string("version", "Server version", "7.2.4"),
                     _string("os_string", "INFO os", "Linux 6.1.0-18-amd64 x86_64"))),
    _builtin("elasticsearch", "Elasticsearch", "Elasticsearch REST API that records queries.", (9200,), "HTTP/JSON",
             schema=(_string("version", "Version", "8.12.2"),
                     _string("cluster_name", "Cluster name", "elasticsearch"))),
    _builtin("mqtt", "MQTT", "MQTT broker that records connections and publishes.", (1883,), "MQTT 3.1.1/5"),
    _builtin("snmp", "SNMP", "SNMP agent that records community strings and queries.", (161,), "SNMP v1/v2c (UDP)",
             udp_ports=(161,),
             schema=(_string("community", "Community", "public"),
                     _string("sys_descr", "sysDescr", "Linux srv01 5.15.0-91-generic #101-Ubuntu SMP x86_64"))),
    _builtin("sip", "SIP", "SIP endpoint that records registrations and calls.", (5060,), "SIP/2.0",
             udp_ports=(5060,), schema=(_string("user_agent", "User-Agent", "Asterisk PBX 18.21.0"),)),
    _builtin("k8s", "Kubernetes API", "Kubernetes API server that records API calls.", (6443, 8080), "HTTPS/JSON",
             schema=(_string("version", "gitVersion", "v1.29.2"),)),
    _builtin("docker_api", "Docker API", "Exposed Docker Engine API that records API calls.", (2375, 2376),
             "HTTP/JSON", schema=(_string("version", "Engine version", "24.0.7"),)),
    _builtin("conpot", "Industrial control (Conpot)", "ICS/SCADA device with Modbus, SNMP and a web HMI.",
             (502, 161, 80), "Modbus/TCP, SNMP, HTTP", udp_ports=(161,)),
    _builtin("dns", "DNS", "DNS server: authoritative, recursive or open resolver.", (53,), "DNS", udp_ports=(53,),
             schema=_DNS_SCHEMA),
    _builtin("sniffer", "Sniffer", "Fleet-wide passive traffic capture (one per fleet).", (), "passive capture",
             cap_add=("NET_RAW", "NET_ADMIN"), fleet_singleton=True),
)  # fmt: skip

_REGISTRY: dict[str, ServiceSpec] = {spec.slug: spec for spec in _BUILTINS}


def get_service(slug: str, custom: Mapping[str, ServiceSpec] | None = None) -> ServiceSpec:
    """The built-in service ``slug``, else the custom one from ``custom``; :class:`UnknownServiceError` otherwise."""
    spec = _REGISTRY.get(slug)
    if spec is None and custom is not None:
        spec = custom.get(slug)
    if spec is None:
        raise UnknownServiceError(slug, [*_REGISTRY, *(custom or {})])
    return spec


def all_services() -> tuple[ServiceSpec, ...]:
    """Every built-in service (singletons included), sorted by slug."""
    return tuple(sorted(_BUILTINS, key=lambda spec: spec.slug))


def per_decky_services() -> tuple[ServiceSpec, ...]:
    """Built-in services a decky can run (fleet singletons excluded), sorted by slug."""
    return tuple(spec for spec in all_services() if not spec.fleet_singleton)


def per_decky_service_slugs() -> tuple[str, ...]:
    """Slugs of :func:`per_decky_services`: the pool for random assignment and the known per-decky services."""
    return tuple(spec.slug for spec in per_decky_services())


def fleet_singletons() -> tuple[ServiceSpec, ...]:
    """Built-in services that run once per fleet, sorted by slug."""
    return tuple(spec for spec in all_services() if spec.fleet_singleton)


def validate_service_config(spec: ServiceSpec, raw: Mapping[str, object]) -> dict[str, ConfigValue]:
    """:func:`validate_config` against ``spec``'s schema, naming the service in the error message."""
    try:
        return validate_config(spec.config_schema, raw)
    except ConfigValidationError as exc:
        raise ConfigValidationError(exc.errors, context=f"invalid config for service {spec.slug!r}") from None


def make_custom_service(
    slug: str, image: str, command: str | Sequence[str] | None, ports: Iterable[int]
) -> ServiceSpec:
    """A bring-your-own service running ``image``.

    ``command`` is an argv list or a shell-like string (split with :func:`shlex.split`); empty means the image's own
    command. ``ports`` are TCP ports (1-65535, de-duplicated, order kept). Raises :class:`ConfigValidationError`
    listing every problem (bad slug or a built-in's slug, bad image reference, bad command or ports).
    """
    errors: dict[str, list[str]] = {}
    if not isinstance(slug, str) or not CUSTOM_SLUG_RE.match(slug):
        errors["slug"] = [f"must match {CUSTOM_SLUG_RE.pattern}."]
    elif slug in _REGISTRY:
        errors["slug"] = [f"{slug!r} is a built-in service."]
    if not isinstance(image, str) or not _IMAGE_RE.match(image):
        errors["image"] = ["must be an image reference such as 'registry.local/team/app:1.0'."]
    argv: tuple[str, ...] | None = None
    try:
        argv = tuple(shlex.split(command) if isinstance(command, str) else (command or ()))
    except ValueError as exc:
        errors["command"] = [f"cannot be parsed: {exc}."]
    if argv is not None and not all(isinstance(arg, str) for arg in argv):
        errors["command"] = ["must be a string or a list of strings."]
    port_list = list(ports)
    bad_ports = [p for p in port_list if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 65535]
    if bad_ports:
        errors["ports"] = [f"must be integers from 1 to 65535; invalid: {bad_ports!r}."]
    if errors:
        raise ConfigValidationError(errors, context="invalid custom service")
    return ServiceSpec(
        slug=slug,
        display_name=slug,
        description=f"Custom service running {image}.",
        ports=tuple(dict.fromkeys(port_list)),
        custom_image=image,
        protocol="custom",
        custom=True,
        custom_command=argv or None,
    )


def container_environment(
    spec: ServiceSpec, *, decky_name: str, hostname: str, config: Mapping[str, ConfigValue]
) -> dict[str, str]:
    """The environment of a service container (the contract documented in :mod:`deckies.catalogue.images`).

    ``config`` must already be validated (:func:`validate_service_config`); it is serialised as compact JSON with
    sorted keys. Custom services get only ``DECNET_DECKY`` and ``DECNET_HOSTNAME``.
    """
    env = {"DECNET_DECKY": decky_name, "DECNET_HOSTNAME": hostname}
    if spec.custom:
        return env
    return {
        "DECNET_SERVICE": spec.slug,
        **env,
        "DECNET_SERVICE_CONFIG": json.dumps(dict(config), sort_keys=True, separators=(",", ":")),
    }
