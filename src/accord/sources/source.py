"""Reads and writes on a party's own database, generated from its dataset declaration.

Every statement is built with SQLAlchemy Core over tables reflected from the party's database, so
names are quoted identifiers and values are bound parameters. A read returns only the fields it
names and only the rows of allowed people: the allowed ids sit in a temporary table
(:mod:`accord.sources.allowed`) that the query semi-joins (``person IN (SELECT ...)``), or, when
they are a few, in bound parameters (``person IN (?, ?)``); rows about a group are kept or dropped
by a ``GROUP BY``/``HAVING`` over the members table, counting the members among the allowed.
Results stream in batches.

A read of a few people's rows (one person's, request after request) is built and compiled once
per kind of read (collection, fields, the conditions' fields and kinds of value, how groups are
judged, how many ids) with the ids and the conditions' values as bound parameters, and run on the
driver's cursor with each column converted by its type (:mod:`accord.store.driver`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Date,
    Engine,
    FromClause,
    MetaData,
    Select,
    Table,
    and_,
    bindparam,
    case,
    cast,
    distinct,
    exists,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
    true,
    union,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import NoSuchTableError

from accord.errors import InvalidInput, StoreError, translate
from accord.filters import Group
from accord.sources.allowed import (
    ALLOWED,
    BATCH,
    FEW,
    PERSON,
    TITLE,
    Allowed,
    drop_allowed,
    load_allowed,
    load_titles,
)
from accord.sources.datasets import IDENTIFIER, Collection, Dataset
from accord.store.driver import (
    Prepared,
    batches,
    driver_rows,
    prepare,
    prepared_read,
)
from accord.store.people import chunked

_IDS = "allowed_ids"
"""The bound parameter holding the ids of a prepared read."""

_PREPARED_KINDS = 512
"""At most this many kinds of read are kept prepared per source (then the cache starts anew)."""

WhereShape = tuple[tuple[str, Any], ...]
"""A read's conditions as a kind: each field with ``None`` or a boolean (part of the statement),
or the type of its value (bound as a parameter)."""


_BOUND_VALUES = (str, int, float)
"""The kinds of condition value a prepared read binds as parameters (what JSON carries)."""


def _preparable(where: Mapping[str, Any] | None) -> bool:
    """Every condition's value is ``None``, a boolean or a bound kind of value."""
    if not where:
        return True
    return all(v is None or isinstance(v, (bool, *_BOUND_VALUES)) for v in (where or {}).values())


def _where_shape(where: Mapping[str, Any] | None) -> WhereShape:
    if not where:
        return ()
    return tuple(
        (name, value if value is None or isinstance(value, bool) else type(value))
        for name, value in (where or {}).items()
    )


@dataclass
class Rows:
    """The rows of one read: their column names, and the rows themselves, streamed in batches.

    Usable only inside the ``with`` block of :meth:`Source.read` that produced it.
    """

    columns: tuple[str, ...]
    _fetch: Callable[[], Sequence[Sequence[Any]]]
    """The next batch of rows; empty when there are no more."""
    _doing: str
    _whom: Callable[[], list[Any]] | None = None
    _granted: Callable[[], list[Any]] | None = None
    _finished: bool = False

    def granted(self) -> set[tuple[str, str]]:
        """The (person, title) pairs among the rows that a granting title verdict let through
        (:attr:`Allowed.titles`), asked of the database in the read's own snapshot; empty when
        no verdict grants anything."""
        if self._granted is None:
            return set()
        with translate(StoreError, self._doing):
            return {(str(person), str(title)) for person, title in self._granted()}

    def whom(self) -> list[Any]:
        """Whom the rows are about: each distinct value of the collection's subject field (a
        person, or a group) among them, once every row has been read: on PostgreSQL gathered
        from the rows themselves (the subject read beside the fields, and cut off), on SQLite
        asked of the database in the read's own transaction, so of the same rows (a read made
        with ``whom``, through a temporary table)."""
        if self._whom is None:
            raise InvalidInput("this read was not asked whom its rows are about (read(whom=True))")
        if not self._finished:
            raise InvalidInput("whom the rows are about is known once every row has been read")
        with translate(StoreError, self._doing):
            return self._whom()

    def batches(self) -> Iterator[Sequence[Sequence[Any]]]:
        """The rows, a batch at a time (at most the read's ``batch_size`` each)."""
        while True:
            with translate(StoreError, self._doing):
                batch = self._fetch()
            if not batch:
                self._finished = True
                return
            yield batch

    def __iter__(self) -> Iterator[Sequence[Any]]:
        for batch in self.batches():
            yield from batch


@dataclass(frozen=True, slots=True)
class Aggregate:
    """The groups an aggregate kept (each at least the minimum size) and how many it dropped."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    suppressed: int


@dataclass(frozen=True, slots=True)
class BoundedAggregate:
    """Every group of an aggregate over at most ``max_rows`` rows of each person, none dropped.

    The exact figures a differentially private answer is computed from (the gateway adds the
    noise, and chooses which groups show, before anything leaves): each group's keys and
    measures, in ``columns`` and ``rows``; ``people`` holds, for each row, how many people it
    counts when each person is counted in one group only (the group of the first of their rows
    kept); ``contributors`` whom the rows kept are about.
    """

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    people: list[int]
    contributors: frozenset[str]


_KEPT = "_accord_n"
"""The column numbering each person's rows in random order, in a bounded aggregate."""

