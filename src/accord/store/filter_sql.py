"""A :class:`~accord.filters.PersonFilter` as one SQL query over the store.

The query reads the controller's ``people`` and keeps a person when (see :mod:`accord.filters`,
whose :meth:`~accord.filters.PersonFilter.judge` is the reference this is tested against)::

    party = controller
    AND person_id IN subjects                          -- when the request named people
    AND (country IN (...) OR jurisdiction IN (...))    -- the clause's regions
    AND (NOT applies(rule) OR requirement(rule))       -- for each rule

where ``applies`` is the rule's jurisdiction set and ``person_id <> exempt``, and the requirement
is an ``EXISTS`` over the person's consents (purpose and category matched against the ancestors
of the needed keys with ``IN`` lists over the child tables) or a ``NOT EXISTS`` over their
opt-outs. Every condition is on non-null columns, so ``NOT`` never meets a ``NULL``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from itertools import combinations
from typing import Any

from sqlalchemy import (
    CTE,
    BindParameter,
    ColumnElement,
    Connection,
    Engine,
    FromClause,
    Select,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from accord.consent import Operation, Scope
from accord.errors import StoreError, translate
from accord.filters import (
    REGION_RULE,
    ConsentNeed,
    Group,
    NoOptOut,
    PersonFilter,
    Rule,
)
from accord.jurisdictions import Jurisdictions
from accord.store import tables as t
from accord.store.consents import operations_text
from accord.store.driver import Prepared, pooled, prepare, prepared_all, prepared_rows
from accord.taxonomy import ancestors

_person = t.people.c

FEW_SUBJECTS = 500
"""A filter naming at most this many people reads only their consents (by index); a filter
naming more, or none, scans the controller's consents once."""


class _Filtered(ColumnElement[str]):
    """A column compared without its index: ``+column`` on SQLite, the column elsewhere.

    A consent's purposes (categories) are the rows of its key in a primary key that leads with
    ``consent_id``. With ``purpose IN (a, a.b, a.b.c)`` SQLite seeks the index once per listed
    key; reading the consent's few rows once and filtering them is markedly faster on a million
    people. PostgreSQL plans these as hash joins and needs no hint.
    """

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]  # noqa: RUF012

    def __init__(self, column: ColumnElement[str]) -> None:
        self.column = column
        self.type = column.type


