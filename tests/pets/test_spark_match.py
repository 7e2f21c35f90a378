"""Matching in batches as Spark tasks gives what the in-process protocol gives."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from accord.errors import InvalidInput
from accord.pets.psi import Kind, identifiers, intersect
from accord.pets.spark_match import batch_of, spark_intersect

pytestmark = pytest.mark.integration


def addresses(names: Iterable[int]) -> list[bytes]:
    return identifiers([f"person{i}@example.org" for i in names], Kind.EMAIL)


def test_a_match_on_spark_finds_what_the_protocol_finds(spark: SparkSession) -> None:
    ours, theirs = addresses(range(300)), addresses(range(200, 450))
    in_process = intersect(ours, theirs)
    on_spark = spark_intersect(spark, ours, theirs, partitions=4)
    # The overlap, by construction: people 200 to 299.
    assert on_spark.matched == frozenset(addresses(range(200, 300)))
    assert on_spark.matched == in_process.matched
    assert (on_spark.size, on_spark.ours, on_spark.theirs) == (100, 300, 250)
    assert on_spark.mode is in_process.mode
    # Every batch exchanged only blinded points: 32 bytes a value, as the protocol does.
    assert on_spark.exchanged >= 32 * (2 * 300 + 250)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ours=st.sets(st.integers(0, 60), max_size=30),
    theirs=st.sets(st.integers(0, 60), max_size=30),
    partitions=st.integers(1, 5),
)
def test_any_sets_in_any_number_of_batches_match_as_in_process(
    spark: SparkSession, ours: set[int], theirs: set[int], partitions: int
) -> None:
    mine, yours = addresses(sorted(ours)), addresses(sorted(theirs))
    on_spark = spark_intersect(spark, mine, yours, partitions=partitions)
    assert on_spark.matched == frozenset(addresses(sorted(ours & theirs)))
    assert on_spark.size == len(ours & theirs)


def test_batches_are_chosen_by_a_keyed_hash() -> None:
    key, item = b"k" * 32, b"email:a@example.org"
    digest = hmac.new(key, item, hashlib.sha256).digest()  # RFC 2104
    assert batch_of(key, item, 7) == int.from_bytes(digest[:8], "big") % 7
    assert batch_of(b"j" * 32, item, 1_000_003) != batch_of(key, item, 1_000_003)


def test_a_match_needs_a_batch(spark: SparkSession) -> None:
    with pytest.raises(InvalidInput, match="at least one batch"):
        spark_intersect(spark, [], [], partitions=0)
