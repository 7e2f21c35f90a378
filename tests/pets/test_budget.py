"""Privacy budgets per person across all partnerships: spent atomically, never overspent."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import rfc8785
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from accord.errors import InvalidInput
from accord.ledger.audit import verify_ledger
from accord.ledger.entries import ENTRY_KINDS, BudgetEntry, decode_leaf
from accord.pets.budget import (
    BudgetExceeded,
    Charge,
    Cost,
    PrivacyBudgets,
    delta_units,
    epsilon_units,
)
from accord.pets.tables import EPSILON_UNIT, privacy_budgets, privacy_spends
from accord.service import Accord
from accord.store.engine import Base, make_engine

pytestmark = pytest.mark.integration


def charge(people: list[str], epsilon: float, *, by: str = "chirp", **kw: object) -> Charge:
    return Charge(
        party="reelix",
        people=people,
        cost=Cost(epsilon, **kw),  # type: ignore[arg-type]
        recipient=by,
        description="a test query",
        agreement="chirp-reelix",
        clause="recommendation-report",
    )


def test_a_spend_charges_everyone_it_reads_and_is_in_the_ledger(
    accord: Accord, budgets: PrivacyBudgets
) -> None:
    spend = budgets.spend(charge(["m1", "m2"], 0.25))
    assert spend.people == 2
    assert budgets.remaining("reelix", "m1").epsilon == pytest.approx(0.75)
    assert budgets.remaining("reelix", "m3").epsilon == pytest.approx(1.0)  # not in the query
    leaf = accord.ledger.leaf(spend.receipt.index).entry()
    assert leaf["kind"] == "budget"
    assert leaf["spent"] is True
    assert leaf["epsilon"] == "0.25"
    assert leaf["people"] == 2
    assert len(leaf["subjects"]) == 2  # pseudonyms, never the ids
    assert "m1" not in str(leaf)
    # Each person can find the spend among their ledger entries.
    assert spend.receipt.index in accord.ledger.entries_about("reelix/m1")
    with accord.engine.connect() as conn:
        stored = conn.execute(select(privacy_spends.c.ledger_index)).scalar_one()
    assert stored == spend.receipt.index


def test_budgets_are_per_person_across_partnerships(budgets: PrivacyBudgets) -> None:
    budgets.spend(charge(["m1"], 0.6, by="chirp"))
    # Another recipient, another agreement: the same person's budget.
    other = Charge(
        party="reelix",
        people=["m1"],
        cost=Cost(0.6),
        recipient="adnet",
        description="another partnership's query",
        agreement="reelix-adnet",
    )
    with pytest.raises(BudgetExceeded, match="across all partnerships"):
        budgets.spend(other)
    assert budgets.remaining("reelix", "m1").epsilon == pytest.approx(0.4)


def test_a_query_that_would_overspend_anyone_is_refused_whole(
    accord: Accord, budgets: PrivacyBudgets
) -> None:
    budgets.spend(charge(["m1"], 0.9))
    with pytest.raises(BudgetExceeded) as refused:
        budgets.spend(charge(["m1", "m2", "m3"], 0.2))
    assert refused.value.short == 1
    assert "1 of the 3 people" in refused.value.message
    assert "nothing was charged" in refused.value.message
    # All or none: the others were not charged either.
    assert budgets.remaining("reelix", "m2").epsilon == pytest.approx(1.0)
    assert budgets.remaining("reelix", "m1").epsilon == pytest.approx(0.1)
    assert refused.value.receipt is not None
    leaf = accord.ledger.leaf(refused.value.receipt.index).entry()
    assert leaf["spent"] is False
    assert leaf["subjects"] == []  # a refusal names nobody
    assert budgets.spends("reelix") == 1


def test_a_query_over_two_parties_people_charges_both_or_neither(
    accord: Accord, budgets: PrivacyBudgets
) -> None:
    chirp_side = Charge(
        party="chirp",
        people=["c1", "c2"],
        cost=Cost(0.3),
        recipient="cleanroom",
        description="a join of both parties' rows",
    )
    budgets.spend(charge(["m2"], 0.9))  # m2 of Reelix has 0.1 left
    with pytest.raises(BudgetExceeded, match="1 of the 2 people of reelix") as refused:
        budgets.spend_together([chirp_side, charge(["m1", "m2"], 0.3)])
    assert "any of the 2 parties" in refused.value.message
    # Chirp's people had budget, but nothing was charged to anyone.
    assert budgets.remaining("chirp", "c1").epsilon == pytest.approx(1.0)
    assert budgets.remaining("reelix", "m1").epsilon == pytest.approx(1.0)
    assert budgets.spends("chirp") == 0

    spent = budgets.spend_together([chirp_side, charge(["m1"], 0.3)])
    assert [s.people for s in spent] == [2, 1]  # in the order asked
    assert budgets.remaining("chirp", "c2").epsilon == pytest.approx(0.7)
    assert budgets.remaining("reelix", "m1").epsilon == pytest.approx(0.7)
    kinds = {accord.ledger.leaf(s.receipt.index).entry()["spent"] for s in spent}
    assert kinds == {True}


def test_delta_is_budgeted_too(budgets: PrivacyBudgets) -> None:
    budgets.spend(charge(["m1"], 0.1, delta=6e-7, mechanism="gaussian"))
    assert budgets.remaining("reelix", "m1").delta == pytest.approx(4e-7)
    with pytest.raises(BudgetExceeded, match="delta"):
        budgets.spend(charge(["m1"], 0.1, delta=6e-7, mechanism="gaussian"))


def test_a_total_can_be_raised_but_not_cut_below_what_was_spent(budgets: PrivacyBudgets) -> None:
    budgets.spend(charge(["m1"], 0.5))
    budgets.set_total("reelix", ["m1", "m2"], epsilon=3.0, delta=1e-6)
    assert budgets.remaining("reelix", "m1").epsilon == pytest.approx(2.5)
    assert budgets.remaining("reelix", "m2").epsilon == pytest.approx(3.0)
    with pytest.raises(InvalidInput, match="cannot shrink"):
        budgets.set_total("reelix", ["m1"], epsilon=0.4)


def test_charges_round_up_never_down() -> None:
    assert epsilon_units(1e-7) == 1  # a tiny epsilon still costs something
    assert epsilon_units(0.1) == EPSILON_UNIT // 10
    assert delta_units(1e-9) == 10**6


@pytest.mark.parametrize(
    ("epsilon", "delta"),
    [(0, 0), (-1, 0), (float("nan"), 0), (1, 1), (1, -1e-9)],
)
def test_a_cost_must_be_a_real_privacy_loss(epsilon: float, delta: float) -> None:
    with pytest.raises(InvalidInput):
        Cost(epsilon, delta)


def test_the_store_refuses_an_overspent_row_whatever_writes_it(
    accord: Accord, budgets: PrivacyBudgets
) -> None:
    budgets.spend(charge(["m1"], 0.5))
    with pytest.raises(IntegrityError), accord.engine.begin() as conn:
        conn.execute(
            privacy_budgets.update().values(epsilon_spent=privacy_budgets.c.epsilon_total + 1)
        )


# -- concurrency -------------------------------------------------------------------------------


def test_concurrent_spends_never_overspend(db_url: str, accord: Accord) -> None:
    """Threads on their own connections race to spend the same people's budgets."""
    people = [f"m{i}" for i in range(30)]
    outcomes: list[str] = []
    lock = threading.Lock()
    engines = [make_engine(db_url) for _ in range(6)]
    start = threading.Barrier(len(engines))

    def work(n: int) -> None:
        budgets = PrivacyBudgets(engines[n], accord.ledger, default_epsilon=1.0)
        start.wait()
        for round_ in range(3):
            # Overlapping sets, in different orders, so locks are taken in contested order.
            chosen = people[(n * 5 + round_ * 7) % 30 :] + people[: (n * 5 + round_ * 7) % 30]
            chosen = chosen[:20] if n % 2 else list(reversed(chosen[:20]))
            try:
                budgets.spend(charge(chosen, 0.3, by=f"partner{n}"))
                result = "spent:" + ",".join(chosen)
            except BudgetExceeded:
                result = "refused"
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(engines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for engine in engines:
        engine.dispose()
    assert len(outcomes) == 18
    charged = Counter(p for o in outcomes if o.startswith("spent:") for p in o[6:].split(","))
    with accord.engine.connect() as conn:
        rows = conn.execute(
            select(privacy_budgets.c.person_id, privacy_budgets.c.epsilon_spent)
        ).all()
    spent = dict(rows)
    for person in people:
        # What the store holds is exactly what the successful spends charged, never more
        # than the budget.
        assert spent[person] == charged[person] * epsilon_units(0.3)
        assert spent[person] <= EPSILON_UNIT
    assert any(o == "refused" for o in outcomes)  # the budget did run out
    assert any(o.startswith("spent:") for o in outcomes)
    report = verify_ledger(accord.ledger)
    assert report.ok, report


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    spends=st.lists(
        st.tuples(
            st.sets(st.sampled_from(["a", "b", "c", "d"]), min_size=1),
            st.sampled_from([0.1, 0.25, 0.4, 0.7]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_a_budget_never_goes_negative(
    tmp_path_factory: pytest.TempPathFactory, spends: list[tuple[set[str], float]]
) -> None:
    folder = tmp_path_factory.mktemp("budget")
    with Accord.open(database_url=f"sqlite:///{folder / 'a.db'}", data_dir=folder) as accord:
        budgets = PrivacyBudgets(accord.engine, accord.ledger, default_epsilon=1.0)
        model = dict.fromkeys("abcd", EPSILON_UNIT)
        for people, epsilon in spends:
            cost = epsilon_units(epsilon)
            fits = all(model[p] >= cost for p in people)
            if fits:
                budgets.spend(charge(sorted(people), epsilon))
                for p in people:
                    model[p] -= cost
            else:
                with pytest.raises(BudgetExceeded):
                    budgets.spend(charge(sorted(people), epsilon))
        for p, left in model.items():
            assert left >= 0
            assert budgets.remaining("reelix", p).epsilon == pytest.approx(left / EPSILON_UNIT)


def test_the_migration_builds_exactly_these_tables(db_url: str, tmp_path: Path) -> None:
    with (
        Accord.open(database_url=db_url, data_dir=tmp_path) as accord,
        accord.engine.connect() as conn,
    ):
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        mine = {privacy_budgets.name, privacy_spends.name}
        differences = [
            d
            for d in compare_metadata(context, Base.metadata)
            if any(name in str(d) for name in mine)
        ]
    assert differences == []


# -- the ledger entry ------------------------------------------------------------------------------

amounts = st.floats(min_value=0, max_value=1e3, allow_nan=False).map(repr)


budget_entries = st.builds(
    BudgetEntry,
    agreement=st.none() | st.text(max_size=20),
    reason=st.text(min_size=1, max_size=40),
    recipient=st.text(max_size=20),
    mechanism=st.sampled_from(["laplace", "gaussian"]),
    epsilon=amounts,
    delta=amounts,
    spent=st.booleans(),
    about=st.lists(
        st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=10),
        max_size=3,
    ).map(tuple),  # ids hold no NUL (entries refuse one)
)


@pytest.mark.unit
@settings(max_examples=200)
@given(
    entry=budget_entries,
    subjects=st.lists(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), max_size=3),
)
def test_a_budget_entry_is_written_as_exactly_rfc8785(
    entry: BudgetEntry, subjects: list[str]
) -> None:
    leaf = entry.leaf(subjects)
    assert entry.encode(subjects) == rfc8785.dumps(leaf)
    assert decode_leaf(entry.encode(subjects)) == leaf
    assert ENTRY_KINDS[leaf["kind"]] is BudgetEntry
    assert "about" not in leaf


@pytest.mark.unit
@pytest.mark.parametrize("amount", ["-1", "nan", "inf", "one", " 1", ""])
def test_a_budget_entry_holds_only_real_amounts(amount: str) -> None:
    with pytest.raises(InvalidInput, match="non-negative decimal"):
        BudgetEntry(agreement=None, reason="r", recipient="x", mechanism="laplace", epsilon=amount)


# -- a clause's own cap ----------------------------------------------------------------------------


def capped(people: list[str], epsilon: float, cap: float, **kw: object) -> Charge:
    return replace(charge(people, epsilon, **kw), cap=cap)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    spends=st.lists(
        st.tuples(
            st.sets(st.sampled_from(["a", "b", "c", "d"]), max_size=4),
            st.sampled_from([0.05, 0.1, 0.25, 0.4]),
        ),
        min_size=1,
        max_size=10,
    ),
    cap=st.sampled_from([0.1, 0.5, 1.0]),
)
def test_a_clause_never_spends_past_its_cap(
    tmp_path_factory: pytest.TempPathFactory, spends: list[tuple[set[str], float]], cap: float
) -> None:
    """Each answer is counted against the clause as though it read everyone: one answers iff
    the clause's total with it stays within the cap and every person it reads can pay."""
    folder = tmp_path_factory.mktemp("cap")
    with Accord.open(database_url=f"sqlite:///{folder / 'a.db'}", data_dir=folder) as accord:
        budgets = PrivacyBudgets(accord.engine, accord.ledger, default_epsilon=0.8)
        people = dict.fromkeys("abcd", epsilon_units(0.8))
        clause = 0
        for chosen, epsilon in spends:
            cost = epsilon_units(epsilon)
            fits = clause + cost <= epsilon_units(cap) and all(people[p] >= cost for p in chosen)
            if fits:
                budgets.spend(capped(sorted(chosen), epsilon, cap))
                clause += cost
                for p in chosen:
                    people[p] -= cost
            else:
                with pytest.raises(BudgetExceeded):
                    budgets.spend(capped(sorted(chosen), epsilon, cap))
        spent = budgets.clause_spent("reelix", "chirp-reelix", "recommendation-report")
        assert spent == pytest.approx(clause / EPSILON_UNIT)
        assert spent <= cap
        for p, left in people.items():
            assert budgets.remaining("reelix", p).epsilon == pytest.approx(left / EPSILON_UNIT)


def test_a_clause_at_its_cap_refuses_and_logs_why(accord: Accord, budgets: PrivacyBudgets) -> None:
    budgets.spend(capped(["m1"], 0.3, 0.5))
    with pytest.raises(BudgetExceeded) as refused:
        budgets.spend(capped(["m2"], 0.3, 0.5))  # m2's own budget is untouched: the clause's is not
    assert "clause recommendation-report of agreement chirp-reelix" in refused.value.message
    assert refused.value.receipt is not None
    (leaf,) = accord.ledger.recent(1)
    assert leaf.entry()["spent"] is False
    assert budgets.remaining("reelix", "m2").epsilon == 1.0


@pytest.mark.parametrize(
    ("cap", "agreement"), [(float("nan"), "a"), (0.0, "a"), (-1.0, "a"), (1.0, None)]
)
def test_a_cap_must_be_a_budget_of_a_clause(cap: float, agreement: str | None) -> None:
    with pytest.raises(InvalidInput):
        replace(charge(["m1"], 0.1), cap=cap, agreement=agreement)


def test_concurrent_answers_never_take_a_clause_past_its_cap(db_url: str, accord: Accord) -> None:
    """Six threads, each charging people of its own (no person's row in common to lock), race
    to spend 0.3 of a clause capped at 1: exactly three get through."""
    engines = [make_engine(db_url) for _ in range(6)]
    start = threading.Barrier(len(engines))
    outcomes: list[bool] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        budgets = PrivacyBudgets(engines[n], accord.ledger)
        start.wait()
        try:
            budgets.spend(capped([f"p{n}-{i}" for i in range(5)], 0.3, 1.0, by=f"partner{n}"))
            done = True
        except BudgetExceeded:
            done = False
        with lock:
            outcomes.append(done)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(engines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for engine in engines:
        engine.dispose()
    assert sorted(outcomes) == [False] * 3 + [True] * 3
    budgets = PrivacyBudgets(accord.engine, accord.ledger)
    assert budgets.clause_spent("reelix", "chirp-reelix", "recommendation-report") == (
        pytest.approx(0.9)
    )
