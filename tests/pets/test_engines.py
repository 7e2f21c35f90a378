"""The clean room on Apache Spark gives the exact aggregates DuckDB gives, before any noise.

Every query shape the rules accept (grouping, distinct counts, sums and averages, joins, filters,
the rule's threshold of people per row, ordering and limits, list and custom rules, and the
rewritten queries of noisy rules, whose people counts and clamped sums are what the noise is
added to) runs on both engines over the same admitted tables; the answers must be equal.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from accord.errors import InvalidInput, StoreError
from accord.pets.budget import PrivacyBudgets
from accord.pets.checks import check_query
from accord.pets.cleanroom import CleanRoom
from accord.pets.engines import DuckDBEngine, SparkEngine, to_spark_sql
from accord.pets.rules import AnalysisRule, parse_rule
from accord.service import Accord

pytestmark = pytest.mark.integration

EXACT = parse_rule(
    """
kind: aggregation
tables:
  watch: {person: member_id}
  members: {person: member_id}
dimensions: [watch.title_id, watch.watched_at, watch.device, watch.seconds, members.country,
  members.plan]
metrics:
  watch.seconds: [count, sum, avg]
  watch.member_id: [count_distinct]
  watch.rating: [sum, avg, count]
  members.member_id: [count_distinct]
join_columns: [watch.member_id, members.member_id]
min_people: 3
"""
)
NOISY = parse_rule(
    """
kind: aggregation
tables:
  watch: {person: member_id}
dimensions: [watch.title_id, watch.device, watch.seconds]
metrics:
  watch.seconds: [count, sum, avg]
min_people: 3
privacy: {epsilon: 1.0, delta: 1e-6, max_rows: 2, bounds: {watch.seconds: [0, 1800]}}
"""
)
LIST = parse_rule(
    """
kind: list
tables:
  watch: {person: member_id}
  members: {person: member_id}
columns: [watch.title_id, members.country]
join_columns: [watch.member_id, members.member_id]
"""
)
CUSTOM = parse_rule(
    """
kind: custom
tables:
  watch: {person: member_id}
templates:
  viewers: >
    SELECT title_id, count(DISTINCT member_id) AS viewers FROM watch
    WHERE title_id = $title GROUP BY title_id HAVING count(DISTINCT member_id) >= 3
"""
)
WATCH = ("member_id", "title_id", "seconds", "rating", "device", "watched_at")
MEMBERS = ("member_id", "country", "plan")
START = datetime(2026, 11, 1, tzinfo=UTC)


def world(seed: int = 5) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Watch events of 60 members over 6 titles (some titles with few viewers), and members.

    Ratings are multiples of a quarter, so that sums are exact in any order of addition."""
    rng = random.Random(seed)
    viewers = {"t0": 40, "t1": 25, "t2": 8, "t3": 3, "t4": 2, "t5": 1}
    watch = []
    for title, n in viewers.items():
        for m in rng.sample(range(60), n):
            for _ in range(rng.randint(1, 4)):
                watch.append(
                    (
                        f"m{m:02d}",
                        title,
                        rng.randint(0, 3_600),
                        None if rng.random() < 0.2 else rng.randint(0, 20) / 4,
                        rng.choice(["tv", "phone", None]),
                        START + timedelta(minutes=rng.randint(0, 30_000)),
                    )
                )
    members = [
        (f"m{m:02d}", rng.choice(["CA", "MX", "BR"]), rng.choice(["basic", "premium"]))
        for m in range(60)
    ]
    return watch, members


def both(rule: AnalysisRule, spark: SparkSession, sql: str, seed: int = 5) -> tuple[Any, Any]:
    """The checked query's exact rows on DuckDB and on Spark, over the same admitted tables."""
    watch, members = world(seed)
    # Nothing is run through the room here (no budget to spend): only the checked query.
    with CleanRoom(rule.model_copy(update={"privacy": None}), analyst="chirp") as room:
        room.load("watch", WATCH, watch, party="reelix")
        if "members" in rule.tables:
            room.load("members", MEMBERS, members, party="reelix")
        schema = {name: t.columns for name, t in room.tables.items()}
        observed = {name: t.observed for name, t in room.tables.items()}
        checked = check_query(rule, sql, schema, observed)
        duck = DuckDBEngine(room.database).query(checked.sql)
        on_spark = SparkEngine(spark)
        try:
            for name in checked.tables:
                on_spark.take(name, room.database)
            return duck, on_spark.query(checked.sql)
        finally:
            on_spark.close()


def same(duck: Any, spark: Any) -> None:
    (duck_columns, duck_rows), (spark_columns, spark_rows) = duck, spark
    assert spark_columns == duck_columns
    assert spark_rows == duck_rows


