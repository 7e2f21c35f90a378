"""The per-person filter in SQL lets through exactly whom :meth:`PersonFilter.judge` does.

Decision rows pin the boundaries one by one; Hypothesis then draws whole populations (people,
consents, opt-outs) and filters, and compares the SQL answer with the Python reference, on SQLite
with many examples and on PostgreSQL with fewer. Each example runs in a transaction that is rolled
back, which clears the tables for the next.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Engine,
    MetaData,
    String,
    Table,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.orm import Session, sessionmaker

from accord import taxonomy
from accord.consent import (
    Consent,
    Operation,
    OptOut,
    OptOutKind,
    Person,
    PersonFacts,
    Scope,
    SignalSource,
    add_years,
    years_before,
)
from accord.filters import (
    REGION_RULE,
    ConsentNeed,
    Group,
    NoOptOut,
    PersonFilter,
    Rule,
)
from accord.jurisdictions import EVERYWHERE, Jurisdictions
from accord.store.filter_sql import (
    allowed_groups,
    allowed_groups_query,
    allowed_people,
    allowed_people_query,
    refusals,
)
from accord.store.repositories import (
    ConsentRepository,
    OptOutRepository,
    PeopleRepository,
)
from accord.store.title_sql import _absorbed, spendable_query

pytestmark = pytest.mark.integration

AT = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)  # a leap day, so max_years meets 29 February
US = "marketing.advertising.third_party.targeted"
WATCHED = "user.behavior.media_consumption"
MICRO = timedelta(microseconds=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class OptIn:
    """A person withdrew their opt-out of sale and sharing (``accord consent opt-in``)."""

    person: str
    controller: str
    at: datetime


def undone(records: Sequence[OptOut], events: Sequence[OptOut | OptIn]) -> tuple[OptOut, ...]:
    """The opt-outs after ``events`` in order, written from what an opt-in means, not from the
    store: an opt-in at ``t`` ends, at ``t``, each of the person's opt-outs at that controller in
    force at ``t`` (sent by then, not ended by then)."""
    out = list(records)
    for e in events:
        if isinstance(e, OptOut):
            out.append(e)
            continue
        out = [
            replace(o, revoked_at=e.at)
            if o.person == e.person
            and o.controller == e.controller
            and o.at <= e.at
            and (o.revoked_at is None or o.revoked_at > e.at)
            else o
            for o in out
        ]
    return tuple(out)


@dataclass(frozen=True)
class World:
    """A population: people (of Chirp and of Reelix), consents and opt-outs.

    ``events`` are opt-outs sent and withdrawn after ``opt_outs`` were loaded, in order: the
    store records them as the service does (an opt-in ends the opt-outs in force).
    """

    people: tuple[Person, ...]
    consents: tuple[Consent, ...]
    opt_outs: tuple[OptOut, ...]
    events: tuple[OptOut | OptIn, ...] = ()

    def facts(self, party: str = "chirp") -> dict[str, PersonFacts]:
        outs = undone(self.opt_outs, self.events)
        return {
            p.id: PersonFacts.of(p, self.consents, outs) for p in self.people if p.party == party
        }


@contextmanager
def loaded(sessions: sessionmaker[Any], world: World) -> Iterator[Session]:
    """A session that sees ``world``, inside a transaction rolled back on exit."""
    with sessions() as session:
        try:
            PeopleRepository(session).upsert_many(world.people)
            ConsentRepository(session).bulk_add(world.consents)
            opt_outs = OptOutRepository(session)
            for out in world.opt_outs:
                opt_outs.add(out)
            for e in world.events:
                if isinstance(e, OptOut):
                    opt_outs.add(e)
                else:
                    opt_outs.revoke(e.controller, e.person, OptOutKind.SALE_SHARING, e.at)
            yield session
        finally:
            session.rollback()


def reference_refusals(f: PersonFilter, facts: dict[str, PersonFacts]) -> Counter[str]:
    considered = [x for x in facts.values() if f.subjects is None or x.person.id in f.subjects]
    counts: Counter[str] = Counter({REGION_RULE: 0, **{r.id: 0 for r in f.rules}})
    for x in considered:
        counts.update(set(f.judge(x)))
    return counts


def check(session: Session, world: World, f: PersonFilter) -> None:
    facts = world.facts(f.controller)
    assert allowed_people(session, f) == f.allowed(facts.values())
    assert refusals(session, f) == reference_refusals(f, facts)


# --- decision rows --------------------------------------------------------------------------


def person(pid: str, jurisdiction: str = "US-CA") -> Person:
    return Person(pid, "chirp", jurisdiction)


def consent(pid: str = "p1", **overrides: Any) -> Consent:
    fields: dict[str, Any] = {
        "id": f"k-{pid}",
        "person": pid,
        "controller": "chirp",
        "recipient": "reelix",
        "purposes": frozenset({US}),
        "categories": frozenset({WATCHED}),
        "jurisdiction": "US-CA",
        "given_at": AT - timedelta(days=1),
    }
    fields.update(overrides)
    return Consent(**fields)


def vppa(**need: Any) -> PersonFilter:
    fields: dict[str, Any] = {"recipient": "reelix", "purpose": US, "category": WATCHED}
    rule: dict[str, Any] = {k: need.pop(k) for k in ("applies_to", "exempt") if k in need}
    fields.update(need)
    return PersonFilter(
        AT,
        "chirp",
        rules=(Rule("vppa", "no VPPA consent", ConsentNeed(**fields), **rule),),
    )


ROWS = [
    # (consent for p1, filter, p1 let through?)
    pytest.param(consent(), vppa(), True, id="consent in force"),
    pytest.param(consent(given_at=AT), vppa(), True, id="given exactly at the instant"),
    pytest.param(consent(given_at=AT + MICRO), vppa(), False, id="given a microsecond later"),
    pytest.param(consent(expires_at=AT), vppa(), False, id="expires exactly at the instant"),
    pytest.param(consent(expires_at=AT + MICRO), vppa(), True, id="expires a microsecond later"),
    pytest.param(consent(withdrawn_at=AT), vppa(), False, id="withdrawn at the instant"),
    pytest.param(consent(withdrawn_at=AT + MICRO), vppa(), True, id="withdrawn just after"),
    pytest.param(consent(recipient="other"), vppa(), False, id="for another recipient"),
    pytest.param(consent(controller="reelix"), vppa(), False, id="collected by another party"),
    pytest.param(
        consent(purposes=frozenset({"marketing"})), vppa(), True, id="a parent purpose covers"
    ),
    pytest.param(
        consent(purposes=frozenset({"marketing.advertising.third_party.targeted"})),
        vppa(purpose="marketing.advertising"),
        False,
        id="a child purpose does not cover its parent",
    ),
    pytest.param(
        consent(categories=frozenset({"user.behavior"})), vppa(), True, id="a parent category"
    ),
    pytest.param(
        consent(categories=frozenset({"user.content"})), vppa(), False, id="another category"
    ),
    pytest.param(consent(), vppa(operation=Operation.WRITE), False, id="read does not cover write"),
    pytest.param(
        consent(operations=frozenset({Operation.READ, Operation.WRITE})),
        vppa(operation=Operation.WRITE),
        True,
        id="read and write cover write",
    ),
    pytest.param(consent(), vppa(distinct_and_separate=True), False, id="not distinct"),
    pytest.param(
        consent(distinct_and_separate=True),
        vppa(distinct_and_separate=True),
        True,
        id="distinct and separate",
    ),
    pytest.param(
        consent(given_at=add_years(AT, -2)),
        vppa(max_years=2),
        False,
        id="given exactly max_years ago is too old",
    ),
    pytest.param(
        consent(given_at=add_years(AT, -2) + MICRO),
        vppa(max_years=2),
        True,
        id="given just under max_years ago",
    ),
    pytest.param(
        consent(excluded_titles=frozenset({"t1"})), vppa(title="t1"), False, id="title excluded"
    ),
    pytest.param(
        consent(excluded_titles=frozenset({"t1"})), vppa(title="t2"), True, id="other title"
    ),
    pytest.param(
        consent(scope=Scope.ONE_DISCLOSURE, disclosure="t1"),
        vppa(title="t1"),
        True,
        id="one disclosure of this title",
    ),
    pytest.param(
        consent(scope=Scope.ONE_DISCLOSURE, disclosure="t1"),
        vppa(title="t2"),
        False,
        id="one disclosure of another title",
    ),
    pytest.param(
        consent(scope=Scope.ONE_DISCLOSURE, disclosure="t1"),
        vppa(),
        False,
        id="one disclosure with no title named",
    ),
    pytest.param(
        None, vppa(applies_to=Jurisdictions.of(["US"])), False, id="no consent, rule applies"
    ),
    pytest.param(
        None, vppa(applies_to=Jurisdictions.of(["US-NY"])), True, id="rule for another state"
    ),
    pytest.param(None, vppa(applies_to=Jurisdictions.of(["EU"])), True, id="rule elsewhere"),
    pytest.param(None, vppa(exempt="p1"), True, id="the person is exempt"),
]


@pytest.mark.parametrize(("given", "f", "admitted"), ROWS)
def test_decision_rows(
    store: tuple[Engine, sessionmaker[Any]],
    given: Consent | None,
    f: PersonFilter,
    admitted: bool,
) -> None:
    _, sessions = store
    world = World((person("p1"),), (given,) if given else (), ())
    assert f.admits(world.facts()["p1"]) is admitted  # the row itself is right
    with loaded(sessions, world) as session:
        assert allowed_people(session, f) == ({"p1"} if admitted else set())
        check(session, world, f)


# (given at, judged at, let through?): a two-year cap read as the statute puts it (18 U.S.C.
# 2710(b)(2)(B)(ii)): the period ends two years after the consent was given, and one given on a
# leap day runs to the end of 28 February two years on (see accord.consent.add_years).
LEAP_DAYS = [
    (datetime(2024, 2, 29, 9), datetime(2026, 2, 28, 9), True),
    (datetime(2024, 2, 29, 9), datetime(2026, 3, 1) - MICRO, False),
    (datetime(2024, 2, 29, 23), datetime(2026, 3, 1) - 2 * MICRO, True),
    (datetime(2022, 2, 28, 13), datetime(2024, 2, 29, 12), False),
    (datetime(2022, 2, 28, 13), datetime(2024, 2, 28, 12, 59), True),
    (datetime(2022, 3, 1), datetime(2024, 2, 29, 23), True),
    (datetime(2022, 3, 1), datetime(2024, 3, 1), False),
]


@pytest.mark.parametrize(("given_at", "at", "admitted"), LEAP_DAYS)
def test_a_two_year_cap_around_leap_days(
    store: tuple[Engine, sessionmaker[Any]], given_at: datetime, at: datetime, admitted: bool
) -> None:
    _, sessions = store
    given_at, at = given_at.replace(tzinfo=UTC), at.replace(tzinfo=UTC)
    need = ConsentNeed(recipient="reelix", purpose=US, category=WATCHED, max_years=2)
    f = PersonFilter(at, "chirp", rules=(Rule("vppa", "no VPPA consent", need),))
    world = World((person("p1"),), (consent(given_at=given_at),), ())
    assert f.admits(world.facts()["p1"]) is admitted
    with loaded(sessions, world) as session:
        assert allowed_people(session, f) == ({"p1"} if admitted else set())


def test_opt_outs_regions_and_subjects(store: tuple[Engine, sessionmaker[Any]]) -> None:
    _, sessions = store
    world = World(
        (person("ca"), person("ny", "US-NY"), person("de", "DE"), person("revoked")),
        (),
        (
            OptOut("ca", "chirp", OptOutKind.SALE_SHARING, SignalSource.GPC, AT),
            OptOut("ny", "chirp", OptOutKind.SALE_SHARING, SignalSource.GPC, AT + MICRO),
            OptOut("revoked", "chirp", OptOutKind.SALE_SHARING, SignalSource.FORM, AT, AT),
            OptOut("de", "reelix", OptOutKind.SALE_SHARING, SignalSource.FORM, AT),
        ),
    )
    ccpa = Rule("ccpa", "opted out", NoOptOut(), applies_to=Jurisdictions.of(["US"]))
    with loaded(sessions, world) as session:
        f = PersonFilter(AT, "chirp", rules=(ccpa,))
        assert allowed_people(session, f) == {"ny", "de", "revoked"}
        assert refusals(session, f) == {REGION_RULE: 0, "ccpa": 1}
        f = PersonFilter(AT, "chirp", regions=Jurisdictions.of(["US-NY", "DE"]), rules=(ccpa,))
        assert allowed_people(session, f) == {"ny", "de"}
        assert refusals(session, f) == {REGION_RULE: 2, "ccpa": 1}
        f = PersonFilter(AT, "chirp", rules=(ccpa,), subjects=frozenset({"ca", "de", "nobody"}))
        assert allowed_people(session, f) == {"de"}
        assert refusals(session, f) == {REGION_RULE: 0, "ccpa": 1}
        assert allowed_people(session, PersonFilter(AT, "chirp", regions=Jurisdictions())) == set()
        assert allowed_people(session, PersonFilter(AT, "reelix")) == set()


def sent(at: datetime, controller: str = "chirp") -> OptOut:
    return OptOut("p1", controller, OptOutKind.SALE_SHARING, SignalSource.GPC, at)


def back_in(at: datetime, controller: str = "chirp") -> OptIn:
    return OptIn("p1", controller, at)


OPT_IN_ROWS = [
    # (what p1 did, in order; p1 let through at AT under the opt-out rule?)
    pytest.param((sent(AT - DAY),), False, id="opted out"),
    pytest.param((sent(AT - 2 * DAY), back_in(AT - DAY)), True, id="opted back in"),
    pytest.param((sent(AT - DAY), back_in(AT)), True, id="opted back in at the instant"),
    pytest.param((sent(AT - DAY), back_in(AT + MICRO)), False, id="back in just after"),
    pytest.param(
        (sent(AT - 3 * DAY), back_in(AT - 2 * DAY), sent(AT - DAY)),
        False,
        id="opted out again after opting in",
    ),
    pytest.param(
        (sent(AT - 3 * DAY), back_in(AT - 2 * DAY), sent(AT + MICRO)),
        True,
        id="opted out again only after the instant",
    ),
    pytest.param(
        (sent(AT - 3 * DAY), sent(AT - 2 * DAY), back_in(AT - DAY)),
        True,
        id="one opt-in ends both signals",
    ),
    pytest.param(
        (back_in(AT - 2 * DAY), sent(AT - DAY)),
        False,
        id="an opt-in before the opt-out ends nothing",
    ),
    pytest.param(
        (sent(AT - 2 * DAY), back_in(AT - DAY, controller="reelix")),
        False,
        id="an opt-in at another party",
    ),
]


@pytest.mark.parametrize(("events", "admitted"), OPT_IN_ROWS)
def test_opting_back_in(
    store: tuple[Engine, sessionmaker[Any]], events: tuple[OptOut | OptIn, ...], admitted: bool
) -> None:
    _, sessions = store
    world = World((person("p1"),), (), (), events)
    f = PersonFilter(AT, "chirp", rules=(Rule("ccpa", "opted out", NoOptOut()),))
    assert f.admits(world.facts()["p1"]) is admitted  # the row itself is right
    with loaded(sessions, world) as session:
        stored = ConsentRepository(session).facts("chirp")["p1"]
        assert set(stored.opt_outs) == set(world.facts()["p1"].opt_outs)
        assert allowed_people(session, f) == ({"p1"} if admitted else set())
        check(session, world, f)


def test_the_query_is_one_select() -> None:
    f = vppa(applies_to=Jurisdictions.of(["US"]), exempt="p1")
    sql = str(allowed_people_query(f))
    # One statement: the consents scanned once (materialised), then the people selected.
    assert sql.startswith("WITH consent_holders_0 AS MATERIALIZED")
    assert "SELECT people.person_id" in sql
    assert sql.count("FROM consents") == 1
    assert ";" not in sql


def test_rules_asking_the_same_of_a_consent_share_one_scan() -> None:
    plain = Rule("clause", "has not consented", ConsentNeed("reelix", US, WATCHED))
    distinct = Rule("vppa", "no VPPA consent", ConsentNeed("reelix", US, WATCHED, max_years=2))
    f = PersonFilter(AT, "chirp", rules=(plain, distinct))
    sql = str(allowed_people_query(f))
    assert sql.count("FROM consents") == 1
    assert sql.count("consent_holders_1") == 0


def test_one_disclosure_consents_any_rule_accepts_are_one_scan() -> None:
    """The consents for one disclosure a release may spend meet the plain rule's need or the
    VPPA's, which asks the same and more: the query asks for the plain need alone (each need
    under its ``OR`` is a scan of the consents), and a need asking for something else stays."""
    plain = Rule("clause", "has not consented", ConsentNeed("reelix", US, WATCHED))
    distinct = Rule("vppa", "no VPPA consent", ConsentNeed("reelix", US, WATCHED, max_years=2))
    other = Rule("ads", "no ads consent", ConsentNeed("reelix", US, "user.behavior"))
    one_scan = str(spendable_query(PersonFilter(AT, "chirp", rules=(plain, distinct)), None))
    assert one_scan.count("sc.controller =") == 1
    assert "distinct_and_separate" not in one_scan
    two = str(spendable_query(PersonFilter(AT, "chirp", rules=(distinct, other)), None))
    assert two.count("sc.controller =") == 2


@given(st.lists(st.sets(st.integers(0, 3)), max_size=5))
def test_needs_absorbed_accept_the_same_consents(needs: list[set[int]]) -> None:
    """Dropping a need that asks all another asks and more accepts the same consents: drawn
    needs over four conditions, judged under every truth of the conditions."""
    atoms = [literal_column(name) == 1 for name in "abcd"]
    drawn = [[atoms[i] for i in sorted(need)] for need in needs]
    kept = _absorbed(drawn)
    assert all(any(need is k for need in drawn) for k in kept)

    def accepts(ors: list[list[Any]], truth: int) -> bool:
        return any(all(truth >> atoms.index(a) & 1 for a in need) for need in ors)

    for truth in range(16):
        assert accepts(kept, truth) == accepts(drawn, truth)
    # No need kept asks all another kept need asks.
    asked = [{id(a) for a in need} for need in kept]
    assert not any(
        m != n and less <= more for n, more in enumerate(asked) for m, less in enumerate(asked)
    )


# --- groups ---------------------------------------------------------------------------------


memberships = Table(
    "test_memberships",
    MetaData(),
    Column("group_id", String, primary_key=True),
    Column("person_id", String, primary_key=True),
)


def reference_groups(
    f: PersonFilter, facts: dict[str, PersonFacts], groups: dict[str, Sequence[str]]
) -> set[str]:
    out = set()
    for group, members in groups.items():
        verdicts = [m in facts and f.admits(facts[m]) for m in members]
        if all(m in facts for m in members):
            assert (all(verdicts) if f.group is Group.EVERY_PARTICIPANT else any(verdicts)) == (
                f.admits_group(facts[m] for m in members)
            )
        if (f.group is Group.EVERY_PARTICIPANT and all(verdicts)) or (
            f.group is Group.EACH and any(verdicts)
        ):
            out.add(group)
    return out


@pytest.mark.parametrize("group", list(Group))
def test_allowed_groups(store: tuple[Engine, sessionmaker[Any]], group: Group) -> None:
    engine, sessions = store
    memberships.create(engine)
    world = World(
        (person("a"), person("b"), person("c", "DE")),
        (consent("a"), consent("c")),
        (),
    )
    groups = {
        "thread-ab": ["a", "b"],  # b has no consent
        "thread-ac": ["a", "c"],  # both consented
        "thread-b": ["b"],
        "thread-ax": ["a", "stranger"],  # a member Chirp does not know
    }
    f = PersonFilter(AT, "chirp", rules=vppa().rules, group=group)
    expected = {
        Group.EVERY_PARTICIPANT: {"thread-ac"},
        Group.EACH: {"thread-ab", "thread-ac", "thread-ax"},
    }[group]
    rows = [{"group_id": g, "person_id": p} for g, members in groups.items() for p in members]
    with loaded(sessions, world) as session:
        session.execute(memberships.insert(), rows)
        assert reference_groups(f, world.facts(), groups) == expected
        assert allowed_groups(session, f, memberships) == expected
        # Any selectable with group_id and person_id will do, not only a table.
        as_select = union_all(
            *(
                select(
                    literal(r["group_id"]).label("group_id"),
                    literal(r["person_id"]).label("person_id"),
                )
                for r in rows
            )
        )
        assert allowed_groups(session, f, select(as_select.subquery())) == expected
        assert "GROUP BY" in str(allowed_groups_query(f, memberships))


# --- property -------------------------------------------------------------------------------

CODES = ["US-CA", "US-NY", "DE", "FR", "GB", "CA", "BR", "MX"]
PLACES = [*CODES, "US", "EU", "GDPR", "LATAM", "NORTH_AMERICA", "US-TX"]
IDS = [f"p{i}" for i in range(8)]
RECIPIENTS = ["reelix", "other"]
PURPOSES = [
    "marketing",
    "marketing.advertising",
    "marketing.advertising.third_party",
    US,
    "personalize",
    "personalize.content",
]
CATEGORIES = ["user", "user.behavior", WATCHED, "user.content", "user.content.private"]
TITLES = ["t1", "t2", "t3"]
# The last: every consent given on the leap day two years before becomes two years old at once.
INSTANTS = [AT, datetime(2025, 3, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC) - MICRO]


def moments(at: datetime) -> list[datetime]:
    """Instants around ``at`` and around the max_years boundaries, to the microsecond."""
    near = [at + d for d in (-timedelta(days=1), -MICRO, timedelta(0), MICRO, timedelta(days=1))]
    years = [
        edge + d
        for n in (1, 2)
        for edge in (add_years(at, -n), years_before(at, n))
        for d in (-MICRO, timedelta(0), MICRO)
    ]
    return sorted({*near, *years, add_years(at, -3), at + timedelta(days=400)})


def subset(items: Sequence[str], min_size: int = 0) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(items), min_size=min_size, max_size=3)


# Strategies built once: building them afresh in every draw is most of the test's time.
ids = st.sampled_from(IDS)
codes = st.sampled_from(CODES)
recipients = st.sampled_from(RECIPIENTS)
any_purposes, some_purposes = subset(PURPOSES), subset(PURPOSES, 1)
any_categories, some_categories = subset(CATEGORIES), subset(CATEGORIES, 1)
any_operations = st.frozensets(st.sampled_from(Operation))
some_operations = st.frozensets(st.sampled_from(Operation), min_size=1)
controllers = st.sampled_from(["chirp"] * 4 + ["reelix"])
scopes = st.sampled_from(Scope)
titles = st.none() | st.sampled_from(TITLES)


some_places = st.lists(st.sampled_from(PLACES), max_size=3).map(Jurisdictions.of)
places = st.one_of(
    st.just(EVERYWHERE),
    some_places,
    # everywhere but some places (the opt-out rule of places no statute covers)
    some_places.map(Jurisdictions.everywhere_but),
)


def maybe(instants: Sequence[datetime]) -> st.SearchStrategy[datetime | None]:
    """None or one of ``instants``."""
    if not instants:
        return st.none()
    return st.none() | st.sampled_from(instants)


TWEAKS = [
    "none",
    "recipient",
    "purpose",
    "category",
    "operation",
    "distinct",
    "scope",
    "excluded",
    "given",
    "expires",
    "withdrawn",
    "old",
    "controller",
]
"""What a consent aimed at a need gets wrong, if anything, often right at a boundary."""


@st.composite
def random_consent(draw: st.DrawFn, at: datetime, index: int, person: str) -> Consent:
    """A consent with every field drawn independently."""
    instants = moments(at)
    given_at = draw(st.sampled_from(instants))
    later = [m for m in instants if m > given_at]
    scope = draw(scopes)
    disclosure = draw(st.sampled_from(TITLES) if scope is Scope.ONE_DISCLOSURE else titles)
    return Consent(
        id=f"k{index}",
        person=person,
        controller=draw(controllers),
        recipient=draw(recipients),
        purposes=draw(some_purposes),
        categories=draw(some_categories),
        jurisdiction=draw(codes),
        given_at=given_at,
        operations=draw(some_operations),
        distinct_and_separate=draw(st.booleans()),
        expires_at=draw(maybe(later)),
        withdrawn_at=draw(maybe([given_at, *later])),
        scope=scope,
        disclosure=disclosure,
        excluded_titles=draw(st.frozensets(st.sampled_from(TITLES))),
    )


@st.composite
def near_miss(draw: st.DrawFn, at: datetime, index: int, person: str, need: ConsentNeed) -> Consent:
    """A consent that meets ``need``, but for at most one tweak (see :data:`TWEAKS`)."""
    tweak = draw(st.sampled_from(TWEAKS))
    above = taxonomy.ancestors
    fields: dict[str, Any] = {
        "id": f"k{index}",
        "person": person,
        "controller": "chirp",
        "recipient": need.recipient,
        "purposes": frozenset({draw(st.sampled_from(above(need.purpose)))}) | draw(any_purposes),
        "categories": frozenset({draw(st.sampled_from(above(need.category)))})
        | draw(any_categories),
        "jurisdiction": draw(codes),
        "given_at": draw(st.sampled_from([at - timedelta(days=1), at])),
        "operations": frozenset({need.operation}) | draw(any_operations),
        "distinct_and_separate": need.distinct_and_separate or draw(st.booleans()),
        "expires_at": draw(st.sampled_from([None, at + MICRO, at + timedelta(days=1)])),
        "withdrawn_at": draw(st.sampled_from([None, at + MICRO])),
        "excluded_titles": draw(st.frozensets(st.sampled_from(TITLES))) - {need.title},
    }
    if need.title is not None and draw(st.booleans()):
        fields |= {"scope": Scope.ONE_DISCLOSURE, "disclosure": need.title}
    if tweak == "recipient":
        fields["recipient"] = draw(recipients.filter(lambda r: r != need.recipient))
    elif tweak == "purpose":
        fields["purposes"] = frozenset({draw(st.sampled_from(PURPOSES))})
    elif tweak == "category":
        fields["categories"] = frozenset({draw(st.sampled_from(CATEGORIES))})
    elif tweak == "operation":
        fields["operations"] = frozenset({draw(st.sampled_from(Operation))})
    elif tweak == "distinct":
        fields["distinct_and_separate"] = False
    elif tweak == "scope":
        fields |= {"scope": Scope.ONE_DISCLOSURE, "disclosure": draw(st.sampled_from(TITLES))}
    elif tweak == "excluded" and need.title is not None:
        fields["excluded_titles"] |= {need.title}
    elif tweak == "given":
        fields["given_at"] = draw(st.sampled_from([at, at + MICRO]))
        fields["expires_at"] = fields["withdrawn_at"] = None
    elif tweak == "expires":
        fields["expires_at"] = draw(st.sampled_from([at, at + MICRO]))
        fields["given_at"] = at - timedelta(days=1)
    elif tweak == "withdrawn":
        fields["given_at"] = at - timedelta(days=1)
        fields["withdrawn_at"] = draw(st.sampled_from([at - MICRO, at, at + MICRO]))
    elif tweak == "old":
        oldest = need.given_after(at) or add_years(at, -3)
        fields["given_at"] = draw(st.sampled_from([oldest - MICRO, oldest, oldest + MICRO]))
    elif tweak == "controller":
        fields["controller"] = "reelix"
    return Consent(**fields)


@st.composite
def opt_outs(draw: st.DrawFn, at: datetime, person: str) -> OptOut:
    start = draw(st.sampled_from([at - timedelta(days=1), at - timedelta(days=1), at, at + MICRO]))
    return OptOut(
        person=person,
        controller=draw(controllers),
        kind=OptOutKind.SALE_SHARING,
        source=draw(st.sampled_from(SignalSource)),
        at=start,
        revoked_at=draw(maybe([m for m in (at - MICRO, at, at + MICRO) if m > start])),
    )


@st.composite
def history(draw: st.DrawFn, at: datetime, person: str) -> list[OptOut | OptIn]:
    """A person's opt-outs and opt-ins at one party, alternating, often right at ``at``."""
    controller = draw(controllers)
    instants = sorted(
        draw(
            st.sets(
                st.sampled_from([at - 2 * DAY, at - DAY, at - MICRO, at, at + MICRO, at + DAY]),
                min_size=1,
                max_size=4,
            )
        )
    )
    source = draw(st.sampled_from(SignalSource))
    return [
        OptOut(person, controller, OptOutKind.SALE_SHARING, source, moment)
        if n % 2 == 0
        else OptIn(person, controller, moment)
        for n, moment in enumerate(instants)
    ]


