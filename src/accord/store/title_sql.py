"""Title by title: which (person, title) rows a read may release, as set-based SQL over the store.

A row of a collection that names a title field (:attr:`accord.sources.datasets.Collection.title`)
is about a person and a title. Under 18 U.S.C. 2710(b)(2)(B) a consent may exclude titles (the
consumer withdraws "on a case-by-case basis", (iii)) or cover one disclosure of one title ("given
at the time the disclosure is sought", (ii)(I)). So a row about person p and title t may be
released only if, for every rule of the filter that applies to p, some consent of p meets the
rule's need for t: in force, for the recipient, purpose, category and operation, distinct and
separate and recent enough where the rule asks, not excluding t, and either ongoing or for one
disclosure of t that no release has relied on yet.

A read naming no title judges its people with :func:`accord.store.filter_sql.allowed_people_query`,
where only ongoing consents count and no title is excluded: that verdict holds for every title no
consent of theirs mentions. Only the titles a person's consents do mention (excluded, or the title
of a one-disclosure consent) can be judged otherwise, and :func:`title_verdicts_query` judges each
such (person, title) pair in one query. The read then drops the rows of denied pairs and adds the
rows of granted ones (:mod:`accord.sources.allowed`), as a join on the rows themselves.

A release that relied on a consent for one disclosure spends it (:func:`record_uses`): the filter
never counts it again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    FromClause,
    Select,
    and_,
    case,
    exists,
    false,
    insert,
    not_,
    or_,
    select,
    true,
    union,
)

from accord.consent import Scope
from accord.errors import StoreError, translate
from accord.filters import ConsentNeed, NoOptOut, PersonFilter, Rule
from accord.store import tables as t
from accord.store.filter_sql import (
    Store,
    applies,
    connection_of,
    consent_covers,
    no_opt_out,
    one_disclosure_for,
    within,
)
from accord.store.people import chunked

BATCH = 10_000
"""Consent uses per ``executemany``."""

Pair = tuple[str, str]
"""A person's id at the controller, and a title."""


def _needs(f: PersonFilter) -> list[ConsentNeed]:
    return [r.requirement for r in f.rules if isinstance(r.requirement, ConsentNeed)]


def _mentioned(f: PersonFilter) -> FromClause:
    """Every (person, title) a consent of the controller's to a rule's recipient mentions: a
    title it excludes, or the title of a consent for one disclosure."""
    recipients = sorted({need.recipient for need in _needs(f)})
    c = t.consents.alias("mc")
    x = t.consent_excluded_titles.alias("mx")
    d = t.consents.alias("md")
    excluded = (
        select(c.c.person.label("person"), x.c.title.label("title"))
        .join_from(c, x, x.c.consent_id == c.c.id)
        .where(c.c.controller == f.controller, c.c.recipient.in_(recipients))
    )
    once = select(d.c.person.label("person"), d.c.disclosure.label("title")).where(
        d.c.controller == f.controller,
        d.c.recipient.in_(recipients),
        d.c.scope == Scope.ONE_DISCLOSURE.value,
        d.c.disclosure.is_not(None),
    )
    if f.subjects is not None:
        named = sorted(f.subjects)
        excluded = excluded.where(c.c.person.in_(named))
        once = once.where(d.c.person.in_(named))
    return union(excluded, once).subquery("mentioned")


def _met_for_title(
    need: ConsentNeed, f: PersonFilter, person: ColumnElement[Any], title: ColumnElement[Any]
) -> ColumnElement[bool]:
    """Some consent of ``person`` meets ``need`` for ``title`` (a column: the pair's title)."""
    c = t.consents.alias("tc")
    x = t.consent_excluded_titles.alias("tx")
    conditions = [
        *consent_covers(c, need, f),
        c.c.person == person,
        # Correlated explicitly: ``title`` is two levels up, where auto-correlation does not look.
        not_(exists().where(x.c.consent_id == c.c.id, x.c.title == title).correlate_except(x)),
        or_(c.c.scope == Scope.ONGOING.value, one_disclosure_for(c, title)),
    ]
    if need.distinct_and_separate:
        conditions.append(c.c.distinct_and_separate == true())
    oldest = need.given_after(f.at)
    if oldest is not None:
        conditions.append(c.c.given_at > oldest)
    return exists().where(*conditions)


