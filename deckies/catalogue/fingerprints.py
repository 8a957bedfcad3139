"""OS fingerprint families: the ``net.ipv4.*`` sysctls a decky's base container sets to look like an OS to nmap.

The sysctls are namespace-scoped, so the service containers sharing the base container's network namespace
inherit them. An unknown family slug falls back to ``linux``.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_OS_FAMILY = "linux"
_PREFIX = "net.ipv4."
# Column order of the values given to _family below.
_SYSCTL_NAMES = (
    "ip_default_ttl",
    "tcp_syn_retries",
    "tcp_timestamps",
    "tcp_window_scaling",
    "tcp_sack",
    "tcp_ecn",
    "ip_no_pmtu_disc",
    "tcp_fin_timeout",
    "icmp_ratelimit",
    "icmp_ratemask",
)


@dataclass(frozen=True, slots=True)
class OsFamily:
    """One fingerprint family; ``sysctls`` returns a fresh ``dict`` (full sysctl name -> string value)."""

    slug: str
    display_name: str
    sysctl_items: tuple[tuple[str, str], ...]

    @property
    def sysctls(self) -> dict[str, str]:
        return dict(self.sysctl_items)

    @property
    def ttl(self) -> int:
        """The initial IP TTL, the most visible part of the fingerprint."""
        return int(self.sysctls[_PREFIX + "ip_default_ttl"])


def _family(slug: str, display_name: str, *values: int) -> OsFamily:
    assert len(values) == len(_SYSCTL_NAMES)
    return OsFamily(
        slug, display_name, tuple((_PREFIX + n, str(v)) for n, v in zip(_SYSCTL_NAMES, values, strict=True))
    )


_FAMILIES: tuple[OsFamily, ...] = (
    #                                          ttl syn ts  ws  sack ecn pmtu fin  icmp_rl icmp_mask
    _family("linux", "Linux", 64, 6, 1, 1, 1, 2, 0, 60, 1000, 6168),
    _family("windows", "Windows", 128, 2, 1, 1, 1, 0, 0, 30, 0, 0),
    _family("windows_server", "Windows Server", 128, 2, 1, 1, 1, 1, 0, 30, 0, 0),
    _family("bsd", "BSD", 64, 6, 1, 1, 1, 0, 0, 60, 250, 6168),
    _family("embedded", "Embedded / IoT", 255, 3, 0, 0, 0, 0, 1, 15, 0, 0),
    _family("cisco", "Cisco IOS", 255, 2, 0, 0, 0, 0, 1, 15, 0, 0),
)  # fmt: skip

_BY_SLUG: dict[str, OsFamily] = {family.slug: family for family in _FAMILIES}


def get_os_family(slug: str | None) -> OsFamily:
    """The family ``slug``; ``linux`` for ``None`` or an unknown slug."""
    return _BY_SLUG.get(slug or DEFAULT_OS_FAMILY, _BY_SLUG[DEFAULT_OS_FAMILY])


def all_os_families() -> tuple[OsFamily, ...]:
    """Every family, in catalogue order."""
    return _FAMILIES