@st.composite
def worlds(draw: st.DrawFn, at: datetime, needs: Sequence[ConsentNeed]) -> World:
    chirp = draw(st.lists(ids, unique=True, max_size=len(IDS)))
    reelix = draw(st.lists(ids, unique=True, max_size=3))
    people = [Person(pid, "chirp", draw(codes)) for pid in chirp] + [
        Person(pid, "reelix", draw(codes)) for pid in reelix
    ]
    # Mostly about Chirp's people, now and then about someone Chirp does not know.
    someone = st.sampled_from([*chirp, *chirp, "p0", "p7"])
    made: list[Consent] = []
    for i in range(draw(st.integers(0, 14))):
        person = draw(someone)
        if needs and draw(st.integers(0, 4)):
            made.append(draw(near_miss(at, i, person, draw(st.sampled_from(needs)))))
        else:
            made.append(draw(random_consent(at, i, person)))
    outs = [draw(opt_outs(at, draw(someone))) for _ in range(draw(st.integers(0, 4)))]
    # Some people opt out and back in (and out again); an opt-in also ends the opt-outs above.
    events: list[OptOut | OptIn] = []
    for _ in range(draw(st.integers(0, 2))):
        events += draw(history(at, draw(someone)))
    return World(tuple(people), tuple(made), tuple(outs), tuple(events))


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    requirement: ConsentNeed | NoOptOut
    if draw(st.integers(0, 2)) == 0:
        requirement = NoOptOut()
    else:
        requirement = ConsentNeed(
            recipient=draw(recipients),
            purpose=draw(st.sampled_from(PURPOSES)),
            category=draw(st.sampled_from(CATEGORIES)),
            operation=draw(st.sampled_from(Operation)),
            distinct_and_separate=draw(st.booleans()),
            max_years=draw(st.sampled_from([None, None, 1, 2])),
            title=draw(st.sampled_from([None, None, *TITLES, "t4"])),
        )
    return Rule(
        id=draw(st.sampled_from(["vppa", "gdpr", "ccpa", "friends"])),  # repeats happen
        reason="a reason",
        requirement=requirement,
        applies_to=draw(places),
        exempt=draw(st.none() | ids),
    )


