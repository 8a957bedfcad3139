"""Live changes to a decky, made in the request: add or remove one service, drop or delete a file.

A service change is still a lifecycle row run through the job layer, only synchronously: the desired change and a
``pending`` row are committed first (:func:`prepare_service_add` / :func:`prepare_service_remove`, inside the
caller's transaction and under the decky's lock), then :func:`complete` runs the row in this process. If the engine
fails, the operation's ``record`` puts the service rows back as they were, the row is failed, and the engine error
is raised to the caller: the database never claims a change Docker did not make.

:func:`service_add` / :func:`service_remove` are the entry points for fleet deckies. A topology decky's changes go
through the topology app, which takes the topology's edit lock (status and version) first and then calls the
``prepare_*`` functions here with ``live`` decided from the topology's status.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from deckies.engine import runtime
from deckies.models import Decky, DeckyService
from deckies.operations import WrongScopeError, is_live, lock, open_rows, refuse_if_busy, row_spec
from deckies.scopes import load_deckies, provider_for
from deckies.services import service_spec, validate_decky_services
from deckies.states import state_topic
from decnet_site.exceptions import ConflictError
from lifecycle import jobs
from lifecycle.choices import LifecycleOperation
from lifecycle.models import DeckyLifecycle
from lifecycle.services import event_emit, lifecycle_create

logger = logging.getLogger(__name__)

SSH_SLUG = "ssh"


class ServiceConflictError(ConflictError):
    """The service is already on the decky (add) or not on it (remove), or it is the decky's last one (409)."""

    code = "service_conflict"


def prepare_service_add(
    *, decky: Decky, slug: str, config: dict[str, Any] | None, live: bool | None, actor: str | None
) -> DeckyLifecycle:
    """In the caller's transaction: lock the decky, check the change, persist the service and a pending row.
    ``live`` (None: from the fleet decky's state) says whether its containers exist, so the change applies to Docker.

    Raises 422 (unknown or singleton service), 400 (bad config), 409 (already there, or an operation is open).
    """
    validated = validate_decky_services([slug], {slug: config or {}})[slug]
    locked = lock(decky)
    if DeckyService.objects.filter(decky=locked, slug=slug).exists():
        raise ServiceConflictError(f"service {slug!r} is already on decky {locked.name!r}")
    refuse_if_busy(locked, open_rows([locked]).get(locked.pk, []))
    top = DeckyService.objects.filter(decky=locked).aggregate(top=Max("position"))["top"]
    DeckyService.objects.create(decky=locked, slug=slug, config=validated, position=0 if top is None else top + 1)
    live = is_live(locked) if live is None else live
    (row,) = lifecycle_create([row_spec(locked, LifecycleOperation.SERVICE_ADD, actor, service=slug, live=live)])
    return row


def prepare_service_remove(*, decky: Decky, slug: str, live: bool | None, actor: str | None) -> DeckyLifecycle:
    """In the caller's transaction: lock the decky, check the change, delete the service row, create a pending row.

    Raises 422 for a slug no catalogue knows (and the decky does not have), 409 when the decky does not have the
    service, when it is its last service, or when an operation is open.
    """
    locked = lock(decky)
    service = DeckyService.objects.filter(decky=locked, slug=slug).first()
    if service is None:
        service_spec(slug)  # UnknownServiceError (422) for a name no catalogue knows
        raise ServiceConflictError(f"service {slug!r} is not on decky {locked.name!r}")
    if DeckyService.objects.filter(decky=locked).count() == 1:
        raise ServiceConflictError(f"{slug!r} is the last service of decky {locked.name!r}; a decky needs one")
    refuse_if_busy(locked, open_rows([locked]).get(locked.pk, []))
    saved = {"config": service.config, "position": service.position}
    service.delete()
    live = is_live(locked) if live is None else live
    (row,) = lifecycle_create(
        [row_spec(locked, LifecycleOperation.SERVICE_REMOVE, actor, service=slug, live=live, saved=saved)]
    )
    return row


