"""An aggregate under a clause with a privacy budget is differentially private, and spends.

The oracles come from the definitions (Dwork and Roth, *The Algorithmic Foundations of
Differential Privacy*, 2014): an answer of epsilon costs each person whose rows it reads exactly
that epsilon (sequential composition, Theorem 3.16), and nobody else anything; a clause's budget
caps what its answers spend in all; bounding each person to ``k`` rows means adding or removing
one person moves a count by at most ``k``; and with noise, two answers that differ by one person
no longer difference to that person's own figure. A clause without a budget answers exactly.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import InvalidInput
from accord.gateway import Exchange, Refused, Release
from accord.gateway.private import DEFAULT_MAX_ROWS
from accord.ledger.audit import verify_ledger
from accord.pets.budget import BUDGET_RULE, DEFAULT_EPSILON
from accord.sources import Allowed, Source, parse
from accord.store.engine import make_engine
from databases import fresh_postgres_database
from gateway.helpers import last_entries
from gateway.plays_world import (
    DATASET,
    DEVICES,
    HEAVY,
    LONE,
    MEMBERS,
    MINIMUM,
    NOBODY,
    PLAYS,
    PlaysWorld,
    contributors,
    counts,
    plays_world,
    tables,
)

pytestmark = pytest.mark.integration

COUNT = {"plays": "count"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plays-world")
    with plays_world(folder):
        pass
    return folder


@pytest.fixture
def pw(built: Path, tmp_path: Path) -> Iterator[PlaysWorld]:
    """A fresh copy of the world; its ledger must verify afterwards."""
    shutil.copytree(built, tmp_path, dirs_exist_ok=True)
    with plays_world(tmp_path, populate=False) as world:
        yield world
        report = verify_ledger(world.accord.ledger)
        assert report.ok, report


def ask(
    w: PlaysWorld,
    clause: str = "private-counts",
    *,
    group_by: tuple[str, ...] = (),
    measures: dict[str, str] | None = None,
    where: dict[str, Any] | None = None,
    epsilon: float | None = None,
    max_rows: int | None = None,
) -> Release:
    return w.gateway.exchange(
        Exchange(
            counts(clause),
            w.token,
            "plays",
            where=where,
            group_by=group_by,
            measures=measures or COUNT,
            epsilon=epsilon,
            max_rows=max_rows,
        )
    )


def remaining(w: PlaysWorld, person: str) -> float:
    return w.gateway.budgets.remaining("reelix", person).epsilon


# -- spending -------------------------------------------------------------------------------------


def test_an_answer_spends_its_epsilon_of_each_contributor_and_of_no_one_else(
    pw: PlaysWorld,
) -> None:
    where = {"device": "web"}
    readers = contributors(where)
    assert HEAVY not in readers
    assert NOBODY not in readers
    release = ask(pw, group_by=("title_id",), where=where, epsilon=0.25)
    assert release.noise is not None
    assert release.noise.epsilon == 0.25
    for person in readers:
        assert remaining(pw, person) == pytest.approx(DEFAULT_EPSILON - 0.25)
    for person in (HEAVY, NOBODY):  # no web play: nothing read, nothing spent
        assert remaining(pw, person) == DEFAULT_EPSILON
    assert pw.gateway.budgets.clause_spent("reelix", "plays", "private-counts") == 0.25
    # The spend is in the ledger before the release, which says it was noised and for how much.
    spend, _, logged = last_entries(pw.accord.ledger, 3)
    assert spend["kind"] == "budget"
    assert spend["spent"] is True
    assert spend["epsilon"] == "0.25"
    assert spend["people"] == len(readers)
    assert release.noise.spend.index < min(r.index for r in release.receipts)
    assert logged["kind"] == "release"
    assert "noised with differential privacy, epsilon 0.25" in logged["reason"]


def test_an_answer_without_an_epsilon_spends_a_tenth_of_the_clause_budget(pw: PlaysWorld) -> None:
    release = ask(pw)
    assert release.noise is not None
    assert release.noise.epsilon == pytest.approx(0.1)  # the clause's budget is 1
    assert release.noise.max_rows == DEFAULT_MAX_ROWS
    assert remaining(pw, "m000") == pytest.approx(DEFAULT_EPSILON - 0.1)


def test_the_clause_budget_refuses_once_spent_with_nothing_released(pw: PlaysWorld) -> None:
    answered = [ask(pw, epsilon=0.4), ask(pw, epsilon=0.4)]
    size = pw.accord.ledger.head().size
    with pytest.raises(Refused) as refused:
        ask(pw, epsilon=0.4)  # 0.8 + 0.4 > 1
    assert refused.value.decision.rules == (BUDGET_RULE,)
    assert "clause private-counts" in refused.value.decision.reason
    # The refusal alone is logged (a budget entry, naming nobody); no release follows it.
    assert pw.accord.ledger.head().size == size + 1
    (logged,) = last_entries(pw.accord.ledger, 1)
    assert logged["kind"] == "budget"
    assert logged["spent"] is False
    assert refused.value.receipt.index == size
    assert LONE not in str(logged)
    assert "m000" not in str(logged)
    # Nothing more was charged, and what is left of the clause still answers.
    assert remaining(pw, "m000") == pytest.approx(DEFAULT_EPSILON - 0.8)
    assert ask(pw, epsilon=0.2).noise is not None
    assert len(answered) == 2
    with pytest.raises(Refused):
        ask(pw, epsilon=0.000001)


def test_a_person_short_of_budget_refuses_the_answer(pw: PlaysWorld) -> None:
    pw.gateway.budgets.set_total("reelix", [LONE], epsilon=0.05)
    with pytest.raises(Refused) as refused:
        ask(pw, epsilon=0.1)
    assert "1 of the" in refused.value.decision.reason
    assert remaining(pw, "m000") == DEFAULT_EPSILON  # all or none
    assert pw.gateway.budgets.clause_spent("reelix", "plays", "private-counts") == 0


def test_two_answers_at_once_never_overspend(pw: PlaysWorld) -> None:
    """Each asks 0.6 of a clause budget of 1: however they interleave, exactly one answers."""
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def one() -> None:
        barrier.wait()
        try:
            ask(pw, epsilon=0.6)
            outcomes.append("answered")
        except Refused:
            outcomes.append("refused")

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["answered", "refused"]
    assert pw.gateway.budgets.clause_spent("reelix", "plays", "private-counts") == 0.6
    assert remaining(pw, "m000") == pytest.approx(DEFAULT_EPSILON - 0.6)


# -- what the answers say -------------------------------------------------------------------------


def test_a_tracker_no_longer_differences_to_one_person(pw: PlaysWorld) -> None:
    """Everyone's plays against the sum of the groups by title that show (Denning, Denning and
    Schwartz, *The Tracker*, ACM TODS 1979): exactly, the difference is the rows of the groups
    held back, here m007's one play of ``t-lone``; with noise it is not, answer after answer."""
    lone = [r for r in PLAYS if r["title_id"] == "t-lone"]
    assert {r["member_id"] for r in lone} == {LONE}

    def difference(clause: str, epsilon: float | None) -> int:
        (total,) = ask(pw, clause, epsilon=epsilon).rows
        by_title = ask(pw, clause, group_by=("title_id",), epsilon=epsilon).rows
        return int(total[0]) - sum(int(n) for _, n in by_title)

    assert difference("exact-counts", None) == len(lone)  # exact answers single m007 out
    differences = [difference("tracker-counts", 1.0) for _ in range(5)]
    assert differences != [len(lone)] * 5
    with pytest.raises(Refused):  # ten answers of epsilon 1 spent the clause's budget of 10
        ask(pw, "tracker-counts", epsilon=1.0)


