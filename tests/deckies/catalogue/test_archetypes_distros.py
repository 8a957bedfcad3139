"""Archetypes, distro profiles, hostname styles and OS fingerprint families."""

from __future__ import annotations

import random
import re

import pytest

from deckies.catalogue import images
from deckies.catalogue.archetypes import Archetype, all_archetypes, get_archetype
from deckies.catalogue.distros import (
    HOSTNAME_WORDS,
    HostnameStyle,
    all_distros,
    distro_for_index,
    get_distro,
    random_hostname,
)
from deckies.catalogue.errors import CatalogueError, UnknownArchetypeError, UnknownDistroError
from deckies.catalogue.fingerprints import DEFAULT_OS_FAMILY, all_os_families, get_os_family
from deckies.catalogue.services import per_decky_service_slugs

# --- archetypes -----------------------------------------------------------------------------------------------------


def test_fifteen_archetypes_with_unique_slugs() -> None:
    slugs = [archetype.slug for archetype in all_archetypes()]
    assert len(slugs) == 15
    assert len(set(slugs)) == 15


@pytest.mark.parametrize("archetype", all_archetypes(), ids=lambda a: a.slug)
def test_archetype_references_exist(archetype: Archetype) -> None:
    assert archetype.services
    assert set(archetype.services) <= set(per_decky_service_slugs())
    assert archetype.preferred_distros
    for slug in archetype.preferred_distros:
        get_distro(slug)
    assert archetype.nmap_os in {family.slug for family in all_os_families()}
    assert archetype.display_name
    assert archetype.description


@pytest.mark.parametrize(
    ("slug", "services", "distros", "nmap_os"),
    [
        ("windows-workstation", ("smb", "rdp"), ("debian", "ubuntu22"), "windows"),
        ("domain-controller", ("ldap", "smb", "rdp", "llmnr"), ("debian", "ubuntu22"), "windows_server"),
        ("linux-server", ("ssh", "http"), ("debian", "ubuntu22", "rocky9", "fedora"), "linux"),
        ("iot-device", ("mqtt", "snmp", "telnet"), ("alpine",), "embedded"),
        ("devops-host", ("docker_api", "ssh", "k8s"), ("ubuntu22", "debian"), "linux"),
        ("deaddeck", ("ssh",), ("debian", "ubuntu22"), "linux"),
    ],
)
def test_archetype_rows(slug: str, services: tuple[str, ...], distros: tuple[str, ...], nmap_os: str) -> None:
    archetype = get_archetype(slug)
    assert (archetype.services, archetype.preferred_distros, archetype.nmap_os) == (services, distros, nmap_os)


def test_unknown_archetype() -> None:
    with pytest.raises(UnknownArchetypeError, match="unknown archetype 'mainframe'; available: database-server"):
        get_archetype("mainframe")


# --- distros --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slug", "style", "upstream"),
    [
        ("debian", "generic", "debian:bookworm-slim"),
        ("ubuntu22", "generic", "ubuntu:22.04"),
        ("ubuntu20", "generic", "ubuntu:20.04"),
        ("rocky9", "rhel", "rockylinux:9-minimal"),
        ("centos7", "rhel", "centos:7"),
        ("alpine", "minimal", "alpine:3.19"),
        ("fedora", "rhel", "fedora:39"),
        ("kali", "rolling", "kalilinux/kali-rolling"),
        ("arch", "rolling", "archlinux:latest"),
    ],
)
def test_distro_rows(slug: str, style: str, upstream: str) -> None:
    distro = get_distro(slug)
    assert distro.hostname_style == style
    assert distro.upstream_image == upstream
    assert distro.image == images.image_ref(images.BASE_FAMILY)
    assert distro.display_name


def test_nine_distros() -> None:
    assert [d.slug for d in all_distros()] == [
        "debian",
        "ubuntu22",
        "ubuntu20",
        "rocky9",
        "centos7",
        "alpine",
        "fedora",
        "kali",
        "arch",
    ]


def test_unknown_distro() -> None:
    with pytest.raises(UnknownDistroError) as info:
        get_distro("gentoo")
    assert isinstance(info.value, CatalogueError)
    assert "alpine" in info.value.available


def test_hostname_word_list() -> None:
    assert len(HOSTNAME_WORDS) == 25
    assert len(set(HOSTNAME_WORDS)) == 25
    assert all(re.fullmatch(r"[a-z]+", word) for word in HOSTNAME_WORDS)


