"""Rows that carry a title are judged title by title (18 U.S.C. 2710(b)(2)(B)).

A member may withdraw "on a case-by-case basis" (iii): a consent that excludes a title lets none
of that title's rows go, whether the request names the title or reads everyone's activity. A
consent "given at the time the disclosure is sought" ((ii)(I)) is for one disclosure of one
title: it releases that title's rows once, and no later exchange may use it again. A request
about one title reads only that title's rows.

Every test adds one member, m6 in New York (so the VPPA applies), who watched titles no one else
did (x1, x2, x3): whatever of theirs a read releases is told apart by the title alone.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Table, text

from accord.consent import Consent, Method, Operation, Person, Scope
from accord.errors import AccordError, InvalidInput
from accord.gateway import ERROR_RULE, TITLE_WITHHELD, Exchange, Release
from accord.requests import Request
from gateway.helpers import last_entries
from gateway.world import AT, FUNCTIONAL, WATCHED, World, reelix_tables, request

pytestmark = pytest.mark.integration

M6 = Person("m6", "reelix", "US-NY")
MINE = ("x1", "x2", "x3")
TARGETED = "marketing.advertising.third_party.targeted"

FEED = request("watch-activity", requester="chirp", categories=frozenset({WATCHED}))
SEGMENTS = request(
    "interest-segments", requester="chirp", purpose=TARGETED, categories=frozenset({WATCHED})
)


def vppa(n: int, purpose: str = FUNCTIONAL, **overrides: Any) -> Consent:
    """A consent of m6 to Chirp that meets the VPPA (distinct and separate, given 30 days ago)."""
    fields: dict[str, Any] = {
        "id": f"k-m6-{n}",
        "person": "m6",
        "controller": "reelix",
        "recipient": "chirp",
        "purposes": frozenset({purpose}),
        "categories": frozenset({WATCHED}),
        "jurisdiction": "US-NY",
        "given_at": AT - timedelta(days=30),
        "method": Method.IN_APP_DIALOG,
        "notice": "notice-vppa",
        "distinct_and_separate": True,
        "withdrawal_method": Method.SETTINGS_PAGE,
    }
    fields.update(overrides)
    return Consent(**fields)


def once(n: int, title: str, purpose: str = FUNCTIONAL) -> Consent:
    """A VPPA-grade consent of m6 for one disclosure of ``title``, given at the time."""
    return vppa(
        n, purpose, scope=Scope.ONE_DISCLOSURE, disclosure=title, given_at=AT - timedelta(hours=1)
    )


def _add_m6(w: World, consents: list[Consent]) -> None:
    w.accord.add_people([M6])
    w.accord.import_records([M6], consents)
    events: Table = reelix_tables.tables["watch_events"]
    with w.reelix.begin() as conn:
        conn.execute(
            events.insert(),
            [
                {
                    "member_id": "m6",
                    "title_id": t,
                    "watched_at": AT - timedelta(days=2),
                    "seconds": 9,
                }
                for t in MINE
            ],
        )


def _about(title: str | None) -> Request:
    """The feed read, about one title (or, with None, about every title), as a new request."""
    return replace(FEED, title=title, id=uuid.uuid4().hex)


def _read(w: World, r: Request, where: dict[str, Any] | None = None) -> Release:
    return w.gateway.exchange(Exchange(r, w.tokens["chirp"], "watch_events", where=where))


def _m6_titles(release: Release) -> set[str]:
    """The titles of m6's rows in a release (its first column is the title)."""
    return {row[0] for row in release.rows if row[0] in MINE}


# -- case-by-case withdrawal: a bulk read drops the excluded titles ------------------------------


@pytest.mark.parametrize(
    ("consents", "released"),
    [
        # An ongoing VPPA consent excluding nothing: every title.
        ([vppa(1)], {"x1", "x2", "x3"}),
        # Withdrawn case by case for x2: the other titles still flow, x2 does not.
        ([vppa(1, excluded_titles=frozenset({"x2"}))], {"x1", "x3"}),
        # Two titles excluded.
        ([vppa(1, excluded_titles=frozenset({"x1", "x2"}))], {"x3"}),
        # Two ongoing consents, each excluding another title: for each title, one of them is
        # in force and does not exclude it.
        (
            [
                vppa(1, excluded_titles=frozenset({"x2"})),
                vppa(2, excluded_titles=frozenset({"x3"})),
            ],
            {"x1", "x2", "x3"},
        ),
        # x2 excluded from the standing consent, then consented to at the time, once.
        ([vppa(1, excluded_titles=frozenset({"x2"})), once(2, "x2")], {"x1", "x2", "x3"}),
        # Only a consent for one disclosure of x2: x2 and nothing else.
        ([once(1, "x2")], {"x2"}),
        # The consent excluding x2 was withdrawn altogether: nothing.
        ([vppa(1, excluded_titles=frozenset({"x2"}), withdrawn_at=AT - timedelta(days=1))], set()),
        # Not distinct and separate from other terms: no VPPA consent, nothing.
        ([vppa(1, distinct_and_separate=False)], set()),
        # Given in advance more than two years ago: no longer a VPPA consent, nothing.
        ([vppa(1, given_at=AT - timedelta(days=800))], set()),
    ],
)
def test_the_automatic_feed_read_releases_only_titles_the_member_did_not_exclude(
    w: World, consents: list[Consent], released: set[str]
) -> None:
    _add_m6(w, consents)
    release = _read(w, FEED)
    assert _m6_titles(release) == released
    # Everyone else's activity is unaffected: m1, m3 and m5 consented (m2 did not, m4's consent
    # is not distinct and separate).
    others = {row[0] for row in release.rows if row[0] not in MINE}
    assert others == {"t1", "t2", "t3"}
    (_, logged) = last_entries(w.accord.ledger, 2)
    assert logged["people"] == 3 + (1 if released else 0)


