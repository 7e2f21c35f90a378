"""A small party database (Reelix's own tables) and an Accord store, on each backend.

On SQLite the two are separate files, as they are in production. On PostgreSQL they share one
fresh database (the party's tables are named apart from the store's), which changes nothing for
the reads: the allowed people still cross as a temporary table. Both are built once per session
and emptied before each test, since building a PostgreSQL database and migrating it is most of a
test's time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
)
from sqlalchemy.orm import sessionmaker

from accord.sources import Source, parse
from accord.store import tables as t
from accord.store.engine import make_engine
from accord.store.migrate import open_store
from accord.store.repositories import Party, PartyRepository
from databases import fresh_postgres_database

DATASET = """\
dataset: reelix
party: reelix
description: Reelix's own database.
collections:
  - name: watch_events
    description: One row per viewing.
    person: member_id
    fields:
      - {name: event_id, category: system.operations}
      - {name: member_id, category: user.unique_id}
      - {name: title_id, category: user.behavior.media_consumption}
      - {name: device, category: user.device}
      - {name: watched_at, category: user.behavior.media_consumption}
  - name: messages
    group: {field: thread_id, members: thread_participants, member_group: thread_id,
            member_person: person_id}
    fields:
      - {name: message_id, category: system.operations}
      - {name: thread_id, category: system.operations}
      - {name: sender, category: user.unique_id}
      - {name: body, category: user.content.private}
      - {name: sent_via, category: system.operations}
  - name: ratings
    person: member_no
    fields:
      - {name: member_no, category: user.unique_id}
      - {name: stars, category: user.behavior.media_consumption}
  - name: titles
    description: The catalogue; about no person.
    fields:
      - {name: title_id, category: system.operations}
      - {name: genre, category: system.operations}
"""

metadata = MetaData()
watch_events = Table(
    "watch_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=False),
    Column("member_id", String, index=True),
    Column("title_id", String),
    Column("device", String),
    Column("watched_at", DateTime),
    Column("secret_note", String),  # in the table, not in the declaration
)
messages = Table(
    "messages",
    metadata,
    Column("message_id", Integer, primary_key=True, autoincrement=False),
    Column("thread_id", String, index=True),
    Column("sender", String),
    Column("body", String),
    Column("sent_via", String),
)
thread_participants = Table(
    "thread_participants",
    metadata,
    Column("thread_id", String, primary_key=True),
    Column("person_id", String, primary_key=True),
)
ratings = Table(  # integer ids at the party, text ids in the store
    "ratings",
    metadata,
    Column("member_no", Integer),
    Column("stars", Integer),
)

titles = Table(
    "titles",
    metadata,
    Column("title_id", String, primary_key=True),
    Column("genre", String),
)


@dataclass
class Databases:
    """Reelix's database and its source, and an Accord store with Chirp, Reelix and Other Co."""

    party: Engine
    source: Source
    store: Engine
    sessions: sessionmaker[Any]

    def clear(self) -> None:
        """Empty the party's tables and the store's people and consents (parties stay)."""
        with self.party.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
        with self.store.begin() as conn:
            for table in (
                t.consent_uses,
                t.consent_excluded_titles,
                t.consent_categories,
                t.consent_purposes,
                t.consents,
                t.opt_outs,
                t.people,
            ):
                conn.execute(table.delete())


@contextmanager
def databases(backend: str, folder: Path) -> Iterator[Databases]:
    """Both databases on ``backend``, built once and shared by the tests of a session."""
    with ExitStack() as stack:
        if backend == "sqlite":
            party_url = f"sqlite:///{folder / 'reelix.db'}"
            store_url = f"sqlite:///{folder / 'accord.db'}"
        else:
            party_url = store_url = stack.enter_context(fresh_postgres_database())
        party = make_engine(party_url)
        stack.callback(party.dispose)
        metadata.create_all(party)
        store, sessions = open_store(store_url)
        stack.callback(store.dispose)
        with sessions() as session:
            PartyRepository(session).add(Party("chirp", "Chirp"))
            PartyRepository(session).add(Party("reelix", "Reelix"))
            PartyRepository(session).add(Party("other", "Other Co"))
            session.commit()
        yield Databases(party, Source(party, parse(DATASET)), store, sessions)


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def shared_databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Databases]:
    with databases(request.param, tmp_path_factory.mktemp("sources")) as dbs:
        yield dbs


@pytest.fixture
def dbs(shared_databases: Databases) -> Databases:
    """The shared databases, emptied for this test, with a fresh source (no cached tables)."""
    shared_databases.clear()
    return replace(shared_databases, source=Source(shared_databases.party, parse(DATASET)))
