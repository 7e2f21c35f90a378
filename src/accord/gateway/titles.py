"""Title by title: what a read of a collection with a title field may return, and what it spends.

Rows that carry a title (a viewing, a recommended title) are judged per (person, title), not per
person only (18 U.S.C. 2710(b)(2)(B): consent given for one disclosure, (ii)(I), and withdrawn
case by case, (iii)):

* a request naming a title reads only that title's rows: the title becomes a condition on the
  collection's title field, and a condition asking for another title is refused;
* a request naming none drops the rows of titles a person's consents exclude, and returns the rows
  of titles a person consented to for one disclosure only, through the title verdicts of
  :mod:`accord.store.title_sql`;
* a record release that relied on a consent for one disclosure spends it (recorded in the store
  before the release is logged, so a failure to record releases nothing).

A write posting rows into such a collection is judged the same way, row by row (:func:`admit_rows`).

Aggregates and matches honour exclusions the same way, and spend nothing: without a title named
they count no consent for one disclosure; with one named, the people's filter judges that
title's consents as it does for records (a consent for one disclosure of it counts, unspent).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine

from accord.agreements import Granularity
from accord.errors import InvalidInput
from accord.filters import PersonFilter
from accord.requests import Request
from accord.sources import Allowed
from accord.sources.allowed import TitleVerdict
from accord.sources.datasets import Collection
from accord.store import title_sql
from accord.store.title_sql import Pair


@dataclass(frozen=True, slots=True)
class TitleScope:
    """The title verdicts a read carries, and the consents for one disclosure it may spend."""

    verdicts: tuple[TitleVerdict, ...] = ()
    spendable: Mapping[Pair, frozenset[str]] = field(default_factory=dict)

    def allowing(self, allowed: Allowed) -> Allowed:
        """``allowed`` with these title verdicts."""
        return replace(allowed, titles=self.verdicts) if self.verdicts else allowed

    def spent(self, request: Request, about: Iterable[str], granted: Iterable[Pair]) -> set[str]:
        """The ids of the consents a release relied on: for a request naming a title, those of
        the people released for it; else those of the (person, title) pairs granted rows."""
        if not self.spendable:
            return set()
        if request.title is not None:
            pairs: Iterable[Pair] = ((person, request.title) for person in about)
        else:
            pairs = granted
        return {i for pair in pairs for i in self.spendable.get(pair, ())}


def with_title(
    c: Collection, request: Request, where: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """``where`` with the request's title as a condition on the title field.

    A request naming a title reads only that title's rows; a condition asking for another is
    refused, as is a request naming a title of a collection whose rows carry none.
    """
    title = request.title
    if title is None:
        return where
    if c.title is None:
        raise InvalidInput(
            f"the request is about title {title!r}, but collection {c.name} names no title "
            "field: only rows that say their title can be limited to one",
            where=f"request {request.id}",
        )
    asked = {k.removeprefix(c.name + "."): v for k, v in (where or {}).items()}
    if c.title in asked and str(asked[c.title]) != title:
        raise InvalidInput(
            f"the request is about title {title!r}, but its condition asks for {c.name}."
            f"{c.title} = {asked[c.title]!r}: a read about one title reads only that title's rows",
            where=f"request {request.id}",
        )
    return {**asked, c.title: title}


def scope(
    engine: Engine,
    c: Collection,
    request: Request,
    f: PersonFilter,
    granularity: Granularity,
    *,
    kept: Sequence[TitleVerdict] | None = None,
) -> TitleScope:
    """What a read of ``c`` may return by title (see the module docstring).

    ``kept`` are the title verdicts of ``f``'s people as kept between requests
    (:class:`accord.store.maintained.MaintainedAllowed`), if at hand; else they are judged here.

    Call it before the people are judged: the consents it may spend are read first, so that a
    consent another release spends meanwhile is either among them (and recording its use again
    fails, releasing nothing) or already spent for every later query of this read. (A read of
    everyone without a title brings the kept people up to date first: a consent for one
    disclosure spent in between is then missing here, so its title is not granted.)
    """
    if c.title is None:
        return TitleScope()
    records = granularity is Granularity.RECORD
    spendable = title_sql.spendable(engine, f, request.title) if records else {}
    verdicts: list[TitleVerdict] = []
    if request.title is None:
        # A title granted to someone without a consent for one disclosure of it is granted to
        # someone the people's filter lets through anyway: only the denials, and the grants a
        # consent for one disclosure makes, change what is read.
        verdicts = [
            (person, title, ok)
            for person, title, ok in (title_sql.title_verdicts(engine, f) if kept is None else kept)
            if not ok or (person, title) in spendable
        ]
    return TitleScope(tuple(verdicts), spendable)


@dataclass(frozen=True, slots=True)
class Written:
    """The rows of a write its people's consents allow, title by title."""

    keep: list[int]
    """The indexes of the rows to write."""
    people: frozenset[str]
    """Whom the kept rows are about."""
    withheld: int
    """Rows of people otherwise let through, withheld for their title."""
    spent: set[str]
    """The ids of the consents for one disclosure the kept rows rely on."""


def admit_rows(
    c: Collection,
    request: Request,
    by_title: TitleScope,
    *,
    rows: Sequence[Mapping[str, Any]],
    person_of: Sequence[str],
    admitted: set[str],
) -> Written:
    """Which of a write's rows go, judged by person and, where the collection names its title
    field, by title: ``admitted`` are the people let through whatever the title, ``by_title``
    the write's :func:`scope` (worked out before them)."""
    if c.title is None:
        keep = [i for i, person in enumerate(person_of) if person in admitted]
        return Written(keep, frozenset(person_of[i] for i in keep), 0, set())
    titles = [None if row.get(c.title) is None else str(row[c.title]) for row in rows]
    if request.title is not None:
        other = [i for i, title in enumerate(titles) if title != request.title]
        if other:
            raise InvalidInput(
                f"the request is about title {request.title!r}, but rows "
                f"{', '.join(map(str, other[:5]))} of {c.name} are not: a write about one title "
                "posts only that title's rows",
                where=f"request {request.id}",
            )
    verdicts: dict[tuple[str, str | None], bool] = {
        (person, title): ok for person, title, ok in by_title.verdicts
    }
    keep = [
        i
        for i, person in enumerate(person_of)
        if verdicts.get((person, titles[i]), person in admitted)
    ]
    by_default = sum(1 for person in person_of if person in admitted)
    kept_by_default = sum(1 for i in keep if person_of[i] in admitted)
    spent = {
        consent
        for i in keep
        for consent in by_title.spendable.get((person_of[i], titles[i] or ""), ())
    }
    return Written(keep, frozenset(person_of[i] for i in keep), by_default - kept_by_default, spent)
