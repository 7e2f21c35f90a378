"""Invariants of the audit's parts, for any input Hypothesis draws.

* A release's row digest depends on which rows crossed, not on the order they came back in, and
  any row more or fewer changes it.
* The auditor's verdict only narrows as a person says no: withdrawing a consent, or opting out
  of sale and sharing, never lets through someone who was kept out; and an opt-out the person
  withdrew counts for the releases made while it was in force, and no later one.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from law_builders import ADS, AT, DAY, consent, release

from accord.audit.law import Person, judge
from accord.consent import OptOut, OptOutKind, Scope, SignalSource
from accord.ledger.rows import rows_sum, seal

pytestmark = pytest.mark.unit

values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.text(max_size=12),
    st.datetimes(),
)
rows = st.lists(st.tuples(values, values), max_size=30)


@given(rows, st.randoms())
def test_the_digest_ignores_order(drawn: list[tuple[object, object]], rnd: object) -> None:
    shuffled = list(drawn)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert rows_sum(shuffled) == rows_sum(drawn)


@given(rows, st.tuples(values, values))
def test_a_row_more_changes_the_digest(
    drawn: list[tuple[object, object]], extra: tuple[object, object]
) -> None:
    assert rows_sum([*drawn, extra]) != rows_sum(drawn)


homes = st.sampled_from(["US-CA", "US-TX", "US-NY", "DE", "GB", "FR", "CA", "BR", "MX", "JP"])
titles = st.sampled_from([None, "t1", "t2"])


@st.composite
def consents(draw: st.DrawFn) -> object:
    return consent(
        id=f"k{draw(st.integers(0, 3))}",
        purposes=frozenset({draw(st.sampled_from(["functional.service", ADS]))}),
        given_at=AT - draw(st.integers(1, 1000)) * DAY,
        distinct_and_separate=draw(st.booleans()),
        excluded_titles=frozenset(draw(st.sets(st.sampled_from(["t1", "t2"])))),
        scope=draw(st.sampled_from([Scope.ONGOING, Scope.ONE_DISCLOSURE])),
        disclosure="t1",
    )


@given(homes, st.lists(consents(), max_size=3, unique_by=lambda c: c.id), titles, st.booleans())
def test_saying_no_never_lets_anyone_through(
    home: str, records: list, title: str | None, ads: bool
) -> None:
    d = release("ads", purpose=ADS) if ads else release()
    before = judge(d, Person("m1", "reelix", home, tuple(records)), title)
    withdrawn = tuple(replace(c, withdrawn_at=AT - timedelta(seconds=1)) for c in records[:1])
    after_withdrawal = judge(d, Person("m1", "reelix", home, withdrawn + tuple(records[1:])), title)
    opted = OptOut("m1", "reelix", OptOutKind.SALE_SHARING, SignalSource.FORM, AT - DAY)
    after_opt_out = judge(d, Person("m1", "reelix", home, tuple(records), (opted,)), title)
    assert before.allowed or not after_withdrawal.allowed
    assert before.allowed or not after_opt_out.allowed
    if ads:
        assert not after_opt_out.allowed  # an opt-out bars advertising, wherever they live


@given(
    homes,
    st.lists(consents(), max_size=3, unique_by=lambda c: c.id),
    titles,
    st.booleans(),
    st.integers(-3, 3),
)
def test_an_opt_out_withdrawn_before_a_release_no_longer_counts(
    home: str, records: list, title: str | None, ads: bool, back: int
) -> None:
    """A person who opted back in (``accord consent opt-in``) is judged as if they had never
    opted out, for a release after; for a release before, the opt-out still counts."""
    d = release("ads", purpose=ADS) if ads else release()
    opted = OptOut("m1", "reelix", OptOutKind.SALE_SHARING, SignalSource.GPC, AT - 5 * DAY)
    undone = replace(opted, revoked_at=AT + back * timedelta(seconds=1))
    never = judge(d, Person("m1", "reelix", home, tuple(records)), title)
    still = judge(d, Person("m1", "reelix", home, tuple(records), (opted,)), title)
    judged = judge(d, Person("m1", "reelix", home, tuple(records), (undone,)), title)
    assert judged.allowed == (never.allowed if back <= 0 else still.allowed)


keys = st.binary(min_size=32, max_size=32)


@given(rows, keys, keys, st.integers(0, 2**40))
def test_the_seal_needs_every_key_and_the_leaf(
    drawn: list[tuple[object, object]], one: bytes, other: bytes, index: int
) -> None:
    total = rows_sum(drawn)
    both = seal(total, [one, other], index)
    # Whatever order the people come in, the same seal ...
    assert seal(total, [other, one], index) == both
    # ... which one person's key alone cannot make (an erased person's key is gone for good),
    # which differs from leaf to leaf, and which is not the rows' plain sum.
    if one != other:
        assert seal(total, [one], index) != both
    assert seal(total, [one, other], index + 1) != both
    assert both != f"{total:064x}"
