"""Instants stored as UTC: exact round trips, and SQL comparisons that agree with Python's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Engine, Integer, MetaData, Table, insert, select

from accord.store.engine import make_engine
from accord.store.types import UTCDateTime, from_text, to_text

instants = st.datetimes(
    min_value=datetime(1, 1, 1, 0, 0),  # hypothesis adds the zone
    max_value=datetime(9999, 12, 30, 0, 0),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)


@pytest.mark.unit
@given(instants, instants)
def test_the_sqlite_text_orders_as_the_instants_do(a: datetime, b: datetime) -> None:
    assert from_text(to_text(a)) == a
    assert len(to_text(a)) == len(to_text(b)) == 27
    assert (to_text(a) < to_text(b)) == (a < b)
    assert (to_text(a) == to_text(b)) == (a == b)


@pytest.fixture
def moments(db_url: str) -> Iterator[tuple[Engine, Table]]:
    table = Table(
        "moments", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime())
    )
    engine = make_engine(db_url)
    try:
        table.create(engine)
        yield engine, table
    finally:
        engine.dispose()


@pytest.mark.integration
def test_round_trip_and_comparison_in_sql(moments: tuple[Engine, Table]) -> None:
    engine, table = moments
    base = datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)
    values = [
        base,
        base + timedelta(microseconds=1),
        base - timedelta(microseconds=1),
        base.astimezone(timezone(timedelta(hours=-8))),  # the same instant as base
        datetime(1999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-2))),
        datetime(2024, 3, 1, 0, 0),  # naive: taken as UTC
    ]
    with engine.begin() as conn:
        conn.execute(insert(table), [{"id": i, "at": v} for i, v in enumerate(values)])
    with engine.connect() as conn:
        stored = dict(conn.execute(select(table.c.id, table.c.at)).all())
        later = set(conn.execute(select(table.c.id).where(table.c.at > base)).scalars())
        same = set(conn.execute(select(table.c.id).where(table.c.at == base)).scalars())
    assert all(v.tzinfo is UTC for v in stored.values())
    assert stored[0] == base
    assert stored[3] == base
    assert stored[5] == datetime(2024, 3, 1, tzinfo=UTC)
    assert later == {1, 5}
    assert same == {0, 3}
