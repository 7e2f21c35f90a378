"""The people whose rows a read may return, and how they reach the party's database.

The allowed people are computed in the Accord store (:func:`accord.store.filter_sql.
allowed_people_query`), which is a different database from the party's. Many people cross over as
a temporary table in the party's database, filled by COPY on PostgreSQL and by chunks of JSON
unpacked by ``json_each`` on SQLite, and joined by the read: never a loop over rows or people,
never a huge ``IN (...)`` literal. A few people (a request naming at most :data:`FEW` of them: a
person's own read) are judged at once and their ids bound into the read as parameters
(``IN (?, ?)``): no table to create, fill and drop for every request.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import psycopg
from sqlalchemy import Boolean, Column, Connection, MetaData, Table
from sqlalchemy.types import TypeEngine

from accord.errors import StoreError, translate
from accord.filters import Group, PersonFilter
from accord.store.driver import batches, driver_rows
from accord.store.filter_sql import Store, allowed_people, allowed_people_query, connection_of
from accord.store.people import chunked

BATCH = 10_000
"""Ids per ``executemany`` when loading the allowed people, and rows per batch when reading."""

PERSON = "person_id"
"""The temporary table's one column."""

FEW = 500
"""At most this many ids are bound into a read as parameters; more go into a temporary table.

Well under every backend's limit on parameters (SQLite's is 32,766, PostgreSQL's 65,535).
"""


class _StoreIds:
    """The ids a filter lets through, streamed from the store each time they are iterated."""

    def __init__(self, store: Store, f: PersonFilter) -> None:
        self.store = store
        self.filter = f

    def __iter__(self) -> Iterator[str]:
        f = self.filter
        doing = f"filtering the people of {f.controller}"
        # Straight from the driver: the ids are plain text, and SQLAlchemy's rows for a million
        # people cost more than the query.
        with (
            translate(StoreError, doing),
            connection_of(self.store) as connection,
            driver_rows(connection, allowed_people_query(f), BATCH, doing) as fetch,
        ):
            for rows in batches(fetch):
                yield from [person for (person,) in rows]


TitleVerdict = tuple[str, str, bool]
"""A person's id, a title, and whether that person's rows of that title may be returned."""

TITLE = "title"
ALLOWED = "allowed"
"""The title verdicts' temporary table's other columns (beside :data:`PERSON`)."""


@dataclass(frozen=True, slots=True)
class Allowed:
    """The people a read may return rows about, by their id at the party, and how groups are judged.

    ``people`` may be any iterable; it is iterated once per read. With
    :attr:`Group.EVERY_PARTICIPANT` a row about a group is returned only if every member is among
    ``people``; with :attr:`Group.EACH`, if at least one is. ``party``, when known, is the party
    whose ids these are; a source of another party refuses them.
    """

    people: Iterable[str]
    group: Group = Group.EACH
    party: str | None = None
    titles: tuple[TitleVerdict, ...] = ()
    """Per (person, title) verdicts that override ``people`` for the rows of a collection with a
    title field (:attr:`accord.sources.datasets.Collection.title`): a row of a denied pair is
    not returned even if its person is allowed, a row of a granted pair is returned even if its
    person is not (see :mod:`accord.store.title_sql`)."""

    @property
    def granting(self) -> bool:
        """Some title verdict lets rows through that ``people`` alone would not."""
        return any(allowed for _, _, allowed in self.titles)

    @classmethod
    def by_filter(cls, store: Store, f: PersonFilter) -> Allowed:
        """The people ``f`` lets through, from the store behind ``store`` (a session, a
        connection, or an engine whose connections are taken when the people are judged).

        When the filter names at most :data:`FEW` people they are judged now, in one query
        restricted to them; otherwise the ids stream from the store when the read iterates them.
        """
        if f.subjects is not None and len(f.subjects) <= FEW:
            return cls(frozenset(allowed_people(store, f)), f.group, f.controller)
        return cls(_StoreIds(store, f), f.group, f.controller)

    @property
    def streamed(self) -> bool:
        """The people are many, or not known until the read (a stream from the store): a read
        carries them into the party's database as a temporary table."""
        people = self.people
        if type(people) is frozenset:  # the judged few (by_filter): no ABC to ask
            return len(people) > FEW
        return not isinstance(people, Collection) or len(people) > FEW

    def few(self, id_type: TypeEngine[Any]) -> list[Any] | None:
        """The ids as values of a column of ``id_type``, if they are at most :data:`FEW` and
        known already (a collection, not a stream); else ``None``."""
        people = self.people
        if type(people) is not frozenset and not isinstance(people, Collection):
            return None
        if len(people) > FEW:
            return None
        return sorted(set(_ids_as(id_type, people)))


