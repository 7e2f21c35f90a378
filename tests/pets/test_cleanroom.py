"""The clean room runs what its rule allows: thresholds per row, noise, and budgets spent."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import ConfigError, InvalidInput
from accord.pets.budget import BudgetExceeded, PrivacyBudgets
from accord.pets.checks import QueryRefused, check_query
from accord.pets.cleanroom import CleanRoom
from accord.pets.mechanisms import Mechanism
from accord.pets.reports import ad_measurement, measurement_rule
from accord.pets.rules import PrivacyRule, parse_rule
from accord.service import Accord

RULE = """
kind: aggregation
tables:
  watch: {person: member_id}
dimensions: [watch.title_id]
metrics:
  watch.seconds: [sum, avg]
min_people: 5
"""
COLUMNS = ["member_id", "title_id", "seconds", "watched_at"]
START = datetime(2026, 11, 1, tzinfo=UTC)


def watch_rows(seed: int = 3) -> list[tuple[str, str, int, datetime]]:
    """Title t0 has 40 viewers, t1 has 5, t2 has 4 (below the minimum), t3 has 1."""
    rng = random.Random(seed)
    viewers = {"t0": 40, "t1": 5, "t2": 4, "t3": 1}
    rows = []
    for title, n in viewers.items():
        for m in range(n):
            for _ in range(rng.randint(1, 4)):
                at = START + timedelta(hours=rng.randint(0, 500))
                rows.append((f"m{m}", title, rng.randint(0, 3_600), at))
    return rows


def reference(rows: list[tuple[str, str, int, datetime]], minimum: int) -> dict[str, tuple]:
    people: dict[str, set[str]] = defaultdict(set)
    seconds: dict[str, int] = defaultdict(int)
    for member, title, s, _ in rows:
        people[title].add(member)
        seconds[title] += s
    return {t: (len(people[t]), seconds[t]) for t in people if len(people[t]) >= minimum}


@pytest.mark.unit
def test_every_row_counts_at_least_the_minimum_of_distinct_people() -> None:
    rows = watch_rows()
    with CleanRoom(parse_rule(RULE), analyst="chirp") as room:
        room.load("watch", COLUMNS, rows, party="reelix")
        result = room.run(
            "SELECT title_id, count(*) AS views, sum(seconds) AS seconds FROM watch "
            "GROUP BY title_id ORDER BY title_id"
        )
    expected = reference(rows, 5)
    assert set(expected) == {"t0", "t1"}  # t2 and t3 have too few viewers
    assert result.columns == ("title_id", "views", "seconds")
    assert [(t, s) for t, _, s in result.rows] == [(t, expected[t][1]) for t in sorted(expected)]
    assert result.noise is None


@pytest.mark.unit
def test_a_query_with_no_grouping_is_one_row_under_the_threshold_too() -> None:
    rows = [r for r in watch_rows() if r[1] in ("t2", "t3")]  # 4 distinct people in all
    with CleanRoom(parse_rule(RULE), analyst="chirp") as room:
        room.load("watch", COLUMNS, rows, party="reelix")
        assert room.run("SELECT sum(seconds) AS s FROM watch").rows == []


@pytest.mark.unit
def test_a_join_counts_the_people_of_every_table() -> None:
    rule = measurement_rule(min_people=3)
    exposures = [(f"c{i}", "spring", START) for i in range(10)]
    # Only two members converted: their row is held back, whatever the exposures side holds.
    conversions = [(f"m{i}", f"c{i}", START + timedelta(days=1), 10.0) for i in range(2)]
    with CleanRoom(rule, analyst="reelix") as room:
        room.load("exposures", ["person_id", "campaign", "exposed_at"], exposures, party="chirp")
        room.load(
            "conversions",
            ["member_id", "chirp_person_id", "converted_at", "value"],
            conversions,
            party="reelix",
        )
        measures = ad_measurement(room)
    assert len(measures) == 1
    assert measures[0].reached == 10
    assert measures[0].converters is None  # two converters: below the minimum of three


@pytest.mark.unit
def test_ad_measurement_counts_conversions_after_exposure() -> None:
    rng = random.Random(5)
    exposures, conversions = [], []
    truth: dict[str, set[str]] = defaultdict(set)
    value: dict[str, float] = defaultdict(float)
    for i in range(300):
        campaign = "spring" if i % 3 else "autumn"
        seen = START + timedelta(days=rng.randint(0, 10))
        exposures.append((f"c{i}", campaign, seen))
        if rng.random() < 0.4:
            when = seen + timedelta(days=rng.randint(-5, 5))
            conversions.append((f"m{i}", f"c{i}", when, 9.99))
            if when >= seen:
                truth[campaign].add(f"m{i}")
                value[campaign] += 9.99
    with CleanRoom(measurement_rule(min_people=20), analyst="reelix") as room:
        room.load("exposures", ["person_id", "campaign", "exposed_at"], exposures, party="chirp")
        room.load(
            "conversions",
            ["member_id", "chirp_person_id", "converted_at", "value"],
            conversions,
            party="reelix",
        )
        measures = {m.campaign: m for m in ad_measurement(room)}
    assert set(measures) == {"autumn", "spring"}
    assert measures["spring"].reached == 200
    for campaign, m in measures.items():
        assert m.converters == len(truth[campaign])
        assert m.value == pytest.approx(value[campaign])
        assert m.conversion_rate == pytest.approx(len(truth[campaign]) / m.reached)


# -- differential privacy and budgets --------------------------------------------------------------


def noisy_rule(epsilon: float, mechanism: Mechanism = Mechanism.LAPLACE, delta: float = 1e-8):  # type: ignore[no-untyped-def]
    privacy = PrivacyRule(
        mechanism=mechanism,
        epsilon=epsilon,
        delta=delta,
        max_rows=2,
        bounds={"watch.seconds": (0, 3_600)},
    )
    return parse_rule(RULE).model_copy(update={"privacy": privacy})


@pytest.mark.integration
def test_a_noisy_query_spends_every_readers_budget_and_then_is_refused(
    accord: Accord, budgets: PrivacyBudgets
) -> None:
    rows = watch_rows()
    people = {r[0] for r in rows}
    with CleanRoom(noisy_rule(0.4), analyst="chirp", budgets=budgets) as room:
        room.load("watch", COLUMNS, rows, party="reelix", agreement="chirp-reelix")
        query = "SELECT title_id, count(*) AS views, avg(seconds) AS mean FROM watch GROUP BY 1"
        first = room.run(query)
        assert first.noise is not None
        assert "laplace" in first.noise
        assert first.columns == ("title_id", "views", "mean")  # the helper count is gone
        (spend,) = first.spends
        assert spend.people == len(people)
        for person in people:
            assert budgets.remaining("reelix", person).epsilon == pytest.approx(0.6)
        room.run(query)  # 0.8 of 1.0 spent
        with pytest.raises(BudgetExceeded) as refused:
            room.run(query)
    assert f"{len(people)} of the {len(people)} people" in refused.value.message
    for person in people:
        assert budgets.remaining("reelix", person).epsilon == pytest.approx(0.2)
    leaf = accord.ledger.leaf(spend.receipt.index).entry()
    assert leaf["kind"] == "budget"
    assert leaf["agreement"] == "chirp-reelix"
    assert leaf["recipient"] == "chirp"


@pytest.mark.integration
def test_noisy_answers_are_near_the_truth(budgets: PrivacyBudgets) -> None:
    rows = [(f"m{i}", "t0", 100, START) for i in range(2_000)]
    budgets.set_total("reelix", {r[0] for r in rows}, epsilon=100.0, delta=1e-6)
    with CleanRoom(noisy_rule(15.0), analyst="chirp", budgets=budgets) as room:
        room.load("watch", COLUMNS, rows, party="reelix")
        ((title, views, total),) = room.run(
            "SELECT title_id, count(*) AS views, sum(seconds) AS total FROM watch GROUP BY 1"
        ).rows
    assert title == "t0"
    # A third of epsilon 15 each for the selection, the count and the sum: Laplace of scale 2/5
    # (count) and 2·3600/5 (sum), off by more than 30 and 20,000 with probability below 1e-6.
    assert abs(views - 2_000) < 30
    assert abs(total - 200_000) < 20_000


@pytest.mark.integration
def test_contributions_are_bounded_before_noise(budgets: PrivacyBudgets) -> None:
    # One person with 1,000 rows counts as at most max_rows (2) of them.
    rows = [("whale", "t0", 10, START)] * 1_000 + [(f"m{i}", "t0", 10, START) for i in range(20)]
    budgets.set_total("reelix", {"whale", *(f"m{i}" for i in range(20))}, epsilon=100.0, delta=1e-6)
    with CleanRoom(noisy_rule(50.0), analyst="chirp", budgets=budgets) as room:
        room.load("watch", COLUMNS, rows, party="reelix")
        ((views,),) = room.run("SELECT count(*) AS views FROM watch").rows
    assert abs(views - 22) < 5  # scale 2/50: the whale's 998 extra rows are gone


@pytest.mark.integration
def test_gaussian_noise_spends_delta_too(budgets: PrivacyBudgets) -> None:
    rows = watch_rows()
    with CleanRoom(
        noisy_rule(0.5, Mechanism.GAUSSIAN, 4e-7), analyst="chirp", budgets=budgets
    ) as room:
        room.load("watch", COLUMNS, rows, party="reelix")
        result = room.run("SELECT title_id, count(*) AS views FROM watch GROUP BY 1")
        assert result.noise is not None
        assert "gaussian" in result.noise
        assert budgets.remaining("reelix", "m0").delta == pytest.approx(6e-7)
        room.run("SELECT title_id, count(*) AS views FROM watch GROUP BY 1")
        with pytest.raises(BudgetExceeded, match="delta"):
            room.run("SELECT title_id, count(*) AS views FROM watch GROUP BY 1")


@pytest.mark.integration
def test_a_refused_query_spends_nothing(budgets: PrivacyBudgets) -> None:
    with CleanRoom(noisy_rule(0.5), analyst="chirp", budgets=budgets) as room:
        room.load("watch", COLUMNS, watch_rows(), party="reelix")
        with pytest.raises(QueryRefused, match="SELECT \\*"):
            room.run("SELECT * FROM watch")
    assert budgets.spends("reelix") == 0
    assert budgets.remaining("reelix", "m0").epsilon == pytest.approx(1.0)


# -- loading ---------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("table", "columns", "message"),
    [
        ("exposures", COLUMNS, "not in the rule"),
        ("watch", ["title_id", "seconds"], "no column member_id"),  # whom rows are about
        ("watch", ["member_id", "member_id"], "distinct"),
        ("watch", ["member_id", "bad name"], "plain names"),
    ],
)
def test_tables_that_cannot_enter_the_room(table: str, columns: list[str], message: str) -> None:
    with CleanRoom(parse_rule(RULE), analyst="chirp") as room, pytest.raises(InvalidInput) as bad:
        room.load(table, columns, [], party="reelix")
    assert message in bad.value.message


@pytest.mark.unit
def test_values_keep_their_types_and_nulls() -> None:
    rows = [("m1", 't,"quoted"', None, START), ("m2", "", 5, None)]
    rule = parse_rule(RULE.replace("min_people: 5", "min_people: 2"))
    with CleanRoom(rule, analyst="chirp") as room:
        room.load("watch", COLUMNS, rows, party="reelix")
        stored = room.database.execute(
            "SELECT member_id, title_id, seconds, watched_at FROM watch ORDER BY member_id"
        ).fetchall()
    assert stored == [("m1", 't,"quoted"', None, START), ("m2", "", 5, None)]


@pytest.mark.unit
def test_a_noisy_rule_needs_the_budgets() -> None:
    with pytest.raises(ConfigError, match="budgets"):
        CleanRoom(noisy_rule(1.0), analyst="chirp")


@pytest.mark.integration
def test_noisy_rows_are_chosen_by_their_bounded_people(budgets: PrivacyBudgets) -> None:
    """With noise too small to matter (epsilon 200), the selection is the rule's minimum of 5
    people, counted among each person's bounded rows (at most 2): t2's 12 rows are 4 people."""

    def viewers(title: str, people: int, each: int) -> list[tuple[str, str, int, datetime]]:
        return [(f"{title}-m{i}", title, 60, START) for i in range(people) for _ in range(each)]

    rows = viewers("t0", 40, 3) + viewers("t1", 6, 1) + viewers("t2", 4, 3) + viewers("t3", 5, 1)
    budgets.set_total("reelix", {r[0] for r in rows}, epsilon=1_000.0, delta=1e-6)
    with CleanRoom(noisy_rule(200.0), analyst="chirp", budgets=budgets) as room:
        room.load("watch", COLUMNS, rows, party="reelix")
        result = room.run("SELECT title_id, count(*) AS views FROM watch GROUP BY 1 ORDER BY 1")
    assert result.selection is not None
    assert result.selection.threshold == 5  # the minimum: OpenDP's own bound is lower here
    # Discrete Laplace of scale 0.02 moves a count by one with probability about 2e-22.
    assert [r[0] for r in result.rows] == ["t0", "t1", "t3"]
    assert result.columns == ("title_id", "views")  # the people counts stay in the room


@pytest.mark.integration
@pytest.mark.parametrize(
    ("mechanism", "epsilon", "delta", "selection_epsilon"),
    [
        (Mechanism.LAPLACE, 0.6, 1e-8, None),  # an even third each: selection, count, mean
        (Mechanism.LAPLACE, 0.6, 1e-8, 0.1),  # the selection's share set by the rule
        (Mechanism.GAUSSIAN, 0.6, 3e-7, None),  # Gaussian: delta shared like epsilon
    ],
)
def test_the_charge_is_the_selection_and_the_aggregates_together(
    budgets: PrivacyBudgets,
    mechanism: Mechanism,
    epsilon: float,
    delta: float,
    selection_epsilon: float | None,
) -> None:
    rule = noisy_rule(epsilon, mechanism, delta)
    assert rule.privacy is not None
    privacy = rule.privacy.model_copy(update={"selection_epsilon": selection_epsilon})
    rule = rule.model_copy(update={"privacy": privacy})
    with CleanRoom(rule, analyst="chirp", budgets=budgets) as room:
        room.load("watch", COLUMNS, watch_rows(), party="reelix")
        result = room.run(
            "SELECT title_id, count(*) AS views, avg(seconds) AS mean FROM watch GROUP BY 1"
        )
    selection, aggregates = result.selection, result.aggregates
    assert selection is not None
    assert aggregates is not None
    assert selection.epsilon == pytest.approx(selection_epsilon or epsilon / 3)
    assert selection.epsilon + aggregates.epsilon == pytest.approx(epsilon)
    assert selection.epsilon + aggregates.epsilon <= epsilon  # never more than is charged
    assert selection.delta + aggregates.delta == pytest.approx(delta)
    if mechanism is Mechanism.LAPLACE:
        assert aggregates.delta == 0  # Laplace on the numbers is pure: delta is the selection's
    else:
        assert selection.delta == pytest.approx(delta / 3)
    remaining = budgets.remaining("reelix", "m0")
    assert remaining.epsilon == pytest.approx(1.0 - epsilon)
    assert remaining.delta == pytest.approx(1e-6 - delta)
    assert result.noise is not None
    assert f"reaches {selection.threshold}" in result.noise
    assert f"in all epsilon {epsilon:.4g} and delta {delta:.4g}" in result.noise


@pytest.mark.unit
@settings(max_examples=40, deadline=None)
@given(
    views=st.lists(st.tuples(st.integers(0, 12), st.sampled_from("abcd")), max_size=120),
    minimum=st.integers(2, 6),
)
def test_no_row_ever_has_fewer_people_than_the_minimum(
    views: list[tuple[int, str]], minimum: int
) -> None:
    rule = parse_rule(RULE.replace("min_people: 5", f"min_people: {minimum}"))
    rows = [(f"m{m}", f"t-{t}", 10, START) for m, t in views]
    with CleanRoom(rule, analyst="chirp") as room:
        room.load("watch", COLUMNS, rows, party="reelix")
        result = room.run("SELECT title_id, count(*) AS views FROM watch GROUP BY title_id")
    people: dict[str, set[str]] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    for member, title, _, _ in rows:
        people[title].add(member)
        counts[title] += 1
    expected = {(t, counts[t]) for t in people if len(people[t]) >= minimum}
    assert set(result.rows) == expected


@pytest.mark.integration
def test_values_beyond_the_bounds_are_clamped(budgets: PrivacyBudgets) -> None:
    rows = [(f"m{i}", "t0", 100, START) for i in range(50)] + [("whale", "t0", 10**9, START)]
    budgets.set_total("reelix", {r[0] for r in rows}, epsilon=1_000.0, delta=1e-6)
    with CleanRoom(noisy_rule(500.0), analyst="chirp", budgets=budgets) as room:
        room.load("watch", COLUMNS, rows, party="reelix")
        ((total,),) = room.run("SELECT sum(seconds) AS total FROM watch").rows
    # 50 × 100 plus the whale's clamped 3,600; the noise (scale 2·3600/500) is far smaller.
    assert abs(total - 8_600) < 300


@pytest.mark.integration
def test_every_result_is_in_the_ledger_before_it_leaves(accord: Accord) -> None:
    rows = watch_rows()
    with CleanRoom(parse_rule(RULE), analyst="chirp", ledger=accord.ledger) as room:
        room.load("watch", COLUMNS, rows, party="reelix", agreement="chirp-reelix")
        result = room.run("SELECT title_id, count(*) AS views FROM watch GROUP BY 1")
    assert result.receipt is not None
    leaf = accord.ledger.leaf(result.receipt.index).entry()
    assert leaf["kind"] == "release"
    assert leaf["granularity"] == "aggregate"
    assert leaf["provider"] == "reelix"
    assert leaf["recipient"] == "chirp"
    assert leaf["fields"] == ["title_id", "views"]
    assert leaf["people"] == len({r[0] for r in rows})
    assert leaf["subjects"] == []  # an aggregate names no one
    assert "2 rows" in leaf["reason"]


@pytest.mark.unit
@settings(max_examples=30, deadline=None)
@given(
    views=st.lists(
        st.tuples(st.integers(0, 8), st.sampled_from("abc"), st.integers(-500, 9_000)),
        min_size=1,
        max_size=150,
    ),
    data=st.data(),
)
def test_one_person_moves_the_bounded_answers_by_at_most_the_sensitivity(
    views: list[tuple[int, str, int]], data: st.DataObject
) -> None:
    """The sensitivity the noise is calibrated to holds: removing one person's rows changes the
    counts by at most max_rows in all, the clamped sums by at most max_rows × 3,600, and the
    groups' counts of people by one in at most one group."""
    rule = noisy_rule(1.0)
    rows = [(f"m{m}", f"t-{t}", s, START) for m, t, s in views]
    gone = data.draw(st.sampled_from(sorted({r[0] for r in rows})))
    query = "SELECT title_id, count(*) AS views, sum(seconds) AS total FROM watch GROUP BY 1"
    # Exact rules admit the table the same way; the noisy rule's query runs on it by hand.
    with CleanRoom(parse_rule(RULE), analyst="chirp") as room:
        table = room.load("watch", COLUMNS, rows, party="reelix")
        checked = check_query(rule, query, {"watch": table.columns})
        before = {r[0]: r for r in room.database.execute(checked.sql).fetchall()}
        # The neighbouring table: the same rows, with the same random ranks, less one person.
        room.database.execute("DELETE FROM watch WHERE member_id = ?", [gone])
        after = {r[0]: r for r in room.database.execute(checked.sql).fetchall()}
    gone_row = (None, 0, 0, 0)
    counts = sum(abs(before[t][1] - after.get(t, gone_row)[1]) for t in before)
    sums = sum(abs(before[t][2] - after.get(t, gone_row)[2]) for t in before)
    assert counts <= 2
    assert sums <= 2 * 3_600 + 1e-6
    # The selection's bound: the person is counted in one group only.
    people = [abs(before[t][3] - after.get(t, gone_row)[3]) for t in before]
    assert sum(people) <= 1