@pytest.mark.parametrize(
    ("consents", "released"),
    [
        # Consented to interest segments, excluding nothing.
        ([vppa(1, TARGETED)], {"x1", "x2", "x3"}),
        # x3 withheld case by case: segments are built without it.
        ([vppa(1, TARGETED, excluded_titles=frozenset({"x3"}))], {"x1", "x2"}),
        # The exclusion is in the feed consent, not the segments one: segments get every title.
        (
            [vppa(1, TARGETED), vppa(2, excluded_titles=frozenset({"x3"}))],
            {"x1", "x2", "x3"},
        ),
        # Consented to the feed only, not to advertising: nothing for segments.
        ([vppa(1)], set()),
    ],
)
def test_the_interest_segments_read_releases_only_titles_the_member_did_not_exclude(
    w: World, consents: list[Consent], released: set[str]
) -> None:
    _add_m6(w, consents)
    release = _read(w, SEGMENTS)
    # Nobody else in the world consented to advertising: the release is m6's alone.
    assert {row[0] for row in release.rows} == released
    assert release.people == (1 if released else 0)


def test_a_request_naming_an_excluded_title_releases_none_of_its_rows(w: World) -> None:
    _add_m6(w, [vppa(1, excluded_titles=frozenset({"x2"}))])
    assert _m6_titles(_read(w, _about("x2"))) == set()
    assert _m6_titles(_read(w, _about("x1"))) == {"x1"}


# -- a consent for one disclosure is used once ---------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "released"),
    [
        # The feed read for everyone releases x1 under the one-time consent; the next does not.
        (None, None, ({"x1"}, set())),
        # The same title asked for twice: the second exchange may not use the consent again.
        ("x1", "x1", ({"x1"}, set())),
        # Spent by the bulk read, then asked for by title.
        (None, "x1", ({"x1"}, set())),
        # Spent by the title read, then the bulk read.
        ("x1", None, ({"x1"}, set())),
        # A read about another title relies on nothing: the consent is still there for x1.
        ("x2", "x1", (set(), {"x1"})),
    ],
)
def test_a_consent_for_one_disclosure_releases_its_title_once(
    w: World, first: str | None, second: str | None, released: tuple[set[str], set[str]]
) -> None:
    _add_m6(w, [once(1, "x1")])
    outcomes = tuple(_m6_titles(_read(w, _about(title))) for title in (first, second))
    assert outcomes == released
    with w.accord.engine.connect() as conn:
        used = conn.execute(text("SELECT consent_id, request_id FROM consent_uses")).all()
    assert [consent_id for consent_id, _ in used] == ["k-m6-1"]


def test_an_ongoing_consent_is_not_spent(w: World) -> None:
    _add_m6(w, [vppa(1)])
    for _ in range(2):
        assert _m6_titles(_read(w, FEED)) == {"x1", "x2", "x3"}
    with w.accord.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM consent_uses")).scalar_one() == 0


def test_a_release_whose_consent_use_cannot_be_recorded_releases_nothing(w: World) -> None:
    _add_m6(w, [once(1, "x1")])
    with w.accord.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TRIGGER no_uses BEFORE INSERT ON consent_uses "
                "BEGIN SELECT RAISE(ABORT, 'the store refuses'); END"
            )
        )
    size = w.accord.ledger.head().size
    with pytest.raises(AccordError, match="refuses"):
        _read(w, _about("x1"))
    (logged,) = last_entries(w.accord.ledger, 1)
    assert logged["rules"] == [ERROR_RULE]
    assert w.accord.ledger.head().size == size + 1  # the refusal, and no release


# -- a request about one title reads only that title's rows -------------------------------------