def _python_type(sql_type: TypeEngine[Any]) -> type | None:
    try:
        return sql_type.python_type
    except NotImplementedError:
        return None


def _ids_as(sql_type: TypeEngine[Any], ids: Iterable[str]) -> Iterator[Any]:
    """``ids`` converted for a column of ``sql_type``; ids that cannot be one match no row."""
    if _converter(sql_type) is not int:
        yield from ids
        return
    for value in ids:
        try:
            yield int(value)
        except (TypeError, ValueError):
            continue


def load_allowed(conn: Connection, allowed: Allowed, id_type: TypeEngine[Any]) -> Table:
    """A new temporary table on ``conn`` holding the allowed people's ids (each once).

    ``id_type`` is the type of the column the ids are joined with, so the join compares like with
    like (and can use the column's index).
    """
    table = Table(
        f"accord_allowed_{secrets.token_hex(6)}",
        MetaData(),
        Column(PERSON, id_type, primary_key=True),
        prefixes=["TEMPORARY"],
        # On SQLite the ids are the table's one b-tree, not a rowid table plus an index on them:
        # faster to fill and to join.
        sqlite_with_rowid=False,
    )
    table.create(conn)
    # Each id once (two texts may be one number), in order: the table's key is then filled
    # page after page, as an index is built, rather than split all over; past the page cache
    # (a few hundred thousand ids) that is several times faster than a set's order.
    ids = _ids_in_order(id_type, allowed.people)
    if conn.dialect.name == "postgresql":
        _copy_into(conn, table, ([value] for value in ids), lines=_copy_lines(ids))
        return table
    if conn.dialect.name == "sqlite":
        # A chunk is one JSON array, unpacked by SQLite's json_each: one statement, no
        # parameter bound per id (a third of the time of executemany).
        name = conn.dialect.identifier_preparer.quote(table.name)
        statement = f"INSERT OR IGNORE INTO {name} SELECT value FROM json_each(?)"  # noqa: S608
        one_by_one = f"INSERT OR IGNORE INTO {name} VALUES (?)"  # noqa: S608
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            text = json.dumps(chunk)
            if "\\u0000" in text:
                # SQLite's JSON functions cut text at a NUL: such ids are bound one by one.
                conn.exec_driver_sql(one_by_one, [(value,) for value in chunk])
            else:
                conn.exec_driver_sql(statement, (text,))
        return table
    raise StoreError(f"sources support SQLite and PostgreSQL, not {conn.dialect.name!r}")


def _ids_in_order(id_type: TypeEngine[Any], ids: Iterable[str]) -> list[Any]:
    """``ids`` converted for a column of ``id_type`` (:func:`_ids_as`), each once, sorted."""
    if _converter(id_type) is str and isinstance(ids, (set, frozenset)):
        return sorted(ids)  # a set of text already: no copy to make first
    return sorted(set(_ids_as(id_type, ids)))


def _copy_lines(values: list[Any]) -> str | None:
    """``values`` as the data of a one-column COPY in text format (one a line), or ``None`` if
    one would need escaping there (a backslash, a tab, a line break) or holds a NUL (which
    PostgreSQL refuses in text, and the driver says so): then they go row by row."""
    text = "\n".join(map(str, values))
    special = ("\\", "\t", "\r", "\x00")
    if any(c in text for c in special) or text.count("\n") != len(values) - 1:
        return None
    return text + "\n" if values else ""


