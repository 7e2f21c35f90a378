"""Fixtures for the ledger: a SQLite file ledger and a fresh PostgreSQL database."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from accord.ledger.checkpoint import Signer
from accord.ledger.log import Ledger
from accord.ledger.tables import create_ledger_tables
from accord.store.engine import make_engine

LEDGER_POSTGRES_ADMIN_URL = os.environ.get(
    "ACCORD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def ledger_pg_url() -> Iterator[str]:
    """A new, randomly named PostgreSQL database, dropped (forcibly) after the test."""
    name = f"accord_ledger_test_{secrets.token_hex(6)}"
    admin = create_engine(LEDGER_POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        except OperationalError as exc:
            pytest.skip(f"PostgreSQL is not reachable at {LEDGER_POSTGRES_ADMIN_URL}: {exc.orig}")
        try:
            yield (
                make_url(LEDGER_POSTGRES_ADMIN_URL)
                .set(database=name)
                .render_as_string(hide_password=False)
            )
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


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
