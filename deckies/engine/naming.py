"""Every Docker name and label the engine writes, in one place.

Two scopes exist and their names can never collide:

- the **fleet** of a host is the compose project ``decnet-fleet``; its containers are ``decnet-fleet-<decky>``
  (base) and ``decnet-fleet-<decky>-<svc>`` (services), its networks ``decnet-fleet-<network>``;
- a **topology** is the compose project ``decnet-t-<id8>``; its containers are ``decnet-t-<id8>-<decky>`` and
  ``decnet-t-<id8>-<decky>-<svc>``, its networks ``decnet-t-<id8>-<lan>``.

Service slugs may hold ``_`` (``smtp_relay``); Docker names use ``-`` instead so every name stays a valid DNS
label. Compose service keys are the container names without the project prefix (``<decky>`` / ``<decky>-<svc>``).

Containers and networks are found by the ``org.decnet.*`` labels, never by parsing names.
"""

from __future__ import annotations

import re
import uuid

#: Default first part of every Docker name; ``DECNET_NAME_PREFIX`` changes it so several control planes (or test
#: runs) can share one engine without ever touching each other's containers.
DEFAULT_NAME_PREFIX = "decnet"

SCOPE_FLEET = "fleet"
SCOPE_TOPOLOGY = "topology"
ROLE_BASE = "base"
ROLE_SERVICE = "service"

LABEL_SCOPE = "org.decnet.scope"
LABEL_PROJECT = "org.decnet.project"
LABEL_TOPOLOGY = "org.decnet.topology"
LABEL_DECKY = "org.decnet.decky"
LABEL_SERVICE = "org.decnet.service"
LABEL_ROLE = "org.decnet.role"
LABEL_NETWORK = "org.decnet.network"
#: Set by compose itself on every container, network and volume of a project.
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"

_UNSAFE = re.compile(r"[^a-z0-9-]+")


def name_part(value: str) -> str:
    """``value`` as a Docker-name fragment: lowercase, ``_`` (and anything else unsafe) replaced by ``-``."""
    return _UNSAFE.sub("-", value.lower())


def short_id(topology_id: uuid.UUID | str) -> str:
    """The first 8 hex digits of a topology id (what every Docker name of the topology carries)."""
    return uuid.UUID(str(topology_id)).hex[:8]


def name_prefix() -> str:
    """The configured first part of every project, container and network name (``decnet`` by default)."""
    from django.conf import settings

    return str(getattr(settings, "DECNET_NAME_PREFIX", "") or DEFAULT_NAME_PREFIX)


def fleet_project() -> str:
    """Compose project name of the fleet: ``decnet-fleet``."""
    return f"{name_prefix()}-fleet"


def topology_project(topology_id: uuid.UUID | str) -> str:
    """Compose project name of a topology: ``decnet-t-<id8>``."""
    return f"{name_prefix()}-t-{short_id(topology_id)}"


def project_for(topology_id: uuid.UUID | str | None) -> str:
    """The project a decky belongs to: the fleet's when ``topology_id`` is None, else its topology's."""
    return fleet_project() if topology_id is None else topology_project(topology_id)


def base_key(decky_name: str) -> str:
    """Compose service key of a decky's base container."""
    return name_part(decky_name)


def service_key(decky_name: str, slug: str) -> str:
    """Compose service key of one service container of a decky."""
    return f"{name_part(decky_name)}-{name_part(slug)}"


def container_name(project: str, key: str) -> str:
    """``container_name`` of a compose service key inside ``project``: namespaced so scopes never collide."""
    return f"{project}-{key}"


def network_name(project: str, network: str) -> str:
    """The pinned Docker name of a network (fleet ``Network.name`` or topology LAN name) in ``project``."""
    return f"{project}-{name_part(network)}"


def fleet_file_stem(host_name: str | None, host_uuid: uuid.UUID | str | None = None) -> str:
    """File stem of a host's fleet compose file: ``fleet-local`` for the default engine, else ``fleet-<host>``.

    A host name that is not a safe file-name fragment (or that would read as the default engine) is replaced by
    its uuid so two hosts never share a file.
    """
    if host_name is None:
        return "fleet-local"
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", host_name) and host_name != "local":
        return f"fleet-{host_name}"
    return f"fleet-{uuid.UUID(str(host_uuid)).hex}"


def topology_file_stem(topology_id: uuid.UUID | str) -> str:
    """File stem of a topology's compose file: ``topology-<id8>``."""
    return f"topology-{short_id(topology_id)}"


def scope_labels(project: str, topology_id: uuid.UUID | str | None) -> dict[str, str]:
    """Labels every object of a scope carries (containers and networks)."""
    labels = {
        LABEL_PROJECT: project,
        LABEL_SCOPE: SCOPE_FLEET if topology_id is None else SCOPE_TOPOLOGY,
    }
    if topology_id is not None:
        labels[LABEL_TOPOLOGY] = str(uuid.UUID(str(topology_id)))
    return labels


def container_labels(
    project: str, topology_id: uuid.UUID | str | None, decky_name: str, slug: str | None = None
) -> dict[str, str]:
    """Labels of a base (``slug`` None) or service container."""
    labels = scope_labels(project, topology_id)
    labels[LABEL_DECKY] = decky_name
    labels[LABEL_ROLE] = ROLE_BASE if slug is None else ROLE_SERVICE
    if slug is not None:
        labels[LABEL_SERVICE] = slug
    return labels


def label_filters(labels: dict[str, str]) -> list[str]:
    """Docker API ``label`` filter values (``k=v``) for ``labels``, sorted."""
    return sorted(f"{key}={value}" for key, value in labels.items())
