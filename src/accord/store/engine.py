"""Engines from a URL: SQLite (the embedded default) or PostgreSQL, with Accord's pragmas."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from accord.errors import ConfigError

try:
    import fcntl
except ImportError:  # not on Windows: there SQLite's own wait is all there is
    fcntl = None  # type: ignore[assignment]


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


class WriteTurn:
    """The turn to write to one SQLite file: a lock for this process's threads, then an
    exclusive ``flock`` on a file beside the database for the other processes.

    Re-entrant in one thread (a writer holding the turn may call another that takes it), and
    opened again in a forked child: a ``flock`` belongs to an open file, which a child would
    otherwise share with its parent, each then believing it held the turn alone."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.threads = threading.RLock()
        self.fd: int | None = None
        self.pid = 0
        self.depth = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def acquire(self) -> None:
        """Wait for the turn and take it (each :meth:`acquire` is matched by a :meth:`release`
        in the same thread): what :meth:`held` does, for a writer whose every commit takes the
        turn and which keeps a generator's cost off that path."""
        self.threads.acquire()
        try:
            if self.fd is None or self.pid != os.getpid():
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self.pid = os.getpid()
                self.depth = 0
                weakref.finalize(self, os.close, self.fd)  # closed with the turn
            if self.depth == 0:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            self.threads.release()
            raise
        self.depth += 1

    def release(self) -> None:
        """Give back the turn taken by :meth:`acquire`."""
        try:
            self.depth -= 1
            if self.depth == 0 and self.fd is not None:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            self.threads.release()


_TURNS: weakref.WeakValueDictionary[str, WriteTurn] = weakref.WeakValueDictionary()
"""The turn of each file, while an engine on it lives (its lock file closed with it)."""
_TURNS_LOCK = threading.Lock()


def store_identity(engine: Engine) -> str:
    """The store's URL as every worker and host of one deployment names it: without its
    password, a SQLite file by its absolute path."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in {None, "", ":memory:"}:
        url = url.set(database=str(Path(str(url.database)).resolve()))
    return url.render_as_string(hide_password=True)


def write_turn_path(engine: Engine) -> Path | None:
    """The file whose ``flock`` is the turn to write to ``engine``'s SQLite file (None for
    PostgreSQL and for databases in memory)."""
    database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database + "-writers.lock")


@contextmanager
def write_turn(engine: Engine) -> Iterator[None]:
    """Wait for the turn to write to ``engine``'s SQLite file, and hold it: around a write
    transaction that other processes serving the same file also make often (the ledger's group
    commits, the ads store's impressions and charges).

    SQLite lets one writer in at a time; a writer that finds the file locked sleeps and tries
    again (``busy_timeout``: 1, 2, 5, 10 ms and longer between tries), and each try can find it
    taken again by a process that did not sleep, so two busy processes writing in turns spend
    more time asleep than writing. Waiting for a lock the system hands over at once when it is
    released (``flock``, which other processes' writers wait on in the same way) keeps the file
    written back to back. Every engine of a process on one file shares one turn. Writers that do
    not take it stay safe (SQLite's own lock is still taken under it); they only wait as SQLite
    makes them. Nothing for PostgreSQL (rows are locked, not the database) or a database in
    memory (one process)."""
    turn = turn_of(engine)
    if turn is None:
        yield
        return
    with turn.held():
        yield


def turn_of(engine: Engine) -> WriteTurn | None:
    """The turn :func:`write_turn` takes for ``engine`` (``None`` where it takes none), to take
    with :meth:`WriteTurn.acquire` and give back with :meth:`WriteTurn.release`."""
    try:
        return _ENGINE_TURNS[engine]
    except KeyError:
        turn = _ENGINE_TURNS[engine] = _turn_of(engine)
        return turn


_ENGINE_TURNS: weakref.WeakKeyDictionary[Engine, WriteTurn | None] = weakref.WeakKeyDictionary()
"""Each engine's turn, found once (its file's path resolved once, not at every write)."""


def _turn_of(engine: Engine) -> WriteTurn | None:
    """The turn of ``engine``'s file, shared by every engine of this process on that file."""
    path = write_turn_path(engine)
    if path is None or fcntl is None:
        return None
    key = str(path.resolve())
    with _TURNS_LOCK:
        turn = _TURNS.get(key)
        if turn is None:
            turn = _TURNS[key] = WriteTurn(path)
    return turn


def make_sessionmaker(engine: Engine) -> sessionmaker[Any]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
