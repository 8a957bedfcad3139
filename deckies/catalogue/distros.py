"""Distro profiles: what a decky's base container claims to be, and the hostname style that goes with it.

No registry is reachable from the deployment hosts, so every profile's base container actually runs the locally
built base image (``image``); ``upstream_image`` is the distro's public image name, kept for display only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from deckies.catalogue import images
from deckies.catalogue.archetypes import Archetype, get_archetype
from deckies.catalogue.errors import UnknownDistroError


class HostnameStyle(StrEnum):
    """How hostnames look on a distro (see :func:`random_hostname`)."""

    GENERIC = "generic"  # SRV-ATLAS-42
    RHEL = "rhel"  # atlas42.localdomain
    MINIMAL = "minimal"  # atlas-42
    ROLLING = "rolling"  # atlas-birch


HOSTNAME_WORDS: tuple[str, ...] = (
    "atlas", "birch", "cobalt", "delta", "ember", "falcon", "granite", "harbor", "iris", "juniper", "kestrel",
    "lumen", "maple", "nimbus", "onyx", "pylon", "quartz", "raven", "sierra", "talon", "umber", "vector",
    "willow", "xenon", "zephyr",
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class DistroProfile:
    """One distro a decky can present."""

    slug: str
    display_name: str
    upstream_image: str
    hostname_style: HostnameStyle

    @property
    def image(self) -> str:
        """The locally built base image every distro's deckies run (resolved when asked: it follows settings)."""
        return images.image_ref(images.BASE_FAMILY)


def _d(slug: str, display_name: str, upstream_image: str, style: HostnameStyle) -> DistroProfile:
    return DistroProfile(slug=slug, display_name=display_name, upstream_image=upstream_image, hostname_style=style)


_DISTROS: tuple[DistroProfile, ...] = (
    _d("debian", "Debian 12 (Bookworm)", "debian:bookworm-slim", HostnameStyle.GENERIC),
    _d("ubuntu22", "Ubuntu 22.04 LTS", "ubuntu:22.04", HostnameStyle.GENERIC),
    _d("ubuntu20", "Ubuntu 20.04 LTS", "ubuntu:20.04", HostnameStyle.GENERIC),
    _d("rocky9", "Rocky Linux 9", "rockylinux:9-minimal", HostnameStyle.RHEL),
    _d("centos7", "CentOS 7", "centos:7", HostnameStyle.RHEL),
    _d("alpine", "Alpine Linux 3.19", "alpine:3.19", HostnameStyle.MINIMAL),
    _d("fedora", "Fedora 39", "fedora:39", HostnameStyle.RHEL),
    _d("kali", "Kali Linux (Rolling)", "kalilinux/kali-rolling", HostnameStyle.ROLLING),
    _d("arch", "Arch Linux", "archlinux:latest", HostnameStyle.ROLLING),
)

_BY_SLUG: dict[str, DistroProfile] = {distro.slug: distro for distro in _DISTROS}


def get_distro(slug: str) -> DistroProfile:
    """The distro ``slug``; :class:`UnknownDistroError` (listing the known slugs) otherwise."""
    try:
        return _BY_SLUG[slug]
    except KeyError:
        raise UnknownDistroError(slug, _BY_SLUG) from None


def all_distros() -> tuple[DistroProfile, ...]:
    """Every distro, in catalogue order (the rotation order of :func:`distro_for_index`)."""
    return _DISTROS


def random_hostname(style: HostnameStyle | str, rng: random.Random) -> str:
    """A hostname in ``style`` from the word list and a number in 10-99; ``ValueError`` for an unknown style.

    generic ``SRV-<WORD>-<nn>``, rhel ``<word><nn>.localdomain``, minimal ``<word>-<nn>``, rolling
    ``<word>-<other word>``.
    """
    style = HostnameStyle(style)
    word = rng.choice(HOSTNAME_WORDS)
    if style is HostnameStyle.ROLLING:
        return f"{word}-{rng.choice([w for w in HOSTNAME_WORDS if w != word])}"
    number = rng.randint(10, 99)
    if style is HostnameStyle.GENERIC:
        return f"SRV-{word.upper()}-{number}"
    if style is HostnameStyle.RHEL:
        return f"{word}{number}.localdomain"
    return f"{word}-{number}"


def distro_for_index(archetype: Archetype | str | None, index: int) -> DistroProfile:
    """The distro of the ``index``-th decky (0-based): rotate through the archetype's preferred distros, else all.

    ``archetype`` may be a slug (:class:`UnknownArchetypeError` when unknown) or ``None``.
    """
    if isinstance(archetype, str):
        archetype = get_archetype(archetype)
    if archetype is not None and archetype.preferred_distros:
        return get_distro(archetype.preferred_distros[index % len(archetype.preferred_distros)])
    return _DISTROS[index % len(_DISTROS)]
