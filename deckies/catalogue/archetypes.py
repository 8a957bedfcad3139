"""Archetypes: named machine roles that bundle services, preferred distros and an OS fingerprint family.

Every service slug is a per-decky built-in service, every distro slug a :mod:`~deckies.catalogue.distros` profile and
every ``nmap_os`` a :mod:`~deckies.catalogue.fingerprints` family (the test suite checks this).
"""

from __future__ import annotations

from dataclasses import dataclass

from deckies.catalogue.errors import UnknownArchetypeError


@dataclass(frozen=True, slots=True, kw_only=True)
class Archetype:
    """A machine role a decky can impersonate."""

    slug: str
    display_name: str
    description: str
    services: tuple[str, ...]
    preferred_distros: tuple[str, ...]
    nmap_os: str


def _a(slug: str, display: str, description: str, services: str, distros: str, nmap_os: str) -> Archetype:
    return Archetype(
        slug=slug,
        display_name=display,
        description=description,
        services=tuple(services.split()),
        preferred_distros=tuple(distros.split()),
        nmap_os=nmap_os,
    )


_ARCHETYPES: tuple[Archetype, ...] = (
    _a("windows-workstation", "Windows Workstation", "An office desktop with file sharing and remote desktop.",
       "smb rdp", "debian ubuntu22", "windows"),
    _a("windows-server", "Windows Server", "A member server with file shares, remote desktop and directory access.",
       "smb rdp ldap", "debian ubuntu22", "windows_server"),
    _a("domain-controller", "Domain Controller", "An Active Directory domain controller.",
       "ldap smb rdp llmnr", "debian ubuntu22", "windows_server"),
    _a("linux-server", "Linux Server", "A general-purpose Linux server with SSH and a web site.",
       "ssh http", "debian ubuntu22 rocky9 fedora", "linux"),
    _a("web-server", "Web Server", "A web host with FTP upload access.",
       "http ftp", "debian ubuntu22 ubuntu20", "linux"),
    _a("database-server", "Database Server", "A database host running SQL and key-value stores.",
       "mysql postgres redis", "debian ubuntu22", "linux"),
    _a("mail-server", "Mail Server", "A mail host with SMTP delivery and mailbox access.",
       "smtp pop3 imap", "debian ubuntu22", "linux"),
    _a("file-server", "File Server", "A file server reachable over SMB, FTP and SSH.",
       "smb ftp ssh", "debian ubuntu22 rocky9", "linux"),
    _a("printer", "Network Printer", "A networked printer with SNMP management and FTP print drop.",
       "snmp ftp", "alpine debian", "embedded"),
    _a("iot-device", "IoT Device", "A small connected device with an MQTT client and a telnet console.",
       "mqtt snmp telnet", "alpine", "embedded"),
    _a("industrial-control", "Industrial Control System", "A PLC / SCADA device speaking Modbus.",
       "conpot snmp", "debian", "embedded"),
    _a("voip-server", "VoIP Server", "A SIP telephony server.", "sip", "debian ubuntu22", "linux"),
    _a("monitoring-node", "Monitoring Node", "A monitoring host polling devices over SNMP.",
       "snmp ssh", "debian rocky9", "linux"),
    _a("devops-host", "DevOps Host", "A build / container host exposing Docker and Kubernetes APIs.",
       "docker_api ssh k8s", "ubuntu22 debian", "linux"),
    _a("deaddeck", "Deaddeck (Entry Point)", "A bare SSH box meant as the first foothold into a deception network.",
       "ssh", "debian ubuntu22", "linux"),
)  # fmt: skip

_BY_SLUG: dict[str, Archetype] = {archetype.slug: archetype for archetype in _ARCHETYPES}


def get_archetype(slug: str) -> Archetype:
    """The archetype ``slug``; :class:`UnknownArchetypeError` (listing the known slugs) otherwise."""
    try:
        return _BY_SLUG[slug]
    except KeyError:
        raise UnknownArchetypeError(slug, _BY_SLUG) from None


def all_archetypes() -> tuple[Archetype, ...]:
    """Every archetype, in catalogue order."""
    return _ARCHETYPES
