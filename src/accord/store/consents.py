"""Consents and opt-outs in the store, and the facts a per-person filter is judged on.

:meth:`ConsentRepository.bulk_add` is the loading path for large populations: plain
``executemany`` over the consent table and its child tables, in batches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, and_, func, or_, select, update
from sqlalchemy.orm import Session

from accord.consent import (
    Consent,
    Method,
    Operation,
    OptOut,
    OptOutKind,
    PersonFacts,
    Scope,
    SignalSource,
    utc,
)
from accord.errors import ConsentError, NotFound, StoreError, translate
from accord.store import tables as t
from accord.store.erased import suppressed_of
from accord.store.people import (
    ANALYZE_AFTER,
    BATCH,
    IN_CHUNK,
    PartyRepository,
    PeopleRepository,
    chunked,
    refresh_statistics,
)


def operations_text(operations: Iterable[Operation]) -> str:
    """How a set of operations is stored: sorted values, comma-joined (``read,write``)."""
    return ",".join(sorted(o.value for o in operations))


def _consent_row(c: Consent) -> dict[str, Any]:
    return {
        "id": c.id,
        "person": c.person,
        "controller": c.controller,
        "recipient": c.recipient,
        "jurisdiction": c.jurisdiction,
        "given_at": c.given_at,
        "expires_at": c.expires_at,
        "withdrawn_at": c.withdrawn_at,
        "method": c.method.value,
        "notice": c.notice,
        "distinct_and_separate": c.distinct_and_separate,
        "withdrawal_method": c.withdrawal_method.value if c.withdrawal_method else None,
        "scope": c.scope.value,
        "disclosure": c.disclosure,
        "operations": operations_text(c.operations),
    }


def _child_rows(consents: Sequence[Consent]) -> dict[Table, list[dict[str, str]]]:
    return {
        t.consent_purposes: [
            {"consent_id": c.id, "purpose": k} for c in consents for k in c.purposes
        ],
        t.consent_categories: [
            {"consent_id": c.id, "category": k} for c in consents for k in c.categories
        ],
        t.consent_excluded_titles: [
            {"consent_id": c.id, "title": k} for c in consents for k in c.excluded_titles
        ],
    }


_CHILDREN: tuple[tuple[Table, str], ...] = (
    (t.consent_purposes, "purpose"),
    (t.consent_categories, "category"),
    (t.consent_excluded_titles, "title"),
)


def _refuse_erased(session: Session, people: Sequence[tuple[str, str]]) -> None:
    """Refuse a record about a person their party erased: it would bring them back."""
    erased = suppressed_of(session, {party for party, _ in people})
    gone = sorted({pair for pair in people if pair in erased})
    if gone:
        party, person = gone[0]
        raise ConsentError(
            f"party {party} erased person {person!r}: no record about them is taken again "
            "(someone who comes back is recorded under a new id)"
        )


class ConsentRepository:
    """Consent records: add, withdraw, read one person's, and load many people's facts."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, consent: Consent) -> Consent:
        """Record ``consent``; its id must be new and its parties registered."""
        PartyRepository(self.session).require(
            {consent.controller, consent.recipient}, needed_for=f"recording consent {consent.id}"
        )
        _refuse_erased(self.session, [(consent.controller, consent.person)])
        with translate(StoreError, f"recording consent {consent.id}"):
            if self.session.execute(
                select(t.consents.c.id).where(t.consents.c.id == consent.id)
            ).first():
                raise ConsentError(f"consent {consent.id} is already recorded")
            self._insert([consent])
        return consent

    def bulk_add(self, consents: Iterable[Consent], *, batch_size: int = BATCH) -> int:
        """Record many consents with ``executemany``, ``batch_size`` at a time; how many.

        Nothing is checked beyond what the database enforces (new ids, registered parties),
        except that each batch's parties are looked up once for a clear message.
        """
        parties = PartyRepository(self.session)
        checked: set[str] = set()
        count = 0
        for batch in chunked(consents, batch_size):
            named = {c.controller for c in batch} | {c.recipient for c in batch}
            parties.require(named - checked, needed_for="recording consents")
            checked |= named
            _refuse_erased(self.session, [(c.controller, c.person) for c in batch])
            with translate(StoreError, f"recording {len(batch)} consents"):
                self._insert(batch)
            count += len(batch)
        if count >= ANALYZE_AFTER:
            with translate(StoreError, "refreshing statistics of consents"):
                refresh_statistics(self.session, t.consents, *(table for table, _ in _CHILDREN))
        return count

    def _insert(self, batch: Sequence[Consent]) -> None:
        self.session.execute(t.consents.insert(), [_consent_row(c) for c in batch])
        for table, rows in _child_rows(batch).items():
            if rows:
                self.session.execute(table.insert(), rows)

    def get(self, consent_id: str) -> Consent:
        """The consent with this id, or :class:`NotFound`."""
        found = self._load(t.consents.c.id == consent_id)
        if not found:
            raise NotFound(f"no consent {consent_id!r} is recorded")
        return found[0]

    def withdraw(self, consent_id: str, at: datetime) -> Consent:
        """Withdraw the consent at ``at``; an earlier withdrawal stands. The record as it is now."""
        current = self.get(consent_id)
        if current.withdrawn_at is not None and current.withdrawn_at <= utc(at):
            return current
        withdrawn = current.withdrawn(at)  # refuses a withdrawal before the consent was given
        with translate(StoreError, f"withdrawing consent {consent_id}"):
            self.session.execute(
                update(t.consents)
                .where(t.consents.c.id == consent_id)
                .values(withdrawn_at=withdrawn.withdrawn_at)
            )
        return withdrawn

    def for_person(self, party: str, person: str) -> list[Consent]:
        """Every consent ``person`` gave ``party`` (as controller), oldest first."""
        return self._load(and_(t.consents.c.controller == party, t.consents.c.person == person))

    def spent(self, consent_ids: Iterable[str]) -> dict[str, datetime]:
        """When a release relied on each of ``consent_ids`` that is for one disclosure and spent."""
        u = t.consent_uses.c
        found: dict[str, datetime] = {}
        with translate(StoreError, "reading the consents releases relied on"):
            for chunk in chunked(consent_ids, IN_CHUNK):
                rows = self.session.execute(
                    select(u.consent_id, u.used_at).where(u.consent_id.in_(chunk))
                )
                found.update({str(i): utc(used) for i, used in rows})
        return found

    def count(self) -> int:
        """How many consents are recorded."""
        with translate(StoreError, "counting consents"):
            return int(
                self.session.execute(select(func.count()).select_from(t.consents)).scalar_one()
            )

    def facts(self, party: str, people: Iterable[str] | None = None) -> dict[str, PersonFacts]:
        """Each of ``people`` (all of ``party``'s for None) with their consents and opt-outs.

        A few queries per 500 people; people ``party`` has not recorded are left out.
        """
        known = PeopleRepository(self.session).get_many(party, people)
        consents: dict[str, list[Consent]] = defaultdict(list)
        outs: dict[str, list[OptOut]] = defaultdict(list)
        opt_outs = OptOutRepository(self.session)
        batches: Iterable[list[str] | None] = [None] if people is None else chunked(known, IN_CHUNK)
        for batch in batches:
            where = t.consents.c.controller == party
            out_where = t.opt_outs.c.controller == party
            if batch is not None:
                where = and_(where, t.consents.c.person.in_(batch))
                out_where = and_(out_where, t.opt_outs.c.person.in_(batch))
            for c in self._load(where):
                consents[c.person].append(c)
            for person, o in opt_outs.load(out_where):
                outs[person].append(o)
        return {
            pid: PersonFacts(person, tuple(consents[pid]), tuple(outs[pid]))
            for pid, person in known.items()
        }

    def _load(self, where: ColumnElement[bool]) -> list[Consent]:
        """The consents matching ``where`` with their child rows: four queries."""
        with translate(StoreError, "reading consents"):
            rows = self.session.execute(
                select(t.consents).where(where).order_by(t.consents.c.given_at, t.consents.c.id)
            ).all()
            if not rows:
                return []
            keys: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
            for table, column in _CHILDREN:
                children = self.session.execute(
                    select(table.c.consent_id, table.c[column])
                    .join(t.consents, t.consents.c.id == table.c.consent_id)
                    .where(where)
                ).all()
                for consent_id, key in children:
                    keys[consent_id][column].add(key)
        return [_consent(row, keys[row.id]) for row in rows]


