"""DECNET's INI fleet format: text → a typed, validated :class:`FleetSpec`.

Pure: nothing here reads the database or Docker. Bring-your-own services already stored are passed in by the
caller (``custom_services``) so a decky may name them. Where the deckies land (network, addresses) is decided by
:mod:`deckies.fleet_import`, which also checks collisions with the existing fleet.

The format::

    [general]                 ; optional; at most once
    net = 10.20.0.0/24        ; fleet subnet (CIDR)
    gw = 10.20.0.1            ; gateway inside net
    interface = eth0          ; parent interface: the fleet LAN becomes macvlan on it
    log_target = 10.0.0.9:514 ; host:port
    mutate_interval = 30m     ; default rotation interval of every decky below

    [web]                     ; a decky; the section name is its name (^[a-z0-9-]{1,64}$)
    archetype = web-server    ; default services, distro and nmap_os
    services = http, ftp      ; explicit services (built-in or bring-your-own)
    ip = 10.20.0.10           ; omitted: the next free address
    nmap_os = linux           ; alias nmap-os
    distro = ubuntu22         ; extension: omitted, it rotates through the archetype's (or every) distro
    mutate_interval = 2d      ; minutes, or <n>m / <n>h / <n>d / <n>M (30 days) / <n>y (365 days); alias mutate-interval
    amount = 3                ; 1-100: expands to web-01 … web-03 (cannot be combined with ip)

    [web.http]                ; persona of service http on web (on every web-NN when web was expanded)
    server_header = nginx/1.24.0

    [custom-tarpit]           ; bring-your-own service "tarpit"
    binary = registry.local/tarpit:1.2
    exec = /usr/bin/tarpit --port 2222
    ports = 2222, 2223

Syntax (``configparser``-compatible for every file DECNET accepts, but strict): ``key = value`` or ``key: value``,
keys are case-insensitive, ``#``/``;`` start a full-line comment (never an inline one), a line indented deeper
than its key continues the value (for multi-line persona values), ``%`` has no special meaning. Unknown sections,
keys and values are errors, never ignored. Every problem is reported with its line number, all at once.
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from deckies.catalogue.archetypes import all_archetypes, get_archetype
from deckies.catalogue.distros import all_distros, distro_for_index, get_distro
from deckies.catalogue.errors import ConfigValidationError, UnknownArchetypeError, UnknownDistroError
from deckies.catalogue.fields import ConfigValue, validate_config
from deckies.catalogue.fingerprints import all_os_families
from deckies.catalogue.services import ServiceSpec, all_services, make_custom_service, per_decky_service_slugs
from deckies.models import DECKY_NAME_RE
from decnet_site.exceptions import ConflictError, DomainError, InvalidInputError

#: Largest INI accepted (bytes of UTF-8), as in DECNET.
MAX_INI_BYTES = 512 * 1024
#: ``amount`` bounds, as in DECNET.
MAX_AMOUNT = 100
#: Most deckies one file may define (after ``amount`` expansion): a bound on the work of one import.
MAX_DECKIES = 1000
#: Longest accepted rotation interval (ten years), so durations never overflow.
MAX_INTERVAL_MINUTES = 10 * 525_600

GENERAL_SECTION = "general"
CUSTOM_PREFIX = "custom-"
DECKY_KEYS = frozenset({"ip", "services", "archetype", "nmap_os", "mutate_interval", "amount", "distro"})
GENERAL_KEYS = frozenset({"net", "gw", "interface", "log_target", "mutate_interval"})
CUSTOM_KEYS = frozenset({"binary", "exec", "ports"})
#: Spellings DECNET accepts besides the canonical key.
KEY_ALIASES: dict[str, str] = {"nmap-os": "nmap_os", "mutate-interval": "mutate_interval", "log-target": "log_target"}

_NAME_RE = re.compile(DECKY_NAME_RE)
_SECTION_RE = re.compile(r"^\[(?P<name>[^\]]*)\]\s*$")
_INTERVAL_RE = re.compile(r"^(?P<n>[1-9]\d{0,9})(?P<unit>[mhdMyY]?)$")
_INTERVAL_UNITS = {"": 1, "m": 1, "h": 60, "d": 1440, "M": 43_200, "y": 525_600, "Y": 525_600}
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
_HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$")


# --- errors ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IniIssue:
    """One problem in an INI file: where (``line``, 1-based; None for the file as a whole) and what.

    ``conflict`` marks a collision (a name or address already taken, in the file or in the fleet) rather than
    malformed input; it decides between a 409 and a 400.
    """

    line: int | None
    message: str
    section: str | None = None
    conflict: bool = False

    def format(self, source: str) -> str:
        """``source:line: message`` (``source: message`` without a line)."""
        return f"{source}:{self.line}: {self.message}" if self.line else f"{source}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "section": self.section, "message": self.message}


class _IssuesMixin:
    """Shared body of the two INI errors: every issue, formatted one per line in the message."""

    issues: list[IniIssue]
    source: str

    @staticmethod
    def _detail(issues: Sequence[IniIssue], source: str) -> str:
        return "\n".join(issue.format(source) for issue in sorted(issues, key=lambda i: (i.line or 0, i.message)))


class IniError(_IssuesMixin, InvalidInputError):
    """The INI is malformed or names something that does not exist (400); ``issues`` lists every problem."""

    code = "invalid_ini"

    def __init__(self, issues: Sequence[IniIssue], source: str = "<ini>") -> None:
        self.issues = sorted(issues, key=lambda i: (i.line or 0, i.message))
        self.source = source
        super().__init__(self._detail(self.issues, source), source=source, issues=[i.as_dict() for i in self.issues])


class IniConflictError(_IssuesMixin, ConflictError):
    """Names or addresses of the INI collide, within the file or with the fleet (409); ``issues`` has the lines."""

    code = "ini_conflict"

    def __init__(self, issues: Sequence[IniIssue], source: str = "<ini>") -> None:
        self.issues = sorted(issues, key=lambda i: (i.line or 0, i.message))
        self.source = source
        super().__init__(self._detail(self.issues, source), source=source, issues=[i.as_dict() for i in self.issues])


class IniTooLargeError(DomainError):
    """The INI exceeds :data:`MAX_INI_BYTES` (413)."""

    status_code: ClassVar[int] = 413
    code: ClassVar[str] = "too_large"


def raise_issues(issues: Sequence[IniIssue], source: str) -> None:
    """Raise the error ``issues`` call for, if any: 409 when every issue is a collision, else 400 (with all)."""
    if not issues:
        return
    if all(issue.conflict for issue in issues):
        raise IniConflictError(issues, source)
    raise IniError(issues, source)


# --- the typed result ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GeneralSpec:
    """The ``[general]`` section (every field None when the section or the key is absent)."""

    net: str | None = None
    gw: str | None = None
    interface: str | None = None
    log_target: str | None = None
    mutate_interval: timedelta | None = None
    line: int | None = None
    key_lines: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CustomServiceSpec:
    """A ``[custom-<slug>]`` bring-your-own service, already validated (slug, image reference, argv, ports)."""

    slug: str
    image: str
    command: tuple[str, ...]
    ports: tuple[int, ...]
    line: int


@dataclass(frozen=True, slots=True)
class DeckySpec:
    """One decky of the file, after ``amount`` expansion, with everything resolved that needs no database.

    ``services`` are explicit, else the archetype's, else 1-3 drawn at random (seeded by the name, so a dry run
    shows exactly what an import creates); ``services_from`` says which. ``distro`` is explicit, else it rotates
    through the archetype's preferred distros (or every distro) by ``index``, the decky's position in the file.
    ``mutate_interval`` is the decky's own, else ``[general]``'s, else None (never rotated automatically).
    ``service_config`` holds the validated persona of each service that has one.
    """

    name: str
    section: str
    line: int
    index: int
    ip: str | None
    services: tuple[str, ...]
    services_from: str
    archetype: str
    distro: str
    nmap_os: str
    mutate_interval: timedelta | None
    service_config: Mapping[str, Mapping[str, ConfigValue]]
    key_lines: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """A whole INI file: ``[general]``, the deckies (file order) and the bring-your-own services it defines."""

    source: str
    general: GeneralSpec
    deckies: tuple[DeckySpec, ...]
    custom_services: tuple[CustomServiceSpec, ...]


# --- the reader ------------------------------------------------------------------------------------------------------


@dataclass
class _Entry:
    key: str
    value: str
    line: int
    indent: int


@dataclass
class _Section:
    name: str
    line: int
    entries: dict[str, _Entry] = field(default_factory=dict)


def check_size(text: str | bytes) -> None:
    """Raise :class:`IniTooLargeError` when ``text`` exceeds :data:`MAX_INI_BYTES` (UTF-8)."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8"))
    if size > MAX_INI_BYTES:
        raise IniTooLargeError(f"the INI is {size} bytes; the limit is {MAX_INI_BYTES} bytes (512 KiB)", size=size)