_MEASURE = re.compile(r"^(count|count_distinct|sum)(?:\(([A-Za-z_][A-Za-z0-9_]*)\))?$")
_DAY = re.compile(r"^day\(([A-Za-z_][A-Za-z0-9_]*)\)$")


def _plain(query: Select[Any], dialect: Dialect) -> bool:
    """No selected column of ``query`` needs SQLAlchemy's type processing.

    Asked of the type as the dialect implements it: a date-time column reflected from SQLite is
    the generic type, which converts nothing, while SQLite's own parses the stored text.
    """
    for col in query.selected_columns:
        try:
            process = col.type.dialect_impl(dialect).result_processor(dialect, None)
        except Exception:  # noqa: BLE001 - a type that needs the server's word is not plain
            return False
        if process is not None:
            return False
    return True


def _column(conn: Connection, query: Select[Any], doing: str) -> list[Any]:
    """The one column of ``query``'s rows, on the driver's cursor where the column is plain."""
    if _plain(query, conn.dialect):
        out: list[Any] = []
        with driver_rows(conn, query, BATCH, doing) as fetch:
            for batch in batches(fetch):
                out.extend([value for (value,) in batch])
        return out
    return list(conn.execute(query).scalars())


def _all(conn: Connection, query: Select[Any]) -> list[Any]:
    return [tuple(row) for row in conn.execute(query)]


def _judged_by_title(
    admitted: ColumnElement[bool],
    ids: Table | list[Any],
    verdicts: Table,
    person: ColumnElement[Any],
    title: ColumnElement[Any],
    *,
    granting: bool,
) -> ColumnElement[bool]:
    """The condition for a row to be returned, given the people's condition ``admitted`` (their
    ``ids``) and a table of title verdicts (without granting ones, only an anti-join).

    With granting verdicts the rows are still picked by person first (the allowed people and
    those granted a title, one semi-join the database drives by the person column's index), and
    only then judged by title: ``(allowed OR granted) AND NOT denied``.
    """

    def verdict(allowed: bool) -> ColumnElement[bool]:
        return exists().where(
            verdicts.c[PERSON] == person,
            verdicts.c[TITLE] == title,
            verdicts.c[ALLOWED] == (true() if allowed else false()),
        )

    denied = not_(verdict(False))
    if not granting:
        return and_(admitted, denied)
    granted_people = select(verdicts.c[PERSON]).where(verdicts.c[ALLOWED] == true())
    picked: ColumnElement[bool]
    if isinstance(ids, Table):
        picked = person.in_(union(select(ids.c[PERSON]), granted_people))
        # Under OR, PostgreSQL cannot make ``IN (SELECT ...)`` a join, and hashes the ids only
        # if they fit in work_mem: else it scans them for every row. A lookup of the row's
        # person in the ids' primary key costs the same on both databases at any size.
        # (``admitted`` is then exactly the row's person among the ids: a collection judged by
        # title is about one person.)
        admitted = exists().where(ids.c[PERSON] == person)
    else:
        picked = or_(person.in_(ids), person.in_(granted_people))
    return and_(picked, denied, or_(admitted, verdict(True)))


def _whom_query(
    table: Table,
    restricted: FromClause,
    subject: str,
    *,
    ids_table: Table | None,
    verdicts: Table | None,
    title: ColumnElement[Any] | None,
    granting: bool,
    admitted: ColumnElement[bool],
    conditions: list[ColumnElement[bool]],
) -> Select[Any]:
    """The distinct subjects of the rows a read selects (``admitted`` and ``conditions``), as
    one query.

    Through a temporary table of ids, each candidate person once, kept if they have a row the
    read returns: an index seek or two a person, rather than the distinct people of every row
    read again. The candidate is already the row's person, so the row is judged by its title
    only (:func:`_judged_by_title`, without its semi-join on the people): an allowed person's
    row unless its title is denied them, a granted (person, title)'s rows whoever the person.
    """
    if ids_table is None or restricted is not table:
        distinct = select(table.c[subject]).select_from(restricted)
        return distinct.where(admitted, *conditions).distinct()
    person = table.c[subject]
    candidate = ids_table.c[PERSON]

    def has_row(*judged: ColumnElement[bool]) -> ColumnElement[bool]:
        # ``SELECT 1``, not ``SELECT *``: with nothing but the person to judge, SQLite answers
        # from the person column's index alone, without reading the row.
        return exists(select(literal_column("1")).where(person == candidate, *judged, *conditions))

    kept = has_row()
    if verdicts is not None and title is not None:
        v = verdicts.c
        denied_them = exists().where(v[PERSON] == candidate, v[ALLOWED] == false())
        denied = exists().where(v[PERSON] == person, v[TITLE] == title, v[ALLOWED] == false())
        # Only someone denied a title needs their rows' titles looked at.
        kept = case((denied_them, has_row(not_(denied))), else_=kept)
    allowed = select(candidate.label(PERSON)).where(kept)
    if not granting or verdicts is None or title is None:
        return allowed
    v = verdicts.c
    granted = select(v[PERSON]).where(
        v[ALLOWED] == true(), exists().where(person == v[PERSON], title == v[TITLE], *conditions)
    )
    return union(allowed, granted)  # type: ignore[return-value]