def _consent(row: Row[Any], keys: dict[str, set[str]]) -> Consent:
    return Consent(
        id=row.id,
        person=row.person,
        controller=row.controller,
        recipient=row.recipient,
        purposes=frozenset(keys["purpose"]),
        categories=frozenset(keys["category"]),
        jurisdiction=row.jurisdiction,
        given_at=row.given_at,
        method=Method(row.method),
        notice=row.notice,
        operations=frozenset(Operation(o) for o in row.operations.split(",")),
        distinct_and_separate=row.distinct_and_separate,
        withdrawal_method=Method(row.withdrawal_method) if row.withdrawal_method else None,
        expires_at=row.expires_at,
        withdrawn_at=row.withdrawn_at,
        scope=Scope(row.scope),
        disclosure=row.disclosure,
        excluded_titles=frozenset(keys["title"]),
    )


class OptOutRepository:
    """Opt-out signals: add, revoke, read."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, opt_out: OptOut) -> int:
        """Record ``opt_out``; its id in the store."""
        PartyRepository(self.session).require(
            {opt_out.controller}, needed_for=f"recording an opt-out of {opt_out.person}"
        )
        _refuse_erased(self.session, [(opt_out.controller, opt_out.person)])
        with translate(StoreError, f"recording an opt-out of {opt_out.person}"):
            result = self.session.execute(
                t.opt_outs.insert().returning(t.opt_outs.c.id),
                [
                    {
                        "person": opt_out.person,
                        "controller": opt_out.controller,
                        "kind": opt_out.kind.value,
                        "source": opt_out.source.value,
                        "at": opt_out.at,
                        "revoked_at": opt_out.revoked_at,
                    }
                ],
            )
            return int(result.scalar_one())

    def revoke(self, controller: str, person: str, kind: OptOutKind, at: datetime) -> int:
        """End, at ``at``, every opt-out of ``kind`` by ``person`` still in force then; how many."""
        o = t.opt_outs.c
        with translate(StoreError, f"revoking the opt-outs of {person}"):
            result = self.session.execute(
                update(t.opt_outs)
                .where(
                    o.controller == controller,
                    o.person == person,
                    o.kind == kind.value,
                    o.at <= at,
                    or_(o.revoked_at.is_(None), o.revoked_at > at),
                )
                .values(revoked_at=utc(at))
            )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def for_person(self, controller: str, person: str) -> list[OptOut]:
        """Every opt-out ``person`` sent ``controller``, oldest first."""
        where = and_(t.opt_outs.c.controller == controller, t.opt_outs.c.person == person)
        return [o for _, o in self.load(where)]

    def load(self, where: ColumnElement[bool]) -> list[tuple[str, OptOut]]:
        """The opt-outs matching ``where``, with their person, oldest first."""
        with translate(StoreError, "reading opt-outs"):
            rows = self.session.execute(
                select(t.opt_outs).where(where).order_by(t.opt_outs.c.at, t.opt_outs.c.id)
            ).all()
        return [
            (
                r.person,
                OptOut(
                    person=r.person,
                    controller=r.controller,
                    kind=OptOutKind(r.kind),
                    source=SignalSource(r.source),
                    at=r.at,
                    revoked_at=r.revoked_at,
                ),
            )
            for r in rows
        ]
