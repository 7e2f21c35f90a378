"""Lookalike audiences: the seed never leaves the room, and the model finds people like it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.ads.audiences import build_lookalike_audience, viewers
from accord.ads.model import Audience
from accord.ads.store import AdsStore
from accord.errors import InvalidInput
from accord.pets.lookalike import MAX_SEED, MIN_SEED, build, check_seed_size
from accord.service import Accord
from ads.audience_world import HOW, World, opened

N = 2_000


def _world(seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """People, features and a hidden trait: the first two features lean with the trait."""
    rng = np.random.default_rng(seed)
    trait = rng.random(N) < 0.3
    features = rng.normal(size=(N, 5))
    features[:, 0] += 1.5 * trait
    features[:, 1] -= 1.0 * trait
    return [f"p{i}" for i in range(N)], features, trait


@pytest.mark.unit
def test_no_seed_member_leaves_even_when_the_seed_scores_highest() -> None:
    people, features, trait = _world()
    seed_rows = np.flatnonzero(trait)[:200]
    # Make the seed the most extreme people of all: the model scores them highest.
    features[seed_rows, 0] += 10
    seed = {people[i] for i in seed_rows}
    found = build(people, features, seed, size=300)
    assert len(found.members) == 300
    assert not set(found.members) & seed
    assert found.seed == 200
    assert found.candidates == N - 200


@pytest.mark.unit
def test_the_lookalike_finds_people_like_the_seed_and_reports_recall() -> None:
    people, features, trait = _world(1)
    seed_rows = np.flatnonzero(trait)[:150]
    seed = {people[i] for i in seed_rows}
    found = build(people, features, seed, size=200)
    chosen = np.array([int(p[1:]) for p in found.members])
    # A list drawn at random would hold the trait's 30%; the lookalike holds far more.
    assert trait[chosen].mean() > 0.6
    # A random ranking puts 20% of held-out seed members in the top fifth.
    assert found.recall > 0.5
    assert found.held_out == 30


@pytest.mark.unit
@pytest.mark.parametrize(
    ("size", "ok"),
    [
        (MIN_SEED - 1, False),  # below the smallest seed
        (MIN_SEED, True),
        (MAX_SEED, True),
        (MAX_SEED + 1, False),  # above the largest
    ],
)
def test_seed_size_limits(size: int, ok: bool) -> None:
    if ok:
        check_seed_size(size)
    else:
        with pytest.raises(InvalidInput, match="25 to 500,000"):
            check_seed_size(size)


@pytest.mark.unit
def test_a_seed_too_small_after_matching_is_refused() -> None:
    people, features, _trait = _world()
    with pytest.raises(InvalidInput, match="has 24"):
        build(people, features, set(people[:24]), size=10)


@pytest.mark.unit
@settings(max_examples=25, deadline=None)
@given(
    chosen=st.sets(st.integers(0, 299), min_size=MIN_SEED, max_size=120),
    size=st.integers(1, 400),
)
def test_the_audience_never_holds_a_seed_member(chosen: set[int], size: int) -> None:
    rng = np.random.default_rng(len(chosen))
    people = [f"p{i}" for i in range(300)]
    features = rng.normal(size=(300, 3))
    seed = {people[i] for i in chosen}
    found = build(people, features, seed, size=size)
    assert not set(found.members) & seed
    assert len(found.members) == min(size, 300 - len(chosen))


# -- through Accord: the seed is Reelix's, matched into Chirp in the room --------------------------

WORLD = 400


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Accord, World]]:
    with opened(tmp_path, WORLD) as built:
        yield built


@pytest.mark.integration
def test_a_lookalike_of_reelix_drama_viewers_leaves_out_the_seed_and_the_opted_out(
    world: tuple[Accord, World],
) -> None:
    accord, records = world
    # Chirp's own features: drama viewers (even i) lean one way.
    rng = np.random.default_rng(7)
    people = [f"c{i}" for i in range(WORLD)]
    features = rng.normal(size=(WORLD, 3))
    features[::2, 0] += 2.0
    # Reelix's seed: drama viewers among the first 200 members.
    seed_members = {m for m in viewers(records.watches(), genre="drama") if int(m[1:]) < 200}
    matched_seed = {f"c{m[1:]}" for m in records.expected(seed_members)}
    assert len(matched_seed) >= 25
    audience = Audience("drama-lookalike", "reelix-ads", "Like drama viewers", provider="reelix")
    store = AdsStore(accord.engine, "chirp")
    built = build_lookalike_audience(
        accord,
        store,
        audience,
        HOW,
        platform_records=records.chirp_records(),
        seed_records=records.reelix_records(seed_members),
        people=people,
        features=features,
        size=60,
        built_by="reelix-ads",
    )
    members = store.audience_members(audience.id)
    assert len(members) == built.members == 60
    # No seed member (matched into Chirp) is in the audience.
    assert not members & matched_seed
    # Only Chirp people who may take part: nobody who opted out at Chirp.
    assert all(records.may_take_part("chirp", p) for p in members)
    # It looks like the seed: mostly drama viewers.
    assert sum(int(p[1:]) % 2 == 0 for p in members) >= 45
    entries = [accord.ledger.leaf(n).entry() for n in range(accord.ledger.head().size)]
    (entry,) = [e for e in entries if e["kind"] == "audience"]
    assert entry["change"] == "lookalike"
    assert entry["seed"] == len(matched_seed)
    assert 0 <= float(str(entry["recall"])) <= 1
    assert entry["people"] == 60
    assert entry["subjects"] == []
    text = "".join(f"{m}\n" for m in sorted(members))
    assert entry["digest"] == hashlib.sha256(text.encode()).hexdigest()
    assert built.lookalike is not None
    assert not set(built.lookalike.members) & matched_seed


@pytest.mark.integration
def test_a_seed_outside_the_limits_is_refused_before_anything_is_matched(
    world: tuple[Accord, World],
) -> None:
    accord, records = world
    before = accord.ledger.head().size
    with pytest.raises(InvalidInput, match="this one has 10"):
        build_lookalike_audience(
            accord,
            AdsStore(accord.engine, "chirp"),
            Audience("tiny", "reelix-ads", "Tiny", provider="reelix"),
            HOW,
            platform_records=records.chirp_records(),
            seed_records=records.reelix_records({f"m{i}" for i in range(10)}),
            people=[f"c{i}" for i in range(WORLD)],
            features=np.zeros((WORLD, 2)),
            size=10,
            built_by="reelix-ads",
        )
    assert accord.ledger.head().size == before


@pytest.mark.unit
def test_features_that_are_not_numbers_and_a_seed_of_everyone_are_refused() -> None:
    people = [f"p{i}" for i in range(40)]
    features = np.zeros((40, 2))
    with pytest.raises(InvalidInput, match="everyone is in the seed"):
        build(people, features, set(people), size=5)
    features[3, 1] = np.nan
    with pytest.raises(InvalidInput, match="finite"):
        build(people, features, set(people[:30]), size=5)