@pytest.mark.parametrize(
    "sql",
    [
        # grouping, every aggregate a metric allows
        (
            "SELECT title_id, count(seconds) AS views, sum(seconds) AS s, avg(seconds) AS a "
            "FROM watch GROUP BY title_id ORDER BY title_id"
        ),
        # distinct people, with filters of each kind
        (
            "SELECT title_id, count(DISTINCT member_id) AS viewers FROM watch "
            "WHERE seconds > 600 AND device IN ('tv', 'phone') GROUP BY title_id ORDER BY title_id"
        ),
        (
            "SELECT device, count(*) AS views FROM watch WHERE device IS NOT NULL "
            "AND title_id LIKE 't%' AND seconds BETWEEN 100 AND 3000 "
            "GROUP BY device ORDER BY device"
        ),
        # nulls as a group of their own, ordered as DuckDB orders them (last)
        (
            "SELECT device, sum(rating) AS r, avg(rating) AS a, count(rating) AS rated FROM watch "
            "GROUP BY device ORDER BY device"
        ),
        # dates and times as dimensions
        (
            "SELECT CAST(watched_at AS DATE) AS day, count(*) AS views FROM watch "
            "GROUP BY 1 ORDER BY 1"
        ),
        (
            "SELECT date_trunc('week', watched_at) AS week, count(*) AS views FROM watch "
            "WHERE watched_at >= TIMESTAMP '2026-11-03' GROUP BY 1 ORDER BY 1"
        ),
        # no grouping: one row, under the threshold too
        "SELECT count(*) AS n, sum(seconds) AS s FROM watch",
        "SELECT count(*) AS n FROM watch WHERE title_id IN ('t4', 't5')",
        # ordered by an aggregate, limited
        (
            "SELECT title_id, count(*) AS views FROM watch GROUP BY title_id "
            "ORDER BY views DESC, title_id LIMIT 2 OFFSET 1"
        ),
        # a join, every table's people counted for the threshold
        (
            "SELECT m.country, w.title_id, count(DISTINCT w.member_id) AS viewers, "
            "sum(w.seconds) AS s FROM watch AS w JOIN members AS m ON w.member_id = m.member_id "
            "WHERE m.plan = 'premium' GROUP BY m.country, w.title_id ORDER BY m.country, w.title_id"
        ),
        (
            "SELECT m.plan, count(DISTINCT m.member_id) AS members, avg(w.rating) AS a "
            "FROM watch AS w JOIN members AS m ON w.member_id = m.member_id "
            "GROUP BY m.plan ORDER BY m.plan"
        ),
    ],
)
def test_an_exact_rule_gives_the_same_rows_on_both_engines(spark: SparkSession, sql: str) -> None:
    duck, on_spark = both(EXACT, spark, sql)
    assert duck[1], "the query should show rows"
    same(duck, on_spark)


@pytest.mark.parametrize(
    "sql",
    [
        # each person's rows bounded, each counted in one group, values clamped
        (
            "SELECT title_id, count(*) AS views, sum(seconds) AS s FROM watch "
            "GROUP BY title_id ORDER BY title_id"
        ),
        # a filter: each person counted at the first row it keeps
        (
            "SELECT device, avg(seconds) AS a FROM watch WHERE seconds > 300 "
            "GROUP BY device ORDER BY device"
        ),
    ],
)
def test_a_noisy_rules_counts_before_noise_are_the_same_on_both_engines(
    spark: SparkSession, sql: str
) -> None:
    duck, on_spark = both(NOISY, spark, sql)
    assert any(c.startswith("_accord_people") for c in duck[0])
    same(duck, on_spark)


def test_list_and_custom_rules_give_the_same_rows_on_both_engines(spark: SparkSession) -> None:
    same(
        *both(
            LIST,
            spark,
            (
                "SELECT DISTINCT w.title_id, m.country FROM watch AS w JOIN members AS m "
                "ON w.member_id = m.member_id ORDER BY 1, 2"
            ),
        )
    )
    same(
        *both(
            CUSTOM,
            spark,
            (
                "SELECT title_id, count(DISTINCT member_id) AS viewers FROM watch "
                "WHERE title_id = 't2' GROUP BY title_id HAVING count(DISTINCT member_id) >= 3"
            ),
        )
    )


def test_a_room_on_spark_releases_what_a_room_on_duckdb_releases(spark: SparkSession) -> None:
    watch, _ = world()
    sql = (
        "SELECT title_id, count(DISTINCT member_id) AS viewers, sum(seconds) AS s FROM watch "
        "GROUP BY title_id ORDER BY title_id"
    )
    results = []
    for engine in (None, SparkEngine(spark)):
        with CleanRoom(EXACT, analyst="chirp", engine=engine) as room:
            room.load("watch", WATCH, watch, party="reelix")
            results.append(room.run(sql))
    duck, on_spark = results
    # t3 has three viewers (kept), t4 and t5 fewer (dropped in the engine, by the rule's HAVING)
    assert [r[0] for r in duck.rows] == ["t0", "t1", "t2", "t3"]
    assert on_spark.rows == duck.rows
    assert on_spark.columns == duck.columns