def two_dimensions(epsilon: float):  # type: ignore[no-untyped-def]
    """The noisy rule, with the time of a view as a dimension too (to filter on)."""
    rule = parse_rule(RULE.replace("[watch.title_id]", "[watch.title_id, watch.watched_at]"))
    return rule.model_copy(update={"privacy": noisy_rule(epsilon).privacy})


@pytest.mark.unit
@settings(max_examples=60, deadline=None)
@given(
    views=st.lists(
        st.tuples(st.integers(0, 8), st.sampled_from("abc"), st.integers(0, 5)),
        min_size=1,
        max_size=150,
    ),
    cut=st.none() | st.integers(0, 6),
    data=st.data(),
)
def test_one_person_moves_the_selection_counts_by_one_in_one_group(
    views: list[tuple[int, str, int]], cut: int | None, data: st.DataObject
) -> None:
    """Each person is counted in one group (their first row kept, in their random order): removing
    them takes one from one group's count and changes no one else's, with or without a filter;
    no group counts more people than it has; everyone with a row kept is counted once."""
    rule = two_dimensions(1.0)
    rows = [(f"m{m}", f"t-{t}", 60, START + timedelta(hours=h)) for m, t, h in views]
    gone = data.draw(st.sampled_from(sorted({r[0] for r in rows})))
    where = (
        ""
        if cut is None
        else f" WHERE watched_at < CAST('{START + timedelta(hours=cut)}' AS TIMESTAMPTZ)"
    )
    query = f"SELECT title_id, count(*) AS views FROM watch{where} GROUP BY 1"  # noqa: S608
    # The rows the rewritten query keeps: those the filter keeps, within each person's first 2.
    kept = f"FROM watch WHERE _accord_rank <= 2{where.replace(' WHERE ', ' AND ')}"
    with CleanRoom(parse_rule(RULE), analyst="chirp") as room:
        table = room.load("watch", COLUMNS, rows, party="reelix")
        checked = check_query(rule, query, {"watch": table.columns})
        assert checked.people_columns == 1
        before = {r[0]: r[2] for r in room.database.execute(checked.sql).fetchall()}
        db = room.database
        distinct = dict(
            db.execute(f"SELECT title_id, count(DISTINCT member_id) {kept} GROUP BY 1").fetchall()
        )
        (everyone,) = db.execute(f"SELECT count(DISTINCT member_id) {kept}").fetchone() or (0,)
        # The neighbouring table: the same rows, with the same random ranks, less one person.
        db.execute("DELETE FROM watch WHERE member_id = ?", [gone])
        after = {r[0]: r[2] for r in db.execute(checked.sql).fetchall()}
    moved = {t: before[t] - after.get(t, 0) for t in before}
    assert all(change in (0, 1) for change in moved.values())  # nobody else's choice moves
    assert sum(moved.values()) <= 1
    for title, counted in before.items():
        assert counted <= distinct.get(title, 0)
    # Everyone with a row kept (by the filter and the bound) is counted, exactly once.
    assert sum(before.values()) == everyone


