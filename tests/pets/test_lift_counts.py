"""A lift study's counts are the same in this process, on DuckDB and on Spark."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from accord.pets.lift import Counts, Group, count, groups_of
from accord.pets.lift_counts import count_on

pytestmark = pytest.mark.integration


def test_a_small_study_is_counted_by_hand_on_both_engines(spark: SparkSession) -> None:
    groups = {"a": Group.EXPOSED, "b": Group.EXPOSED, "c": Group.EXPOSED, "d": Group.HOLDOUT}
    # b converted twice; z converted but is not in the study.
    converted = ["b", "b", "d", "z"]
    expected = {Group.EXPOSED: Counts(3, 1), Group.HOLDOUT: Counts(1, 1)}
    assert count_on(groups, converted) == expected
    assert count_on(groups, converted, spark=spark) == expected


def test_an_empty_group_counts_nobody(spark: SparkSession) -> None:
    groups = {"a": Group.EXPOSED}
    expected = {Group.EXPOSED: Counts(1, 0), Group.HOLDOUT: Counts(0, 0)}
    assert count_on(groups, [], spark=spark) == expected


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    people=st.sets(st.integers(0, 500), min_size=1, max_size=200),
    converted=st.sets(st.integers(0, 700), max_size=200),
)
def test_generated_studies_count_as_in_process(
    spark: SparkSession, people: set[int], converted: set[int]
) -> None:
    groups = groups_of([f"p{i}" for i in people], "study", 0.3)
    conversions = [f"p{i}" for i in converted]
    expected = count(groups, set(conversions))
    assert count_on(groups, conversions) == expected
    assert count_on(groups, conversions, spark=spark) == expected
