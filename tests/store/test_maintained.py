"""The allowed people kept between requests equal the people the rules let through at every step.

Hypothesis draws sequences of consents given, withdrawn, opt-outs made and ended, people erased
and time moving on; after each step the kept set for a bulk filter is compared with an oracle
written from the rules themselves over a plain model of what happened (not with the store's
query):

- VPPA, 18 U.S.C. 2710(b)(2)(B): an informed, written consent in force at the instant (given at
  or before it, not expired, not withdrawn by then), given no more than two years before it;
- CCPA/CPRA opt-out of sale and sharing (Cal. Civ. Code 1798.120), for people in the US: no
  opt-out in force at the instant (made at or before it, not ended by then);
- an erased person is nobody's to release (GDPR Art. 17).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, event, update

from accord.consent import Consent, Method, Operation, OptOut, OptOutKind, Person, SignalSource
from accord.erasure import erase
from accord.filters import ConsentNeed, NoOptOut, PersonFilter, Rule
from accord.jurisdictions import Jurisdictions
from accord.service import Accord
from accord.store import tables as t
from accord.store.maintained import _cap_passes

pytestmark = pytest.mark.integration

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PURPOSE, CATEGORY = "functional.service", "user.behavior.media_consumption"
PEOPLE = {"p0": "US-CA", "p1": "US-NY", "p2": "BR", "p3": "US-TX"}

FILTER = PersonFilter(
    START,
    "reelix",
    rules=(
        Rule("vppa", "no consent", ConsentNeed("chirp", PURPOSE, CATEGORY, max_years=2)),
        Rule("ccpa", "opted out", NoOptOut(), applies_to=Jurisdictions.of(["US"])),
    ),
)


def two_years_before(at: datetime) -> datetime:
    """The same calendar instant two years earlier (29 February becomes 28)."""
    try:
        return at.replace(year=at.year - 2)
    except ValueError:
        return at.replace(year=at.year - 2, day=28)


@dataclass
class Model:
    """What happened, as plain records."""

    consents: dict[str, tuple[str, datetime, datetime | None, datetime | None]] = field(
        default_factory=dict
    )
    """id → (person, given, expires, withdrawn)."""
    opt_outs: dict[str, list[tuple[datetime, datetime | None]]] = field(default_factory=dict)
    erased: set[str] = field(default_factory=set)

    def allowed(self, at: datetime) -> set[str]:
        out = set()
        for person, home in PEOPLE.items():
            if person in self.erased:
                continue
            vppa = any(
                who == person
                and given <= at
                and (expires is None or expires > at)
                and (withdrawn is None or withdrawn > at)
                and given > two_years_before(at)
                for who, given, expires, withdrawn in self.consents.values()
            )
            opted_out = home.startswith("US") and any(
                made <= at and (ended is None or ended > at)
                for made, ended in self.opt_outs.get(person, [])
            )
            if vppa and not opted_out:
                out.add(person)
        return out


person_st = st.sampled_from(sorted(PEOPLE))
days = st.integers(min_value=-800, max_value=60)
steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("grant"), person_st, days, st.none() | st.integers(min_value=1, max_value=500)
        ),
        st.tuples(st.just("withdraw"), st.integers(0, 20), st.integers(-10, 10)),
        st.tuples(st.just("opt_out"), person_st, st.integers(-10, 10)),
        st.tuples(st.just("opt_in"), person_st),
        st.tuples(st.just("erase"), person_st),
        st.tuples(st.just("advance"), st.integers(1, 400)),
    ),
    max_size=14,
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated store holding the parties and the people, made once: each test and each
    Hypothesis example starts from a copy of it (a copy takes milliseconds, a migration not)."""
    folder = tmp_path_factory.mktemp("maintained")
    with Accord.open(data_dir=folder) as accord:
        for party in ("reelix", "chirp"):
            accord.add_party(party)
        accord.add_people([Person(p, "reelix", home) for p, home in PEOPLE.items()])
    return folder


