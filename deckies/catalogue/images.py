"""Which locally built image runs which honeypot service.

This is the contract between the service catalogue (which says *what* a service is and how it is configured)
and the image builder (which says *how* the image running it is made). Every service container gets the same
environment, whatever its family:

- ``DECNET_SERVICE``: the service slug (``ssh``, ``http``, ...); the image's entrypoint dispatches on it;
- ``DECNET_DECKY``: the decky's name; ``DECNET_HOSTNAME``: the hostname the decky presents;
- ``DECNET_SERVICE_CONFIG``: the service's validated per-service config as a JSON object (keys from the service's
  config schema; the entrypoint uses its own defaults for absent keys and ignores unknown ones).

Each container writes one JSON event per connection / login attempt / command to stdout.
"""

from __future__ import annotations

#: Default repository part of every image reference; ``DECNET_IMAGE_REPOSITORY`` changes it (e.g. to keep a
#: development build apart from the images an installation runs on the same engine).
DEFAULT_IMAGE_REPOSITORY = "decnet"
#: Bump when an image's build context changes in a way existing images must not be reused for.
IMAGE_TAG = "1"

#: The base image: a debootstrapped Debian 12 minbase, imported with ``docker import``. Decky base containers
#: (the IP/hostname/sysctl holders) run it with a keeper process.
BASE_FAMILY = "base"

#: service slug -> image family. Families: ``opencanary`` (thinkst OpenCanary), ``cowrie`` (Cowrie SSH/Telnet),
#: ``listeners`` (DECNET's own protocol listeners, only for protocols the maintained packages do not cover).
SERVICE_IMAGE_FAMILY: dict[str, str] = {
    "ssh": "cowrie",
    "telnet": "cowrie",
    "ftp": "opencanary",
    "http": "opencanary",
    "https": "opencanary",
    "mysql": "opencanary",
    "mssql": "opencanary",
    "redis": "opencanary",
    "rdp": "opencanary",
    "vnc": "opencanary",
    "sip": "opencanary",
    "snmp": "opencanary",
    "tftp": "opencanary",
    "smb": "listeners",
    "smtp": "listeners",
    "smtp_relay": "listeners",
    "imap": "listeners",
    "pop3": "listeners",
    "ldap": "listeners",
    "llmnr": "listeners",
    "postgres": "listeners",
    "mongodb": "listeners",
    "elasticsearch": "listeners",
    "mqtt": "listeners",
    "k8s": "listeners",
    "docker_api": "listeners",
    "conpot": "listeners",
    "dns": "listeners",
    "sniffer": "listeners",
}

ALL_FAMILIES: tuple[str, ...] = (BASE_FAMILY, "opencanary", "cowrie", "listeners")


def image_ref(family: str) -> str:
    """The local image reference (``decnet/<family>:<tag>``) for an image family."""
    return f"{image_repository()}/{family}:{IMAGE_TAG}"


def image_repository() -> str:
    """The configured image repository (``decnet`` unless ``DECNET_IMAGE_REPOSITORY`` says otherwise)."""
    from django.conf import settings

    return str(getattr(settings, "DECNET_IMAGE_REPOSITORY", "") or DEFAULT_IMAGE_REPOSITORY)


def image_for_service(slug: str) -> str:
    """The image reference that runs service ``slug``; ``KeyError`` for a slug with no built-in image."""
    return image_ref(SERVICE_IMAGE_FAMILY[slug])