def decode_ini(data: bytes, source: str = "<ini>") -> str:
    """UTF-8 bytes (a BOM is allowed) → text; raises :class:`IniTooLargeError` or :class:`IniError`."""
    check_size(data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise IniError([IniIssue(line, f"the file is not UTF-8 text (byte {exc.start})")], source) from None


def _read(text: str, issues: list[IniIssue]) -> list[_Section]:
    """Split ``text`` into sections and entries, recording syntax problems (duplicates included) in ``issues``."""
    sections: list[_Section] = []
    seen: dict[str, int] = {}
    current: _Section | None = None
    last: _Entry | None = None
    blanks = 0
    for number, raw in enumerate(text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        if "\x00" in raw:
            issues.append(IniIssue(number, "NUL character in the file"))
            continue
        stripped = raw.strip()
        if not stripped:
            blanks += 1
            continue
        if stripped[0] in "#;":
            continue
        indent = len(raw) - len(raw.lstrip(" \t"))
        if last is not None and indent > last.indent:
            last.value += "\n" * (blanks + 1) + stripped
            blanks = 0
            continue
        blanks = 0
        last = None
        header = _SECTION_RE.match(stripped)
        if header:
            name = header.group("name").strip()
            if not name:
                issues.append(IniIssue(number, "empty section name"))
                current = _Section(name, number)
                continue
            if name in seen:
                issues.append(
                    IniIssue(
                        number,
                        f"section [{name}] is defined twice (first at line {seen[name]})",
                        name,
                        conflict=_is_decky_section(name),
                    )
                )
                current = _Section(name, number)  # read its keys so they raise no noise, but keep nothing
                continue
            seen[name] = number
            current = _Section(name, number)
            sections.append(current)
            continue
        if stripped.startswith("["):
            issues.append(IniIssue(number, f"malformed section header {stripped!r}"))
            current = _Section(stripped, number)
            continue
        positions = [pos for pos in (stripped.find("="), stripped.find(":")) if pos > 0]
        if not positions:
            issues.append(IniIssue(number, f"expected '[section]' or 'key = value', got {stripped[:60]!r}"))
            continue
        split = min(positions)
        key = stripped[:split].strip().lower()
        value = stripped[split + 1 :].strip()
        if current is None:
            issues.append(IniIssue(number, f"key {key!r} is outside any section"))
            continue
        canonical = KEY_ALIASES.get(key, key)
        if canonical in current.entries:
            first = current.entries[canonical]
            issues.append(
                IniIssue(
                    number, f"key {key!r} is set twice in [{current.name}] (first at line {first.line})", current.name
                )
            )
            continue
        last = _Entry(key, value, number, indent)
        current.entries[canonical] = last
    return sections


def _is_decky_section(name: str) -> bool:
    return name != GENERAL_SECTION and not name.startswith(CUSTOM_PREFIX) and "." not in name


# --- value parsers ---------------------------------------------------------------------------------------------------


def parse_interval(value: str) -> timedelta:
    """``30`` (minutes) or ``<n><unit>`` with unit m (minute), h (hour), d (day), M (30 days), y/Y (365 days).

    Raises ``ValueError`` with a readable message for anything else, zero included, or beyond ten years.
    """
    match = _INTERVAL_RE.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not an interval: use minutes (30) or <n>m, <n>h, <n>d, <n>M, <n>y (e.g. 2d)")
    minutes = int(match.group("n")) * _INTERVAL_UNITS[match.group("unit")]
    if minutes > MAX_INTERVAL_MINUTES:
        raise ValueError(f"{value!r} is longer than ten years")
    return timedelta(minutes=minutes)


def format_interval(interval: timedelta | None) -> str:
    """The shortest INI spelling of ``interval`` (``""`` for None): ``2d``, ``90m``."""
    if interval is None:
        return ""
    minutes = int(interval.total_seconds() // 60)
    for unit, size in (("y", 525_600), ("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def _parse_log_target(value: str) -> str:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"log_target {value!r} must be host:port with a port from 1 to 65535")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME_RE.match(host):
            raise ValueError(f"log_target host {host!r} is neither an IP address nor a host name") from None
    return value


def _parse_ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address") from None


def _split_list(value: str, what: str) -> list[str]:
    items = [item.strip() for item in value.split(",")]
    if not value.strip():
        raise ValueError(f"{what} is empty")
    if any(not item for item in items):
        raise ValueError(f"{what} has an empty item ({value!r})")
    return items


# --- sections --------------------------------------------------------------------------------------------------------


def _unknown_keys(section: _Section, allowed: Iterable[str], issues: list[IniIssue], what: str) -> None:
    allowed = sorted(allowed)
    for canonical, entry in section.entries.items():
        if canonical not in allowed:
            issues.append(
                IniIssue(
                    entry.line,
                    f"unknown key {entry.key!r} in {what} [{section.name}]; allowed: {', '.join(allowed)}",
                    section.name,
                )
            )


def _general(section: _Section | None, issues: list[IniIssue]) -> GeneralSpec:
    if section is None:
        return GeneralSpec()
    _unknown_keys(section, GENERAL_KEYS, issues, "section")
    values: dict[str, Any] = {}
    entries = section.entries

    def parse(key: str, parser: Any) -> None:
        entry = entries.get(key)
        if entry is None:
            return
        try:
            values[key] = parser(entry.value)
        except ValueError as exc:
            issues.append(IniIssue(entry.line, f"[general] {key}: {exc}", GENERAL_SECTION))

    def net(value: str) -> str:
        try:
            network = ipaddress.IPv4Network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an IPv4 network in CIDR form ({exc})") from None
        if network.prefixlen > 29:
            raise ValueError(f"{value} is too small for a fleet; use at most a /29")
        return str(network)

    def interface(value: str) -> str:
        if not _IFNAME_RE.match(value):
            raise ValueError(f"{value!r} is not a network interface name")
        return value

    parse("net", net)
    parse("gw", _parse_ipv4)
    parse("interface", interface)
    parse("log_target", _parse_log_target)
    parse("mutate_interval", parse_interval)
    if values.get("net") and values.get("gw"):
        network = ipaddress.IPv4Network(values["net"])
        gateway = ipaddress.IPv4Address(values["gw"])
        if gateway not in network or gateway in (network.network_address, network.broadcast_address):
            issues.append(
                IniIssue(entries["gw"].line, f"[general] gw {gateway} is not a host address of {network}", "general")
            )
    return GeneralSpec(
        net=values.get("net"),
        gw=values.get("gw"),
        interface=values.get("interface"),
        log_target=values.get("log_target"),
        mutate_interval=values.get("mutate_interval"),
        line=section.line,
        key_lines={key: entry.line for key, entry in entries.items()},
    )


def _custom(section: _Section, issues: list[IniIssue]) -> CustomServiceSpec | None:
    slug = section.name.removeprefix(CUSTOM_PREFIX)
    _unknown_keys(section, CUSTOM_KEYS, issues, "bring-your-own service")
    entries = section.entries
    if "binary" not in entries:
        issues.append(IniIssue(section.line, f"[{section.name}] needs binary = <image reference>", section.name))
        return None
    ports: list[int] = []
    if "ports" in entries and entries["ports"].value.strip():
        for item in entries["ports"].value.split(","):
            item = item.strip()
            if not item.isdigit():
                issues.append(IniIssue(entries["ports"].line, f"ports: {item!r} is not a port number", section.name))
                return None
            ports.append(int(item))
    command = entries["exec"].value if "exec" in entries else ""
    try:
        spec = make_custom_service(slug, entries["binary"].value, command, ports)
    except ConfigValidationError as exc:
        where = {"slug": section.line, "image": entries["binary"].line}
        where["command"] = entries["exec"].line if "exec" in entries else section.line
        where["ports"] = entries["ports"].line if "ports" in entries else section.line
        for key, messages in exc.errors.items():
            label = {"slug": "service name", "image": "binary", "command": "exec"}.get(key, key)
            issues.append(IniIssue(where.get(key, section.line), f"{label} {' '.join(messages)}", section.name))
        return None
    return CustomServiceSpec(
        slug=spec.slug, image=spec.image, command=spec.custom_command or (), ports=spec.ports, line=section.line
    )


def _random_services(name: str) -> tuple[str, ...]:
    # Seeded by the name: the same file always gives the same services, so a dry run shows what an import does.
    rng = random.Random(f"decnet-ini:{name}")
    pool = per_decky_service_slugs()
    return tuple(sorted(rng.sample(pool, rng.randint(1, min(3, len(pool))))))


@dataclass
class _DeckySection:
    """A decky section's parsed values before expansion."""

    section: _Section
    names: list[str]
    ip: str | None = None
    services: tuple[str, ...] | None = None
    archetype: str = ""
    distro: str | None = None
    nmap_os: str | None = None
    mutate_interval: timedelta | None = None


def _decky_section(section: _Section, known: Mapping[str, ServiceSpec], issues: list[IniIssue]) -> _DeckySection | None:
    name, entries = section.name, section.entries
    before = len(issues)
    if not _NAME_RE.match(name):
        issues.append(
            IniIssue(
                section.line,
                f"[{name}]: decky names must match {DECKY_NAME_RE} (lowercase letters, digits, hyphens; "
                "the rule the API uses, so every imported decky can be managed)",
                name,
            )
        )
    _unknown_keys(section, DECKY_KEYS, issues, "decky")
    parsed = _DeckySection(section, [name])

    def bad(key: str, message: str) -> None:
        issues.append(IniIssue(entries[key].line, f"[{name}] {key}: {message}", name))

    if "amount" in entries:
        raw = entries["amount"].value
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_AMOUNT:
            bad("amount", f"{raw!r} must be an integer from 1 to {MAX_AMOUNT}")
        else:
            amount = int(raw)
            if amount > 1:
                if "ip" in entries:
                    bad("ip", f"cannot be combined with amount = {amount} (each decky needs its own address)")
                parsed.names = [f"{name}-{i:02d}" for i in range(1, amount + 1)]
                too_long = [n for n in parsed.names if len(n) > 64]
                if too_long:
                    bad("amount", f"expanded name {too_long[-1]!r} is longer than 64 characters")
    if "ip" in entries and len(parsed.names) == 1:
        try:
            parsed.ip = _parse_ipv4(entries["ip"].value)
        except ValueError as exc:
            bad("ip", str(exc))
    if "archetype" in entries:
        try:
            parsed.archetype = get_archetype(entries["archetype"].value).slug
        except UnknownArchetypeError as exc:
            bad("archetype", f"{exc}")
    if "distro" in entries:
        try:
            parsed.distro = get_distro(entries["distro"].value).slug
        except UnknownDistroError as exc:
            bad("distro", f"{exc}")
    if "nmap_os" in entries:
        families = sorted(family.slug for family in all_os_families())
        value = entries["nmap_os"].value
        if value in families:
            parsed.nmap_os = value
        else:
            bad("nmap_os", f"unknown OS family {value!r}; known: {', '.join(families)}")
    if "mutate_interval" in entries:
        try:
            parsed.mutate_interval = parse_interval(entries["mutate_interval"].value)
        except ValueError as exc:
            bad("mutate_interval", str(exc))
    if "services" in entries:
        try:
            slugs = _split_list(entries["services"].value, "the service list")
        except ValueError as exc:
            bad("services", str(exc))
        else:
            problems = []
            for slug in slugs:
                spec = known.get(slug)
                if spec is None:
                    problems.append(f"unknown service {slug!r}")
                elif spec.fleet_singleton:
                    problems.append(f"{slug!r} runs once per fleet, not on a decky")
            duplicates = sorted({slug for slug in slugs if slugs.count(slug) > 1})
            if duplicates:
                problems.append(f"listed twice: {', '.join(duplicates)}")
            if problems:
                bad(
                    "services",
                    "; ".join(problems)
                    + f" (known: {', '.join(sorted(s for s in known if not known[s].fleet_singleton))})",
                )
            else:
                parsed.services = tuple(slugs)
    return parsed if len(issues) == before else None


def _persona(
    section: _Section,
    targets_by_name: Mapping[str, DeckySpecDraft],
    groups: Mapping[str, list[str]],
    known: Mapping[str, ServiceSpec],
    failed: set[str],
    issues: list[IniIssue],
) -> tuple[list[str], str, dict[str, ConfigValue], bool] | None:
    """Resolve ``[<decky>.<service>]``: its target decky names, the slug, the validated config, and whether it
    names one decky exactly (exact personas override a group's)."""
    decky_part, _, slug = section.name.rpartition(".")
    if "." in decky_part or not decky_part or not slug:
        issues.append(IniIssue(section.line, f"[{section.name}] must be [<decky>.<service>]", section.name))
        return None
    spec = known.get(slug)
    if spec is None:
        issues.append(IniIssue(section.line, f"[{section.name}]: unknown service {slug!r}", section.name))
        return None
    if decky_part in failed:
        return None  # the decky section's own errors are reported; its personas cannot be checked
    exact = decky_part in targets_by_name and decky_part not in groups
    if exact:
        targets = [decky_part]
    elif decky_part in groups:
        targets = groups[decky_part]
    else:
        issues.append(
            IniIssue(section.line, f"[{section.name}]: no decky section [{decky_part}] in this file", section.name)
        )
        return None
    lacking = [name for name in targets if slug not in targets_by_name[name].services]
    if lacking:
        services = ", ".join(targets_by_name[lacking[0]].services)
        issues.append(
            IniIssue(
                section.line,
                f"[{section.name}]: decky {lacking[0]} does not run {slug} (its services: {services})",
                section.name,
            )
        )
        return None
    raw = {entry.key: entry.value.strip() for entry in section.entries.values()}
    try:
        config = validate_config(spec.config_schema, raw)
    except ConfigValidationError as exc:
        lines = {entry.key: entry.line for entry in section.entries.values()}
        for key, messages in exc.errors.items():
            issues.append(
                IniIssue(lines.get(key, section.line), f"[{section.name}] {key}: {' '.join(messages)}", section.name)
            )
        return None
    return targets, slug, config, exact


@dataclass
class DeckySpecDraft:
    """A decky being assembled (personas are added after every decky section has been read)."""

    name: str
    source: _DeckySection
    index: int
    services: tuple[str, ...]
    services_from: str
    distro: str
    nmap_os: str
    group_config: dict[str, dict[str, ConfigValue]] = field(default_factory=dict)
    exact_config: dict[str, dict[str, ConfigValue]] = field(default_factory=dict)


def parse_fleet_ini(
    text: str, *, source: str = "<ini>", custom_services: Mapping[str, ServiceSpec] | None = None
) -> FleetSpec:
    """Parse and validate a whole INI file.

    ``custom_services`` are the bring-your-own services already stored (slug → spec); ``[custom-*]`` sections of
    the file add to (and, for validation, override) them. Raises :class:`IniTooLargeError` (413),
    :class:`IniError` (400: syntax, unknown names, bad values, persona config failing its service's schema) or
    :class:`IniConflictError` (409: a decky name or an explicit address used twice in the file), each listing
    every problem with its line number.
    """
    check_size(text)
    issues: list[IniIssue] = []
    sections = _read(text, issues)
    general_section: _Section | None = None
    customs: list[_Section] = []
    personas: list[_Section] = []
    decky_sections: list[_Section] = []
    for section in sections:
        if section.name == GENERAL_SECTION:
            general_section = section
        elif section.name.startswith(CUSTOM_PREFIX):
            customs.append(section)
        elif "." in section.name:
            personas.append(section)
        else:
            decky_sections.append(section)
    general = _general(general_section, issues)

    custom_specs: list[CustomServiceSpec] = []
    known: dict[str, ServiceSpec] = dict(custom_services or {})
    for section in customs:
        custom = _custom(section, issues)
        if custom is not None:
            custom_specs.append(custom)
            known[custom.slug] = make_custom_service(custom.slug, custom.image, list(custom.command), custom.ports)
    for spec in all_services():
        known[spec.slug] = spec

    drafts: dict[str, DeckySpecDraft] = {}
    groups: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    failed: set[str] = set()
    index = 0
    for section in decky_sections:
        parsed = _decky_section(section, known, issues)
        if parsed is None:
            failed.add(section.name)
            continue
        if len(parsed.names) > 1:
            groups[section.name] = parsed.names
        archetype = get_archetype(parsed.archetype) if parsed.archetype else None
        for name in parsed.names:
            if name in first_line:
                issues.append(
                    IniIssue(
                        section.line,
                        f"decky name {name!r} from [{section.name}] is already used at line {first_line[name]}",
                        section.name,
                        conflict=True,
                    )
                )
                continue
            first_line[name] = section.line
            if parsed.services is not None:
                services, origin = parsed.services, "explicit"
            elif archetype is not None:
                services, origin = archetype.services, "archetype"
            else:
                services, origin = _random_services(name), "random"
            drafts[name] = DeckySpecDraft(
                name=name,
                source=parsed,
                index=index,
                services=tuple(services),
                services_from=origin,
                distro=parsed.distro or distro_for_index(archetype, index).slug,
                nmap_os=parsed.nmap_os or (archetype.nmap_os if archetype else "linux"),
            )
            index += 1
    if len(drafts) > MAX_DECKIES:
        issues.append(IniIssue(None, f"the file defines {len(drafts)} deckies; at most {MAX_DECKIES} per import"))
    if not decky_sections:
        issues.append(IniIssue(None, "the file defines no decky (a section such as [web-01] with services = ssh)"))

    explicit_ips: dict[str, tuple[int, str]] = {}
    for draft in drafts.values():
        ip = draft.source.ip
        if ip is None:
            continue
        line = draft.source.section.entries["ip"].line
        if ip in explicit_ips:
            other_line, other = explicit_ips[ip]
            issues.append(
                IniIssue(line, f"address {ip} of {draft.name} is already given to {other} at line {other_line}",
                         draft.name, conflict=True)
            )  # fmt: skip
        else:
            explicit_ips[ip] = (line, draft.name)
        if general.net and ipaddress.IPv4Address(ip) not in ipaddress.IPv4Network(general.net):
            issues.append(
                IniIssue(line, f"[{draft.source.section.name}] ip {ip} is outside net {general.net}", draft.name)
            )

    for section in personas:
        resolved = _persona(section, drafts, groups, known, failed, issues)
        if resolved is None:
            continue
        targets, slug, config, exact = resolved
        for name in targets:
            (drafts[name].exact_config if exact else drafts[name].group_config)[slug] = config

    raise_issues(issues, source)
    deckies = tuple(_finish(draft, general) for draft in drafts.values())
    return FleetSpec(source=source, general=general, deckies=deckies, custom_services=tuple(custom_specs))


def _finish(draft: DeckySpecDraft, general: GeneralSpec) -> DeckySpec:
    config: dict[str, dict[str, ConfigValue]] = {}
    for slug in draft.services:
        merged = {**draft.group_config.get(slug, {}), **draft.exact_config.get(slug, {})}
        if merged:
            config[slug] = merged
    section = draft.source.section
    return DeckySpec(
        name=draft.name,
        section=section.name,
        line=section.line,
        index=draft.index,
        ip=draft.source.ip,
        services=draft.services,
        services_from=draft.services_from,
        archetype=draft.source.archetype,
        distro=draft.distro,
        nmap_os=draft.nmap_os,
        mutate_interval=draft.source.mutate_interval or general.mutate_interval,
        service_config=config,
        key_lines={key: entry.line for key, entry in section.entries.items()},
    )


def known_values() -> dict[str, list[str]]:
    """The slugs an INI may use, for help texts: archetypes, distros, OS families and per-decky services."""
    return {
        "archetypes": [a.slug for a in all_archetypes()],
        "distros": [d.slug for d in all_distros()],
        "nmap_os": [f.slug for f in all_os_families()],
        "services": list(per_decky_service_slugs()),
    }


__all__ = [
    "MAX_AMOUNT",
    "MAX_INI_BYTES",
    "CustomServiceSpec",
    "DeckySpec",
    "FleetSpec",
    "GeneralSpec",
    "IniConflictError",
    "IniError",
    "IniIssue",
    "IniTooLargeError",
    "check_size",
    "decode_ini",
    "format_interval",
    "parse_fleet_ini",
    "parse_interval",
    "raise_issues",
]