@contextmanager
def store(template: Path) -> Iterator[Accord]:
    """A fresh copy of the template store, open."""
    with tempfile.TemporaryDirectory() as folder:
        shutil.copytree(template, folder, dirs_exist_ok=True)
        with Accord.open(data_dir=Path(folder), migrate=False) as accord:
            yield accord


def _consent(n: int, person: str, given: datetime, expires: datetime | None) -> Consent:
    return Consent(
        id=f"k{n}",
        person=person,
        controller="reelix",
        recipient="chirp",
        purposes=frozenset({PURPOSE}),
        categories=frozenset({CATEGORY}),
        jurisdiction=PEOPLE[person],
        given_at=given,
        expires_at=expires,
        method=Method.IN_APP_DIALOG,
        notice="notice-v1",
        distinct_and_separate=True,
        withdrawal_method=Method.SETTINGS_PAGE,
        operations=frozenset({Operation.READ}),
    )


def apply(accord: Accord, model: Model, step: tuple[object, ...], clock: datetime) -> datetime:
    """Do ``step`` to the store and the model alike; the clock after it."""
    kind = step[0]
    if kind == "advance":
        return clock + timedelta(days=int(step[1]))  # type: ignore[call-overload]
    if kind == "grant":
        _, person, offset, lasts = step
        assert isinstance(person, str)
        assert isinstance(offset, int)
        if person in model.erased:
            return clock
        given = clock + timedelta(days=offset)
        expires = None if lasts is None else given + timedelta(days=int(lasts))  # type: ignore[call-overload]
        n = len(model.consents)
        accord.grant(_consent(n, person, given, expires))
        model.consents[f"k{n}"] = (person, given, expires, None)
    elif kind == "withdraw":
        _, which, offset = step
        assert isinstance(which, int)
        assert isinstance(offset, int)
        live = [
            k for k, (p, *_, w) in model.consents.items() if w is None and p not in model.erased
        ]
        if not live:
            return clock
        key = live[which % len(live)]
        person, given, expires, _ = model.consents[key]
        when = max(given, clock + timedelta(days=offset))
        accord.withdraw(key, when)
        model.consents[key] = (person, given, expires, when)
    elif kind == "opt_out":
        _, person, offset = step
        assert isinstance(person, str)
        assert isinstance(offset, int)
        if person in model.erased:
            return clock
        made = clock + timedelta(days=offset)
        accord.opt_out(OptOut(person, "reelix", OptOutKind.SALE_SHARING, SignalSource.GPC, at=made))
        model.opt_outs.setdefault(person, []).append((made, None))
    elif kind == "opt_in":
        _, person = step
        assert isinstance(person, str)
        mine = model.opt_outs.get(person, [])
        if person in model.erased or not any(
            made <= clock and (ended is None or ended > clock) for made, ended in mine
        ):
            return clock
        accord.opt_in("reelix", person, at=clock)
        model.opt_outs[person] = [
            (made, clock if made <= clock and (ended is None or ended > clock) else ended)
            for made, ended in mine
        ]
    elif kind == "erase":
        _, person = step
        assert isinstance(person, str)
        if person in model.erased:
            return clock
        erase(accord, "reelix", person, at=clock)
        model.erased.add(person)
        # Erasure withdraws the person's consents in force at that instant.
        for key, (p, given, expires, withdrawn) in list(model.consents.items()):
            if p == person and withdrawn is None and (expires is None or expires > clock):
                model.consents[key] = (p, given, expires, max(clock, given))
    return clock


@given(steps)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_kept_set_equals_the_rules_after_every_change(
    template: Path, sequence: list[tuple[object, ...]]
) -> None:
    model = Model()
    clock = START
    with store(template) as accord:
        kept = accord.allowed.snapshot(FILTER)
        assert kept.people == model.allowed(clock)
        for step in sequence:
            clock = apply(accord, model, step, clock)
            f = replace(FILTER, at=clock)
            assert set(accord.allowed.snapshot(f).people) == model.allowed(clock), step


