"""Service rotation ("mutation") of a decky: choose a new, different set of services."""

from __future__ import annotations

import random
from collections.abc import Sequence

from deckies.catalogue.archetypes import get_archetype
from deckies.catalogue.errors import UnknownArchetypeError
from deckies.catalogue.services import per_decky_service_slugs

MAX_SERVICES = 3
MAX_ATTEMPTS = 21


def mutation_pool(archetype_slug: str | None) -> tuple[str, ...]:
    """The archetype's services when ``archetype_slug`` is known, else every per-decky service (sorted)."""
    if archetype_slug:
        try:
            return tuple(sorted(get_archetype(archetype_slug).services))
        except UnknownArchetypeError:
            pass
    return per_decky_service_slugs()


def pick_new_services(
    current: Sequence[str],
    archetype_slug: str | None,
    rng: random.Random,
    *,
    pool: Sequence[str] | None = None,
) -> list[str] | None:
    """A new sorted list of 1-3 distinct services from the pool, or ``None`` when the pool is empty.

    The pool is :func:`mutation_pool` unless given explicitly (e.g. to include custom services).

    Draws ``k = randint(1, min(3, len(pool)))`` services and redraws until the set differs from ``current``, at most
    21 draws in all (so with a one-service pool the same set can come back). Deterministic for a seeded ``rng``.
    """
    choices = mutation_pool(archetype_slug) if pool is None else tuple(sorted(set(pool)))
    if not choices:
        return None
    wanted = set(current)
    chosen: list[str] = []
    for _ in range(MAX_ATTEMPTS):
        k = rng.randint(1, min(MAX_SERVICES, len(choices)))
        chosen = rng.sample(choices, k)
        if set(chosen) != wanted:
            break
    return sorted(chosen)
