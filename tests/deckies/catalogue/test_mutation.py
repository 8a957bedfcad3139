"""Service rotation: pick_new_services."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deckies.catalogue.archetypes import all_archetypes, get_archetype
from deckies.catalogue.mutation import MAX_ATTEMPTS, mutation_pool, pick_new_services
from deckies.catalogue.services import per_decky_service_slugs

ARCHETYPE_SLUGS = [archetype.slug for archetype in all_archetypes()]


def test_pool_is_archetype_services_or_all_per_decky() -> None:
    assert set(mutation_pool("database-server")) == {"mysql", "postgres", "redis"}
    assert mutation_pool(None) == per_decky_service_slugs()
    assert mutation_pool("no-such-archetype") == per_decky_service_slugs()
    assert "sniffer" not in mutation_pool(None)


@given(
    st.sampled_from([None, "no-such-archetype", *ARCHETYPE_SLUGS]),
    st.integers(min_value=0, max_value=2**32),
    st.lists(st.sampled_from(per_decky_service_slugs()), max_size=4),
)
def test_result_is_within_pool_sorted_distinct_and_small(archetype: str | None, seed: int, current: list[str]) -> None:
    picked = pick_new_services(current, archetype, random.Random(seed))
    assert picked is not None
    assert 1 <= len(picked) <= 3
    assert picked == sorted(set(picked))
    assert set(picked) <= set(mutation_pool(archetype))


@given(st.sampled_from([a for a in ARCHETYPE_SLUGS if len(get_archetype(a).services) > 1]), st.integers(0, 2**32))
def test_result_differs_from_current(archetype: str, seed: int) -> None:
    current = list(get_archetype(archetype).services)
    picked = pick_new_services(current, archetype, random.Random(seed))
    assert picked is not None
    assert set(picked) != set(current)


def test_differs_for_whole_pool_without_archetype() -> None:
    for seed in range(200):
        current = ["ssh"]
        picked = pick_new_services(current, None, random.Random(seed))
        assert picked is not None
        assert set(picked) != {"ssh"}


def test_single_service_pool_returns_same_after_max_attempts() -> None:
    rng = random.Random(3)
    assert pick_new_services(["ssh"], "deaddeck", rng) == ["ssh"]
    # Every attempt draws k (randint) and one sample, so the loop ran MAX_ATTEMPTS times.
    replay = random.Random(3)
    for _ in range(MAX_ATTEMPTS):
        replay.randint(1, 1)
        replay.sample(["ssh"], 1)
    assert rng.random() == replay.random()


def test_seeded_determinism() -> None:
    runs = [
        [pick_new_services(["http"], None, rng) for _ in range(10)] for rng in (random.Random(42), random.Random(42))
    ]
    assert runs[0] == runs[1]
    assert len({tuple(p or ()) for p in runs[0]}) > 1


def test_current_order_does_not_matter() -> None:
    a = pick_new_services(["redis", "mysql"], "database-server", random.Random(9))
    b = pick_new_services(["mysql", "redis"], "database-server", random.Random(9))
    assert a == b


@pytest.mark.parametrize("pool", [[], ()])
def test_empty_pool_returns_none(pool: list[str]) -> None:
    assert pick_new_services(["ssh"], None, random.Random(0), pool=pool) is None


def test_explicit_pool_can_include_custom_services() -> None:
    picked = pick_new_services([], None, random.Random(1), pool=["wiki", "ssh", "wiki"])
    assert picked is not None
    assert set(picked) <= {"wiki", "ssh"}


def test_empty_archetype_pool_returns_none(monkeypatch: pytest.MonkeyPatch) -> None:
    from deckies.catalogue import mutation

    monkeypatch.setattr(mutation, "per_decky_service_slugs", tuple)
    assert pick_new_services([], None, random.Random(0)) is None
