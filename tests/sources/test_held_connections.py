"""A thread's own SQLite connection for reads (accord.store.driver.held): what it must not keep.

Reads that took a pooled connection each take the thread's own instead. It must see every
commit made before each read (by another engine, as another process has), leave no transaction
open between reads, be its thread's alone, and be dropped when its engine is disposed of, when a
read on it fails, or when the process forks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from accord.store import driver
from accord.store.driver import held, pooled, pooled_one, reads_shared
from accord.store.engine import make_engine

pytestmark = pytest.mark.integration

COUNT = "SELECT count(*) FROM notes"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = make_engine(f"sqlite:///{tmp_path / 'notes.db'}")
    with e.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    yield e
    e.dispose()


def add_note(engine: Engine, body: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO notes (body) VALUES (:b)"), {"b": body})


def test_each_read_sees_what_another_engine_committed_before_it(
    engine: Engine, tmp_path: Path
) -> None:
    other = make_engine(f"sqlite:///{tmp_path / 'notes.db'}")  # as another process would
    try:
        assert pooled_one(engine, COUNT) == (0,)
        add_note(other, "first")
        assert pooled_one(engine, COUNT) == (1,)
        with reads_shared(engine):
            assert pooled_one(engine, COUNT) == (1,)
            add_note(other, "second")
            assert pooled_one(engine, COUNT) == (2,)
    finally:
        other.dispose()


def test_the_held_connection_is_reused_and_left_outside_a_transaction(engine: Engine) -> None:
    with pooled(engine) as first:
        first.cursor().execute("INSERT INTO notes (body) VALUES ('never committed')")
        assert first.in_transaction
    assert held(engine) is first
    assert not first.in_transaction  # what the block began was rolled back as it ended
    assert pooled_one(engine, COUNT) == (0,)
    # A writer can take the database at once: no reader holds a transaction open.
    with engine.connect() as conn:
        conn.execute(text("BEGIN IMMEDIATE"))
        conn.execute(text("INSERT INTO notes (body) VALUES ('x')"))
        conn.commit()
    assert pooled_one(engine, COUNT) == (1,)


def test_each_thread_has_its_own(engine: Engine) -> None:
    mine = held(engine)
    theirs: list[object] = []
    reader = threading.Thread(target=lambda: theirs.append(held(engine)))
    reader.start()
    reader.join()
    assert mine is not None
    assert theirs[0] is not None
    assert theirs[0] is not mine


def test_a_disposed_engine_gets_a_new_one_and_the_old_is_closed(engine: Engine) -> None:
    before = held(engine)
    assert before is not None
    engine.dispose()
    after = held(engine)
    assert after is not None
    assert after is not before
    with pytest.raises(Exception, match="closed"):
        before.execute("SELECT 1")


def test_a_failed_read_drops_the_connection(engine: Engine) -> None:
    before = held(engine)
    with pytest.raises(Exception, match="no such table"), pooled(engine) as connection:
        connection.cursor().execute("SELECT * FROM missing")
    assert held(engine) is not before


def test_a_forked_process_leaves_the_parents_connection_alone(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    parents = held(engine)
    assert parents is not None
    monkeypatch.setattr(driver.os, "getpid", lambda: -1)  # as a child of a fork sees itself
    child = held(engine)
    assert child is not parents
    assert parents in driver._INHERITED  # kept, not closed (nor used)
    assert parents.execute("SELECT 1").fetchone() == (1,)


def test_a_memory_database_keeps_its_one_connection() -> None:
    e = make_engine("sqlite://")
    try:
        assert held(e) is None
    finally:
        e.dispose()
