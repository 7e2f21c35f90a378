"""A SQLAlchemy query run on the driver's own cursor, for results of hundreds of thousands of rows.

SQLAlchemy builds a row object for every row it returns; for a stream of a million ids that costs
more than the query. Here the query is compiled once, each parameter converted by its own type's
bind processor (what SQLAlchemy would do: a UTC instant to fixed-width text on SQLite, say), and the
rows come straight from the driver, on PostgreSQL from a server-side cursor so memory stays flat.
Result columns are not converted: use it for queries selecting plain text and numbers.

A small query run again and again with new values (one person's read, request after request) is
prepared once instead (:func:`prepare`): compiled for the dialect, each parameter's converter
looked up; then :func:`prepared_rows` binds the new values and converts the result columns by
their types, as SQLAlchemy would, without building the statement, its cache key or its rows each
time.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import threading
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import QueuePool

from accord.errors import StoreError, translate

Fetch = Callable[[], Sequence[Sequence[Any]]]


def driver_statement(conn: Connection, query: Select[Any]) -> tuple[str, Any]:
    """The SQL and parameters the driver runs for ``query`` on ``conn``: the query prepared
    (:func:`prepare`) with every parameter keeping its value."""
    prepared = prepare(conn.dialect, query, ())
    return prepared.sql, prepared.bound({})


def fetch_one(conn: Connection, sql: str) -> tuple[Any, ...] | None:
    """The first row of a constant statement, read on the driver's own cursor: for a row read
    on every request or append, where SQLAlchemy's execution would cost several times the read."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql)
        row = cursor.fetchone()
    finally:
        cursor.close()
    return None if row is None else tuple(row)


def pooled_one(engine: Engine, sql: str) -> tuple[Any, ...] | None:
    """:func:`fetch_one` on a driver connection of ``engine`` (:func:`pooled`), without a
    SQLAlchemy :class:`~sqlalchemy.Connection` around it (building one costs more than the
    read)."""
    shared = _SHARED.get()
    if shared is None or shared[0] is not engine:
        with pooled(engine) as connection:
            return _one(connection, sql)
    return _one(shared[1], sql)


def _one(connection: Any, sql: str) -> tuple[Any, ...] | None:
    cursor = connection.cursor()
    try:
        cursor.execute(sql)
        row = cursor.fetchone()
    finally:
        cursor.close()
    return None if row is None else tuple(row)


_SHARED: ContextVar[tuple[Engine, Any, dict[str, Any]] | None] = ContextVar(
    "accord_shared_read", default=None
)
"""The engine, connection and kept values of the :func:`reads_shared` block under way."""


class _Held(threading.local):
    """This thread's own driver connections, by the engine's id: (the engine, weakly; the
    connection; the engine's pool it was opened from; the process that opened it)."""

    def __init__(self) -> None:
        self.by_engine: dict[int, tuple[weakref.ref[Engine], Any, Any, int]] = {}


_HELD = _Held()

_OPENED: weakref.WeakKeyDictionary[Engine, list[tuple[int, Any]]] = weakref.WeakKeyDictionary()
"""Every connection :func:`held` opened, by engine, whichever thread holds it, with the process
that opened it: closed by :func:`dispose`, and at exit, so that SQLite folds its write-ahead
log back into the file and removes it (it does so as the last connection to a file closes).
One a forked process inherited is never closed there."""
_OPENED_LOCK = threading.Lock()

_INHERITED: list[Any] = []
"""Connections a forked process found held by the thread it forked from: kept, never closed nor
used (SQLite's connections are not to be carried across a fork)."""


def held(engine: Engine) -> Any | None:
    """This thread's own driver connection to ``engine``'s SQLite file, opened from its pool on
    first use and kept for the thread's next reads; ``None`` for another database.

    A pool checkout and its checkin (the reset, the bookkeeping) cost more than a one-row read;
    a read on a SQLite connection outside a transaction sees every commit made before it began,
    by this process or another, as a connection fresh from the pool would. A connection is held
    per thread (SQLite's connections are not shared between threads), per process (one a fork
    inherited is left alone), and per pool (``engine.dispose()`` starts anew); it closes when
    its thread ends or its engine is let go. Reads only: a block of :func:`pooled` that began a
    transaction on it rolls it back as it ends. PostgreSQL's connections stay in the pool, which
    checks them alive (``pool_pre_ping``) at each checkout.
    """
    mine = _HELD.by_engine
    entry = mine.get(id(engine))
    if (
        entry is not None
        and entry[0]() is engine
        and entry[2] is engine.pool
        and entry[3] == os.getpid()
    ):
        return entry[1]
    if engine.dialect.name != "sqlite" or not isinstance(engine.pool, QueuePool):
        return None  # a memory database lives in its one connection: never a second
    if entry is not None:
        if entry[3] != os.getpid():
            _INHERITED.append(entry[1])
        elif entry[0]() is engine:
            entry[1].close()  # the engine was disposed of: its connections go too
    fairy = engine.raw_connection()
    connection = fairy.dbapi_connection
    # Out of the pool's count: a connection held by each of many threads never starves it.
    fairy.detach()
    key = id(engine)

    def let_go(_: object) -> None:
        if (found := mine.get(key)) is not None and found[1] is connection:
            del mine[key]

    mine[key] = (weakref.ref(engine, let_go), connection, engine.pool, os.getpid())
    with _OPENED_LOCK:
        _OPENED.setdefault(engine, []).append((os.getpid(), connection))
    return connection


