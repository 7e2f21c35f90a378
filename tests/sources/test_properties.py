"""Property: a read returns exactly the rows of the people (and groups) the filter lets through.

Hypothesis draws small populations, consents, rows and threads, and sometimes the people a
request names; the expected rows are computed here in plain Python from the drawn data, without
:class:`~accord.filters.PersonFilter` (which is checked against the same answer too). Each read is
made both ways the allowed ids reach the party's database: bound as parameters (a few ids known
at once) and through a temporary table (ids streamed). The shared databases are emptied before
each example.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Integer, String
from sqlalchemy.types import TypeEngine

from accord.consent import Consent, Person
from accord.filters import Group
from accord.jurisdictions import EVERYWHERE, Jurisdictions
from accord.sources import Allowed, Source, parse
from accord.sources.allowed import _pairs_as
from sources.conftest import (
    DATASET,
    Databases,
    messages,
    thread_participants,
    watch_events,
)
from sources.world import (
    AT,
    WATCHED,
    Streamed,
    consent,
    consent_filter,
    facts,
    insert,
    load_store,
    member,
)

pytestmark = pytest.mark.integration

IDS = [f"p{i}" for i in range(8)]
PLACES = ["US-CA", "US-NY", "DE", "BR"]
REGIONS = ["*", "US", "DE"]
BEFORE, AFTER = AT - timedelta(days=10), AT + timedelta(days=1)


@dataclass(frozen=True)
class Example:
    people: list[Person]
    consents: list[Consent]
    events: list[tuple[int, str]]  # (event id, member id); members may be unknown to the store
    threads: dict[str, list[str]]
    region: str
    group: Group
    named: frozenset[str] | None  # the people a request names, if it names any


@st.composite
def examples(draw: st.DrawFn) -> Example:
    ids = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=len(IDS)))
    people = [member(pid, draw(st.sampled_from(PLACES))) for pid in ids]
    consents = []
    holders = draw(st.lists(st.sampled_from(ids), max_size=10)) if ids else []
    for n, pid in enumerate(holders):  # the store takes consents of people it knows
        given_at = draw(st.sampled_from([BEFORE, AFTER]))
        consents.append(
            consent(
                pid,
                n,
                recipient=draw(st.sampled_from(["chirp", "other"])),
                categories=frozenset({draw(st.sampled_from([WATCHED, "user.behavior", "user"]))}),
                given_at=given_at,
                withdrawn_at=draw(st.sampled_from([None, given_at + timedelta(days=5)])),
            )
        )
    owners = draw(st.lists(st.sampled_from([*IDS, "stranger"]), max_size=20))
    threads = draw(
        st.dictionaries(
            st.sampled_from([f"t{i}" for i in range(6)]),
            st.lists(st.sampled_from([*IDS, "stranger"]), unique=True, max_size=4),
            max_size=6,
        )
    )
    return Example(
        people,
        consents,
        list(enumerate(owners)),
        threads,
        draw(st.sampled_from(REGIONS)),
        draw(st.sampled_from(Group)),
        draw(st.none() | st.frozensets(st.sampled_from([*IDS, "stranger"]), max_size=4)),
    )


def expected_people(ex: Example) -> set[str]:
    """Who may be read, worked out directly from the drawn records."""

    def in_region(place: str) -> bool:
        return ex.region in {"*", place} or place.startswith(ex.region + "-")

    def consented(pid: str) -> bool:
        return any(
            c.person == pid
            and c.recipient == "chirp"
            and c.given_at <= AT
            and (c.withdrawn_at is None or c.withdrawn_at > AT)
            for c in ex.consents  # every drawn category covers the one needed
        )

    return {
        p.id
        for p in ex.people
        if in_region(p.jurisdiction)
        and (not p.jurisdiction.startswith("US-") or consented(p.id))
        and (ex.named is None or p.id in ex.named)
    }


def check(dbs: Databases, ex: Example) -> None:
    dbs.clear()
    load_store(dbs, ex.people, ex.consents)
    insert(dbs, watch_events, [{"event_id": e, "member_id": m} for e, m in ex.events])
    insert(
        dbs,
        messages,
        [{"message_id": i, "thread_id": t} for i, t in enumerate(sorted(ex.threads))],
    )
    insert(
        dbs,
        thread_participants,
        [{"thread_id": t, "person_id": p} for t, members in ex.threads.items() for p in members],
    )
    regions = EVERYWHERE if ex.region == "*" else Jurisdictions.of([ex.region])
    f = consent_filter(regions=regions, group=ex.group, subjects=ex.named)
    people = expected_people(ex)
    assert f.allowed(facts(ex.people, ex.consents)) == people
    every = ex.group is Group.EVERY_PARTICIPANT
    threads = {
        t
        for t, members in ex.threads.items()
        if members and (all if every else any)(m in people for m in members)
    }
    with dbs.sessions() as session:
        by_filter = Allowed.by_filter(session, f)
    # Named people are judged at once and bound as parameters; everyone streams into a table.
    assert isinstance(by_filter.people, frozenset) == (ex.named is not None)
    bound = Allowed(frozenset(people), ex.group, "reelix")
    streamed = Allowed(Streamed(people), ex.group, "reelix")
    with dbs.sessions() as session:
        for allowed in (Allowed.by_filter(session, f), bound, streamed):
            _, rows = dbs.source.read_all("watch_events", ["event_id"], allowed)
            assert sorted(r[0] for r in rows) == sorted(e for e, m in ex.events if m in people)
            _, rows = dbs.source.read_all("messages", ["thread_id"], allowed)
            assert sorted(r[0] for r in rows) == sorted(threads)


def run(dbs: Databases, count: int) -> Any:
    @settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(examples())
    def prop(ex: Example) -> None:
        check(dbs, ex)

    return prop()


def test_rows_read_are_exactly_those_of_allowed_people(shared_databases: Databases) -> None:
    backend = shared_databases.party.dialect.name
    run(shared_databases, 60 if backend == "sqlite" else 20)


TITLES = ["t0", "t1", "t2"]
TITLED = DATASET.replace(
    "    person: member_id\n", "    person: member_id\n    title: title_id\n", 1
)


@dataclass(frozen=True)
class Viewings:
    events: list[tuple[str, str, str]]  # (member id, title id, device)
    people: list[str]  # the allowed ids, streamed into a temporary table
    verdicts: dict[tuple[str, str], bool]  # (person, title) → allowed
    where: dict[str, Any] | None


@st.composite
def viewings(draw: st.DrawFn) -> Viewings:
    members = st.sampled_from([*IDS, "stranger"])
    events = draw(
        st.lists(
            st.tuples(members, st.sampled_from(TITLES), st.sampled_from(["tv", "phone"])),
            max_size=25,
        )
    )
    verdicts = draw(
        st.dictionaries(st.tuples(members, st.sampled_from(TITLES)), st.booleans(), max_size=8)
    )
    return Viewings(
        events,
        draw(st.lists(st.sampled_from(IDS), unique=True)),
        verdicts,
        draw(st.none() | st.just({"device": "tv"})),
    )


def check_whom(dbs: Databases, source: Source, ex: Viewings) -> None:
    dbs.clear()
    insert(
        dbs,
        watch_events,
        [
            {"event_id": n, "member_id": m, "title_id": title, "device": device}
            for n, (m, title, device) in enumerate(ex.events)
        ],
    )
    titles = tuple((p, title, ok) for (p, title), ok in ex.verdicts.items())
    allowed = Allowed(Streamed(ex.people), party="reelix", titles=titles)
    with source.read("watch_events", ["event_id"], allowed, where=ex.where, whom=True) as read:
        events = sorted(n for (n,) in read)
        whom = read.whom()
    # The rows, stated directly: a viewing goes if its (person, title) verdict allows it, else
    # if its person is allowed; whom they are about is the members of exactly those rows.
    released = [
        n
        for n, (m, title, device) in enumerate(ex.events)
        if ex.verdicts.get((m, title), m in ex.people)
        and (ex.where is None or device == ex.where["device"])
    ]
    assert events == released
    assert len(whom) == len(set(whom))
    assert set(whom) == {ex.events[n][0] for n in released}


def test_whom_a_bulk_read_is_about_is_the_people_of_its_rows(shared_databases: Databases) -> None:
    """Asked of the database (SQLite) or carried in the rows (PostgreSQL), whom a read through a
    temporary table of ids is about, with title verdicts denying and granting, is the people of
    exactly the rows it returned."""
    source = Source(shared_databases.party, parse(TITLED))

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(viewings())
    def prop(ex: Viewings) -> None:
        check_whom(shared_databases, source, ex)

    prop()


@pytest.mark.parametrize("id_type", [String(), Integer()], ids=["text ids", "number ids"])
@given(
    st.lists(
        st.tuples(st.sampled_from(["1", "2", "x"]), st.sampled_from(["t1", "t2"]), st.booleans()),
        max_size=12,
    )
)
def test_title_verdicts_carried_keep_the_first_on_each_pair(
    id_type: TypeEngine[Any], verdicts: list[tuple[str, str, bool]]
) -> None:
    """Each (person, title) is carried once, with the first verdict given on it; an id that
    cannot be one of the column's (``x`` for numbers) is left out."""
    expected: dict[tuple[Any, str], bool] = {}
    for person, title, ok in verdicts:
        if isinstance(id_type, Integer) and not person.isdigit():
            continue
        expected.setdefault((int(person) if isinstance(id_type, Integer) else person, title), ok)
    carried = list(_pairs_as(id_type, String(), verdicts))
    assert len(carried) == len(expected)
    assert {(person, title): ok for person, title, ok in carried} == expected