@pytest.mark.parametrize(
    ("consents", "title", "where", "released"),
    [
        # A consent for one disclosure of x1: only x1, not every title of the member.
        ([once(1, "x1")], "x1", None, {"x1"}),
        # The same with the title as a condition too.
        ([once(1, "x1")], "x1", {"title_id": "x1"}, {"x1"}),
        # An ongoing consent covers every title, but the request is about x2 only.
        ([vppa(1)], "x2", None, {"x2"}),
        # The condition may name the field by its collection.
        ([vppa(1)], "x3", {"watch_events.title_id": "x3"}, {"x3"}),
    ],
)
def test_a_request_about_one_title_releases_only_that_title(
    w: World,
    consents: list[Consent],
    title: str,
    where: dict[str, Any] | None,
    released: set[str],
) -> None:
    _add_m6(w, consents)
    release = _read(w, _about(title), where)
    assert {row[0] for row in release.rows} <= {title}  # nobody's other titles either
    assert _m6_titles(release) == released


@pytest.mark.parametrize(
    ("title", "where"),
    [
        # Consented to x1 once, asking for x1 but reading x2.
        ("x1", {"title_id": "x2"}),
        # The same, the field named with its collection.
        ("x1", {"watch_events.title_id": "x3"}),
    ],
)
def test_a_condition_on_another_title_than_the_requests_is_refused(
    w: World, title: str, where: dict[str, Any]
) -> None:
    _add_m6(w, [once(1, "x1"), vppa(2)])
    size = w.accord.ledger.head().size
    with pytest.raises(InvalidInput, match="reads only that title's rows"):
        _read(w, _about(title), where)
    (logged,) = last_entries(w.accord.ledger, 1)
    assert logged["rules"] == [ERROR_RULE]
    assert w.accord.ledger.head().size == size + 1  # the refusal, and no release
    # Nothing was spent either: the consent for x1 still releases x1.
    assert _m6_titles(_read(w, _about("x1"))) == {"x1"}


def test_a_request_naming_a_title_of_a_collection_without_titles_is_refused(w: World) -> None:
    r = request(
        "friend-picker",
        categories=frozenset({"user.social"}),
        title="x1",
        on_behalf_of="c1",
    )
    with pytest.raises(InvalidInput, match="names no title field"):
        w.gateway.exchange(
            Exchange(r, w.tokens["reelix"], "friendships", where={"person_id": "c1"})
        )


# -- a write of titled rows is judged row by row too --------------------------------------------

BOTH = frozenset({Operation.READ, Operation.WRITE})


def _post(w: World, title: str | None = None) -> Release:
    """Reelix posts m6's viewings of x1, x2 and x3 into Chirp's watch activity."""
    r = request(
        "watch-posts",
        agreement="insights",
        operation=Operation.WRITE,
        categories=frozenset({WATCHED}),
        title=title,
    )
    rows = [{"member_id": "m6", "title_id": t, "watched_at": AT} for t in MINE]
    if title is not None:
        rows = [row for row in rows if row["title_id"] == title]
    return w.gateway.exchange(Exchange(r, w.tokens["reelix"], "watch_events", rows=rows))


def _posted(w: World) -> set[str]:
    with w.chirp.connect() as conn:
        query = text("SELECT title_id FROM watch_events WHERE member_id = 'm6'")
        return set(conn.execute(query).scalars())


@pytest.mark.parametrize(
    ("consents", "posted", "withheld"),
    [
        # Excluding x2 case by case: x1 and x3 are posted, x2 is withheld for its title.
        ([vppa(1, operations=BOTH, excluded_titles=frozenset({"x2"}))], {"x1", "x3"}, 1),
        # Consented once to x2 only: x2 alone.
        ([replace(once(1, "x2"), operations=BOTH)], {"x2"}, 0),
        # Nothing excluded: every title.
        ([vppa(1, operations=BOTH)], {"x1", "x2", "x3"}, 0),
    ],
)
def test_a_write_posts_only_titles_the_member_allows(
    w: World, consents: list[Consent], posted: set[str], withheld: int
) -> None:
    _add_m6(w, consents)
    release = _post(w)
    assert _posted(w) == posted
    assert release.written == len(posted)
    assert release.withheld.get(TITLE_WITHHELD, 0) == withheld


def test_a_write_relying_on_a_consent_for_one_disclosure_spends_it(w: World) -> None:
    _add_m6(w, [replace(once(1, "x2"), operations=BOTH)])
    assert _post(w, "x2").written == 1
    assert _post(w, "x2").written == 0  # the consent was for that one disclosure
    assert _posted(w) == {"x2"}


def test_a_write_about_one_title_posts_only_that_titles_rows(w: World) -> None:
    _add_m6(w, [vppa(1, operations=BOTH)])
    r = request(
        "watch-posts",
        agreement="insights",
        operation=Operation.WRITE,
        categories=frozenset({WATCHED}),
        title="x1",
    )
    rows = [{"member_id": "m6", "title_id": t, "watched_at": AT} for t in ("x1", "x2")]
    with pytest.raises(InvalidInput, match="posts only that title's rows"):
        w.gateway.exchange(Exchange(r, w.tokens["reelix"], "watch_events", rows=rows))
    assert _posted(w) == set()