@compiles(_Filtered)
def _compile_filtered(element: _Filtered, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(_Filtered, "sqlite")
def _compile_filtered_sqlite(element: _Filtered, compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + compiler.process(element.column, **kw)


def _in(column: ColumnElement[Any], values: Iterable[str]) -> ColumnElement[bool]:
    wanted = sorted(set(values))
    return column.in_(wanted) if wanted else false()


def within(places: Jurisdictions) -> ColumnElement[bool]:
    """The person lives in ``places`` (countries by the country column, subdivisions exactly)."""
    if places.everywhere:
        if not (places.except_countries or places.except_subdivisions):
            return true()
        # Both columns are NOT NULL, so NOT never meets a NULL.
        return not_(
            or_(
                _in(_person.country, places.except_countries),
                _in(_person.jurisdiction, places.except_subdivisions),
            )
        )
    return or_(
        _in(_person.country, places.countries), _in(_person.jurisdiction, places.subdivisions)
    )


def _operation_sets(operation: Operation) -> list[str]:
    """Every stored operations value that includes ``operation``."""
    others = [o for o in Operation if o is not operation]
    return sorted(
        operations_text({operation, *extra})
        for n in range(len(others) + 1)
        for extra in combinations(others, n)
    )


Shared = dict[tuple[Any, ...], CTE]
"""The consents a query's rules share, by what they ask of a consent besides how it was given."""


def _holders_base(need: ConsentNeed, f: PersonFilter) -> Select[Any]:
    """Consents in force at ``f.at`` covering ``need`` (its recipient, operation, purpose,
    category and title), with what the rules may further ask of them."""
    c = t.consents.alias("c")
    excluded = t.consent_excluded_titles.alias("cx")
    conditions = consent_covers(c, need, f)
    if f.subjects is not None and len(f.subjects) <= FEW_SUBJECTS:
        # Only the named people's consents: an index seek each, not a scan of everyone's.
        conditions.append(c.c.person.in_(_subjects(f)))
    if need.title is None:
        # Without a title only an ongoing consent can be in scope.
        conditions.append(c.c.scope == Scope.ONGOING.value)
    else:
        conditions.append(
            not_(exists().where(excluded.c.consent_id == c.c.id, excluded.c.title == need.title))
        )
        conditions.append(or_(c.c.scope == Scope.ONGOING.value, one_disclosure_for(c, need.title)))
    return select(c.c.person, c.c.distinct_and_separate, c.c.given_at).where(*conditions)


def consent_covers(c: FromClause, need: ConsentNeed, f: PersonFilter) -> list[ColumnElement[bool]]:
    """Consent ``c`` is the controller's, in force at ``f.at``, for ``need``'s recipient, and
    covers its operation, purpose and category (whatever its scope and titles)."""
    purposes = t.consent_purposes.alias("cp")
    categories = t.consent_categories.alias("cc")
    return [
        c.c.controller == f.controller,
        c.c.recipient == need.recipient,
        c.c.operations.in_(_operation_sets(need.operation)),
        c.c.given_at <= _at(f, c.c.given_at),
        or_(c.c.expires_at.is_(None), c.c.expires_at > _at(f, c.c.expires_at)),
        or_(c.c.withdrawn_at.is_(None), c.c.withdrawn_at > _at(f, c.c.withdrawn_at)),
        exists().where(
            purposes.c.consent_id == c.c.id,
            _Filtered(purposes.c.purpose).in_(ancestors(need.purpose)),
        ),
        exists().where(
            categories.c.consent_id == c.c.id,
            _Filtered(categories.c.category).in_(ancestors(need.category)),
        ),
    ]


def one_disclosure_for(c: FromClause, title: Any) -> ColumnElement[bool]:
    """Consent ``c`` is for one disclosure, about ``title``, and no release has relied on it yet
    (18 U.S.C. 2710(b)(2)(B)(ii)(I): given at the time that disclosure is sought)."""
    used = t.consent_uses.alias("cu")
    return and_(
        c.c.scope == Scope.ONE_DISCLOSURE.value,
        c.c.disclosure == title,
        not_(exists().where(used.c.consent_id == c.c.id)),
    )


def consent_holders(
    need: ConsentNeed, f: PersonFilter, shared: Shared | None = None
) -> Select[Any]:
    """The people of ``f.controller`` holding a consent that meets ``need`` at ``f.at``.

    Uncorrelated: the database computes it once per query (from the consents, the smaller side)
    and probes it for each person, instead of searching the consents again for every person.
    When ``f`` names a few people, only their consents are read.
    Rules that ask the same of a consent but for how it was given (the clause's consent, the
    VPPA's and the GDPR's, say) share one materialised scan of the consents through ``shared``.
    """
    key = (need.recipient, need.operation, need.purpose, need.category, need.title)
    base = shared.get(key) if shared is not None else None
    if base is None:
        base = _holders_base(need, f).cte(f"consent_holders_{len(shared or ())}")
        base = base.prefix_with("MATERIALIZED")
        if shared is not None:
            shared[key] = base
    conditions: list[ColumnElement[bool]] = []
    if need.distinct_and_separate:
        conditions.append(base.c.distinct_and_separate == true())
    oldest = need.given_after(f.at)
    if oldest is not None:
        conditions.append(
            base.c.given_at > bindparam(_oldest(need), oldest, type_=base.c.given_at.type)
        )
    return select(base.c.person).where(*conditions)


def consent_exists(
    need: ConsentNeed, f: PersonFilter, shared: Shared | None = None
) -> ColumnElement[bool]:
    """Some consent of the person meets ``need`` at ``f.at``."""
    return _person.person_id.in_(consent_holders(need, f, shared))


def no_opt_out(need: NoOptOut, f: PersonFilter) -> ColumnElement[bool]:
    """No opt-out of the person's of ``need.kind`` is in force at ``f.at``."""
    o = t.opt_outs.alias("o")
    return not_(
        exists().where(
            o.c.controller == f.controller,
            o.c.person == _person.person_id,
            o.c.kind == need.kind.value,
            o.c.at <= _at(f, o.c.at),
            or_(o.c.revoked_at.is_(None), o.c.revoked_at > _at(f, o.c.revoked_at)),
        )
    )


def applies(rule: Rule) -> ColumnElement[bool]:
    """``rule`` binds the person: they live where it applies and are not exempt."""
    where = within(rule.applies_to)
    if rule.exempt is None:
        return where
    return and_(_person.person_id != rule.exempt, where)


def requirement(rule: Rule, f: PersonFilter, shared: Shared | None = None) -> ColumnElement[bool]:
    """The person meets ``rule``'s requirement (whether or not it applies)."""
    req = rule.requirement
    if isinstance(req, NoOptOut):
        return no_opt_out(req, f)
    return consent_exists(req, f, shared)


def not_erased() -> ColumnElement[bool]:
    """The person is not on their party's suppression list (``erased_people``).

    Erasure deletes the person's row, and no load brings it back; every read still joins
    against the list, so a row restored from a backup or written around Accord stays out.
    """
    e = t.erased_people.alias("erased")
    return not_(exists().where(e.c.party == _person.party, e.c.person_id == _person.person_id))


def _considered(f: PersonFilter) -> list[ColumnElement[bool]]:
    """The people a filter looks at: the controller's not erased, and only the named ones if
    any are."""
    where = [_person.party == f.controller, not_erased()]
    if f.subjects is not None:
        where.append(_person.person_id.in_(_subjects(f)))
    return where


def allowed_people_query(f: PersonFilter) -> Select[str]:
    """The ids of the controller's people that ``f`` lets through: one ``SELECT``."""
    shared: Shared = {}
    passes = [or_(not_(applies(rule)), requirement(rule, f, shared)) for rule in f.rules]
    return select(_person.person_id).where(*_considered(f), within(f.regions), *passes)


Store = Session | Connection | Engine
"""Where the people are judged: a session's connection, a connection, or a connection of the
engine's own (a read needs none of the ORM's machinery)."""


def allowed_people(store: Store, f: PersonFilter) -> set[str]:
    """The ids of the controller's people that ``f`` lets through.

    The query is built once per kind of filter (see :func:`_query_of_kind`) and run with this
    filter's instant and people as parameters. For a filter naming a few people (a person's own
    read) it is also compiled once per number of people, and run on the driver's cursor.
    """
    doing = f"filtering the people of {f.controller}"
    if f.subjects is not None and len(f.subjects) <= FEW_SUBJECTS:
        if isinstance(store, Engine):
            # A connection as the engine's reads share them (accord.store.driver.pooled).
            with translate(StoreError, doing):
                prepared = _prepared_few(f, store.dialect)
            return {person for (person,) in prepared_all(store, prepared, _parameters(f), doing)}
        with translate(StoreError, doing), _dbapi_connection(store) as (connection, dialect):
            prepared = _prepared_few(f, dialect)
            with prepared_rows(connection, prepared, _parameters(f), FEW_SUBJECTS, doing) as rows:
                return {person for batch in iter(rows, []) for (person,) in batch}
    kind = _kind(f)
    with translate(StoreError, doing), connection_of(store) as conn:
        # A Core query needs none of the ORM's execution steps.
        return set(conn.execute(_query_of_kind(kind), _parameters(f)).scalars())


@contextmanager
def connection_of(store: Store) -> Iterator[Connection]:
    """``store``'s connection, or one of the engine's for the block."""
    if isinstance(store, Engine):
        with store.connect() as conn:
            yield conn
    else:
        yield store.connection() if isinstance(store, Session) else store


@contextmanager
def _dbapi_connection(store: Store) -> Iterator[tuple[Any, Dialect]]:
    """The driver's connection under ``store`` (for an engine, one from its pool for the block,
    rolled back as it goes back, or the one the request holds: :func:`~accord.store.driver.pooled`),
    and its dialect."""
    if isinstance(store, Engine):
        with pooled(store) as connection:
            yield connection, store.dialect
    else:
        conn = store.connection() if isinstance(store, Session) else store
        yield conn.connection, conn.dialect


# -- one query per kind of filter --------------------------------------------------------------
#
# A filter's instant, its people and the oldest consent its rules accept are bound parameters
# with these names; everything else in the query (controller, regions, rules, grouping) is its
# kind. Requests of one kind (a person reading their own record, time after time) then share one
# statement, and SQLAlchemy's cache of compiled statements, instead of building both anew.

_AT = "filter_at"
_SUBJECTS = "filter_subjects"


def _at(f: PersonFilter, column: ColumnElement[Any]) -> BindParameter[Any]:
    return bindparam(_AT, f.at, type_=column.type)


def _subjects(f: PersonFilter) -> BindParameter[Any]:
    return bindparam(_SUBJECTS, sorted(f.subjects or ()), expanding=True)


def _oldest(need: ConsentNeed) -> str:
    return f"filter_oldest_{need.max_years}"


def _parameters(f: PersonFilter) -> dict[str, Any]:
    """Every parameter of ``f``'s kind of query, with ``f``'s values."""
    values: dict[str, Any] = {_AT: f.at}
    if f.subjects is not None:
        values[_SUBJECTS] = sorted(f.subjects)
    for rule in f.rules:
        need = rule.requirement
        if isinstance(need, ConsentNeed) and need.max_years is not None:
            values[_oldest(need)] = need.given_after(f.at)
    return values


def _kind(f: PersonFilter) -> PersonFilter:
    """``f`` with what its parameters carry replaced by placeholders: the key of its kind."""
    few = f.subjects is not None and len(f.subjects) <= FEW_SUBJECTS
    subjects = None if f.subjects is None else frozenset({"one"} if few else {"many"})
    return replace(f, at=_KIND_AT, subjects=subjects)


_KIND_AT = datetime(2000, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=256)
def _query_of_kind(kind: PersonFilter) -> Select[str]:
    """The query of :func:`allowed_people_query` for filters of ``kind``, checked to be given a
    value for each of its parameters by :func:`_parameters` (one left out would keep the
    placeholder's)."""
    if kind.subjects == frozenset({"many"}):
        kind = replace(kind, subjects=frozenset(str(n) for n in range(FEW_SUBJECTS + 1)))
    query = allowed_people_query(kind)
    named = {
        key
        for key in query.compile().binds
        if key.startswith("filter_") and not key[len("filter_") :].isdigit()
    }
    missing = named - set(_parameters(kind))
    if missing:  # pragma: no cover - a parameter added without its value
        raise StoreError(f"the filter query is given no value for {', '.join(sorted(missing))}")
    return query


@lru_cache(maxsize=256)
def _prepared_of_kind(kind: PersonFilter, dialect: Dialect, count: int) -> Prepared:
    """The query of :func:`_query_of_kind` for ``count`` named people, compiled for ``dialect``
    to run on the driver (``kind`` names a few people)."""
    named = replace(kind, subjects=frozenset(f"person {n}" for n in range(count)))
    return prepare(dialect, allowed_people_query(named), list(_parameters(named)))


_FEW_KINDS: dict[tuple[Any, ...], tuple[Any, Any, PersonFilter, dict[Any, Prepared]]] = {}
"""For filters naming a few people: their kind (:func:`_kind`) and its statements prepared per
dialect and number of people, by the identity of the filter's rules and regions (a decision's
are the policy's own, the same objects request after request) and its other fixed parts."""


def _prepared_few(f: PersonFilter, dialect: Dialect) -> Prepared:
    """:func:`_prepared_of_kind` for ``f`` (naming a few people), without working out and
    hashing its kind again when a filter of its rules and regions was seen before: the kind is
    made of nothing else (the instant and the people are parameters)."""
    count = len(f.subjects or ())
    key = (id(f.rules), id(f.regions), f.controller, f.group, f.regions_reason)
    found = _FEW_KINDS.get(key)
    # The entry holds the rules and regions themselves: their ids are not reused while it lives.
    if found is None or found[0] is not f.rules or found[1] is not f.regions:
        if len(_FEW_KINDS) >= _KINDS_KEPT:
            _FEW_KINDS.clear()
        found = _FEW_KINDS[key] = (f.rules, f.regions, _kind(f), {})
    prepared = found[3].get((dialect, count))
    if prepared is None:
        prepared = found[3][dialect, count] = _prepared_of_kind(found[2], dialect, count)
    return prepared


_KINDS_KEPT = 256


def refusals_query(f: PersonFilter) -> tuple[list[str], Select[Any]]:
    """The rule ids, and one row counting, for each, the people it keeps out."""
    fails: dict[str, ColumnElement[bool]] = {REGION_RULE: not_(within(f.regions))}
    shared: Shared = {}
    for rule in f.rules:
        fails[rule.id] = or_(
            fails.get(rule.id, false()), and_(applies(rule), not_(requirement(rule, f, shared)))
        )
    ids = list(fails)
    counts = [
        func.coalesce(func.sum(case((fails[rule_id], 1), else_=0)), 0).label(f"n{i}")
        for i, rule_id in enumerate(ids)
    ]
    return ids, select(*counts).where(*_considered(f))


def refusals(session: Session, f: PersonFilter) -> dict[str, int]:
    """How many people each rule keeps out, by rule id (the clause's regions included).

    Counted over the people the filter looks at: the controller's, and when the request named
    people, the named ones. A person who fails several rules counts for each, as in
    :meth:`~accord.filters.PersonFilter.judge`.
    """
    ids, query = refusals_query(f)
    with translate(StoreError, f"explaining the filter over the people of {f.controller}"):
        row = session.execute(query).one()
    return {rule_id: int(row[i]) for i, rule_id in enumerate(ids)}


def allowed_groups_query(f: PersonFilter, membership: FromClause | Select[Any]) -> Select[Any]:
    """The ids of the groups ``f`` lets through; ``membership`` has ``group_id``, ``person_id``.

    With :attr:`Group.EVERY_PARTICIPANT` a group passes when every member is let through; with
    :attr:`Group.EACH`, when at least one is. A member who is not one of the controller's people
    (or a null member) is not let through.
    """
    m = membership.subquery("membership") if isinstance(membership, Select) else membership
    # Uncorrelated on purpose: the allowed set is computed once, whatever ``membership`` is.
    allowed = m.c.person_id.in_(allowed_people_query(f).correlate(None))
    admitted = func.sum(case((allowed, 1), else_=0))
    every = f.group is Group.EVERY_PARTICIPANT
    having = admitted == func.count() if every else admitted > 0
    return select(m.c.group_id).group_by(m.c.group_id).having(having)


def allowed_groups(
    session: Session, f: PersonFilter, membership: FromClause | Select[Any]
) -> set[Any]:
    """The ids of the groups in ``membership`` that ``f`` lets through (see the query above)."""
    with translate(StoreError, f"filtering groups of the people of {f.controller}"):
        return set(session.execute(allowed_groups_query(f, membership)).scalars())
