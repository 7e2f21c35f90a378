"""Withdrawing a consent for one title (the VPPA's case-by-case withdrawal, 18 U.S.C.
2710(b)(2)(B)(iii)): the consent carries on for every other title, ends when it would have, and
earlier disclosures stay judged by the record in force when they were made."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.consent import Consent, Person, Scope
from accord.errors import ConsentError
from accord.service import Accord
from accord.standing import State
from builders import NOW, consent

DAY = timedelta(days=1)
VIEWING = frozenset({"user.behavior.media_consumption"})
_ids = itertools.count()

pytestmark = pytest.mark.integration


@pytest.fixture
def accord(tmp_path: Path) -> Iterator[Accord]:
    with Accord.open(data_dir=tmp_path) as opened:
        opened.add_party("chirp")
        opened.add_party("reelix")
        opened.add_people([Person("p1", "chirp", "US-NY")])
        yield opened


def viewing(**overrides: object) -> Consent:
    fields: dict[str, object] = {
        "id": f"watch-{next(_ids)}",
        "categories": VIEWING,
        "distinct_and_separate": True,
        "jurisdiction": "US-NY",
        "given_at": NOW - 30 * DAY,
    }
    return consent("p1", **(fields | overrides))


def test_one_title_out_and_every_other_in(accord: Accord) -> None:
    first = accord.grant(viewing())
    narrowed = accord.withdraw_title(first.id, "title-0003", NOW)
    records = {c.id: c for c in accord.consents("chirp", "p1")}
    assert records[first.id].withdrawn_at == NOW
    assert narrowed.excluded_titles == frozenset({"title-0003"})
    assert narrowed.given_at == first.given_at
    assert narrowed.expires_at == first.expires_at
    assert narrowed.distinct_and_separate
    assert not narrowed.allows_title("title-0003")
    assert narrowed.allows_title("title-0004")
    now = accord.standing("chirp", "p1", NOW + DAY)
    states = {s.consent.id: s for s in now.consents}
    assert states[first.id].state is State.WITHDRAWN
    assert states[narrowed.id].state is State.IN_FORCE
    # The VPPA's two years still run from when the person gave it.
    assert states[narrowed.id].viewing_until == states[first.id].viewing_until
    # Before the withdrawal, the first record was in force for every title.
    before = {s.consent.id: s for s in accord.standing("chirp", "p1", NOW - DAY).consents}
    assert before[first.id].state is State.IN_FORCE
    assert before[first.id].consent.allows_title("title-0003")
    # The ledger says a title was withdrawn, not which.
    (entry,) = [
        e for e in accord.ledger.leaves_about("chirp/p1") if "one title" in e.get("reason", "")
    ]
    assert entry["change"] == "withdrawn"
    assert "title-0003" not in str(entry)


@pytest.mark.parametrize(
    ("overrides", "title", "said"),
    [
        ({"withdrawn_at": NOW - DAY}, "t1", "is not in force"),  # already withdrawn
        ({"categories": frozenset({"user.social"})}, "t1", "has no titles"),  # not viewing
        (
            {"scope": Scope.ONE_DISCLOSURE, "disclosure": "t2"},
            "t1",
            "for one disclosure only",
        ),  # one disclosure: withdraw it whole
        ({"excluded_titles": frozenset({"t1"})}, "t1", "already leaves out title 't1'"),
        ({}, "   ", "name the title"),  # no title
    ],
)
def test_what_cannot_be_withdrawn_for_one_title(
    accord: Accord, overrides: dict[str, object], title: str, said: str
) -> None:
    record = accord.grant(viewing(**overrides))
    with pytest.raises(ConsentError, match=said):
        accord.withdraw_title(record.id, title, NOW)
    assert [c.id for c in accord.consents("chirp", "p1")] == [record.id]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(titles=st.lists(st.sampled_from([f"title-{n:04d}" for n in range(6)]), max_size=6))
def test_a_chain_of_title_withdrawals_leaves_one_record_in_force(
    accord: Accord, titles: list[str]
) -> None:
    """Whatever titles are withdrawn, one by one: exactly one record of the chain is in force,
    leaving out exactly those titles, given when the first was."""
    first = accord.grant(viewing())
    current = first
    for n, title in enumerate(titles):
        at = NOW + n * DAY
        if title in current.excluded_titles:
            with pytest.raises(ConsentError):
                accord.withdraw_title(current.id, title, at)
        else:
            current = accord.withdraw_title(current.id, title, at)
    chain = [
        c for c in accord.consents("chirp", "p1") if c.id.split("~")[0] == first.id.split("~")[0]
    ]
    live = [c for c in chain if c.in_force_at(NOW + 10 * DAY)]
    assert [c.id for c in live] == [current.id]
    assert current.excluded_titles == frozenset(titles)
    assert {c.given_at for c in chain} == {first.given_at}
    assert len(chain) == len(set(titles)) + 1
