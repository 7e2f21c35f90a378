"""Queries run on the driver's cursor return what SQLAlchemy returns, parameters converted alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, Select, select
from sqlalchemy.orm import Session, sessionmaker

from accord.errors import StoreError
from accord.store import tables as t
from accord.store.driver import driver_rows

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 29, 12, tzinfo=UTC)


def _parties(session: Session, count: int) -> None:
    session.add_all(
        t.PartyRow(id=f"p{n:04d}", name=f"Party {n}", created_at=AT - timedelta(days=n))
        for n in range(count)
    )
    session.flush()


def _driver(session: Session, query: Select[Any], batch: int) -> list[tuple[Any, ...]]:
    got: list[tuple[Any, ...]] = []
    with driver_rows(session.connection(), query, batch, "reading people") as fetch:
        while rows := fetch():
            assert len(rows) <= batch
            got.extend(tuple(row) for row in rows)
    return got


def test_instants_and_in_lists_are_bound_as_sqlalchemy_binds_them(
    store: tuple[Engine, sessionmaker[Any]],
) -> None:
    _, sessions = store
    with sessions() as session:
        _parties(session, 250)
        p = t.parties.c
        query = (
            select(p.id, p.name)
            .where(
                p.id.in_([f"p{n:04d}" for n in range(0, 250, 2)]),
                p.created_at > AT - timedelta(days=180, hours=1),
            )
            .order_by(p.id)
        )
        expected = [tuple(row) for row in session.execute(query)]
        assert len(expected) == 91  # even days 0..180: the instant decides who is in
        assert _driver(session, query, batch=7) == expected


def test_a_failing_query_is_a_store_error(store: tuple[Engine, sessionmaker[Any]]) -> None:
    _, sessions = store
    with sessions() as session:
        broken = select(t.opt_outs.c.person).where(t.opt_outs.c.person == "m1")
        session.connection().exec_driver_sql("DROP TABLE opt_outs")
        with pytest.raises(StoreError, match="reading people"):
            _driver(session, broken, batch=10)
