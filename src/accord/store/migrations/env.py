"""Alembic's environment for the store: Accord's metadata, and a connection or a URL.

Run programmatically by :func:`accord.store.migrate.upgrade`, which passes its connection in
``config.attributes["connection"]``; with the ``alembic`` command, ``sqlalchemy.url`` is used.
"""

from __future__ import annotations

import importlib
import importlib.util

from alembic import context
from sqlalchemy import Connection

import accord.store.tables  # noqa: F401  (registers the store's tables on Base.metadata)
from accord.store.engine import Base, make_engine

# The ledger's, the partner API's, the privacy-enhancing computations' and the ad platform's tables
# live beside the store's, on the same metadata; they are migrated with it.
for _module in (
    "accord.ledger.tables",
    "accord.api.tables",
    "accord.pets.tables",
    "accord.ads.tables",
):
    if importlib.util.find_spec(_module) is not None:
        importlib.import_module(_module)

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL for ``sqlalchemy.url`` without connecting."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate over the given connection, or over a new one to ``sqlalchemy.url``."""
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        msg = "set sqlalchemy.url or pass a connection in config.attributes['connection']"
        raise RuntimeError(msg)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
