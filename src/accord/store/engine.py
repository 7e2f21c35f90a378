"""Engines from a URL: SQLite (the embedded default) or PostgreSQL, with Accord's pragmas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from accord.errors import ConfigError


class Base(DeclarativeBase):
    """The declarative base every Accord table hangs from (one ``MetaData``)."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; synchronous=FULL makes each commit durable
    # before it returns, which the ledger relies on ("durable before acknowledged").
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


POOL_SIZE = 16
"""Connections each engine keeps open, and as many more it may open at a burst.

SQLAlchemy's default (5, and 10 more closed as soon as they are returned) makes a server with a
dozen exchanges in flight open and close a connection per request, with its pragmas: a
connection is set up once and kept. Two workers of two engines each stay well within
PostgreSQL's default of 100 connections.
"""


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created and its pragmas set on connect."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"not a database URL: {url!r} ({exc})") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs = {"pool_size": POOL_SIZE, "max_overflow": POOL_SIZE, **kwargs}
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        options = {"pool_size": POOL_SIZE, "max_overflow": POOL_SIZE, **kwargs}
        return create_engine(url, pool_pre_ping=True, **options)
    raise ConfigError(
        f"unsupported database {parsed.get_backend_name()!r} in {url!r}: use sqlite or postgresql"
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Any]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