def test_counts_are_whole_and_small_groups_do_not_show(pw: PlaysWorld) -> None:
    release = ask(pw, "tracker-counts", group_by=("title_id",), epsilon=2.0)
    assert release.columns == ("title_id", "plays")
    shown = {title for title, _ in release.rows}
    assert "t-lone" not in shown  # one person, far below the threshold
    assert shown <= {r["title_id"] for r in PLAYS}
    for _, n in release.rows:
        assert isinstance(n, int)
        assert n >= 0
    assert release.people == (MINIMUM if release.rows else 0)
    assert release.noise is not None
    assert release.noise.threshold >= MINIMUM


@pytest.mark.parametrize(
    ("measures", "allowed"),
    [
        ({"plays": "count"}, True),
        ({"titles": "count(title_id)"}, True),
        # one person's at most k rows hold at most k distinct values in all: sensitivity k
        ({"titles": "count_distinct(title_id)"}, True),
        # no bounds on the values: one person could move a sum without limit
        ({"total": "sum(title_id)"}, False),
    ],
    ids=["count", "count-field", "count-distinct", "sum"],
)
def test_which_measures_can_be_made_private(
    pw: PlaysWorld, measures: dict[str, str], allowed: bool
) -> None:
    if allowed:
        assert ask(pw, measures=measures).noise is not None
        return
    with pytest.raises(InvalidInput, match="sum's noise is set by bounds"):
        ask(pw, measures=measures)
    assert remaining(pw, "m000") == DEFAULT_EPSILON  # refused before anything was spent


@pytest.mark.parametrize(
    ("epsilon", "max_rows"),
    [(0.0, None), (-1.0, None), (float("nan"), None), (None, 0), (None, 10_001)],
)
def test_a_loss_that_is_not_one_is_refused(
    pw: PlaysWorld, epsilon: float | None, max_rows: int | None
) -> None:
    with pytest.raises(InvalidInput):
        ask(pw, epsilon=epsilon, max_rows=max_rows)
    assert remaining(pw, "m000") == DEFAULT_EPSILON