def dispose(engine: Engine) -> None:
    """``engine.dispose()``, closing the connections threads hold (:func:`held`) as well as the
    pool's: after it, each thread opens a new one at its next read (the pool is new)."""
    with _OPENED_LOCK:
        opened = _OPENED.pop(engine, [])
    engine.dispose()
    _close_all(opened)


def _close_all(connections: list[tuple[int, Any]]) -> None:
    here = os.getpid()
    for pid, connection in connections:
        if pid != here:
            continue
        try:
            connection.close()
        except Exception:  # noqa: BLE001, S112 - closing what is going away: nothing to tell
            continue


@atexit.register
def _close_held_at_exit() -> None:
    with _OPENED_LOCK:
        opened = [pair for pairs in _OPENED.values() for pair in pairs]
        _OPENED.clear()
    _close_all(opened)


def _release_held(engine: Engine, connection: Any) -> None:
    """Drop this thread's held ``connection`` of ``engine`` after a failure on it: the next read
    opens another (this one closes once its last user lets it go)."""
    entry = _HELD.by_engine.get(id(engine))
    if entry is not None and entry[1] is connection:
        del _HELD.by_engine[id(engine)]


@contextmanager
def pooled(engine: Engine) -> Iterator[Any]:
    """A driver connection of ``engine`` for a few reads: the one :func:`reads_shared` holds
    for the block around this one, else this thread's own (:func:`held`, on SQLite), else one
    from the pool, which rolls back whatever the driver began as it goes back. Reads only:
    nothing is committed on it."""
    shared = _SHARED.get()
    if shared is not None and shared[0] is engine:
        yield shared[1]
        return
    own = held(engine)
    if own is not None:
        try:
            yield own
        except BaseException:
            _release_held(engine, own)
            raise
        finally:
            if own.in_transaction:
                own.rollback()
        return
    connection = engine.raw_connection()
    try:
        yield connection
    finally:
        connection.close()


@contextmanager
def reads_shared(engine: Engine) -> Iterator[None]:
    """Within the block, the reads of this thread (its context) on ``engine`` through
    :func:`pooled` share one connection, taken once: on SQLite the thread's own (:func:`held`),
    elsewhere one of the pool.

    For a request that reads the store in several steps (its token, the registry's revision,
    the people it is about): one checkout instead of one per step, and on PostgreSQL one check
    that the connection is alive instead of one per step. Each read is its own statement, as on
    connections of their own: on PostgreSQL at the default isolation (read committed) each
    statement sees what was committed before it began, and on SQLite a read begins no
    transaction. Writes take connections of their own, as before.
    """
    if (held_now := _SHARED.get()) is not None and held_now[0] is engine:
        yield
        return
    with translate(StoreError, "connecting to the store"):
        own = held(engine)
        connection = own if own is not None else engine.raw_connection()
    token = _SHARED.set((engine, connection, {}))
    try:
        yield
    except BaseException:
        if own is not None:
            _release_held(engine, own)
        raise
    finally:
        _SHARED.reset(token)
        if own is None:
            connection.close()
        elif own.in_transaction:
            own.rollback()  # reads only: nothing a step began outlives the block


def kept_in_block(engine: Engine) -> dict[str, Any] | None:
    """What the steps of the :func:`reads_shared` block on ``engine`` around this call keep for
    the steps after them (a value one step read, that the next would read again), gone with the
    block; ``None`` outside such a block."""
    shared = _SHARED.get()
    return shared[2] if shared is not None and shared[0] is engine else None


