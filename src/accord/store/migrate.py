"""Bring a store's schema up to date with Alembic, without an ``alembic.ini`` on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from accord.errors import StoreError, translate
from accord.store.engine import make_engine, make_sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration for the store's migrations (and ``url``, if given)."""
    config = Config()
    # ConfigParser interpolates '%'; a path or URL containing one must be escaped.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# Replicas of the gateway may start together against one PostgreSQL; this lock makes their
# migrations take turns, so the second finds the schema already up to date.
_MIGRATION_LOCK = 0x6163636F7264  # "accord"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``revision`` (the newest by default)."""
    config = alembic_config()
    with translate(StoreError, f"migrating the store to {revision}"), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current(engine: Engine) -> str | None:
    """The revision the database is at, or None before any migration."""
    with translate(StoreError, "reading the store's revision"), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def open_store(
    url: str, *, migrate: bool = True, **engine_options: Any
) -> tuple[Engine, sessionmaker[Any]]:
    """An engine for ``url``, migrated to the newest schema (unless not to ``migrate``), and its
    sessions.

    The caller disposes of the engine.
    """
    engine = make_engine(url, **engine_options)
    if not migrate:
        return engine, make_sessionmaker(engine)
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine, make_sessionmaker(engine)