def test_a_clause_without_a_budget_answers_exactly(pw: PlaysWorld) -> None:
    release = ask(pw, "exact-counts", group_by=("device",))
    people = {d: {r["member_id"] for r in PLAYS if r["device"] == d} for d in ("tv", "web", "ios")}
    rows = Counter(r["device"] for r in PLAYS)
    assert sorted(release.rows) == sorted((d, rows[d]) for d in people if len(people[d]) >= MINIMUM)
    assert release.noise is None
    assert remaining(pw, "m000") == DEFAULT_EPSILON
    with pytest.raises(InvalidInput, match="no privacy budget"):
        ask(pw, "exact-counts", epsilon=0.1)


# -- bounding each person's rows ------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, DEFAULT_MAX_ROWS])
def test_one_person_with_ten_thousand_rows_moves_a_count_by_at_most_k(
    pw: PlaysWorld, k: int
) -> None:
    everyone = {r["member_id"] for r in PLAYS}

    def bounded(people: set[str]) -> dict[Any, int]:
        result = pw.source.bounded_aggregate(
            "plays", ("device",), COUNT, Allowed(people, party="reelix"), max_rows=k
        )
        return {row[0]: row[1] for row in result.rows}

    with_heavy, without = bounded(everyone), bounded(everyone - {HEAVY})
    moved = {d: with_heavy.get(d, 0) - without.get(d, 0) for d in with_heavy}
    assert sum(moved.values()) == k  # all its rows are of one device: exactly k of them count
    # Everyone else's rows are bounded too: each member counts min(their rows, k).
    per_person = Counter(r["member_id"] for r in PLAYS if r["member_id"] != HEAVY)
    assert sum(without.values()) == sum(min(n, k) for n in per_person.values())


def test_each_person_is_counted_once_for_the_choice_of_groups(pw: PlaysWorld) -> None:
    result = pw.source.bounded_aggregate(
        "plays", ("device",), COUNT, Allowed(set(MEMBERS), party="reelix"), max_rows=3
    )
    assert sum(result.people) == len(MEMBERS)
    assert result.contributors == frozenset(MEMBERS)


@pytest.mark.postgres
def test_an_answer_spends_and_is_refused_on_postgres(tmp_path: Path) -> None:
    with (
        fresh_postgres_database() as store_url,
        fresh_postgres_database() as party_url,
        plays_world(tmp_path, store_url, party_url) as w,
    ):
        release = ask(w, group_by=("device",), epsilon=0.5, max_rows=2)
        assert release.noise is not None
        assert release.noise.max_rows == 2
        for person in contributors():
            assert remaining(w, person) == pytest.approx(DEFAULT_EPSILON - 0.5)
        ask(w, epsilon=0.5)
        with pytest.raises(Refused):
            ask(w, epsilon=0.1)
        assert w.gateway.budgets.clause_spent("reelix", "plays", "private-counts") == 1.0
        assert verify_ledger(w.accord.ledger).ok


@settings(max_examples=25, deadline=None)
@given(
    rows=st.dictionaries(
        st.sampled_from([f"p{i}" for i in range(12)]),
        st.lists(st.sampled_from(DEVICES), min_size=1, max_size=12),
        max_size=12,
    ),
    k=st.integers(min_value=1, max_value=6),
)
def test_bounding_keeps_at_most_k_rows_of_each_person(rows: dict[str, list[str]], k: int) -> None:
    """Whatever rows each person has, the bounded counts add up to the sum over people of their
    rows capped at k; each person is counted once for the choice of groups, in a group holding one
    of their kept rows; and whom the rows are about is exactly who has one."""
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'reelix.db'}")
        try:
            tables.create_all(engine)
            plays = [
                {"member_id": p, "device": d, "title_id": "t"}
                for p, devices in rows.items()
                for d in devices
            ]
            if plays:
                with engine.begin() as conn:
                    conn.execute(tables.tables["plays"].insert(), plays)
            source = Source(engine, parse(DATASET, source="reelix.yaml"))
            result = source.bounded_aggregate(
                "plays", ("device",), COUNT, Allowed(set(rows), party="reelix"), max_rows=k
            )
        finally:
            engine.dispose()
    assert sum(n for _, n in result.rows) == sum(min(len(d), k) for d in rows.values())
    assert sum(result.people) == len(rows)
    by_device = Counter(d for devices in rows.values() for d in devices)
    for (device, n), people in zip(result.rows, result.people, strict=True):
        assert people <= n <= by_device[device]
    assert result.contributors == frozenset(rows)