@pytest.mark.integration
def test_a_group_counts_only_the_people_whose_chosen_row_is_in_it(budgets: PrivacyBudgets) -> None:
    """Ten people each watched t0 and t1, and every one's rank-1 row is their t0 row. With noise
    too small to matter, t0 counts ten people and shows; t1 counts none and is held back, though
    ten people watched it. Filtered to t1, each person's first row kept is their t1 row, shown."""
    rows = [(f"m{i}", title, 60, START) for i in range(10) for title in ("t0", "t1")]
    budgets.set_total("reelix", {r[0] for r in rows}, epsilon=1_000.0, delta=1e-6)
    with CleanRoom(noisy_rule(200.0), analyst="chirp", budgets=budgets) as room:
        room.load("watch", COLUMNS, rows, party="reelix")
        room.database.execute(
            "UPDATE watch SET _accord_rank = CASE WHEN title_id = 't0' THEN 1 ELSE 2 END"
        )
        everything = room.run("SELECT title_id, count(*) AS views FROM watch GROUP BY 1")
        filtered = room.run(
            "SELECT title_id, count(*) AS views FROM watch WHERE title_id = 't1' GROUP BY 1"
        )
    # Discrete Laplace of scale 0.01 moves a count by five with probability about 1e-217.
    assert [r[0] for r in everything.rows] == ["t0"]
    assert [r[0] for r in filtered.rows] == ["t1"]
    selection = everything.selection
    assert selection is not None
    assert selection.groups == 1  # one table read: each person in one group's count
    assert selection.threshold == 5  # the rule's minimum, above OpenDP's own bound here
    counted = "each person counted in one group, chosen at random among their rows"
    assert selection.counted == counted
    assert everything.noise is not None
    assert counted in everything.noise
    assert "each person counts in at most 1 row" in everything.noise