def test_noise_is_added_outside_spark_and_the_budget_spent_first(
    spark: SparkSession, sqlite_url: str, tmp_path: Path
) -> None:
    watch, _ = world()
    sql = "SELECT title_id, count(*) AS views FROM watch GROUP BY title_id ORDER BY title_id"
    with Accord.open(database_url=sqlite_url, data_dir=tmp_path / "accord") as accord:
        budgets = PrivacyBudgets(accord.engine, accord.ledger, default_epsilon=1.0)
        with CleanRoom(NOISY, analyst="chirp", budgets=budgets, engine=SparkEngine(spark)) as room:
            room.load("watch", WATCH, watch, party="reelix")
            result = room.run(sql)
            exact = room.engine.query(room.check(sql).sql)
    # Spark returns exact counts and, for the room's noisy choice of rows, each group's people;
    # the noise (OpenDP) is the room's, and every viewer paid before the query ran.
    columns, rows = exact
    assert columns == ("title_id", "views", "_accord_people0")
    assert all(isinstance(v, int) for r in rows for v in r[1:])
    assert result.columns == ("title_id", "views")
    assert result.noise is not None
    assert {r[0] for r in result.rows} <= {r[0] for r in rows}
    (spend,) = result.spends
    assert spend.people == len({w[0] for w in watch})
    assert result.receipt is not None
    assert result.receipt.index > spend.receipt.index


def test_a_query_spark_cannot_run_is_a_clear_error(spark: SparkSession) -> None:
    with (
        CleanRoom(EXACT, analyst="chirp", engine=SparkEngine(spark)) as room,
        pytest.raises(StoreError, match="on Spark failed"),
    ):
        room.engine.query("SELECT nothing FROM nowhere")
    # a table outside the rule never reaches Spark
    with (
        CleanRoom(EXACT, analyst="chirp", engine=SparkEngine(spark)) as room,
        pytest.raises(InvalidInput),
    ):
        room.load("other", ["member_id"], [("m1",)], party="reelix")


def test_the_dialects_differ_where_sqlglot_translates() -> None:
    # Spark orders nulls first by default, DuckDB last: the translation says which.
    assert "NULLS LAST" in to_spark_sql("SELECT a FROM t ORDER BY a")
    assert "RAND()" in to_spark_sql("SELECT random() AS r FROM t")


# -- generated tables ------------------------------------------------------------------------------

people = st.sampled_from([f"p{i}" for i in range(12)])
row = st.tuples(
    people,
    st.sampled_from(["a", "b", "c"]),
    st.one_of(st.none(), st.integers(-1_000, 1_000)),
    st.one_of(st.none(), st.sampled_from(["x", "y"])),
)
SMALL = parse_rule(
    """
kind: aggregation
tables:
  events: {person: person}
  people: {person: person}
dimensions: [events.kind, events.tag, events.amount, people.region]
metrics:
  events.amount: [count, sum, avg]
  events.person: [count_distinct]
join_columns: [events.person, people.person]
min_people: 2
"""
)
SHAPES = [
    (
        "SELECT kind, count(*) AS n, sum(amount) AS s, count(DISTINCT person) AS k FROM events "
        "WHERE amount > -500 OR amount IS NULL GROUP BY kind ORDER BY kind"
    ),
    (
        "SELECT p.region, e.tag, count(e.amount) AS n, avg(e.amount) AS a FROM events AS e "
        "JOIN people AS p ON e.person = p.person GROUP BY p.region, e.tag ORDER BY 1, 2"
    ),
]


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=st.lists(row, min_size=1, max_size=40),
    regions=st.lists(st.sampled_from(["n", "s"]), min_size=12, max_size=12),
    shape=st.sampled_from(SHAPES),
)
def test_generated_tables_give_the_same_rows_on_both_engines(
    spark: SparkSession, events: list[tuple[Any, ...]], regions: list[str], shape: str
) -> None:
    with CleanRoom(SMALL, analyst="chirp") as room:
        # A first row of known types: a column of nulls alone would have no type to compare.
        typed = [("p0", "a", 0, "x"), *events]
        room.load("events", ("person", "kind", "amount", "tag"), typed, party="reelix")
        room.load(
            "people",
            ("person", "region"),
            [(f"p{i}", r) for i, r in enumerate(regions)],
            party="reelix",
        )
        checked = room.check(shape)
        on_spark = SparkEngine(spark)
        try:
            for name in checked.tables:
                on_spark.take(name, room.database)
            same(DuckDBEngine(room.database).query(checked.sql), on_spark.query(checked.sql))
        finally:
            on_spark.close()