@contextmanager
def driver_rows(
    conn: Connection, query: Select[Any], batch_size: int, doing: str
) -> Iterator[Fetch]:
    """A function returning ``query``'s next rows, at most ``batch_size``, empty when done."""
    driver = conn.connection.driver_connection
    if driver is None:  # pragma: no cover - a live connection always has its driver's
        raise StoreError(f"{doing}: the connection has no driver connection")
    with translate(StoreError, doing):
        sql, bound = driver_statement(conn, query)
        if conn.dialect.name == "postgresql":
            # Every row will be fetched: plan for all of them, not (PostgreSQL's default for a
            # cursor) for the first tenth, which favours nested loops over hash joins.
            with driver.cursor() as setting:
                setting.execute("SET LOCAL cursor_tuple_fraction = 1.0")
            cursor = driver.cursor(name=f"accord_rows_{secrets.token_hex(6)}")
            cursor.itersize = batch_size
        else:
            cursor = driver.cursor()
    try:
        with translate(StoreError, doing):
            cursor.execute(sql, bound)
        yield lambda: cursor.fetchmany(batch_size)
    finally:
        with translate(StoreError, doing):
            cursor.close()


def batches(fetch: Fetch) -> Iterator[Sequence[Sequence[Any]]]:
    """The batches ``fetch`` returns until it returns none (from :func:`driver_rows` or
    :func:`prepared_rows`)."""
    while batch := fetch():
        yield batch


Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Param:
    """One parameter the driver is given: its name there, and where its value comes from: the
    caller's value ``key`` (at ``index`` of the list, for an element of an expanded ``IN``), or
    the query's own ``constant``; then its type's converter."""

    name: str
    key: str | None
    index: int | None
    constant: Any
    convert: Convert | None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A query compiled once for one dialect, to run on the driver with new parameter values.

    Each expanding parameter (an ``IN`` list) is rendered for as many values as it held when
    prepared, and must be given that many.
    """

    sql: str
    dialect: Dialect
    params: tuple[_Param, ...]
    positional: bool
    expanding: Mapping[str, int]
    columns: tuple[Any, ...]
    """The selected columns' types, whose result processors convert the rows."""
    _processors: dict[tuple[Any, ...], tuple[Convert | None, ...]] = field(default_factory=dict)

    def bound(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """``values`` (by the query's parameter names) as the driver takes them, converted."""
        for key, size in self.expanding.items():
            if len(values[key]) != size:
                raise StoreError(
                    f"parameter {key!r} was prepared for {size} values, not {len(values[key])}"
                )
        out = []
        for p in self.params:
            if p.key is None:
                value = p.constant
            elif p.index is None:
                value = values[p.key]
            else:
                value = values[p.key][p.index]
            out.append(value if p.convert is None else p.convert(value))
        if self.positional:
            return out
        return {p.name: value for p, value in zip(self.params, out, strict=True)}

    def processors(self, description: Sequence[Sequence[Any]]) -> tuple[Convert | None, ...]:
        """The result processors of the columns, for the driver's description of them (a
        PostgreSQL numeric column's depends on the type the server says it has)."""
        codes = tuple(d[1] for d in description)
        found = self._processors.get(codes)
        if found is None:
            found = tuple(
                t.dialect_impl(self.dialect).result_processor(self.dialect, code)
                for t, code in zip(self.columns, codes, strict=True)
            )
            self._processors[codes] = found
        return found


def prepare(dialect: Dialect, query: Select[Any], variables: Collection[str]) -> Prepared:
    """``query`` compiled for ``dialect``, its parameters' converters looked up once.

    ``variables`` name the bound parameters given new values at each run, declared in the query
    as ``bindparam(name, None, type_=...)``, or ``bindparam(name, [placeholders],
    expanding=True)`` for an ``IN`` list of that many values (a variable the query does not hold
    is ignored); every other parameter keeps the value it has in ``query``.
    """
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    constants = compiled.construct_params()
    names = list(compiled.positiontup or ()) if compiled.positional else list(constants)
    expanding = {
        name: len(bind.value or ())
        for name, bind in compiled.binds.items()
        if bind.expanding and name in variables
    }
    params: list[_Param] = []
    for name in names:
        bind = compiled.binds.get(name)
        key: str | None = name
        index: int | None = None
        if bind is None:
            # An element of an expanded IN list, named ``<name>_<n>`` from 1.
            match = re.fullmatch(r"(.+)_(\d+)", name)
            bind = compiled.binds.get(match.group(1)) if match else None
            if match is None or bind is None or not bind.expanding:
                raise StoreError(f"cannot tell what parameter {name!r} of a prepared query is")
            key, index = match.group(1), int(match.group(2)) - 1
        if key not in variables:
            key, index = None, None
        convert = bind.type.bind_processor(dialect)
        params.append(_Param(name, key, index, constants.get(name), convert))
    columns = tuple(col.type for col in query.selected_columns)
    return Prepared(str(compiled), dialect, tuple(params), compiled.positional, expanding, columns)


@contextmanager
def prepared_rows(
    connection: Any, prepared: Prepared, values: Mapping[str, Any], batch_size: int, doing: str
) -> Iterator[Fetch]:
    """A function returning the next rows of ``prepared`` run with ``values`` on ``connection``
    (a DBAPI connection), at most ``batch_size``, each column converted by its type."""
    with translate(StoreError, doing):
        bound = prepared.bound(values)
        cursor = connection.cursor()
    try:
        with translate(StoreError, doing):
            cursor.execute(prepared.sql, bound)
            convert = prepared.processors(cursor.description or ())
        if not any(convert):
            yield lambda: cursor.fetchmany(batch_size)
        else:

            def fetch() -> Sequence[Sequence[Any]]:
                return [
                    tuple(v if c is None else c(v) for c, v in zip(convert, row, strict=True))
                    for row in cursor.fetchmany(batch_size)
                ]

            yield fetch
    finally:
        with translate(StoreError, doing):
            cursor.close()


@contextmanager
def prepared_read(
    engine: Engine, prepared: Prepared, values: Mapping[str, Any], batch_size: int, doing: str
) -> Iterator[Fetch]:
    """:func:`prepared_rows` on a driver connection of ``engine`` as :func:`pooled` gives one
    (the block's shared one, the thread's own, or one of the pool), in one step: for a small
    read made request after request, whose steps would otherwise cost more than the read."""
    own = connection = cursor = None
    borrowed = False
    try:
        with translate(StoreError, doing):
            connection, own, borrowed = _take(engine)
            bound = prepared.bound(values)
            cursor = connection.cursor()
            cursor.execute(prepared.sql, bound)
            convert = prepared.processors(cursor.description or ())
        yield _fetcher(cursor, convert, batch_size)
    except BaseException:
        if own is not None:
            _release_held(engine, own)
        raise
    finally:
        with translate(StoreError, doing):
            try:
                if cursor is not None:
                    cursor.close()
            finally:
                _give_back(connection, own, borrowed)


def _take(engine: Engine) -> tuple[Any, Any, bool]:
    """A driver connection of ``engine`` as :func:`pooled` takes one, without a context
    manager's cost: the connection, the thread's own if it is that (:func:`held`), and whether it
    is the one :func:`reads_shared` holds for the block around this one."""
    shared = _SHARED.get()
    if shared is not None and shared[0] is engine:
        return shared[1], None, True
    own = held(engine)
    if own is not None:
        return own, own, False
    return engine.raw_connection(), None, False


def _give_back(connection: Any, own: Any, borrowed: bool) -> None:
    """What :func:`pooled` does with a connection once the reads are done, for one
    :func:`_take` gave: the thread's own left with no transaction open, one of the pool
    returned to it, the block's shared one kept."""
    if own is not None:
        if own.in_transaction:
            own.rollback()
    elif connection is not None and not borrowed:
        connection.close()


def _fetcher(cursor: Any, convert: tuple[Convert | None, ...], batch_size: int) -> Fetch:
    """A function returning ``cursor``'s next rows, at most ``batch_size``, each column
    converted by ``convert`` (left as the driver gives it where that is ``None``)."""
    if not any(convert):
        return lambda: cursor.fetchmany(batch_size)

    def fetch() -> Sequence[Sequence[Any]]:
        return [
            tuple(v if c is None else c(v) for c, v in zip(convert, row, strict=True))
            for row in cursor.fetchmany(batch_size)
        ]

    return fetch


def prepared_all(
    engine: Engine, prepared: Prepared, values: Mapping[str, Any], doing: str
) -> list[Sequence[Any]]:
    """Every row of ``prepared`` run with ``values``, each column converted by its type, read
    at once on a connection of ``engine`` as :func:`prepared_read` takes one: for a query of a
    few rows (a few people judged), where streaming them costs more than the rows."""
    own = connection = None
    borrowed = False
    with translate(StoreError, doing):
        try:
            connection, own, borrowed = _take(engine)
            bound = prepared.bound(values)
            cursor = connection.cursor()
            try:
                cursor.execute(prepared.sql, bound)
                convert = prepared.processors(cursor.description or ())
                rows = cursor.fetchall()
            finally:
                cursor.close()
        except BaseException:
            if own is not None:
                _release_held(engine, own)
            raise
        finally:
            _give_back(connection, own, borrowed)
    if not any(convert):
        return list(rows)
    return [
        tuple(v if c is None else c(v) for c, v in zip(convert, row, strict=True)) for row in rows
    ]
