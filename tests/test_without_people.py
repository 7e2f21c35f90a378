"""Texts that go into ledger entries never name a person a request names, nor a value a partner
sent, however the text quotes them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.consent import Operation
from accord.requests import Request, Subjects, SubjectsKind
from accord.service import ACTING, ANCHOR, NAMED, refusal_entry, without_people, without_values

pytestmark = pytest.mark.unit

AT = datetime(2026, 12, 1, tzinfo=UTC)
# Ids as parties make them: a letter, a digit, more (never a plain word of the sentences).
ids = st.from_regex(r"[a-z]{1,3}[0-9][a-z0-9_.@+-]{0,12}[a-z0-9]", fullmatch=True)
# How errors put an id in a sentence: bare, repr-quoted, JSON-quoted, after a colon, in a list.
framings = st.sampled_from(["{}", "'{}'", '"{}"', "of {}.", "names {}, and", "({})", "x: {}"])


def request(acting: str, anchor: str, named: list[str]) -> Request:
    return Request(
        requester="reelix",
        agreement="chirp-reelix",
        clause="friend-picker",
        operation=Operation.READ,
        purpose="functional.service",
        categories=frozenset({"user.social"}),
        at=AT,
        on_behalf_of=acting,
        subjects=Subjects(SubjectsKind.FRIENDS_OF, anchor=anchor)
        if not named
        else Subjects(SubjectsKind.PEOPLE, frozenset(named)),
    )


def mentions(text: str, person: str) -> bool:
    return re.search(rf"(?<![\w@.-]){re.escape(person)}(?![\w@-])", text) is not None


@given(ids, ids, st.lists(ids, max_size=3), st.lists(framings, min_size=1, max_size=4))
def test_no_person_the_request_names_survives(
    acting: str, anchor: str, named: list[str], frames: list[str]
) -> None:
    r = request(acting, anchor, named)
    people = [acting, *(named or [anchor])]
    text = " then ".join(frame.format(p) for frame in frames for p in people)
    entry = refusal_entry(r, "gateway:error", f"Refused: {text}", AT)
    for person in people:
        assert not mentions(entry.reason, person), (person, entry.reason)


@given(st.lists(ids, min_size=1, max_size=4), framings)
def test_no_value_a_partner_sent_survives(values: list[str], frame: str) -> None:
    text = "row 0 gives " + ", ".join(frame.format(v) for v in values)
    cleaned = without_values(text, values)
    for value in values:
        assert not mentions(cleaned, value), (value, cleaned)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The person acting, by their part.
        ("made on behalf of c1", f"made on behalf of {ACTING}"),
        # The anchor of a relation read.
        ("a read names c2 in a condition", f"a read names {ANCHOR} in a condition"),
        # An id inside a longer one, or an e-mail address, is not the person.
        ("c10 and c1@chirp", "c10 and c1@chirp"),
    ],
)
def test_roles_replace_ids(text: str, expected: str) -> None:
    r = request("c1", "c2", [])
    assert without_people(text, r) == expected


def test_named_people_become_a_named_person() -> None:
    r = request("c1", "c2", ["c3", "c4"])
    assert without_people("c3 and c4", r) == f"{NAMED} and {NAMED}"


def test_a_request_naming_many_people_names_none_of_them() -> None:
    many = [f"c{n:07d}" for n in range(1000)]
    r = request("c9999999", "c2", many)
    text = "refused for c0000007, 'c0000500' and c0000999."
    assert without_people(text, r) == f"refused for {NAMED}, '{NAMED}' and {NAMED}."