def _whose_rows(
    fetch: Callable[[], Sequence[Sequence[Any]]], width: int, at: int
) -> tuple[Callable[[], Sequence[Sequence[Any]]], Callable[[], list[Any]]]:
    """Batches of ``fetch`` cut to their first ``width`` values, and whom they are about: the
    distinct values at ``at`` of every row fetched (:meth:`Rows.whom` asks once all were)."""
    seen: set[Any] = set()
    whose = itemgetter(at)
    kept: Callable[[Sequence[Any]], tuple[Any, ...]] = (
        itemgetter(*range(width)) if width > 1 else (lambda row: (row[0],))
    )

    def next_batch() -> Sequence[Sequence[Any]]:
        batch = fetch()
        if not batch:
            return batch
        seen.update(map(whose, batch))
        return list(map(kept, batch))

    return next_batch, lambda: list(seen)


@contextmanager
def _cursor(
    conn: Connection, query: Select[Any], batch_size: int, doing: str, *, direct: bool = True
) -> Iterator[Callable[[], Sequence[Sequence[Any]]]]:
    """A function fetching the query's rows a batch at a time.

    Where ``direct`` and no selected column needs SQLAlchemy's type processing (text, numbers:
    what a party's tables mostly hold), the rows come straight from the driver's cursor, a
    server-side one on PostgreSQL (:func:`accord.store.driver.driver_rows`): several times faster
    for a release of millions of rows than building SQLAlchemy rows. Otherwise SQLAlchemy streams
    them, with its cache of compiled statements (what a small read, repeated for person after
    person, wants).
    """
    if direct and _plain(query, conn.dialect):
        with driver_rows(conn, query, batch_size, doing) as fetch:
            yield fetch
        return
    with translate(StoreError, doing):
        result = conn.execute(query, execution_options={"yield_per": batch_size})
    try:
        yield lambda: result.fetchmany(batch_size)
    finally:
        with translate(StoreError, doing):
            result.close()