@st.composite
def filters(draw: st.DrawFn, at: datetime) -> PersonFilter:
    return PersonFilter(
        at=at,
        controller=draw(st.sampled_from(["chirp", "chirp", "reelix"])),
        regions=draw(places),
        rules=tuple(draw(st.lists(rules(), max_size=2))),
        subjects=draw(st.none() | st.frozensets(st.sampled_from([*IDS, "stranger"]))),
        group=draw(st.sampled_from(Group)),
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[World, list[PersonFilter], dict[str, list[str]]]:
    at = draw(st.sampled_from(INSTANTS))
    groups = draw(
        st.dictionaries(
            st.sampled_from(["g1", "g2", "g3", "g4"]),
            st.lists(st.sampled_from([*IDS, "stranger"]), min_size=1, max_size=4, unique=True),
            max_size=4,
        )
    )
    fs = draw(st.lists(filters(at), min_size=1, max_size=4))
    needs = [r.requirement for f in fs for r in f.rules if isinstance(r.requirement, ConsentNeed)]
    return draw(worlds(at, needs)), fs, groups


EXAMPLES = {"sqlite": 400, "postgresql": 60}


def test_sql_agrees_with_the_reference(store: tuple[Engine, sessionmaker[Any]]) -> None:
    engine, sessions = store
    memberships.create(engine)

    @settings(
        max_examples=EXAMPLES[engine.dialect.name],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(cases())
    def agree(case: tuple[World, list[PersonFilter], dict[str, list[str]]]) -> None:
        world, fs, groups = case
        with loaded(sessions, world) as session:
            # The store hands back the facts it was given.
            stored = ConsentRepository(session).facts("chirp")
            expected = world.facts("chirp")
            assert stored.keys() == expected.keys()
            for pid, facts in stored.items():
                assert facts.person == expected[pid].person
                assert set(facts.consents) == set(expected[pid].consents)
                assert set(facts.opt_outs) == set(expected[pid].opt_outs)
            rows = [{"group_id": g, "person_id": p} for g, ms in groups.items() for p in ms]
            if rows:
                session.execute(memberships.insert(), rows)
            for f in fs:
                check(session, world, f)
                assert allowed_groups(session, f, memberships) == reference_groups(
                    f, world.facts(f.controller), groups
                )

    agree()
