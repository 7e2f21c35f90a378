"""A lookalike's features and audience are the same on DuckDB and on Spark, and are what a
reference computation in this process gives."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pyspark.sql import SparkSession

from accord.errors import InvalidInput
from accord.pets.lookalike import build
from accord.pets.lookalike_sql import Scorer, features_on, top_on

pytestmark = pytest.mark.integration

FEATURES = (
    "SELECT p.person, count(o.amount) AS orders, coalesce(sum(o.amount), 0) AS spent "
    "FROM people AS p LEFT JOIN orders AS o ON o.person = p.person GROUP BY p.person"
)


def _shop() -> duckdb.DuckDBPyConnection:
    db = duckdb.connect(":memory:")
    db.execute("CREATE TABLE people (person VARCHAR)")
    db.execute("INSERT INTO people VALUES ('c'), ('a'), ('b')")
    db.execute("CREATE TABLE orders (person VARCHAR, amount INTEGER)")
    db.execute("INSERT INTO orders VALUES ('a', 5), ('a', 7), ('c', 1)")
    return db


@pytest.mark.parametrize("on_spark", [False, True])
def test_features_are_the_query_s_rows_by_person_on_either_engine(
    spark: SparkSession, on_spark: bool
) -> None:
    with _shop() as db:
        people, names, values = features_on(
            db, ["people", "orders"], FEATURES, spark=spark if on_spark else None
        )
    # By hand: a ordered twice (5 + 7), b never, c once (1); people in order of their id.
    assert people == ["a", "b", "c"]
    assert names == ["orders", "spent"]
    assert values.tolist() == [[2.0, 12.0], [0.0, 0.0], [1.0, 1.0]]


def test_a_features_query_gives_one_row_a_person() -> None:
    with _shop() as db, pytest.raises(InvalidInput, match="one row a person"):
        features_on(db, ["orders"], "SELECT person, amount FROM orders")


def _reference(features: np.ndarray, scorer: Scorer) -> np.ndarray:
    """The score, written out as the docstring of :class:`Scorer` defines it."""
    total = np.full(features.shape[0], scorer.intercept)
    for j, (mean, scale, weight) in enumerate(
        zip(scorer.means, scorer.scales, scorer.weights, strict=True)
    ):
        total += (features[:, j] - mean) / scale * weight
    return total


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    features=arrays(
        np.float64, (40, 3), elements=st.integers(-5, 5).map(float)
    ),  # small integers: many ties
    weights=st.tuples(*[st.floats(-3, 3, allow_nan=False)] * 3),
    size=st.integers(1, 45),
)
def test_the_audience_is_the_best_scored_on_both_engines(
    spark: SparkSession, features: np.ndarray, weights: tuple[float, ...], size: int
) -> None:
    people = [f"p{i:03d}" for i in range(len(features))]
    scorer = Scorer((0.5, -1.0, 2.0), (1.5, 1.0, 0.25), weights, 0.1)
    on_duckdb = top_on(people, features, scorer, size)
    on_spark = top_on(people, features, scorer, size, spark=spark)
    assert on_spark == on_duckdb
    # The reference: best score first, ties by person (people are in order of their id here).
    ranked = np.argsort(-_reference(features, scorer), kind="stable")[:size]
    assert on_duckdb == [people[i] for i in ranked]


def test_a_lookalike_chooses_the_same_people_on_spark(spark: SparkSession) -> None:
    rng = np.random.default_rng(3)
    trait = rng.random(600) < 0.3
    features = rng.normal(size=(600, 4))
    features[:, 0] += 1.5 * trait
    people = [f"p{i:04d}" for i in range(600)]
    seed = {people[i] for i in np.flatnonzero(trait)[:60]}
    on_duckdb = build(people, features, seed, 80, random_state=2)
    on_spark = build(people, features, seed, 80, random_state=2, spark=spark)
    assert on_spark == on_duckdb
    assert len(on_duckdb.members) == 80
    assert not set(on_duckdb.members) & seed
