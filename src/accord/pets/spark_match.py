"""Private matching as Apache Spark tasks, batched by a hash of the doubly blinded values.

The protocol is :mod:`accord.pets.psi.ecdh`'s (Diffie–Hellman matching on Curve25519, ``H`` the
hash onto the curve, ``a`` the client's key and ``b`` the server's, each drawn afresh for the
match); each step over a side's identifiers is a Spark stage, its tasks each a slice of them::

    client (ours, key a)                              server (theirs, key b)
    1. H(x)^a for each x                  tasks  ──▶
    2.                                           ◀──  H(x)^ab, each in its place           tasks
    3.                                           ◀──  H(y)^b for each y                     tasks
    4. (H(y)^b)^a = H(y)^ab               tasks
    5. both sides' doubly blinded values in batches by SHA-256 of the value
       (:func:`batch_of`); each batch intersected by one task       shuffle, tasks

Equal identifiers have equal doubly blinded values (``H(x)^ab = H(y)^ab ⇔ x = y``, since
scalar multiplication commutes), so a match is always within one batch, and the batches' answers
joined are the in-process protocol's: the same identifiers matched, the same count. No key is
shared for the batching, and it is computed on plain identifiers nowhere: the batch of a value is
a function of the value, which the client holds in the in-process protocol too (it compares
exactly these values), and a value is unknown before both keys have been applied, so nobody can
tell in advance, or from the identifier, which batch it goes to. The server's steps see only
values blinded by the client's key: step 2 maps the values alone, the client keeping each one's
place.

In a match between two organisations each side runs its steps on its own Spark, and only the
values drawn crossing above pass between them (32 bytes each, counted in the result as the
protocol's payload, without the frames' headers). :func:`spark_intersect` runs both sides in one
Spark application, as :func:`accord.pets.psi.intersect` runs both in one process; the client's
side is the caller's ``ours``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING, TypeVar

from accord.errors import InvalidInput
from accord.pets.engines import spark_errors
from accord.pets.psi import Mode, Result, curve

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_T = TypeVar("_T")

STEP = 2_048
"""Identifiers a task hashes or blinds at a time (one field inversion for each such slice)."""


def _slices(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    it = iter(items)
    while part := list(islice(it, size)):
        yield part


def batch_of(value: bytes, batches: int) -> int:
    """The batch of doubly blinded ``value``: SHA-256 of it, first 8 bytes big-endian, modulo
    ``batches``."""
    return int.from_bytes(hashlib.sha256(value).digest()[:8], "big") % batches


def blind(key: bytes, items: Iterable[bytes]) -> Iterator[bytes]:
    """``H(item)^key`` for each encoded identifier, in order (steps 1 and 3)."""
    for part in _slices(items, STEP):
        yield from curve.split(curve.blind_chunk(key, curve.hash_chunk(part)))


def reblind(key: bytes, values: Iterable[bytes]) -> Iterator[bytes]:
    """``value^key`` for each blinded value, in order (steps 2 and 4)."""
    for part in _slices(values, STEP):
        yield from curve.split(curve.blind_chunk(key, b"".join(part)))


def _blind_ours(key: bytes, items: Iterable[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """The client's step 1: each identifier beside its blinded value (its place)."""
    for part in _slices(items, STEP):
        yield from zip(part, blind(key, part), strict=True)


def _reblind_in_place(
    key: bytes, pairs: Iterable[tuple[bytes, bytes]]
) -> Iterator[tuple[bytes, bytes]]:
    """The server's step 2, on the values alone: each value blinded again, in its place.
    Keyed by the value for step 5, the identifier beside it as the client's own."""
    for part in _slices(pairs, STEP):
        items = [item for item, _ in part]
        yield from zip(reblind(key, (value for _, value in part)), items, strict=True)


def _intersect_batch(rows: Iterable[tuple[bytes, bytes | None]]) -> Iterator[bytes]:
    """Step 5 for one batch, as a task: the client's identifiers whose value the server's
    side has (rows are ``(value, identifier)`` of the client's, ``(value, None)`` of theirs)."""
    ours: list[tuple[bytes, bytes]] = []
    theirs: set[bytes] = set()
    for value, item in rows:
        if item is None:
            theirs.add(value)
        else:
            ours.append((value, item))
    for value, item in ours:
        if value in theirs:
            yield item


def spark_intersect(
    spark: SparkSession,
    ours: Sequence[bytes],
    theirs: Sequence[bytes],
    *,
    partitions: int = 8,
) -> Result:
    """Which of ``ours`` (encoded identifiers) are in ``theirs``, computed as Spark tasks in
    ``partitions`` slices and batches; the same answer as :func:`accord.pets.psi.intersect`."""
    if partitions < 1:
        raise InvalidInput(f"a match runs in at least one batch, not {partitions}")
    a, b = curve.new_key(), curve.new_key()
    mine = list(dict.fromkeys(ours))
    yours = list(dict.fromkeys(theirs))  # the server feeds each identifier in once
    context = spark.sparkContext
    with spark_errors("matching on Spark"):
        doubled_ours = (
            context.parallelize(mine, partitions)
            .mapPartitions(partial(_blind_ours, a))  # 1
            .mapPartitions(partial(_reblind_in_place, b))  # 2
        )
        doubled_theirs = (
            context.parallelize(yours, partitions)
            .mapPartitions(partial(blind, b))  # 3
            .mapPartitions(partial(reblind, a))  # 4
            .map(lambda value: (value, None))
        )
        matched = frozenset(
            doubled_ours.union(doubled_theirs)
            .partitionBy(partitions, partial(batch_of, batches=partitions))  # 5
            .mapPartitions(_intersect_batch)
            .collect()
        )
    return Result(
        Mode.INTERSECTION,
        len(matched),
        len(mine),
        len(yours),
        matched,
        sent=curve.POINT * len(mine),
        received=curve.POINT * (len(mine) + len(yours)),
    )


__all__ = ["STEP", "batch_of", "blind", "reblind", "spark_intersect"]
