"""Parties and the people each one knows, in the store.

Repositories take a :class:`~sqlalchemy.orm.Session` and never commit: the caller owns the
transaction, so one request's writes commit or roll back together.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import Table, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from accord.consent import Person
from accord.errors import InvalidInput, NotFound, StoreError, translate
from accord.jurisdictions import country
from accord.store import tables as t
from accord.store.erased import suppressed_of

T = TypeVar("T")

BATCH = 10_000
"""Rows per executemany batch when loading in bulk."""

IN_CHUNK = 500
"""Ids per ``IN`` list when reading many people (well under every backend's parameter limit)."""

ANALYZE_AFTER = 10_000
"""Rows loaded in one call after which PostgreSQL's planner statistics are refreshed."""


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size``."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def refresh_statistics(session: Session, *tables: Table) -> None:
    """Refresh PostgreSQL's statistics of ``tables`` after a large load.

    Until autovacuum gets round to it, the planner would take a freshly loaded table for empty
    and pick nested loops where the per-person filter wants hash joins (seconds become minutes).
    SQLite's plans for these queries do not depend on statistics.
    """
    if session.get_bind().dialect.name == "postgresql":
        names = ", ".join(
            session.get_bind().dialect.identifier_preparer.quote(t.name) for t in tables
        )
        session.execute(text(f"ANALYZE {names}"))


def upsert(session: Session, table: Table) -> Any:
    """``INSERT`` with ``ON CONFLICT`` for the session's backend (SQLite or PostgreSQL)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"no upsert for database {name!r}")


@dataclass(frozen=True, slots=True)
class Party:
    """An organisation that holds or receives data; ``id`` is what agreements call it."""

    id: str
    name: str

    def __post_init__(self) -> None:
        if not self.id or not all(ch.isalnum() or ch in "-_." for ch in self.id):
            raise InvalidInput(f"party id {self.id!r} must be letters, digits, '-', '_' or '.'")
        if not self.name.strip():
            raise InvalidInput(f"party {self.id} needs a name")


class PartyRepository:
    """Parties: add, get, list."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, party: Party) -> Party:
        """Register ``party``; a second party with the same id is refused."""
        with translate(StoreError, f"adding party {party.id}"):
            if self.session.execute(
                select(t.parties.c.id).where(t.parties.c.id == party.id)
            ).first():
                raise InvalidInput(f"party {party.id} is already registered")
            self.session.execute(t.parties.insert().values(id=party.id, name=party.name))
        return party

    def ensure(self, party: Party) -> Party:
        """The registered party with ``party.id``, registering ``party`` if there is none."""
        try:
            return self.get(party.id)
        except NotFound:
            return self.add(party)

    def get(self, party_id: str) -> Party:
        """The party with this id, or :class:`NotFound`."""
        with translate(StoreError, f"reading party {party_id}"):
            row = self.session.execute(
                select(t.parties.c.id, t.parties.c.name).where(t.parties.c.id == party_id)
            ).first()
        if row is None:
            raise NotFound(f"no party {party_id!r} is registered")
        return Party(row.id, row.name)

    def list(self) -> list[Party]:
        """Every party, by id."""
        with translate(StoreError, "listing parties"):
            rows = self.session.execute(
                select(t.parties.c.id, t.parties.c.name).order_by(t.parties.c.id)
            ).all()
        return [Party(r.id, r.name) for r in rows]

    def require(self, party_ids: Iterable[str], *, needed_for: str) -> None:
        """Raise :class:`NotFound` naming the first of ``party_ids`` that is not registered."""
        wanted = set(party_ids)
        if not wanted:
            return
        with translate(StoreError, f"checking the parties of {needed_for}"):
            known = set(
                self.session.execute(
                    select(t.parties.c.id).where(t.parties.c.id.in_(sorted(wanted)))
                ).scalars()
            )
        missing = sorted(wanted - known)
        if missing:
            raise NotFound(f"no party {missing[0]!r} is registered; add it before {needed_for}")


class PeopleRepository:
    """The people each party knows, with their jurisdiction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def upsert_many(self, people: Iterable[Person]) -> int:
        """Insert or update ``people`` (a later entry for the same person wins); how many.

        A person their party erased is left out: a reload from the party's own systems does
        not bring them back (the suppression list, :mod:`accord.store.erased`).
        """
        parties = PartyRepository(self.session)
        checked: set[str] = set()
        suppressed: set[tuple[str, str]] = set()
        count = 0
        for chunk in chunked(people, BATCH):
            rows = {
                (p.party, p.id): {
                    "party": p.party,
                    "person_id": p.id,
                    "jurisdiction": p.jurisdiction,
                    "country": country(p.jurisdiction),
                }
                for p in chunk
            }
            new_parties = {party for party, _ in rows} - checked
            parties.require(new_parties, needed_for="recording its people")
            suppressed |= suppressed_of(self.session, new_parties)
            checked |= new_parties
            if suppressed:
                rows = {key: row for key, row in rows.items() if key not in suppressed}
                if not rows:
                    continue
            stmt = upsert(self.session, t.people)
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.people.c.party, t.people.c.person_id],
                set_={
                    "jurisdiction": stmt.excluded.jurisdiction,
                    "country": stmt.excluded.country,
                },
            )
            with translate(StoreError, "recording people"):
                self.session.execute(stmt, list(rows.values()))
            count += len(rows)
        if count >= ANALYZE_AFTER:
            with translate(StoreError, "refreshing statistics of people"):
                refresh_statistics(self.session, t.people)
        return count

    def get(self, party: str, person_id: str) -> Person:
        """The person ``person_id`` of ``party``, or :class:`NotFound`."""
        found = self.get_many(party, [person_id])
        if person_id not in found:
            raise NotFound(f"party {party} has no person {person_id!r}")
        return found[person_id]

    def get_many(self, party: str, person_ids: Iterable[str] | None = None) -> dict[str, Person]:
        """The people of ``party`` among ``person_ids`` (all of them for None), by id.

        Ids the party does not know are left out.
        """
        cols = (t.people.c.person_id, t.people.c.jurisdiction)
        base = select(*cols).where(t.people.c.party == party)
        out: dict[str, Person] = {}
        with translate(StoreError, f"reading people of {party}"):
            if person_ids is None:
                batches: Iterable[Sequence[Any]] = [self.session.execute(base).all()]
            else:
                batches = (
                    self.session.execute(base.where(t.people.c.person_id.in_(chunk))).all()
                    for chunk in chunked(dict.fromkeys(person_ids), IN_CHUNK)
                )
            for rows in batches:
                for row in rows:
                    out[row.person_id] = Person(row.person_id, party, row.jurisdiction)
        return out

    def count(self, party: str) -> int:
        """How many people ``party`` has recorded."""
        with translate(StoreError, f"counting people of {party}"):
            return int(
                self.session.execute(
                    select(func.count()).select_from(t.people).where(t.people.c.party == party)
                ).scalar_one()
            )
