"""Chirp's and Reelix's own databases on PostgreSQL, loaded with COPY.

The rows are the ones :func:`accord.scenario.generate.write_databases` writes (same seed, same
rows): drawn once into SQLite files in a temporary folder, then streamed into PostgreSQL with
``COPY ... FROM STDIN`` (psycopg's :meth:`~psycopg.Cursor.copy`), not row by row ``INSERT``:
each party in a schema of its own (``chirp``, ``reelix``), the tables first, the indexes and
statistics once the rows are in, as a bulk load should.

Imported only by the command that writes them (psycopg is loaded then, not at the CLI's start).
A party's source then connects with that schema first on its search path
(:func:`party_url`), so its dataset declaration names the same tables on either database.
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from accord.errors import InvalidInput, StoreError, translate
from accord.scenario.generate import (
    CHIRP_INDEXES,
    CHIRP_SCHEMA,
    RECOMMENDATION_INDEXES,
    REELIX_INDEXES,
    REELIX_SCHEMA,
    Reporter,
    Written,
    _silent,
    write_databases,
)
from accord.scenario.population import CHIRP, REELIX

COPY_BATCH = 50_000
"""Rows read from SQLite at a time while copying."""

_SCHEMAS = {
    CHIRP: (CHIRP_SCHEMA, CHIRP_INDEXES),
    REELIX: (REELIX_SCHEMA, REELIX_INDEXES + RECOMMENDATION_INDEXES),
}


def _postgres(database_url: str) -> str:
    """``database_url`` as libpq takes it (``postgresql://``), checked to be PostgreSQL."""
    try:
        url = make_url(database_url)
    except Exception as exc:
        raise InvalidInput(f"not a database URL: {database_url!r}", where="--database-url") from exc
    if url.get_backend_name() != "postgresql":
        raise InvalidInput(
            "the parties' databases go on PostgreSQL here (postgresql+psycopg://...); "
            "without --database-url they are SQLite files",
            where="--database-url",
        )
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def party_url(database_url: str, party: str) -> str:
    """The URL of ``party``'s own database: ``database_url`` with its schema on the search
    path."""
    url = make_url(database_url).update_query_dict({"options": f"-csearch_path={party}"})
    return url.render_as_string(hide_password=False)


def _statements(script: str) -> list[str]:
    """The statements of a SQLite schema script, as PostgreSQL takes them."""
    text = re.sub(r"\)\s*WITHOUT ROWID", ")", script)
    return [s.strip() for s in text.split(";") if s.strip()]


def write_postgres(
    database_url: str,
    *,
    people: int,
    seed: int,
    at: datetime,
    report: Reporter = _silent,
) -> Written:
    """Write Chirp's and Reelix's databases into schemas ``chirp`` and ``reelix`` of the
    PostgreSQL database at ``database_url`` (each replaced if present); the rows per table (the
    SQLite files it names were drawn in a temporary folder, and are gone)."""
    conninfo = _postgres(database_url)
    with tempfile.TemporaryDirectory(prefix="accord-scenario-") as folder:
        written = write_databases(Path(folder), people=people, seed=seed, at=at, report=report)
        for party, path in ((CHIRP, written.chirp), (REELIX, written.reelix)):
            copy_party(conninfo, party, path, report)
    return written


def copy_party(conninfo: str, party: str, sqlite_path: Path, report: Reporter = _silent) -> None:
    """Copy ``party``'s SQLite database into its schema on PostgreSQL with COPY."""
    schema, indexes = _SCHEMAS[party]
    doing = f"copying {party}'s database into PostgreSQL"
    with (
        translate(StoreError, doing),
        closing(sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)) as source,
        psycopg.connect(conninfo) as pg,
    ):
        name = sql.Identifier(party)
        pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(name))
        pg.execute(sql.SQL("CREATE SCHEMA {}").format(name))
        pg.execute(sql.SQL("SET search_path TO {}").format(name))
        for statement in _statements(schema):
            pg.execute(statement.encode())
        tables = [
            table
            for (table,) in source.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        for table in tables:
            (total,) = source.execute(f'SELECT count(*) FROM "{table}"').fetchone()  # noqa: S608
            advance = report(f"{party}.{table} into PostgreSQL", max(total, 1))
            _copy_table(pg, source, table, advance)
        for statement in _statements(indexes):
            pg.execute(statement.encode())
        pg.execute("ANALYZE")


def _copy_table(
    pg: psycopg.Connection[Any],
    source: sqlite3.Connection,
    table: str,
    advance: Callable[[int], None],
) -> None:
    rows = source.execute(f'SELECT * FROM "{table}"')  # noqa: S608
    columns = [d[0] for d in rows.description]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with pg.cursor() as cursor, cursor.copy(statement) as copy:
        while batch := rows.fetchmany(COPY_BATCH):
            for row in batch:
                copy.write_row(row)
            advance(len(batch))
