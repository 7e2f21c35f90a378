"""A release's commitment to the rows it released, which an auditor recomputes.

The ledger records people by pseudonym, not rows: a release about a person who was allowed could
still carry a row it should not have (a title the person excluded). So a release entry also holds
a commitment to its rows. An auditor reads the same rows from the party's own database, works out
which of them were allowed, and compares: equal means exactly the allowed rows crossed, no more
and no fewer.

The rows are first summed (:func:`rows_sum`): a multiset hash, the sum modulo 2**256 of each
row's SHA-256, so it does not depend on the order rows come back in and nobody need sort millions
of rows. A row is hashed as the canonical JSON array of its values, each value as JSON has it
(text, number, ``null``) or, for other types (dates, times), its ISO 8601 text.

Rows hold people's ids and what they did, often guessable: a plain hash of one friend's id would
name the friend to anyone who tries every id. So the leaf holds the sum sealed (:func:`seal`) with
a key only the people the release is about can give: HMAC-SHA256 under
``SHA-256(context || leaf index || their ledger keys, in order)``. The ledger seals it when it
writes the leaf, where it holds those keys; an auditor holding the store's keys recomputes it;
once any of those people is erased, nobody can, and the leaf stays unlinkable.

Summing costs about a microsecond a row, so releases of more than :data:`DIGEST_LIMIT` rows
record their row count only (``rows_digest`` is then ``null``), and are audited person by person
and by count. Each row is encoded by the standard library's C encoder itself (the one
:class:`json.JSONEncoder` runs for a one-shot encoding), made once rather than for every row, and
summed in one loop: the same bytes, without the encoder's Python wrapper around every row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, time
from json.encoder import encode_basestring
from typing import Any

DIGEST_LIMIT = 250_000
"""Releases of more rows than this record their count but no digest."""

_MODULUS = 1 << 256
_PREFIX = b"accord/ledger/rows/v1\n"
_SEAL_CONTEXT = b"accord/ledger/rows-seal/v1\n"


_ISO: dict[type, Callable[[Any], str]] = {
    datetime: datetime.isoformat,
    date: date.isoformat,
    time: time.isoformat,
}
"""The common kinds of value JSON has no type for, looked up by exact type (a row of millions
has one in every row)."""


def _text(value: Any) -> str:
    iso = _ISO.get(type(value))
    if iso is not None:
        return iso(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


_encode = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), default=_text, allow_nan=False
).encode


# The C encoder json.encoder imports (typeshed does not declare it).
_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_encode: Callable[[Any, int], Sequence[str]] | None = (
    None
    if _make_encoder is None
    # What JSONEncoder.iterencode builds for each one-shot encode with the options above (no
    # indent, so never the pure-Python encoder): no check for circular values, which a row's
    # flat values cannot be.
    else _make_encoder(None, _text, encode_basestring, None, ":", ",", False, False, False)
)


def _row_json(row: Sequence[Any]) -> str:
    """A row as the canonical JSON array of its values (what ``_encode(list(row))`` gives)."""
    if _c_encode is None:  # pragma: no cover - CPython always builds its C encoder
        return _encode(list(row))
    return "".join(_c_encode(row if type(row) is tuple or type(row) is list else list(row), 0))


def row_hash(row: Sequence[Any]) -> int:
    """One row's SHA-256, as an integer (the term the digest sums)."""
    data = _PREFIX + _row_json(row).encode("utf-8")
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


def combine(hashes: Iterable[int]) -> int:
    """The sum of rows with these :func:`row_hash` values."""
    return sum(hashes) % _MODULUS


def rows_sum(rows: Iterable[Sequence[Any]]) -> int:
    """The multiset sum of ``rows`` (see the module docstring): :func:`row_hash` of each, in one
    loop without a call per row."""
    if _c_encode is None:  # pragma: no cover - CPython always builds its C encoder
        return combine(map(row_hash, rows))
    encode, join, sha256, from_bytes = _c_encode, "".join, hashlib.sha256, int.from_bytes
    total = 0
    for row in rows:
        values = row if type(row) is tuple or type(row) is list else list(row)
        data = _PREFIX + join(encode(values, 0)).encode("utf-8")
        total += from_bytes(sha256(data).digest(), "big")
    return total % _MODULUS


def sum_if_small(rows: Sequence[Sequence[Any]]) -> int | None:
    """:func:`rows_sum` of ``rows``, or ``None`` when there are more than
    :data:`DIGEST_LIMIT`."""
    return rows_sum(rows) if len(rows) <= DIGEST_LIMIT else None


def seal(total: int, keys: Iterable[bytes], index: int) -> str:
    """The commitment written in leaf ``index``: ``total`` sealed under the ledger keys of the
    people the leaf is about (hex)."""
    key = hashlib.sha256(
        _SEAL_CONTEXT + str(index).encode("ascii") + b"\n" + b"".join(sorted(keys))
    ).digest()
    return hmac.digest(key, total.to_bytes(32, "big"), "sha256").hex()
