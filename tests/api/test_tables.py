"""Migration 0003_api builds exactly the API's tables as declared, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from accord.api.tables import API_TABLES
from accord.store.engine import Base, make_engine
from accord.store.migrate import upgrade

pytestmark = pytest.mark.integration
NAMES = {t.name for t in API_TABLES}


def _about_api(difference: Any) -> bool:
    # Differences come as tuples (or lists of tuples, for columns) naming the table touched.
    items = difference if isinstance(difference, list) else [difference]
    for item in items:
        for part in item:
            name = getattr(part, "name", None) if not isinstance(part, str) else part
            table = getattr(part, "table", None)
            if name in NAMES or getattr(table, "name", None) in NAMES:
                return True
    return False


def test_the_migration_matches_the_declared_tables(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            differences = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
            tables = set(inspect(conn).get_table_names())
        assert tables >= NAMES
        assert [d for d in differences if _about_api(d)] == []
    finally:
        engine.dispose()


def test_downgrade_removes_the_api_tables(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        upgrade(engine, "0003_api")
        from alembic import command

        from accord.store.migrate import alembic_config

        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0002_ledger")
        with engine.connect() as conn:
            assert not NAMES & set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
