"""Matching as Spark tasks, batched by a hash of the doubly blinded values, gives what the
in-process protocol gives."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from accord.errors import InvalidInput
from accord.pets.psi import Kind, Mode, curve, identifiers, intersect
from accord.pets.spark_match import batch_of, blind, reblind, spark_intersect

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
    assert on_spark.mode is in_process.mode is Mode.INTERSECTION
    # Only blinded points crossed, 32 bytes each: H(x)^a out, H(x)^ab and H(y)^b back.
    assert (on_spark.sent, on_spark.received) == (32 * 300, 32 * (300 + 250))


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ours=st.lists(st.integers(0, 60), max_size=30),
    theirs=st.lists(st.integers(0, 60), max_size=30),
    partitions=st.integers(1, 5),
)
def test_any_sets_in_any_number_of_batches_match_as_in_process(
    spark: SparkSession, ours: list[int], theirs: list[int], partitions: int
) -> None:
    # Lists with repeats: each side feeds an identifier in once, as the protocol does.
    mine, yours = addresses(ours), addresses(theirs)
    on_spark = spark_intersect(spark, mine, yours, partitions=partitions)
    assert on_spark.matched == frozenset(addresses(sorted(set(ours) & set(theirs))))
    assert on_spark.size == len(set(ours) & set(theirs))
    in_process = intersect(mine, yours)
    assert (on_spark.matched, on_spark.ours, on_spark.theirs) == (
        in_process.matched,
        in_process.ours,
        in_process.theirs,
    )


def test_equal_identifiers_meet_in_one_batch_without_a_shared_key() -> None:
    a, b = curve.new_key(), curve.new_key()
    items = addresses(range(3_000))  # more than one slice of work
    ours = list(reblind(b, blind(a, items)))  # client first, then server
    theirs = list(reblind(a, blind(b, items)))  # server first, then client
    assert ours == theirs  # H(x)^ab = H(x)^ba
    assert len(set(ours)) == len(items)
    assert [batch_of(v, 7) for v in ours] == [batch_of(v, 7) for v in theirs]
    # Different identifiers have different values, and a value is not the identifier's hash.
    assert not set(ours) & set(curve.split(curve.hash_chunk(items)))


def test_a_batch_is_sha256_of_the_value_and_unknown_before_the_keys() -> None:
    value = bytes(range(32))
    digest = hashlib.sha256(value).digest()  # FIPS 180-4
    assert batch_of(value, 7) == int.from_bytes(digest[:8], "big") % 7
    # The same identifiers under another match's keys fall in other batches: the batch of an
    # identifier cannot be told from it in advance.
    items = addresses(range(64))
    first = [batch_of(v, 8) for v in reblind(curve.new_key(), blind(curve.new_key(), items))]
    second = [batch_of(v, 8) for v in reblind(curve.new_key(), blind(curve.new_key(), items))]
    assert first != second


def test_a_match_needs_a_batch(spark: SparkSession) -> None:
    with pytest.raises(InvalidInput, match="at least one batch"):
        spark_intersect(spark, [], [], partitions=0)