class Source:
    """A party's own database (``engine``) as its dataset declaration describes it."""

    def __init__(self, engine: Engine, dataset: Dataset) -> None:
        self.engine = engine
        self.dataset = dataset
        self._tables: dict[str, Table] = {}
        self._id_types: dict[str, Any] = {}
        self._prepared: dict[tuple[Any, ...], Prepared] = {}
        self._checked: dict[tuple[Any, ...], tuple[Dataset, Collection, tuple[str, ...], str]] = {}
        """Reads checked against the declaration (:meth:`_checked_read`)."""

    # -- the declaration against the database ---------------------------------------------------

    def _where(self, c: Collection) -> str:
        return f"dataset {self.dataset.id}: collection {c.name}"

    def _reflect(self, conn: Connection, name: str, columns: Iterable[str], what: str) -> Table:
        table = self._tables.get(name)
        if table is None:
            try:
                table = Table(name, MetaData(), autoload_with=conn)
            except NoSuchTableError as exc:
                raise InvalidInput(f"{what}: the database has no table {name!r}") from exc
            self._tables[name] = table
        missing = sorted(set(columns) - set(table.c.keys()))
        if missing:
            raise InvalidInput(
                f"{what}: table {name} has no column {', '.join(repr(m) for m in missing)}"
            )
        return table

    def _table(self, conn: Connection, c: Collection) -> Table:
        return self._reflect(conn, c.name, c.field_names, self._where(c))

    def _members(self, conn: Connection, c: Collection) -> Table | None:
        if c.group is None:
            return None
        g = c.group
        return self._reflect(
            conn, g.members, (g.member_group, g.member_person), f"{self._where(c)}: group members"
        )

    def check(self) -> None:
        """Check that every declared collection, field and members table exists in the database."""
        with (
            translate(StoreError, f"checking dataset {self.dataset.id}"),
            self.engine.connect() as conn,
        ):
            for c in self.dataset.collections:
                self._table(conn, c)
                self._members(conn, c)

    def _fields(self, c: Collection, names: Iterable[str], what: str) -> list[str]:
        """``names`` (bare or ``collection.field``), checked against the declaration."""
        out: list[str] = []
        for name in names:
            collection, dot, bare = name.rpartition(".")
            if dot and collection != c.name:
                raise InvalidInput(
                    f"{self._where(c)}: {what} {name!r} belongs to another collection"
                )
            if c.field(bare) is None:
                raise InvalidInput(
                    f"{self._where(c)}: {what} {bare!r} is not declared "
                    f"(declared: {', '.join(c.field_names)})"
                )
            out.append(bare)
        return out

    # -- the rows of allowed people ------------------------------------------------------------

    def _subject_type(self, conn: Connection, c: Collection, table: Table, subject: str) -> Any:
        members = self._members(conn, c)
        if c.group is not None and members is not None:
            return members.c[c.group.member_person].type
        return table.c[subject].type

    def _restricted(
        self,
        conn: Connection,
        c: Collection,
        table: Table,
        allowed: Table | list[Any] | BindParameter[Any],
        *,
        group: Group,
        subject: str,
    ) -> tuple[FromClause, ColumnElement[bool]]:
        """``table``, and a condition, that leave only the rows of allowed people (or groups).

        ``allowed`` is the temporary table of their ids, or the few ids themselves (or an
        expanding parameter that will hold them).
        """
        members = self._members(conn, c)
        if c.group is None or members is None:
            # A semi-join: each row once, however the ids were given. SQLite then looks the
            # rows up by the person column's index, PostgreSQL hashes the ids.
            person = table.c[subject]
            if isinstance(allowed, Table):
                return table, person.in_(select(allowed.c[PERSON]))
            return table, person.in_(allowed)
        g = c.group
        group_id = members.c[g.member_group]
        member = members.c[g.member_person]
        if isinstance(allowed, Table):
            ids = allowed.c[PERSON]
            source: FromClause = members.outerjoin(allowed, ids == member)
            admitted_count = func.count(ids)
        else:
            # The members among the few ids, counted without a join (a null member never is).
            source = members
            admitted_count = func.count(case((member.in_(allowed), 1)))
        having = (
            admitted_count == func.count()
            if group is Group.EVERY_PARTICIPANT
            else (admitted_count > 0)
        )
        admitted = (
            select(group_id.label("group_id"))
            .select_from(source)
            .group_by(group_id)
            .having(having)
            .subquery("admitted_groups")
        )
        return table.join(admitted, admitted.c.group_id == table.c[g.field]), true()

    def _conditions(
        self, c: Collection, table: Table, where: Mapping[str, Any] | None, *, bound: bool = False
    ) -> list[ColumnElement[bool]]:
        """Equality conditions on ``table``; with ``bound``, each value other than ``None`` or a
        boolean is a parameter (``where_0``, ...) typed as SQLAlchemy types the value."""
        where = where or {}
        names = self._fields(c, where, "condition field")
        out: list[ColumnElement[bool]] = []
        for i, (name, value) in enumerate(zip(names, where.values(), strict=True)):
            column = table.c[name]
            if value is None:
                out.append(column.is_(None))
                continue
            compared = column == value
            right = getattr(compared, "right", None)
            if bound and not isinstance(value, bool) and isinstance(right, BindParameter):
                out.append(column == bindparam(f"where_{i}", None, type_=right.type))
            else:
                out.append(compared)
        return out

    def _check_party(self, c: Collection, allowed: Allowed) -> None:
        if allowed.party is not None and allowed.party != self.dataset.party:
            raise InvalidInput(
                f"{self._where(c)}: the allowed people are {allowed.party}'s, but the dataset is "
                f"{self.dataset.party}'s"
            )

    @contextmanager
    def _allowed_rows(
        self, c: Collection, allowed: Allowed, doing: str, *, snapshot: bool = False
    ) -> Iterator[
        tuple[Connection, Table, FromClause, ColumnElement[bool], Table | None, Table | None]
    ]:
        """A connection in a transaction, the collection's table, its rows of allowed people
        (what to select from, and a condition), the temporary table of the allowed ids (``None``
        when they were bound as parameters: a small read, at most a few people's rows), and,
        when the read carries title verdicts, their temporary table.

        For a collection with a title field, the title verdicts (:attr:`Allowed.titles`) sit in
        a temporary table of their own, and the condition is ``(person allowed AND NOT (person,
        title) denied) OR (person, title) granted``: judged on each row's own title.

        With ``snapshot``, every query of the transaction sees the same database: on PostgreSQL
        the transaction is REPEATABLE READ; on SQLite it is begun explicitly, and a transaction
        holds its snapshot from its first read.

        The transaction is rolled back and the temporary table dropped on exit: reading leaves
        nothing behind in the party's database.
        """
        self._check_party(c, allowed)
        with translate(StoreError, doing):
            conn = self.engine.connect()
        allowed_table: Table | None = None
        titles_table: Table | None = None
        try:
            with translate(StoreError, doing):
                if snapshot and conn.dialect.name == "postgresql":
                    conn = conn.execution_options(isolation_level="REPEATABLE READ")
                conn.begin()
                if snapshot and conn.dialect.name == "sqlite":
                    # pysqlite begins a transaction only before a write; a read must not see
                    # two states of the database.
                    conn.exec_driver_sql("BEGIN")
                table = self._table(conn, c)
                subject = c.subject_field
                # A catalogue (about no person) is read whole; anything else only where allowed.
                restricted: FromClause = table
                admitted: ColumnElement[bool] = true()
                ids: Table | list[Any] | None = None
                if subject is not None:
                    id_type = self._subject_type(conn, c, table, subject)
                    ids = allowed.few(id_type)
                    if ids is None:
                        ids = allowed_table = load_allowed(conn, allowed, id_type)
                    restricted, admitted = self._restricted(
                        conn, c, table, ids, group=allowed.group, subject=subject
                    )
                if allowed.titles:
                    person, title = (table.c[name] for name in self._title_fields(c))
                    titles_table = load_titles(conn, allowed.titles, person.type, title.type)
                    admitted = _judged_by_title(
                        admitted,
                        ids if ids is not None else [],
                        titles_table,
                        person,
                        title,
                        granting=allowed.granting,
                    )
            yield conn, table, restricted, admitted, allowed_table, titles_table
        finally:
            with translate(StoreError, doing):
                try:
                    conn.rollback()
                    for temporary in (allowed_table, titles_table):
                        if temporary is not None:
                            drop_allowed(conn, temporary)
                finally:
                    conn.close()

    def _title_fields(self, c: Collection) -> tuple[str, str]:
        """The person and title fields of a collection whose rows are judged by title."""
        if c.title is None or c.person is None:
            raise InvalidInput(
                f"{self._where(c)}: title verdicts are for a collection about one person that "
                "names its title field (title)"
            )
        return c.person, c.title

    # -- whom rows are about (never released) ----------------------------------------------------

    def people_in(self, collection: str, where: Mapping[str, Any]) -> set[str]:
        """Whom the rows of ``collection`` matching ``where`` are about (its person field).

        For the gateway to judge only those people (a person's friends, say) rather than
        everyone; nothing read here is released.
        """
        c = self.dataset.collection(collection)
        if c.person is None:
            raise InvalidInput(f"{self._where(c)}: the collection names no person field")
        doing = f"finding whom rows of {self.dataset.id}.{c.name} are about"
        with translate(StoreError, doing), self.engine.connect() as conn:
            table = self._table(conn, c)
            query = select(table.c[c.person]).where(*self._conditions(c, table, where)).distinct()
            return {str(person) for (person,) in conn.execute(query)}

    def members_of(self, collection: str, groups: Iterable[Any]) -> set[str]:
        """The members of ``groups`` of a collection about groups, from its members table.

        For the gateway to judge only the people in a person's own threads; nothing read here is
        released.
        """
        c = self.dataset.collection(collection)
        wanted = sorted(set(groups), key=str)
        doing = f"finding the members of groups of {self.dataset.id}.{c.name}"
        out: set[str] = set()
        with translate(StoreError, doing), self.engine.connect() as conn:
            members = self._members(conn, c)
            if members is None or c.group is None:
                raise InvalidInput(f"{self._where(c)}: the collection is not about groups")
            g = c.group
            for chunk in chunked(wanted, FEW):
                query = (
                    select(members.c[g.member_person])
                    .where(members.c[g.member_group].in_(chunk))
                    .distinct()
                )
                out.update(str(person) for (person,) in conn.execute(query))
        return out

    # -- reads -----------------------------------------------------------------------------------

    def _checked_read(
        self,
        collection: str,
        fields: Iterable[str],
        where: Mapping[str, Any] | None,
        batch_size: int,
    ) -> tuple[Collection, tuple[str, ...], str]:
        """The collection a read names, its fields' bare names, and what it is doing (for
        errors), once its fields, conditions and batch size are checked against the declaration.

        The declaration is fixed: a read of the same fields under conditions on the same fields
        is checked once, and then only its batch size.
        """
        fields = fields if type(fields) is tuple else tuple(fields)
        key = (collection, fields, tuple(where) if where else ())
        known = self._checked.get(key)
        if known is not None and known[0] is self.dataset:
            if batch_size < 1:
                raise InvalidInput(f"batch_size must be at least 1, not {batch_size}")
            return known[1:]
        c = self.dataset.collection(collection)
        names = self._fields(c, fields, "field")
        if not names:
            raise InvalidInput(f"{self._where(c)}: a read names at least one field")
        if batch_size < 1:
            raise InvalidInput(f"batch_size must be at least 1, not {batch_size}")
        self._fields(c, where or {}, "condition field")
        if len(self._checked) >= _PREPARED_KINDS:
            self._checked.clear()
        doing = f"reading {self.dataset.id}.{c.name}"
        self._checked[key] = (self.dataset, c, tuple(names), doing)
        return c, tuple(names), doing

    @contextmanager
    def read(
        self,
        collection: str,
        fields: Iterable[str],
        allowed: Allowed,
        *,
        where: Mapping[str, Any] | None = None,
        batch_size: int = BATCH,
        whom: bool = False,
    ) -> Iterator[Rows]:
        """The named fields of the rows of ``collection`` about ``allowed`` people, streamed.

        ``fields`` are declared field names (``title_id`` or ``watch_events.title_id``);
        ``where`` holds equality conditions on declared fields (``{"sent_via": "reelix"}``), a
        ``None`` value meaning ``IS NULL``. Use inside ``with``; the rows are readable until it
        ends. With ``whom``, :meth:`Rows.whom` says whom the rows are about without the subject
        among the fields (for a release of millions of rows, one query instead of a column more
        in every row, on SQLite; on PostgreSQL the subject rides along and is cut off, which
        costs less there), known once every row has been read; the read then holds one snapshot
        of the database from its first row to its last question.
        """
        c, names_t, doing = self._checked_read(collection, fields, where, batch_size)
        names = list(names_t)
        self._check_party(c, allowed)
        preparable = not whom and not allowed.titles and _preparable(where)
        ids = self._few_ids(c, allowed, doing) if preparable else None
        if ids is not None:
            prepared = self._prepared_read(
                c, names_t, where, group=allowed.group, count=len(ids), doing=doing
            )
            values: dict[str, Any] = {_IDS: ids}
            if where:
                values.update((f"where_{i}", v) for i, v in enumerate(where.values()))
            with prepared_read(self.engine, prepared, values, batch_size, doing) as fetch:
                yield Rows(names_t, fetch, doing)
            return
        with self._allowed_rows(c, allowed, doing, snapshot=whom or allowed.granting) as (
            conn,
            table,
            restricted,
            admitted,
            ids_table,
            verdicts,
        ):
            granting = verdicts if allowed.granting else None
            conditions = self._conditions(c, table, where)
            columns = [table.c[n] for n in names]
            asked: Callable[[], list[Any]] | None = None
            carried: int | None = None
            if whom:
                subject = c.subject_field
                if subject is None:
                    raise InvalidInput(f"{self._where(c)}: a catalogue's rows are about nobody")
                if conn.dialect.name == "postgresql":
                    # On PostgreSQL the subject rides along in each row, dropped as the rows
                    # come: measured, a column more costs less than asking afterwards, person by
                    # person, who has a row (the other way round on SQLite).
                    if subject in names:
                        carried = names.index(subject)
                    else:
                        carried = len(columns)
                        columns.append(table.c[subject])
                else:
                    title = table.c[self._title_fields(c)[1]] if verdicts is not None else None
                    distinct = _whom_query(
                        table,
                        restricted,
                        subject,
                        ids_table=ids_table,
                        verdicts=verdicts,
                        title=title,
                        granting=granting is not None,
                        admitted=admitted,
                        conditions=conditions,
                    )
                    asked = partial(_column, conn, distinct, doing)
            query = select(*columns).select_from(restricted).where(admitted, *conditions)
            granted_rows = None
            if granting is not None:
                # From the few granting verdicts, each looking its rows up by person: not a
                # second pass over every row read.
                person, title = (table.c[name] for name in self._title_fields(c))
                v = granting.c
                pairs = select(v[PERSON], v[TITLE]).where(
                    v[ALLOWED] == true(),
                    exists().where(person == v[PERSON], title == v[TITLE], *conditions),
                )
                granted_rows = partial(_all, conn, pairs)
            with _cursor(conn, query, batch_size, doing, direct=ids_table is not None) as fetched:
                fetch = fetched
                if carried is not None:
                    fetch, asked = _whose_rows(fetched, len(names), carried)
                yield Rows(tuple(names), fetch, doing, asked, granted_rows)

    # -- a few people's rows, by a statement prepared once per kind of read ---------------------

    def _few_ids(self, c: Collection, allowed: Allowed, doing: str) -> list[Any] | None:
        """The allowed ids as values of the subject column, if they are a few known ones (and
        the collection is about people or groups); else ``None``."""
        subject = c.subject_field
        if subject is None:
            return None
        id_type = self._id_types.get(c.name)
        if id_type is None:
            with translate(StoreError, doing), self.engine.connect() as conn:
                id_type = self._subject_type(conn, c, self._table(conn, c), subject)
            self._id_types[c.name] = id_type
        return allowed.few(id_type)

    def _prepared_read(
        self,
        c: Collection,
        names: tuple[str, ...],
        where: Mapping[str, Any] | None,
        *,
        group: Group,
        count: int,
        doing: str,
    ) -> Prepared:
        """The read of ``names`` of ``c`` about ``count`` ids, for conditions shaped as ``where``,
        compiled for the source's database (once per kind of read)."""
        key = (c.name, names, _where_shape(where), group, count)
        prepared = self._prepared.get(key)
        if prepared is not None:
            return prepared
        subject = c.subject_field
        if subject is None:  # pragma: no cover - _few_ids gives no ids for a catalogue
            raise InvalidInput(f"{self._where(c)}: a catalogue is read whole")
        with translate(StoreError, doing), self.engine.connect() as conn:
            table = self._table(conn, c)
            placeholders = [None] * count
            ids = bindparam(_IDS, placeholders, expanding=True, type_=self._id_types[c.name])
            restricted, admitted = self._restricted(
                conn, c, table, ids, group=group, subject=subject
            )
            query = (
                select(*(table.c[n] for n in names))
                .select_from(restricted)
                .where(admitted, *self._conditions(c, table, where, bound=True))
            )
            variables = [_IDS] + [
                f"where_{i}"
                for i, v in enumerate((where or {}).values())
                if v is not None and not isinstance(v, bool)
            ]
            prepared = prepare(conn.dialect, query, variables)
        if len(self._prepared) >= _PREPARED_KINDS:
            self._prepared.clear()
        self._prepared[key] = prepared
        return prepared

    def read_all(
        self,
        collection: str,
        fields: Iterable[str],
        allowed: Allowed,
        *,
        where: Mapping[str, Any] | None = None,
    ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        """:meth:`read`, with every row in memory at once: for small reads."""
        with self.read(collection, fields, allowed, where=where) as rows:
            return rows.columns, [tuple(r) for r in rows]

    # -- aggregates -----------------------------------------------------------------------------

    def aggregate(
        self,
        collection: str,
        group_by: Sequence[str],
        measures: Mapping[str, str],
        min_group_size: int,
        allowed: Allowed,
        *,
        where: Mapping[str, Any] | None = None,
    ) -> Aggregate:
        """Counts and sums per group over the rows of allowed people; small groups dropped.

        ``group_by`` holds declared fields, or ``day(field)`` for the calendar day of a timestamp
        (its column keeps the field's name). ``measures`` maps each output column to ``count``
        (rows), ``count(field)`` (non-null values), ``count_distinct(field)`` or ``sum(field)``.
        A group is shown only if at least ``min_group_size`` distinct people (for a collection of
        rows about groups: distinct groups; about no person: rows) contribute to it; the rest are
        dropped in SQL and only their number is returned (k-anonymity-style suppression).
        """
        c = self.dataset.collection(collection)
        if min_group_size < 1:
            raise InvalidInput(f"min_group_size must be at least 1, not {min_group_size}")
        keys = [self._group_key(c, spec) for spec in group_by]
        specs = [self._measure(c, name, spec) for name, spec in measures.items()]
        labels = [k[0] for k in keys] + list(measures)
        dupes = sorted({n for n in labels if labels.count(n) > 1})
        if dupes:
            raise InvalidInput(f"{self._where(c)}: repeated output columns: {', '.join(dupes)}")
        doing = f"aggregating {self.dataset.id}.{c.name}"
        self._fields(c, where or {}, "condition field")
        with self._allowed_rows(c, allowed, doing) as (conn, table, restricted, admitted, _, _):
            key_exprs = [self._key_expr(conn, table, field, by_day) for _, field, by_day in keys]
            conditions = [admitted, *self._conditions(c, table, where)]
            subject = c.subject_field
            contributors = (
                func.count() if subject is None else func.count(distinct(table.c[subject]))
            )

            def grouped(*columns: Any) -> Select[Any]:
                return (
                    select(*columns).select_from(restricted).where(*conditions).group_by(*key_exprs)
                )

            kept = (
                grouped(
                    *(e.label(k[0]) for e, k in zip(key_exprs, keys, strict=True)),
                    *(self._measure_expr(table, name, fn, field) for name, fn, field in specs),
                )
                .having(contributors >= min_group_size)
                .order_by(*key_exprs)
            )
            # With no grouping the whole selection is one group; its count stands in for keys.
            dropped = grouped(*(key_exprs or [contributors])).having(contributors < min_group_size)
            with translate(StoreError, doing):
                rows = [tuple(r) for r in conn.execute(kept)]
                suppressed = conn.execute(
                    select(func.count()).select_from(dropped.subquery("dropped"))
                ).scalar_one()
        return Aggregate(tuple(labels), rows, int(suppressed))

    def bounded_aggregate(
        self,
        collection: str,
        group_by: Sequence[str],
        measures: Mapping[str, str],
        allowed: Allowed,
        *,
        max_rows: int,
        where: Mapping[str, Any] | None = None,
    ) -> BoundedAggregate:
        """Counts per group over at most ``max_rows`` rows of each allowed person, kept at random.

        Each person's rows are numbered in random order by a window function (``row_number()
        OVER (PARTITION BY person ORDER BY random())``, on SQLite and PostgreSQL alike) and only
        the first ``max_rows`` are counted, so one person changes the counts of all the groups
        together by at most ``max_rows``: the sensitivity differential privacy calibrates its
        noise to. Measures are ``count``, ``count(field)`` and ``count_distinct(field)``; a sum's
        sensitivity would depend on values no one bounded, and is refused. Nothing is dropped:
        which groups may show is the caller's to choose, with noise. Read in one snapshot.
        """
        c = self.dataset.collection(collection)
        subject = c.person
        if subject is None or c.group is not None:
            raise InvalidInput(
                f"{self._where(c)}: a bounded aggregate bounds each person's rows, and the rows "
                "of this collection are about no one person"
            )
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
            raise InvalidInput(f"max_rows must be a whole number of at least 1, not {max_rows!r}")
        keys = [self._group_key(c, spec) for spec in group_by]
        specs = [self._measure(c, name, spec) for name, spec in measures.items()]
        summed = sorted(name for name, fn, _ in specs if fn == "sum")
        if summed:
            raise InvalidInput(
                f"{self._where(c)}: measures {', '.join(summed)} are sums; a bounded aggregate "
                "counts (a sum's sensitivity depends on bounds on its values)"
            )
        labels = [k[0] for k in keys] + list(measures)
        dupes = sorted({n for n in labels if labels.count(n) > 1})
        if dupes:
            raise InvalidInput(f"{self._where(c)}: repeated output columns: {', '.join(dupes)}")
        doing = f"aggregating {self.dataset.id}.{c.name} over bounded rows"
        self._fields(c, where or {}, "condition field")
        used = dict.fromkeys([subject, *(f for _, f, _ in keys), *(f for _, _, f in specs if f)])
        with self._allowed_rows(c, allowed, doing, snapshot=True) as (
            conn,
            table,
            restricted,
            admitted,
            _,
            _,
        ):
            conditions = [admitted, *self._conditions(c, table, where)]
            numbered = (
                select(
                    *(table.c[name] for name in used),
                    func.row_number()
                    .over(partition_by=table.c[subject], order_by=func.random())
                    .label(_KEPT),
                )
                .select_from(restricted)
                .where(*conditions)
                .subquery("bounded")
            )
            key_exprs = [self._key_expr(conn, numbered, field, by_day) for _, field, by_day in keys]
            counted = select(
                *(e.label(k[0]) for e, k in zip(key_exprs, keys, strict=True)),
                *(self._measure_expr(numbered, name, fn, field) for name, fn, field in specs),
                func.count(case((numbered.c[_KEPT] == 1, 1))).label("_accord_people"),
            ).where(numbered.c[_KEPT] <= max_rows)
            if key_exprs:
                counted = counted.group_by(*key_exprs).order_by(*key_exprs)
            whom = select(table.c[subject]).select_from(restricted).where(*conditions).distinct()
            with translate(StoreError, doing):
                found = [tuple(r) for r in conn.execute(counted)]
                contributors = frozenset(str(p) for (p,) in conn.execute(whom))
        rows = [r[:-1] for r in found]
        return BoundedAggregate(tuple(labels), rows, [int(r[-1]) for r in found], contributors)

    def _group_key(self, c: Collection, spec: str) -> tuple[str, str, bool]:
        match = _DAY.fullmatch(spec)
        name = match.group(1) if match else spec
        self._fields(c, [name], "group_by field")
        return name, name, match is not None

    def _key_expr(
        self, conn: Connection, table: FromClause, field: str, by_day: bool
    ) -> ColumnElement[Any]:
        column = table.c[field]
        if not by_day:
            return column
        if conn.dialect.name == "sqlite":
            return func.date(column)
        return cast(column, Date)

    def _measure(self, c: Collection, name: str, spec: str) -> tuple[str, str, str | None]:
        if not IDENTIFIER.fullmatch(name):
            raise InvalidInput(f"{self._where(c)}: measure name {name!r} is not an identifier")
        match = _MEASURE.fullmatch(spec.replace(" ", ""))
        if match is None or (match.group(1) != "count" and match.group(2) is None):
            raise InvalidInput(
                f"{self._where(c)}: measure {name}: {spec!r} is not count, count(field), "
                "count_distinct(field) or sum(field)"
            )
        fn, field = match.group(1), match.group(2)
        if field is not None:
            self._fields(c, [field], f"field of measure {name}")
        return name, fn, field

    @staticmethod
    def _measure_expr(table: FromClause, name: str, fn: str, field: str | None) -> Any:
        if field is None:
            return func.count().label(name)
        column = table.c[field]
        if fn == "count":
            return func.count(column).label(name)
        if fn == "count_distinct":
            return func.count(distinct(column)).label(name)
        return func.sum(column).label(name)

    # -- writes ----------------------------------------------------------------------------------

    def write(self, collection: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert ``rows`` into ``collection`` in one transaction; any error writes nothing.

        Every row has the same keys, all declared fields, among them the field saying whom the
        row is about (if the collection is about anyone). Returns the number of rows written.
        """
        c = self.dataset.collection(collection)
        doing = f"writing {self.dataset.id}.{c.name}"
        written = 0
        keys: frozenset[str] | None = None
        with translate(StoreError, doing), self.engine.begin() as conn:
            table = self._table(conn, c)
            for chunk in chunked(rows, BATCH):
                for index, row in enumerate(chunk, written):
                    keys = self._check_row(c, row, index, keys)
                conn.execute(table.insert(), [dict(row) for row in chunk])
                written += len(chunk)
        return written

    def _check_row(
        self, c: Collection, row: Mapping[str, Any], index: int, keys: frozenset[str] | None
    ) -> frozenset[str]:
        these = frozenset(row)
        self._fields(c, sorted(these), f"row {index}: field")
        if c.subject_field is not None and c.subject_field not in these:
            raise InvalidInput(
                f"{self._where(c)}: row {index} does not say whom it is about "
                f"(field {c.subject_field!r})"
            )
        if keys is not None and these != keys:
            raise InvalidInput(
                f"{self._where(c)}: row {index} has fields {', '.join(sorted(these))}; "
                f"every row needs the same fields as the first ({', '.join(sorted(keys))})"
            )
        return these
