"""Audiences from Reelix's data on Chirp: only people allowed on both sides, rebuilt as consents
change, never below the minimum, and logged without naming anyone."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.ads.audiences import (
    AudienceBuild,
    AudienceTooSmall,
    build_partner_audience,
    member_digest,
    viewers,
)
from accord.ads.model import Audience
from accord.ads.store import AdsStore
from accord.errors import InvalidInput, NotFound
from accord.service import Accord
from ads.audience_world import DRAMA, HOW, World, build, opened

pytestmark = pytest.mark.integration

N = 240


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Accord, World]]:
    with opened(tmp_path, N) as built:
        yield built


@pytest.fixture
def any_world(db_url: str, tmp_path: Path) -> Iterator[tuple[Accord, World]]:
    """The world on each backend in turn: SQLite, then PostgreSQL."""
    with opened(tmp_path, N, db_url) as built:
        yield built


def _build(
    accord: Accord, world: World, min_size: int = 20
) -> tuple[frozenset[str], AudienceBuild]:
    drama = viewers(world.watches(), genre="drama")
    return drama, build_partner_audience(
        accord,
        AdsStore(accord.engine, "chirp"),
        DRAMA,
        HOW,
        platform_records=world.chirp_records(),
        partner_records=world.reelix_records(drama),
        built_by="reelix-ads",
        min_size=min_size,
    )


def _audience_entries(accord: Accord) -> list[dict[str, object]]:
    leaves = [accord.ledger.leaf(n).entry() for n in range(accord.ledger.head().size)]
    return [e for e in leaves if e["kind"] == "audience"]


def test_the_audience_holds_exactly_the_people_allowed_on_both_sides(
    any_world: tuple[Accord, World],
) -> None:
    accord, records = any_world
    drama, built = _build(accord, records)
    members = AdsStore(accord.engine, "chirp").audience_members(DRAMA.id)
    assert members == records.expected(drama)
    assert built.members == len(members)
    # Nobody who opted out of sale and sharing, on either side, is in it.
    opted_out = {o.person for o in records.opt_outs}
    assert not {m for m in members if m in opted_out or f"m{m[1:]}" in opted_out}
    # Only drama viewers: comedy viewers' Chirp accounts are never in it.
    assert all(int(m[1:]) % 2 == 0 for m in members)


def test_the_ledger_entry_counts_and_digests_the_members_but_names_nobody(
    world: tuple[Accord, World],
) -> None:
    accord, records = world
    _drama, built = _build(accord, records)
    members = AdsStore(accord.engine, "chirp").audience_members(DRAMA.id)
    (entry,) = _audience_entries(accord)
    assert entry["change"] == "built"
    assert entry["people"] == len(members)
    assert entry["agreement"] == HOW.agreement
    assert entry["clause"] == HOW.partner_clause
    assert entry["built_by"] == "reelix-ads"
    assert entry["subjects"] == []
    text = "".join(f"{m}\n" for m in sorted(members))
    assert entry["digest"] == hashlib.sha256(text.encode()).hexdigest() == built.digest
    assert entry["digest"] == member_digest(members)
    leaf = json.dumps(entry)
    assert not any(f'"{m}"' in leaf for m in members)


def test_a_withdrawn_person_leaves_on_rebuild(any_world: tuple[Accord, World]) -> None:
    accord, records = any_world
    _build(accord, records)
    store = AdsStore(accord.engine, "chirp")
    before = store.audience_members(DRAMA.id)
    leaving = sorted(before)[:3]
    for person in leaving:
        member = f"m{person[1:]}"
        accord.withdraw(f"k-{member}")
        records.withdrawn.add(f"k-{member}")
    drama, rebuilt = _build(accord, records)
    after = store.audience_members(DRAMA.id)
    assert after == records.expected(drama)
    assert not set(leaving) & after
    assert after == before - set(leaving)
    assert rebuilt.change == "rebuilt"
    assert [e["change"] for e in _audience_entries(accord)] == ["built", "rebuilt"]


def test_a_person_who_opts_out_later_leaves_on_rebuild(world: tuple[Accord, World]) -> None:
    from datetime import UTC, datetime, timedelta

    from accord.consent import OptOut, OptOutKind, SignalSource

    accord, records = world
    _build(accord, records)
    store = AdsStore(accord.engine, "chirp")
    person = sorted(store.audience_members(DRAMA.id))[0]
    signal = OptOut(
        person, "chirp", OptOutKind.SALE_SHARING, SignalSource.GPC, datetime.now(UTC) - timedelta(1)
    )
    accord.opt_out(signal)
    records.opt_outs.append(signal)
    drama, _ = _build(accord, records)
    assert person not in store.audience_members(DRAMA.id)
    assert store.audience_members(DRAMA.id) == records.expected(drama)


def test_an_audience_below_its_minimum_is_refused(world: tuple[Accord, World]) -> None:
    accord, records = world
    with pytest.raises(AudienceTooSmall, match="needs at least 1000"):
        _build(accord, records, min_size=1000)
    assert AdsStore(accord.engine, "chirp").audience(DRAMA.id) is None
    assert _audience_entries(accord) == []


def test_a_rebuild_below_its_minimum_empties_the_audience(world: tuple[Accord, World]) -> None:
    accord, records = world
    _drama, built = _build(accord, records)
    with pytest.raises(AudienceTooSmall, match="emptied"):
        _build(accord, records, min_size=built.members + 1)
    assert AdsStore(accord.engine, "chirp").audience_members(DRAMA.id) == frozenset()


def test_a_campaign_targeting_the_audience_uses_partner_data_and_its_members(
    world: tuple[Accord, World],
) -> None:
    from datetime import UTC, datetime

    from accord.ads.model import Bid, BidStrategy, Campaign, Creative, Schedule, Targeting

    accord, records = world
    _build(accord, records)
    store = AdsStore(accord.engine, "chirp")
    store.set_profiles([(f"c{i}", "25-34", frozenset()) for i in range(N)])
    campaign = store.add_campaign(
        Campaign(
            id=0,
            advertiser="reelix-ads",
            name="Drama season",
            daily_budget=10_000_000,
            schedule=Schedule(datetime(2026, 1, 1, tzinfo=UTC)),
            bid=Bid(BidStrategy.CPC, 500_000),
            creatives=(Creative("c1", "Watch now", "", "https://reelix.example/drama"),),
            targeting=Targeting(audiences=frozenset({DRAMA.id})),
        )
    )
    assert campaign.partner_data
    members = store.audience_members(DRAMA.id)
    now = datetime.now(UTC)
    signals = store.signals_many([(f"c{i}", now, False) for i in range(N)])
    inside = {s.person for s in signals if not isinstance(s, Exception) and DRAMA.id in s.audiences}
    assert inside == members


def test_viewers_of_a_title_or_a_genre() -> None:
    watches = [("m1", "t1", "drama"), ("m2", "t2", "comedy"), ("m3", "t1", "drama")]
    assert viewers(watches, title="t2") == {"m2"}
    assert viewers(watches, genre="drama") == {"m1", "m3"}


def test_an_audience_of_nobody_is_refused(world: tuple[Accord, World]) -> None:
    accord, records = world
    with pytest.raises(AudienceTooSmall, match="only 0 people matched"):
        build_partner_audience(
            accord,
            AdsStore(accord.engine, "chirp"),
            DRAMA,
            HOW,
            platform_records=records.chirp_records(),
            partner_records=[],
            built_by="reelix-ads",
            min_size=1,
        )


@pytest.mark.parametrize(
    ("audience", "error"),
    [
        # the platform's own audience: not built from a partner's data
        (Audience("own", "reelix-ads", "Own"), InvalidInput),
        # another partner's
        (Audience("other", "reelix-ads", "Other", provider="chirp"), InvalidInput),
        # an advertiser the platform does not know
        (Audience("ghost", "nobody", "Ghost", provider="reelix"), NotFound),
    ],
)
def test_an_audience_that_is_not_the_partners_is_refused_before_anything_is_logged(
    world: tuple[Accord, World], audience: Audience, error: type[Exception]
) -> None:
    accord, records = world
    size = accord.ledger.head().size
    with pytest.raises(error):
        build_partner_audience(
            accord,
            AdsStore(accord.engine, "chirp"),
            audience,
            HOW,
            platform_records=records.chirp_records(),
            partner_records=records.reelix_records({"m0"}),
            built_by="reelix-ads",
        )
    assert accord.ledger.head().size == size


def test_an_erased_person_leaves_and_does_not_come_back_on_rebuild(
    world: tuple[Accord, World],
) -> None:
    from accord.erasure import erase

    accord, records = world
    _build(accord, records)
    store = AdsStore(accord.engine, "chirp")
    first, second = sorted(store.audience_members(DRAMA.id))[:2]
    # Reelix erases the member behind one; Chirp erases the other person itself.
    member = f"m{first[1:]}"
    erase(accord, "reelix", member)
    records.withdrawn.add(f"k-{member}")
    erase(accord, "chirp", second)
    records.withdrawn.add(f"k-{second}")
    # Chirp's own erasure takes its person out of every audience at once.
    assert second not in store.audience_members(DRAMA.id)
    drama, _ = _build(accord, records)
    after = store.audience_members(DRAMA.id)
    assert first not in after
    assert second not in after
    assert after == records.expected(drama)


PROPERTY_PEOPLE = 24


@settings(max_examples=10, deadline=None)
@given(
    never_consented=st.sets(st.integers(0, PROPERTY_PEOPLE - 1)),
    chirp_opted_out=st.sets(st.integers(0, PROPERTY_PEOPLE - 1)),
    reelix_opted_out=st.sets(st.integers(0, PROPERTY_PEOPLE - 1)),
    watched=st.sets(st.integers(0, PROPERTY_PEOPLE - 1), min_size=1),
)
def test_an_audience_is_exactly_who_consented_and_did_not_opt_out(
    never_consented: set[int],
    chirp_opted_out: set[int],
    reelix_opted_out: set[int],
    watched: set[int],
) -> None:
    with tempfile.TemporaryDirectory() as folder, Accord.open(data_dir=Path(folder)) as accord:
        records = build(
            accord,
            PROPERTY_PEOPLE,
            never_consented=never_consented,
            chirp_opted_out=chirp_opted_out,
            reelix_opted_out=reelix_opted_out,
        )
        chosen = {f"m{i}" for i in watched}
        build_partner_audience(
            accord,
            AdsStore(accord.engine, "chirp"),
            DRAMA,
            HOW,
            platform_records=records.chirp_records(),
            partner_records=records.reelix_records(chosen),
            built_by="reelix-ads",
            min_size=0,
        )
        members = AdsStore(accord.engine, "chirp").audience_members(DRAMA.id)
    assert members == records.expected(chosen)
    # Nobody who opted out on either side, nobody without consent, nobody who did not watch.
    assert not {int(m[1:]) for m in members} & (chirp_opted_out | reelix_opted_out)
    assert not {int(m[1:]) for m in members} & never_consented
    assert {int(m[1:]) for m in members} <= watched