def complete(row: DeckyLifecycle) -> list[str]:
    """Run a prepared row here and now (after its transaction committed); returns the decky's services, or raises
    the engine's error when the change failed (its desired-state change is then undone)."""
    outcome = jobs.run_job(row.job or row.pk).get(row.pk)
    if outcome is not None and not outcome.ok and outcome.error is not None:
        raise outcome.error
    return list(
        DeckyService.objects.filter(decky_id=row.decky_id or 0)
        .order_by("position", "slug")
        .values_list("slug", flat=True)
    )


def _fleet_only(decky: Decky) -> None:
    if decky.topology_id is not None:
        raise WrongScopeError(
            f"decky {decky.name!r} belongs to a topology; change it under /topologies/{decky.topology_id}/deckies/"
        )


def service_add(
    *, decky: Decky, slug: str, config: dict[str, Any] | None = None, actor: str | None = None
) -> list[str]:
    """Add one service to a fleet decky and, when it is deployed, start only that container (ready when it
    answers); returns the decky's services. Emits ``decky.<name>.service.added``."""
    _fleet_only(decky)
    with transaction.atomic():
        row = prepare_service_add(decky=decky, slug=slug, config=config, live=None, actor=actor)
    return complete(row)


def service_remove(*, decky: Decky, slug: str, actor: str | None = None) -> list[str]:
    """Remove one service from a fleet decky and, when it is deployed, stop and remove only that container;
    returns the decky's services. Emits ``decky.<name>.service.removed``."""
    _fleet_only(decky)
    with transaction.atomic():
        row = prepare_service_remove(decky=decky, slug=slug, live=None, actor=actor)
    return complete(row)


# --- files ------------------------------------------------------------------------------------------------------------


def file_target(decky: Decky) -> tuple[runtime.Scope, str]:
    """Where file drops go: the decky's ``ssh`` service container when it has one (an attacker's shell lands
    there), else its base container."""
    scope = provider_for(decky).scope(decky)
    slugs = {row.slug for row in decky.services.all()}
    return scope, runtime.container_of(scope, decky.name, SSH_SLUG if SSH_SLUG in slugs else None)


def _file_event(decky: Decky, action: str, path: str, container: str, actor: str | None, **extra: Any) -> None:
    event_emit(
        topic=state_topic(decky, f"file.{action}"),
        type=f"file_{action}",
        payload={
            "decky_name": decky.name,
            "topology_id": None if decky.topology_id is None else str(decky.topology_id),
            "path": path,
            "container": container,
            "actor": actor,
            **extra,
        },
    )


def file_drop(
    *, decky: Decky, path: str, content: bytes, mode: int = 0o644, mtime_offset: int = 0, actor: str | None = None
) -> str:
    """Write ``content`` at absolute ``path`` in the decky's file target container; returns the container name.

    ``mtime_offset`` seconds (negative: in the past) are added to now for the file's mtime. Raises
    ``InvalidPathError`` (400) and ``ContainerRefusedError`` (409, e.g. the decky is not running). The drop is
    audited as ``…file.dropped`` (path, size, container, actor; never the content).
    """
    (fresh,) = load_deckies([decky.pk])
    mtime = timezone.now() + timedelta(seconds=mtime_offset) if mtime_offset else None
    scope, container = file_target(fresh)
    runtime.drop_file(scope, container, path, content, mode, mtime)
    _file_event(fresh, "dropped", path, container, actor, bytes=len(content), mode=oct(mode))
    return container


def file_delete(*, decky: Decky, path: str, actor: str | None = None) -> str:
    """``rm -f`` of absolute ``path`` in the decky's file target container; returns the container name.

    Raises ``InvalidPathError`` (400) and ``ContainerRefusedError`` (409). Audited as ``…file.deleted``.
    """
    (fresh,) = load_deckies([decky.pk])
    scope, container = file_target(fresh)
    runtime.delete_file(scope, container, path)
    _file_event(fresh, "deleted", path, container, actor)
    return container


__all__ = [
    "ServiceConflictError",
    "complete",
    "file_delete",
    "file_drop",
    "file_target",
    "prepare_service_add",
    "prepare_service_remove",
    "service_add",
    "service_remove",
]