def title_verdicts_query(f: PersonFilter) -> Select[Any]:
    """For each (person, title) the person's consents mention, among the people ``f`` looks at
    and within its regions: ``person``, ``title``, and ``allowed`` (1 when every rule that
    applies to the person is met for that title, else 0).

    ``f`` names no title (its needs have none): a filter for one title is judged whole by
    :func:`~accord.store.filter_sql.allowed_people_query`.
    """
    m = _mentioned(f)
    p = t.people
    person, title = m.c.person, m.c.title

    def met(rule: Rule) -> ColumnElement[bool]:
        req = rule.requirement
        if isinstance(req, NoOptOut):
            return no_opt_out(req, f)
        return _met_for_title(req, f, p.c.person_id, title)

    passes = [or_(not_(applies(rule)), met(rule)) for rule in f.rules]
    allowed = case((and_(true(), *passes), 1), else_=0)
    return (
        select(person, title, allowed.label("allowed"))
        .select_from(m.join(p, and_(p.c.party == f.controller, p.c.person_id == person)))
        .where(within(f.regions))
    )


def title_verdicts(store: Store, f: PersonFilter) -> list[tuple[str, str, bool]]:
    """(person, title, allowed) for every title ``f``'s people's consents mention (see
    :func:`title_verdicts_query`); empty when no rule asks for a consent."""
    if not _needs(f):
        return []
    doing = f"judging the titles of the people of {f.controller}"
    with translate(StoreError, doing), connection_of(store) as conn:
        rows = conn.execute(title_verdicts_query(f)).all()
    return [(str(person), str(title), bool(allowed)) for person, title, allowed in rows]


def spendable_query(f: PersonFilter, title: str | None) -> Select[Any]:
    """The consents for one disclosure a release under ``f`` could rely on: ``person``,
    ``title`` (the disclosure) and ``consent_id``, unspent, meeting some rule's need (its title
    aside); for one ``title`` only, when given."""
    c = t.consents.alias("sc")
    needs: list[list[ColumnElement[bool]]] = []
    for need in _needs(f):
        conditions = consent_covers(c, need, f)
        if need.distinct_and_separate:
            conditions.append(c.c.distinct_and_separate == true())
        oldest = need.given_after(f.at)
        if oldest is not None:
            conditions.append(c.c.given_at > oldest)
        needs.append(conditions)
    covered = [and_(*conditions) for conditions in _absorbed(needs)]
    query = select(c.c.person, c.c.disclosure.label("title"), c.c.id.label("consent_id")).where(
        one_disclosure_for(c, c.c.disclosure if title is None else title),
        or_(false(), *covered),
    )
    if f.subjects is not None:
        query = query.where(c.c.person.in_(sorted(f.subjects)))
    return query


def _absorbed(needs: list[list[ColumnElement[bool]]]) -> list[list[ColumnElement[bool]]]:
    """The needs (each a list of conditions, all of which a consent must meet) less those that
    ask all another one asks and more: ``A OR (A AND B)`` is ``A``. Each need left is a scan of
    the consents for one disclosure (SQLite's plan for an ``OR`` of them), and the rules of a
    filter often ask the same of a consent but for being distinct and separate, or recent."""

    def includes(more: list[ColumnElement[bool]], less: list[ColumnElement[bool]]) -> bool:
        return all(any(have.compare(asked) for have in more) for asked in less)

    return [
        conditions
        for n, conditions in enumerate(needs)
        if not any(
            includes(conditions, other) and (m < n or not includes(other, conditions))
            for m, other in enumerate(needs)
            if m != n
        )
    ]


def spendable(store: Store, f: PersonFilter, title: str | None) -> dict[Pair, frozenset[str]]:
    """The ids of the consents of :func:`spendable_query`, by (person, title)."""
    if not _needs(f):
        return {}
    doing = f"finding the one-disclosure consents of the people of {f.controller}"
    out: dict[Pair, set[str]] = {}
    with translate(StoreError, doing), connection_of(store) as conn:
        for person, disclosure, consent_id in conn.execute(spendable_query(f, title)):
            out.setdefault((str(person), str(disclosure)), set()).add(str(consent_id))
    return {pair: frozenset(ids) for pair, ids in out.items()}


def record_uses(engine: Engine, consent_ids: Iterable[str], at: datetime, request_id: str) -> int:
    """Record that a release under request ``request_id`` relied on these consents for one
    disclosure, in one transaction; returns how many.

    A consent already spent (by a release that got there first) is a conflict on the primary key:
    the error propagates, and the release that asked releases nothing.
    """
    ids = sorted(set(consent_ids))
    if not ids:
        return 0
    doing = "recording the consents for one disclosure a release relied on"
    with translate(StoreError, doing), engine.begin() as conn:
        for chunk in chunked(ids, BATCH):
            conn.execute(
                insert(t.consent_uses),
                [{"consent_id": i, "used_at": at, "request_id": request_id} for i in chunk],
            )
    return len(ids)
