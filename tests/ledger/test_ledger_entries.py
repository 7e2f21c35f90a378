"""Typed entries and their leaves: canonical JSON (RFC 8785), validation, no ids in clear."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import InvalidInput
from accord.ledger.entries import (
    AUDIENCE_CHANGES,
    CONSENT_CHANGES,
    ENTRY_KINDS,
    AgreementChangeEntry,
    AudienceEntry,
    ConsentChangeEntry,
    DecisionEntry,
    Entry,
    ErasureEntry,
    ReleaseEntry,
    canonical_json,
    decode_leaf,
)

pytestmark = pytest.mark.unit

text = st.text(max_size=30)
keys = st.lists(st.text(min_size=1, max_size=20), max_size=4).map(tuple)
# People's ids: any text but NUL, which entries refuse in an id (see the refusals below).
ids = st.lists(
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20),
    max_size=4,
).map(tuple)
moments = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(9998, 12, 31),
    timezones=st.just(UTC),
)
common = {
    "agreement": st.none() | text,
    "reason": st.text(min_size=1, max_size=60),
    "clause": st.none() | text,
    "purpose": st.none() | text,
    "categories": keys,
    "about": ids,
    "at": moments,
}
entries = st.one_of(
    st.builds(
        DecisionEntry, allowed=st.booleans(), rules=keys, recipient=st.none() | text, **common
    ),
    st.builds(
        ReleaseEntry,
        provider=text,
        recipient=text,
        fields=keys,
        granularity=st.sampled_from(["record", "aggregate", "match-only"]),
        **common,
    ),
    st.builds(
        ConsentChangeEntry,
        change=st.sampled_from(CONSENT_CHANGES),
        recipient=st.none() | text,
        **common,
    ),
    st.builds(
        AgreementChangeEntry,
        from_status=st.none() | text,
        to_status=text,
        actor=st.none() | text,
        **common,
    ),
    # An audience entry counts its members and never names them: ``about`` stays empty.
    st.builds(
        AudienceEntry,
        change=st.sampled_from(AUDIENCE_CHANGES),
        platform=text,
        audience=text,
        advertiser=text,
        provider=text,
        built_by=text,
        digest=text,
        seed=st.none() | st.integers(0, 2**53 - 1),
        recall=st.none() | text,
        people=st.integers(0, 10**9),
        **{**common, "about": st.just(())},
    ),
)
tags = st.lists(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), max_size=3)


@settings(max_examples=300)
@given(entry=entries, subjects=tags)
def test_the_fast_encoder_writes_exactly_rfc8785(entry: Entry, subjects: list[str]) -> None:
    leaf = entry.leaf(subjects)
    assert entry.encode(subjects) == rfc8785.dumps(leaf)
    assert decode_leaf(entry.encode(subjects)) == leaf


@settings(max_examples=100)
@given(entry=entries, subjects=tags)
def test_a_leaf_names_its_kind_and_never_the_people(entry: Entry, subjects: list[str]) -> None:
    leaf = entry.leaf(subjects)
    assert ENTRY_KINDS[leaf["kind"]] is type(entry)
    assert leaf["subjects"] == sorted(subjects)
    assert "about" not in leaf
    assert leaf["people"] >= len(set(entry.about))


def test_ids_in_about_are_not_in_the_leaf() -> None:
    entry = ReleaseEntry(
        agreement="a", reason="r", provider="reelix", recipient="chirp", about=("alice-4711",)
    )
    assert b"alice-4711" not in entry.encode(["ab" * 32])
    assert entry.people == 1


@pytest.mark.parametrize(
    ("build", "message"),
    [
        # lone surrogates cannot be UTF-8, so they cannot be canonical JSON
        (lambda: DecisionEntry(agreement="a\ud800", reason="r", allowed=True), "Unicode"),
        # a NUL in an id (PostgreSQL refuses it in text; SQLite's JSON would cut the id there)
        (
            lambda: ReleaseEntry(
                agreement="a", reason="r", provider="p", recipient="q", about=("x", "ab\x00c")
            ),
            "NUL",
        ),
        # fewer people than distinct ids named
        (
            lambda: DecisionEntry(
                agreement="a", reason="r", allowed=True, people=1, about=("x", "y")
            ),
            "people",
        ),
        # RFC 8785 numbers are doubles: counts beyond 2**53 would not round-trip
        (lambda: DecisionEntry(agreement="a", reason="r", allowed=True, people=2**53), "2\\*\\*53"),
        # a bool is not a count
        (lambda: ErasureEntry(agreement=None, reason="r", entries_forgotten=True), "whole number"),
        # every entry explains itself
        (lambda: DecisionEntry(agreement="a", reason="", allowed=False), "reason"),
        # an erasure never names the person it erases
        (lambda: ErasureEntry(agreement=None, reason="r", about=("alice",)), "must not name"),
        # times are instants
        (
            lambda: DecisionEntry(agreement="a", reason="r", allowed=True, at=datetime(2024, 1, 1)),
            "aware",
        ),
        (lambda: ConsentChangeEntry(agreement="a", reason="r", change="maybe"), "consent change"),  # type: ignore[arg-type]
        (
            lambda: ReleaseEntry(
                agreement="a", reason="r", provider="p", recipient="q", granularity="some"
            ),
            "granularity",
        ),  # type: ignore[arg-type]
    ],
)
def test_invalid_entries_are_refused(build: object, message: str) -> None:
    assert callable(build)
    with pytest.raises(InvalidInput, match=message):
        build()


def test_timestamps_are_utc_with_microseconds() -> None:
    entry = DecisionEntry(
        agreement="a", reason="r", allowed=True, at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    )
    assert entry.leaf()["at"] == "2024-05-01T12:00:00.000000Z"


def test_the_general_encoder_handles_what_the_fast_one_never_sees() -> None:
    assert canonical_json({"b": 1.5, "a": [True, None]}) == b'{"a":[true,null],"b":1.5}'
    with pytest.raises(InvalidInput):
        canonical_json({"x": float("nan")})


@pytest.mark.parametrize("data", [b"\xff", b"[1, 2]", b"{"])
def test_decode_leaf_refuses_what_is_not_a_leaf(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        decode_leaf(data)


def test_times_in_other_zones_are_written_in_utc() -> None:
    from datetime import timedelta, timezone

    paris_summer = timezone(timedelta(hours=2))
    entry = DecisionEntry(
        agreement="a", reason="r", allowed=True, at=datetime(2024, 5, 1, 14, 0, tzinfo=paris_summer)
    )
    assert entry.leaf()["at"] == "2024-05-01T12:00:00.000000Z"
    assert b'"at":"2024-05-01T12:00:00.000000Z"' in entry.encode()


def test_the_writers_memos_stay_bounded_and_right() -> None:
    """More distinct values than a memo keeps: each leaf is still exact, the memos stay small."""
    from accord.ledger import entries as module

    limit = module._MEMO_LIMIT
    at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    for number in range(limit + 50):
        entry = DecisionEntry(
            agreement=f"agreement-{number}",
            reason="r",
            allowed=number % 2 == 0,
            categories=(f"category-{number}",),
            at=at.replace(day=1 + number % 28, microsecond=number),
        )
        assert entry.encode() == rfc8785.dumps(entry.leaf())
    assert len(module._QUOTED) <= limit
    assert len(module._TEXTS_QUOTED) <= limit
    assert len(module._DAYS) <= limit


def test_a_list_where_a_tuple_belongs_is_written_the_same() -> None:
    """Lists cannot be memo keys; a field holding one is written without the memo."""
    entry = DecisionEntry(agreement="a", reason="r", allowed=True, rules=("x",))
    object.__setattr__(entry, "rules", ["x", "y"])
    assert entry.encode() == rfc8785.dumps(entry.leaf())


def test_the_kinds_the_commands_name_are_the_kinds_there_are() -> None:
    """`accord ledger show --kind` names them from a light list: it must be the whole list."""
    from accord.ledger.entries import ENTRY_KINDS
    from accord.ledger.kinds import KINDS

    assert sorted(ENTRY_KINDS) == list(KINDS)


def test_an_audience_entry_refuses_to_name_its_members() -> None:
    with pytest.raises(InvalidInput, match="must not name"):
        AudienceEntry(
            agreement="a",
            reason="r",
            change="built",
            platform="chirp",
            audience="drama",
            advertiser="reelix-ads",
            provider="reelix",
            built_by="reelix-ads",
            digest="00",
            about=("c1",),
        )
