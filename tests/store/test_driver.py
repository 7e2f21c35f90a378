"""Queries run on the driver's cursor return what SQLAlchemy returns, parameters converted alike
(and, for a prepared query, its columns too)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, Select, bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from accord.errors import StoreError
from accord.store import tables as t
from accord.store.driver import Prepared, batches, driver_rows, prepare, prepared_rows

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
        for rows in batches(fetch):
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


def test_a_list_of_instants_is_bound_as_its_column_binds_them(
    store: tuple[Engine, sessionmaker[Any]],
) -> None:
    _, sessions = store
    with sessions() as session:
        _parties(session, 30)
        p = t.parties.c
        days = [AT - timedelta(days=n) for n in (3, 7, 11)]
        query = select(p.id).where(p.created_at.in_(days)).order_by(p.id)
        expected = [tuple(row) for row in session.execute(query)]
        assert expected == [("p0003",), ("p0007",), ("p0011",)]
        assert _driver(session, query, batch=2) == expected


def test_a_failing_query_is_a_store_error(store: tuple[Engine, sessionmaker[Any]]) -> None:
    _, sessions = store
    with sessions() as session:
        broken = select(t.opt_outs.c.person).where(t.opt_outs.c.person == "m1")
        session.connection().exec_driver_sql("DROP TABLE opt_outs")
        with pytest.raises(StoreError, match="reading people"):
            _driver(session, broken, batch=10)


def _prepared(session: Session, prepared: Prepared, values: dict[str, Any]) -> list[Any]:
    got: list[tuple[Any, ...]] = []
    with prepared_rows(session.connection().connection, prepared, values, 7, "reading") as fetch:
        for rows in batches(fetch):
            got.extend(tuple(row) for row in rows)
    return got


def test_a_prepared_query_runs_with_new_values_and_converts_its_columns(
    store: tuple[Engine, sessionmaker[Any]],
) -> None:
    _, sessions = store
    with sessions() as session:
        _parties(session, 40)
        p = t.parties.c
        query = (
            select(p.id, p.created_at)
            .where(
                p.id.in_(bindparam("ids", [None] * 4, expanding=True)),
                p.created_at > bindparam("after", None, type_=p.created_at.type),
                p.name != "Party 5",  # a constant of the query's own
            )
            .order_by(p.id)
        )
        prepared = prepare(session.connection().dialect, query, ["ids", "after"])
        for ids, after in [
            # p0005 is left out by the constant, p0030 by its age
            (["p0001", "p0005", "p0007", "p0030"], AT - timedelta(days=20)),
            (["p0002", "p0003", "p0004", "p0005"], AT - timedelta(days=3, hours=12)),
        ]:
            values = {"ids": ids, "after": after}
            expected = [tuple(row) for row in session.execute(query, values)]
            assert len(expected) == 2
            got = _prepared(session, prepared, values)
            assert got == expected
            assert all(isinstance(instant, datetime) for _, instant in got)


def test_a_prepared_list_takes_as_many_values_as_it_was_prepared_for(
    store: tuple[Engine, sessionmaker[Any]],
) -> None:
    _, sessions = store
    with sessions() as session:
        p = t.parties.c
        query = select(p.id).where(p.id.in_(bindparam("ids", [None] * 2, expanding=True)))
        prepared = prepare(session.connection().dialect, query, ["ids"])
        with pytest.raises(StoreError, match="prepared for 2 values, not 3"):
            _prepared(session, prepared, {"ids": ["a", "b", "c"]})