@pytest.mark.integration
def test_a_noisy_join_counts_each_person_of_each_table_in_one_group(
    budgets: PrivacyBudgets,
) -> None:
    """A join's group count is the fewer of its tables' people, each counted in one group: one
    person (in both tables) moves at most two groups' counts, by one each."""
    rule = parse_rule(
        """
kind: aggregation
tables: {watch: {person: member_id}, links: {person: member_id}}
dimensions: [watch.title_id]
metrics: {watch.seconds: [sum]}
join_columns: [watch.member_id, links.member_id]
min_people: 5
"""
    ).model_copy(update={"privacy": noisy_rule(200.0).privacy})
    # t0: twelve people who linked; t1: four; each person's rows all in one title.
    watch = [(f"m{i}", "t0" if i < 12 else "t1", 60, START) for i in range(16) for _ in range(3)]
    links = [(f"m{i}", f"c{i}") for i in range(16)]
    budgets.set_total("reelix", {r[0] for r in watch}, epsilon=1_000.0, delta=1e-6)
    with CleanRoom(rule, analyst="chirp", budgets=budgets) as room:
        room.load("watch", COLUMNS, watch, party="reelix")
        room.load("links", ["member_id", "chirp_id"], links, party="reelix")
        result = room.run(
            "SELECT w.title_id, count(*) AS views FROM watch AS w JOIN links AS l "
            "ON w.member_id = l.member_id GROUP BY 1"
        )
    assert result.selection is not None
    assert result.selection.groups == 2  # one group's count in each of the two tables
    assert [r[0] for r in result.rows] == ["t0"]  # t1's four people are below the minimum
