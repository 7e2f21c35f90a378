"""The suppression list on each backend: the ledger's question (which of these people were
erased?) answered alike whichever side is smaller, and loads that leave erased people out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.orm import sessionmaker

from accord.consent import Person
from accord.store import tables as t
from accord.store.erased import suppressed_refs
from accord.store.repositories import PeopleRepository

pytestmark = pytest.mark.integration

AT = datetime(2026, 12, 1, tzinfo=UTC)
ERASED = [("chirp", "c1"), ("chirp", "c/2"), ("reelix", "c1"), ("reelix", "m9")]


def _erase(engine: Engine, pairs: list[tuple[str, str]]) -> None:
    with engine.begin() as conn:
        conn.execute(delete(t.erased_people))
        if pairs:
            conn.execute(
                insert(t.erased_people),
                [{"party": p, "person_id": i} for p, i in pairs],
            )


@pytest.mark.parametrize(
    "refs",
    [
        ["chirp/c1"],  # fewer refs than listed people: joined in the database
        ["chirp/c1", "chirp/c1x", "other/c1"],  # a prefix, another party
        ["chirp/c/2", "reelix/c1", "reelix/m9", "chirp/c3", "reelix/m1"],  # more: the list read
        ["chirp/c/2"],  # an id holding the separator
        [],
    ],
)
def test_which_refs_were_erased(store: tuple[Engine, sessionmaker[Any]], refs: list[str]) -> None:
    engine, _ = store
    _erase(engine, ERASED)
    expected = {r for r in refs if tuple(r.split("/", 1)) in set(ERASED)}
    with engine.connect() as conn:
        assert suppressed_refs(conn, refs) == expected


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    erased=st.sets(st.sampled_from(["c1", "c2", "c3", "m1", "m2"]), max_size=5),
    refs=st.lists(st.sampled_from(["chirp/c1", "chirp/c2", "chirp/c3", "reelix/m1"]), max_size=6),
)
def test_suppressed_refs_agree_with_the_list(
    store: tuple[Engine, sessionmaker[Any]], erased: set[str], refs: list[str]
) -> None:
    engine, _ = store
    _erase(engine, [("chirp", p) for p in sorted(erased)])
    with engine.connect() as conn:
        found = suppressed_refs(conn, refs)
    assert found == {r for r in refs if r.split("/", 1) in [["chirp", p] for p in erased]}


def test_a_load_leaves_erased_people_out(store: tuple[Engine, sessionmaker[Any]]) -> None:
    engine, sessions = store
    _erase(engine, [("chirp", "c1")])
    with sessions() as s, s.begin():
        loaded = PeopleRepository(s).upsert_many(
            [
                Person("c1", "chirp", "US-CA"),
                Person("c2", "chirp", "DE"),
                Person("c1", "reelix", "FR"),
            ]
        )
    assert loaded == 2
    with engine.connect() as conn:
        people = set(conn.execute(select(t.people.c.party, t.people.c.person_id)))
    assert people == {("chirp", "c2"), ("reelix", "c1")}