def load_titles(
    conn: Connection,
    verdicts: Iterable[TitleVerdict],
    id_type: TypeEngine[Any],
    title_type: TypeEngine[Any],
) -> Table:
    """A new temporary table on ``conn`` holding the title verdicts, keyed by (person, title).

    The ids and titles are converted for the columns they are joined with; a pair that cannot be
    one matches no row, and is left out.
    """
    table = Table(
        f"accord_titles_{secrets.token_hex(6)}",
        MetaData(),
        Column(PERSON, id_type, primary_key=True),
        Column(TITLE, title_type, primary_key=True),
        Column(ALLOWED, Boolean, nullable=False),
        prefixes=["TEMPORARY"],
        sqlite_with_rowid=False,
    )
    table.create(conn)
    # In key order, as the ids (:func:`load_allowed`).
    pairs = sorted(_pairs_as(id_type, title_type, verdicts))
    if conn.dialect.name == "postgresql":
        _copy_into(conn, table, (list(pair) for pair in pairs))
        return table
    name = conn.dialect.identifier_preparer.quote(table.name)
    # As the allowed ids: a chunk is one JSON array of [person, title, allowed], unpacked by
    # SQLite's json_each (a NUL cuts SQLite's JSON text: such chunks go row by row).
    statement = (
        f"INSERT OR IGNORE INTO {name} SELECT json_extract(value, '$[0]'), "  # noqa: S608
        f"json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?)"
    )
    one_by_one = f"INSERT OR IGNORE INTO {name} VALUES (?, ?, ?)"  # noqa: S608
    for chunk in chunked(pairs, BATCH):
        text = json.dumps(chunk)
        if "\\u0000" in text:
            conn.exec_driver_sql(one_by_one, [tuple(row) for row in chunk])
        else:
            conn.exec_driver_sql(statement, (text,))
    return table


def _copy_into(
    conn: Connection, table: Table, rows: Iterable[list[Any]], *, lines: str | None = None
) -> None:
    """Fill ``table`` on PostgreSQL with ``rows`` by COPY (psycopg's ``cursor.copy``): no
    statement per row or per chunk; then its statistics, which autovacuum never gathers for a
    temporary table. ``lines``, when given, are the same rows as COPY's text already: sent as
    they are, without handling each row."""
    preparer = conn.dialect.identifier_preparer
    name = preparer.quote(table.name)
    columns = ", ".join(preparer.quote(c.name) for c in table.columns)
    driver = conn.connection.dbapi_connection
    if not isinstance(driver, psycopg.Connection):
        raise StoreError("sources on PostgreSQL are reached through psycopg (postgresql+psycopg)")
    with driver.cursor() as cursor, cursor.copy(f"COPY {name} ({columns}) FROM STDIN") as copy:
        if lines is not None:
            copy.write(lines)
        else:
            for row in rows:
                copy.write_row(row)
    conn.exec_driver_sql(f"ANALYZE {name}")


def _pairs_as(
    id_type: TypeEngine[Any], title_type: TypeEngine[Any], verdicts: Iterable[TitleVerdict]
) -> Iterator[tuple[Any, Any, bool]]:
    as_id, as_title = _converter(id_type), _converter(title_type)
    if as_id is str and as_title is str:
        # Text on both sides (a release of everyone carries tens of thousands): each pair once,
        # its first verdict kept (later ones written first, then over), without a loop here.
        backwards = list(verdicts)[::-1]
        people = map(str, map(itemgetter(0), backwards))
        titles = map(str, map(itemgetter(1), backwards))
        first = dict(
            zip(zip(people, titles, strict=True), map(itemgetter(2), backwards), strict=True)
        )
        yield from ((person, title, allowed) for (person, title), allowed in first.items())
        return
    seen: set[tuple[Any, Any]] = set()
    for person, title, allowed in verdicts:
        try:
            pair = (as_id(person), as_title(title))
        except (TypeError, ValueError):
            continue
        if pair in seen:
            continue
        seen.add(pair)
        yield pair[0], pair[1], allowed


def _converter(sql_type: TypeEngine[Any]) -> Callable[[str], Any]:
    """How :func:`_ids_as` converts one id for a column of ``sql_type`` (raising ``ValueError``
    for one that cannot be one)."""
    return int if _python_type(sql_type) is int else str


def drop_allowed(conn: Connection, table: Table) -> None:
    """Drop the temporary table if it is still there (a rolled-back transaction may have)."""
    with conn.begin():
        table.drop(conn, checkfirst=True)
