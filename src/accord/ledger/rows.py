"""A release's commitment to the rows it released, which an auditor recomputes.

The ledger records people by pseudonym, not rows: a release about a person who was allowed could
still carry a row it should not have (a title the person excluded). So a release entry also holds
:func:`rows_digest` of its rows. An auditor reads the same rows from the party's own database,
works out which of them were allowed, and compares digests: equal means exactly the allowed rows
crossed, no more and no fewer.

The digest is a multiset hash (the sum, modulo 2**256, of each row's SHA-256), so it does not
depend on the order rows come back in, and the auditor need not sort millions of rows. A row is
hashed as the canonical JSON array of its values, each value as JSON has it (text, number,
``null``) or, for other types (dates, times, decimals), its ISO 8601 or decimal text.

Computing it costs about a microsecond a row, so releases of more than :data:`DIGEST_LIMIT` rows
record their row count only (``rows_digest`` is then ``null``), and are audited person by person
and by count.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from typing import Any

DIGEST_LIMIT = 250_000
"""Releases of more rows than this record their count but no digest."""

_MODULUS = 1 << 256
_PREFIX = b"accord/ledger/rows/v1\n"


def _text(value: Any) -> str:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


_encode = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), default=_text, allow_nan=False
).encode


def row_hash(row: Sequence[Any]) -> int:
    """One row's SHA-256, as an integer (the term the digest sums)."""
    data = _PREFIX + _encode(list(row)).encode("utf-8")
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


def combine(hashes: Iterable[int]) -> str:
    """The digest of rows with these :func:`row_hash` values, as 64 hex digits."""
    return f"{sum(hashes) % _MODULUS:064x}"


def rows_digest(rows: Iterable[Sequence[Any]]) -> str:
    """The multiset digest of ``rows`` (see the module docstring)."""
    return combine(map(row_hash, rows))


def digest_if_small(rows: Sequence[Sequence[Any]]) -> str | None:
    """:func:`rows_digest` of ``rows``, or ``None`` when there are more than
    :data:`DIGEST_LIMIT`."""
    return rows_digest(rows) if len(rows) <= DIGEST_LIMIT else None