def test_a_withdrawal_updates_the_kept_set_without_judging_everyone_again(template: Path) -> None:
    with store(template) as accord:
        accord.grant(_consent(0, "p0", START - timedelta(days=1), None))
        accord.grant(_consent(1, "p2", START - timedelta(days=1), None))
        assert accord.allowed.snapshot(FILTER).people == {"p0", "p2"}
        assert accord.allowed.judged_anew == 1
        accord.withdraw("k0", START)
        assert accord.allowed.snapshot(FILTER).people == {"p2"}
        accord.opt_out(OptOut("p2", "reelix", OptOutKind.SALE_SHARING, SignalSource.GPC, START))
        # p2 lives in Brazil: the CCPA's opt-out does not bind them.
        assert accord.allowed.snapshot(FILTER).people == {"p2"}
        assert accord.allowed.judged_anew == 1


def test_a_consent_leaves_the_kept_set_at_the_instant_it_expires(template: Path) -> None:
    with store(template) as accord:
        accord.grant(_consent(0, "p1", START - timedelta(days=1), START + timedelta(days=3)))
        assert accord.allowed.snapshot(FILTER).people == {"p1"}
        later = START + timedelta(days=3)
        assert accord.allowed.snapshot(replace(FILTER, at=later - timedelta(seconds=1))).people
        assert accord.allowed.snapshot(replace(FILTER, at=later)).people == frozenset()
        assert accord.allowed.judged_anew == 1


def test_a_change_another_process_made_is_seen(template: Path) -> None:
    """A second Accord on the same store stands for another process: its withdrawal is seen."""
    with store(template) as accord:
        accord.grant(_consent(0, "p0", START - timedelta(days=1), None))
        assert accord.allowed.snapshot(FILTER).people == {"p0"}
        other = Accord(accord.engine, accord.sessions, accord.ledger)
        other.withdraw("k0", START)
        assert accord.allowed.snapshot(FILTER).people == frozenset()


def test_a_title_withdrawn_case_by_case_is_kept_as_denied_without_judging_everyone_again(
    template: Path,
) -> None:
    """18 U.S.C. 2710(b)(2)(B)(iii): withdrawing one title leaves the consent for every other."""
    with store(template) as accord:
        accord.grant(_consent(0, "p0", START - timedelta(days=1), None))
        first = accord.allowed.snapshot(FILTER, titles=True)
        assert first.people == {"p0"}
        assert first.titles == ()  # no consent mentions a title yet
        accord.withdraw_title("k0", "t1", START - timedelta(hours=1))
        kept = accord.allowed.snapshot(FILTER, titles=True)
        assert kept.people == {"p0"}
        assert kept.titles == (("p0", "t1", False),)
        assert accord.allowed.judged_anew == 1


def test_a_move_another_process_made_is_seen(template: Path) -> None:
    """Where a person lives changes no count of rows: the store's revision still moves, so a
    move made by another process is seen at the next read (CCPA opt-outs bind only people in
    California, Cal. Civ. Code 1798.140(i))."""
    with store(template) as accord:
        accord.grant(_consent(0, "p2", START - timedelta(days=1), None))
        accord.opt_out(OptOut("p2", "reelix", OptOutKind.SALE_SHARING, SignalSource.GPC, START))
        # p2 lives in Brazil: the opt-out does not bind them.
        assert accord.allowed.snapshot(FILTER).people == {"p2"}
        other = Accord(accord.engine, accord.sessions, accord.ledger)
        other.add_people([Person("p2", "reelix", "US-CA")])
        assert accord.allowed.snapshot(FILTER).people == frozenset()


def test_a_write_made_outside_accord_is_seen(template: Path) -> None:
    """A withdrawal written by hand on another connection, past every Accord process: the kept
    set is judged anew, not trusted."""
    with store(template) as accord:
        accord.grant(_consent(0, "p0", START - timedelta(days=1), None))
        assert accord.allowed.snapshot(FILTER).people == {"p0"}
        other = create_engine(accord.engine.url)
        try:
            with other.begin() as conn:
                conn.execute(
                    update(t.consents).where(t.consents.c.id == "k0").values(withdrawn_at=START)
                )
        finally:
            other.dispose()
        assert accord.allowed.snapshot(FILTER).people == frozenset()


