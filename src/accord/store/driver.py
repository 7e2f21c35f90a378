"""A SQLAlchemy query run on the driver's own cursor, for results of hundreds of thousands of rows.

SQLAlchemy builds a row object for every row it returns; for a stream of a million ids that costs
more than the query. Here the query is compiled once, each parameter converted by its own type's
bind processor (what SQLAlchemy would do: a UTC instant to fixed-width text on SQLite, say), and the
rows come straight from the driver, on PostgreSQL from a server-side cursor so memory stays flat.
Result columns are not converted: use it for queries selecting plain text and numbers.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Select

from accord.errors import StoreError, translate

Fetch = Callable[[], Sequence[Sequence[Any]]]


def driver_statement(conn: Connection, query: Select[Any]) -> tuple[str, Any]:
    """The SQL and parameters the driver runs for ``query`` on ``conn``."""
    dialect = conn.dialect
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = dict(compiled.construct_params())
    for name, value in params.items():
        bind = compiled.binds.get(name)
        if bind is None:
            # An element of an expanded IN list: check it is a plain value.
            if value is not None and not isinstance(value, str | int | float | bytes):
                raise StoreError(f"cannot pass {type(value).__name__} {name!r} to the driver")
            continue
        process = bind.type.bind_processor(dialect)
        if process is not None:
            params[name] = process(value)
    bound: Sequence[Any] | Mapping[str, Any] = (
        [params[name] for name in compiled.positiontup or ()] if compiled.positional else params
    )
    return str(compiled), bound


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