HOSTNAME_PATTERNS = {
    HostnameStyle.GENERIC: r"SRV-[A-Z]+-[1-9][0-9]",
    HostnameStyle.RHEL: r"[a-z]+[1-9][0-9]\.localdomain",
    HostnameStyle.MINIMAL: r"[a-z]+-[1-9][0-9]",
    HostnameStyle.ROLLING: r"[a-z]+-[a-z]+",
}


@pytest.mark.parametrize("style", list(HostnameStyle))
def test_hostname_styles(style: HostnameStyle) -> None:
    rng = random.Random(1234)
    for _ in range(200):
        name = random_hostname(style, rng)
        assert re.fullmatch(HOSTNAME_PATTERNS[style], name), name
        assert len(name) <= 63 or "." in name
        words = re.findall(r"[a-zA-Z]+", name.removesuffix(".localdomain"))
        words = [w for w in words if w != "SRV"]
        assert all(w.lower() in HOSTNAME_WORDS for w in words)
        if style is HostnameStyle.ROLLING:
            assert words[0] != words[1]


def test_hostname_is_deterministic_for_a_seed() -> None:
    first = [random_hostname("generic", random.Random(7)) for _ in range(3)]
    assert first == [random_hostname(HostnameStyle.GENERIC, random.Random(7))] * 3


def test_hostname_numbers_cover_range() -> None:
    rng = random.Random(0)
    numbers = {int(random_hostname("minimal", rng).rsplit("-", 1)[1]) for _ in range(3000)}
    assert numbers == set(range(10, 100))


def test_unknown_hostname_style() -> None:
    with pytest.raises(ValueError, match="fancy"):
        random_hostname("fancy", random.Random(0))


def test_distro_rotation_through_archetype_preferences() -> None:
    archetype = get_archetype("linux-server")
    picked = [distro_for_index(archetype, i).slug for i in range(6)]
    assert picked == ["debian", "ubuntu22", "rocky9", "fedora", "debian", "ubuntu22"]
    assert distro_for_index("iot-device", 5).slug == "alpine"


def test_distro_rotation_without_archetype() -> None:
    slugs = [d.slug for d in all_distros()]
    assert [distro_for_index(None, i).slug for i in range(11)] == slugs + slugs[:2]


def test_distro_rotation_unknown_archetype() -> None:
    with pytest.raises(UnknownArchetypeError):
        distro_for_index("mainframe", 0)


# --- OS fingerprints ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slug", "ttl"),
    [("linux", 64), ("windows", 128), ("windows_server", 128), ("bsd", 64), ("embedded", 255), ("cisco", 255)],
)
def test_family_ttls(slug: str, ttl: int) -> None:
    family = get_os_family(slug)
    assert family.slug == slug
    assert family.ttl == ttl
    assert family.sysctls["net.ipv4.ip_default_ttl"] == str(ttl)


def test_six_families_with_full_sysctl_names() -> None:
    families = all_os_families()
    assert [f.slug for f in families] == ["linux", "windows", "windows_server", "bsd", "embedded", "cisco"]
    for family in families:
        assert len(family.sysctls) == 10
        assert all(key.startswith("net.ipv4.") for key in family.sysctls)
        assert all(isinstance(value, str) and value.isdigit() for value in family.sysctls.values())
        assert family.display_name


@pytest.mark.parametrize(
    ("slug", "sysctl", "value"),
    [
        ("linux", "tcp_ecn", "2"),
        ("linux", "icmp_ratemask", "6168"),
        ("windows", "tcp_syn_retries", "2"),
        ("windows", "tcp_ecn", "0"),
        ("windows_server", "tcp_ecn", "1"),
        ("bsd", "icmp_ratelimit", "250"),
        ("embedded", "tcp_timestamps", "0"),
        ("embedded", "tcp_syn_retries", "3"),
        ("cisco", "ip_no_pmtu_disc", "1"),
        ("cisco", "tcp_fin_timeout", "15"),
    ],
)
def test_family_sysctl_values(slug: str, sysctl: str, value: str) -> None:
    assert get_os_family(slug).sysctls["net.ipv4." + sysctl] == value


@pytest.mark.parametrize("slug", ["solaris", "", None])
def test_unknown_family_falls_back_to_linux(slug: str | None) -> None:
    assert get_os_family(slug).slug == DEFAULT_OS_FAMILY == "linux"


def test_sysctls_are_a_fresh_dict() -> None:
    family = get_os_family("linux")
    family.sysctls["net.ipv4.ip_default_ttl"] = "1"
    assert family.ttl == 64
    assert type(family.sysctls) is dict