def test_the_two_year_cap_passes_a_consent_at_its_instant_without_judging_everyone_again(
    template: Path,
) -> None:
    """18 U.S.C. 2710(b)(2)(B)(ii)(II): a consent given two years and an hour before is let
    through until the hour is up, not a moment longer, and not a day less."""
    with store(template) as accord:
        given = two_years_before(START) + timedelta(hours=1)
        accord.grant(_consent(0, "p0", given, None))
        assert accord.allowed.snapshot(FILTER).people == {"p0"}
        for minutes, expected in ((30, {"p0"}), (59, {"p0"}), (60, set()), (61, set())):
            moment = replace(FILTER, at=START + timedelta(minutes=minutes))
            assert accord.allowed.snapshot(moment).people == expected, minutes
        assert accord.allowed.judged_anew == 1


@given(
    st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2032, 12, 31), timezones=st.just(UTC)
    ),
    st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=800)),
    st.integers(min_value=1, max_value=4),
    st.floats(min_value=0, max_value=1, exclude_max=True),
)
# Given on 29 February, judged the day its second anniversary falls on the 28th.
@example(datetime(2030, 2, 28, 12, tzinfo=UTC), timedelta(days=730, hours=1), 2, 0.5)
# Given on 28 February, judged on the next 29 February, before that day's hour.
@example(datetime(2028, 2, 29, 5, tzinfo=UTC), timedelta(days=730, hours=17), 2, 0.5)
def test_the_instant_a_cap_passes_a_consent_is_never_late_and_always_ahead(
    at: datetime, age: timedelta, years: int, share: float
) -> None:
    """However close to 29 February: the consent is still let through a microsecond before the
    instant said, which is after the instant judged, and no longer than that."""
    need = ConsentNeed("chirp", PURPOSE, CATEGORY, max_years=years)
    oldest = need.given_after(at)
    assert oldest is not None
    given = at - age
    assume(given > oldest)  # let through at ``at``
    passes = _cap_passes(given, years, at)
    assert passes > at
    # Let through all the way: at any instant in between, and a microsecond before.
    last = passes - timedelta(microseconds=1)
    between = need.given_after(min(at + (passes - at) * share, last))  # (rounded to a µs)
    assert between is not None
    assert given > between
    before = need.given_after(last)
    assert before is not None
    assert given > before
    if passes > at + timedelta(microseconds=1):
        after = need.given_after(passes)
        assert after is not None
        assert given <= after


def test_a_second_read_at_the_same_instant_shares_the_kept_set_and_asks_only_the_revision(
    template: Path,
) -> None:
    """Nothing moved: no query but the store's revision (not even for the instants at which a
    verdict may change, though one is near), and no copy of the people or the title
    verdicts; a later change makes a new set and leaves the one already handed out as it was."""
    with store(template) as accord:
        accord.grant(_consent(0, "p0", START - timedelta(days=1), START + timedelta(days=30)))
        accord.grant(_consent(1, "p1", START - timedelta(days=1), None))
        accord.withdraw_title("k1", "t1", START - timedelta(hours=1))
        # The cap passes this one within the hour: the next instant to look at is that close.
        accord.grant(_consent(2, "p3", two_years_before(START) + timedelta(hours=1), None))
        first = accord.allowed.snapshot(FILTER, titles=True)
        statements: list[str] = []

        def seen(*args: object) -> None:
            statements.append(str(args[2]))

        event.listen(accord.engine, "before_cursor_execute", seen)
        try:
            second = accord.allowed.snapshot(FILTER, titles=True)
        finally:
            event.remove(accord.engine, "before_cursor_execute", seen)
        # (The revision is read on the driver's own cursor, which SQLAlchemy does not see.)
        assert statements == []
        assert second.people is first.people
        assert second.titles is first.titles
        accord.withdraw("k0", START)
        third = accord.allowed.snapshot(FILTER, titles=True)
        assert first.people == {"p0", "p1", "p3"}
        assert third.people == {"p1", "p3"}
        assert first.titles == third.titles == (("p1", "t1", False),)
