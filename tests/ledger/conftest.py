"""Fixtures for the ledger: a SQLite file ledger and a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from accord.ledger.checkpoint import Signer
from accord.ledger.log import Ledger
from accord.ledger.tables import create_ledger_tables
from accord.store.engine import make_engine
from databases import fresh_postgres_database


@pytest.fixture
def ledger_pg_url() -> Iterator[str]:
    """A new, randomly named PostgreSQL database, dropped (forcibly) after the test."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def ledger_sqlite_url(tmp_path: Path) -> str:
    """A SQLite file in the test's folder."""
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def engine(ledger_sqlite_url: str) -> Iterator[Engine]:
    """An engine on a SQLite file holding the ledger tables."""
    built = make_engine(ledger_sqlite_url)
    create_ledger_tables(built)
    yield built
    built.dispose()


@pytest.fixture
def signer() -> Signer:
    """A fresh log signing key."""
    return Signer.generate("test.accord.local/ledger")


@pytest.fixture
def ledger(engine: Engine, signer: Signer) -> Ledger:
    """A ledger on a SQLite file."""
    return Ledger(engine, signer)
