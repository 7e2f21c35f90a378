"""A migrated store on each backend, and sessions on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from accord.store.migrate import open_store
from accord.store.repositories import Party, PartyRepository

PARTIES = (Party("chirp", "Chirp"), Party("reelix", "Reelix"), Party("other", "Other Co"))


@pytest.fixture
def store(db_url: str) -> Iterator[tuple[Engine, sessionmaker[Any]]]:
    """A store migrated to the newest schema, with the parties Chirp, Reelix and Other Co."""
    engine, sessions = open_store(db_url)
    try:
        with sessions() as session:
            for party in PARTIES:
                PartyRepository(session).add(party)
            session.commit()
        yield engine, sessions
    finally:
        engine.dispose()


@pytest.fixture
def session(store: tuple[Engine, sessionmaker[Any]]) -> Iterator[Session]:
    """A session on the store; tests commit when they mean to."""
    _, sessions = store
    with sessions() as s:
        yield s
