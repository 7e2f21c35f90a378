"""Private matching in batches run as Apache Spark tasks, with the in-process protocol's answer.

A match of millions a side is cut into ``partitions`` batches that Spark runs side by side, on
one machine's cores (``local[N]``) or a cluster's executors. Both sides' identifiers are put in a
batch by a keyed hash: HMAC-SHA-256 (RFC 2104) under a key drawn afresh for the match, of the
encoded identifier, modulo the number of batches, so that an identifier the two sides share
lands in the same batch on both. Each batch is then matched by the protocol of
:mod:`accord.pets.psi` (its own keys, the same messages as over HTTP), so every value that
crosses between the sides is still blinded by a key its receiver lacks; the batches' answers are
joined. As identifiers go to one batch each and a match is in one batch, the result is the
in-process protocol's: the same identifiers matched, the same count.

What batching shows beyond one match: each side sees how many of the other's identifiers fell in
each batch (a handful of counts for a few batches, nothing about which identifiers); the keyed
hash, unknown outside the match, keeps the batch of an identifier from being known in advance.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from accord.errors import InvalidInput
from accord.pets.engines import spark_errors
from accord.pets.psi import Result, intersect

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

OURS, THEIRS = 0, 1


def batch_of(key: bytes, item: bytes, batches: int) -> int:
    """The batch of encoded identifier ``item``: HMAC-SHA-256 under ``key``, modulo ``batches``."""
    digest = hmac.new(key, item, hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") % batches


def spark_intersect(
    spark: SparkSession,
    ours: Sequence[bytes],
    theirs: Sequence[bytes],
    *,
    partitions: int = 8,
) -> Result:
    """Which of ``ours`` (encoded identifiers) are in ``theirs``, matched in ``partitions``
    batches run as Spark tasks; the same answer as :func:`accord.pets.psi.intersect`."""
    if partitions < 1:
        raise InvalidInput(f"a match runs in at least one batch, not {partitions}")
    key = secrets.token_bytes(32)
    mine = list(dict.fromkeys(ours))
    context = spark.sparkContext
    with spark_errors("matching on Spark"):
        tagged = context.parallelize(
            [(OURS, item) for item in mine] + [(THEIRS, item) for item in theirs],
            partitions,
        )
        keyed = tagged.map(lambda pair: (batch_of(key, pair[1], partitions), pair))
        batched = keyed.partitionBy(partitions, lambda batch: batch)
        answers = batched.mapPartitions(_match_batch).collect()
    matched = frozenset(item for answer in answers for item in answer.matched)
    first = answers[0]
    return Result(
        first.mode,
        len(matched),
        len(mine),
        sum(a.theirs for a in answers),
        matched,
        sum(a.sent for a in answers),
        sum(a.received for a in answers),
    )


def _match_batch(rows: Iterable[tuple[int, tuple[int, bytes]]]) -> Iterator[Result]:
    """One batch, as a Spark task: the protocol between its two sides, in the task."""
    ours: list[bytes] = []
    theirs: list[bytes] = []
    for _batch, (side, item) in rows:
        (ours if side == OURS else theirs).append(item)
    yield intersect(ours, theirs)


__all__ = ["batch_of", "spark_intersect"]
