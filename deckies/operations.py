"""Operations on deckies: deploy, mutate, teardown, live service changes and file drops.

Request functions (``*_request``) validate, commit the desired shape and one ``pending`` lifecycle row per decky,
and queue a django-q2 task only after the transaction commits (``transaction.on_commit``). When an open row for
the same decky and operation exists, its id is returned and nothing is queued. ``run_inline=True`` runs the
operation in this process after commit instead (``--sync`` commands, hosts without a worker cluster).

:func:`run_operation` is the task body: it moves the row pending → running → succeeded | failed and updates the
decky's runtime state; it never leaves a row open.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uuid

    from deckies.models import Decky
    from lifecycle.models import DeckyLifecycle


def deploy_request(*, deckies: Sequence[Decky], run_inline: bool = False) -> list[DeckyLifecycle]:
    raise NotImplementedError


def mutate_request(*, decky: Decky, run_inline: bool = False) -> DeckyLifecycle:
    raise NotImplementedError


def teardown_request(*, decky: Decky, run_inline: bool = False) -> DeckyLifecycle:
    raise NotImplementedError


def service_add(*, decky: Decky, slug: str, config: dict[str, Any] | None = None) -> list[str]:
    raise NotImplementedError


def service_remove(*, decky: Decky, slug: str) -> list[str]:
    raise NotImplementedError


def run_operation(lifecycle_id: uuid.UUID | str) -> None:
    raise NotImplementedError
