"""A release's row digest is the same bytes whichever way the rows are encoded: the sum of each
row's SHA-256 over ``accord/ledger/rows/v1\\n`` and the canonical JSON array of its values
(compact, not ASCII-escaped; dates and times as ISO 8601, bytes as hex, anything else JSON has no
type for as its text), modulo 2**256. An auditor recomputes it with the same definition, so any
change of encoding that changed one byte would make every release's commitment fail to verify.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.ledger.rows import DIGEST_LIMIT, row_hash, rows_sum, sum_if_small

pytestmark = pytest.mark.unit


def _as_text(value: Any) -> str:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def reference_hash(row: Sequence[Any]) -> int:
    """One row's term, written from the definition with the standard library's ``json.dumps``."""
    text = json.dumps(
        list(row), ensure_ascii=False, separators=(",", ":"), default=_as_text, allow_nan=False
    )
    digest = hashlib.sha256(b"accord/ledger/rows/v1\n" + text.encode("utf-8")).digest()
    return int.from_bytes(digest, "big")


def reference_sum(rows: Sequence[Sequence[Any]]) -> int:
    return sum(reference_hash(row) for row in rows) % 2**256


zones = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
# Every kind of value a party's row carries: what SQLite and PostgreSQL drivers return for text
# (any Unicode, quotes, control characters, emoji), integers (beyond 64 bits too), finite floats,
# booleans, null, dates, times and instants with and without a zone, bytes, and numerics.
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.text(alphabet=st.sampled_from('"\\/\n\t\x00\x1f\u2028é€😀 ab'), max_size=8),
    st.datetimes(timezones=zones),
    st.dates(),
    st.times(timezones=zones),
    st.binary(max_size=16),
    st.decimals(allow_nan=False, allow_infinity=False),
)
row_lists = st.lists(
    st.one_of(st.tuples(values, values), st.lists(values, max_size=4).map(tuple)), max_size=25
)


@given(row_lists)
def test_the_digest_is_the_defined_sum_of_the_defined_hashes(rows: list[tuple[Any, ...]]) -> None:
    assert rows_sum(rows) == reference_sum(rows)
    assert [row_hash(row) for row in rows] == [reference_hash(row) for row in rows]


@given(row_lists)
def test_rows_as_lists_or_other_sequences_hash_as_their_values(rows: list[tuple[Any, ...]]) -> None:
    as_lists = [list(row) for row in rows]

    class Row(tuple):  # a driver's row type: a tuple subclass
        __slots__ = ()

    as_rows = [Row(row) for row in rows]
    expected = reference_sum(rows)
    assert rows_sum(as_lists) == expected
    assert rows_sum(as_rows) == expected
    assert rows_sum(iter(rows)) == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_value_json_cannot_hold_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="JSON"):
        rows_sum([("t1", bad)])
    with pytest.raises(ValueError, match="JSON"):
        row_hash(("t1", bad))


def test_a_known_row_has_its_known_hash() -> None:
    row = ("tt0111161", datetime(2026, 11, 29, 12, 0, 1, tzinfo=UTC), None, 3, "é")
    text = '["tt0111161","2026-11-29T12:00:01+00:00",null,3,"é"]'
    digest = hashlib.sha256(b"accord/ledger/rows/v1\n" + text.encode("utf-8")).digest()
    assert row_hash(row) == int.from_bytes(digest, "big")
    assert rows_sum([row, row]) == (2 * int.from_bytes(digest, "big")) % 2**256
    assert sum_if_small([row]) == row_hash(row)


def test_more_rows_than_the_limit_are_counted_not_summed() -> None:
    rows = [("t", i) for i in range(DIGEST_LIMIT + 1)]
    assert sum_if_small(rows) is None
    assert sum_if_small(rows[:-1]) == rows_sum(rows[:-1])
