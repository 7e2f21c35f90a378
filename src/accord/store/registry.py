"""The agreement registry in the store: terms as their YAML document, status, reviews, history.

The document is what is stored and published; :meth:`AgreementRepository.get` parses it back, so
what the registry shows is exactly what was reviewed. A new version of an agreement replaces its
terms and sends it back to draft: it needs a new review before anything flows under it.
"""

from __future__ import annotations

import builtins
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Row, func, select, true, update
from sqlalchemy.orm import Session

from accord.agreements import Agreement, Registered, Review, Status, Transition, parse
from accord.consent import utc
from accord.errors import InvalidInput, LifecycleError, NotFound, StoreError, translate
from accord.store import tables as t
from accord.store.driver import fetch_one, kept_in_block
from accord.store.people import PartyRepository, upsert

REVISION_ROW = 1


REVISION_SQL = f"SELECT revision FROM registry_revision WHERE id = {REVISION_ROW}"  # noqa: S608


def revision(conn: Connection) -> int:
    """The registry's revision, read on ``conn`` (see :class:`accord.store.tables.
    RegistryRevisionRow`).

    Read before every decision, so on the driver's cursor with a constant statement: a tenth of
    what SQLAlchemy's execution would cost.
    """
    with translate(StoreError, "reading the agreement registry's revision"):
        row = fetch_one(conn, REVISION_SQL)
    return int(row[0]) if row is not None else 0


_SEEN = "registry_revision"


def remember_revision(engine: Engine, revision: int) -> None:
    """Keep ``revision``, just read on ``engine``, for the rest of the request's
    :func:`~accord.store.driver.reads_shared` block (nothing outside one): the request is then
    decided against the registry as it stood when its token was checked, one read for both."""
    kept = kept_in_block(engine)
    if kept is not None:
        kept[_SEEN] = revision


def revision_seen(engine: Engine) -> int | None:
    """The revision a step of the request's block read already (:func:`remember_revision`), or
    ``None``: read it."""
    kept = kept_in_block(engine)
    return None if kept is None else kept.get(_SEEN)


def count_change(session: Session) -> None:
    """Count a change of the registry, in ``session``'s transaction making it.

    The registry is the agreements and the partner apps registered under them: every process
    that keeps what it read from either (a compiled policy, an app's token and its reviews)
    compares this revision before using it again.
    """
    r = t.registry_revision
    session.execute(
        upsert(session, r)
        .values(id=REVISION_ROW, revision=1)
        .on_conflict_do_update(index_elements=[r.c.id], set_={"revision": r.c.revision + 1})
    )


def _transition_key(tr: Transition) -> tuple[Status, datetime, str, str]:
    return (tr.to, utc(tr.at), tr.by, tr.note)


class AgreementRepository:
    """Agreements as the registry holds them (:class:`accord.agreements.Registered`)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def register(
        self,
        agreement: Agreement,
        document: str,
        *,
        at: datetime | None = None,
        by: str = "registry",
    ) -> Registered:
        """Register ``agreement`` (parsed from ``document``) as a draft.

        A higher version of a registered agreement replaces its terms and returns it to draft,
        with a step in its history saying so; the same document again changes nothing.
        """
        if parse(document, source=f"agreement {agreement.id}") != agreement:
            raise InvalidInput(
                f"the document given for agreement {agreement.id} does not parse to that agreement"
            )
        PartyRepository(self.session).require(
            {agreement.provider, agreement.recipient},
            needed_for=f"registering agreement {agreement.id}",
        )
        now = utc(at) if at is not None else datetime.now(UTC)
        a = t.agreements.c
        with translate(StoreError, f"registering agreement {agreement.id}"):
            row = self.session.execute(
                select(a.version, a.status, a.document).where(a.id == agreement.id)
            ).first()
            terms = {
                "version": agreement.version,
                "title": agreement.title,
                "provider": agreement.provider,
                "recipient": agreement.recipient,
                "document": document,
                "valid_from": agreement.valid_from,
                "valid_until": agreement.valid_until,
                "updated_at": now,
            }
            if row is None:
                self.session.execute(
                    t.agreements.insert().values(
                        id=agreement.id, status=Status.DRAFT.value, created_at=now, **terms
                    )
                )
                self._changed()
                return Registered(agreement)
            if row.version == agreement.version and row.document == document:
                return self.get(agreement.id)
            if agreement.version <= row.version:
                raise LifecycleError(
                    f"agreement {agreement.id} version {row.version} is registered; changed "
                    f"terms need a higher version than {row.version}"
                )
            if row.status == Status.ENDED.value:
                raise LifecycleError(
                    f"agreement {agreement.id} has ended; register new terms under a new id"
                )
            self.session.execute(
                update(t.agreements)
                .where(a.id == agreement.id)
                .values(status=Status.DRAFT.value, **terms)
            )
            self._changed()
            self._append(
                agreement.id,
                self._history_length(agreement.id),
                [
                    Transition(
                        Status.DRAFT,
                        now,
                        by,
                        f"version {agreement.version} replaces version {row.version}; "
                        "it needs a new privacy review",
                    )
                ],
            )
        return self.get(agreement.id)

    def revision(self) -> int:
        """How many times the registry has changed (0 for a store that never recorded it)."""
        return revision(self.session.connection())

    def _changed(self) -> None:
        """Count a change of the registry, in the transaction making it."""
        count_change(self.session)

    def get(self, agreement_id: str) -> Registered:
        """The agreement with its review and history, or :class:`NotFound`."""
        found = self._load(t.agreements.c.id == agreement_id)
        if not found:
            raise NotFound(f"no agreement {agreement_id!r} is registered")
        return found[0]

    def document(self, agreement_id: str) -> str:
        """The YAML document of the agreement's current version."""
        with translate(StoreError, f"reading agreement {agreement_id}"):
            text = self.session.execute(
                select(t.agreements.c.document).where(t.agreements.c.id == agreement_id)
            ).scalar_one_or_none()
        if text is None:
            raise NotFound(f"no agreement {agreement_id!r} is registered")
        return str(text)

    def list(self, status: Status | None = None) -> builtins.list[Registered]:
        """Every agreement (or those with ``status``), by id."""
        where = true() if status is None else t.agreements.c.status == status.value
        return self._load(where)

    def save(self, registered: Registered) -> Registered:
        """Persist where ``registered`` stands: its status, a new review, its new history steps.

        ``registered`` must extend what is stored (loaded, then moved with
        :func:`accord.agreements.advance`); a copy that is stale or has other terms is refused.
        """
        a = registered.agreement
        current = self.get(a.id)
        if current.agreement != a:
            raise StoreError(
                f"agreement {a.id} is stored as version {current.agreement.version} with other "
                "terms; register new terms, then load it again"
            )
        stored = [_transition_key(tr) for tr in current.history]
        given = [_transition_key(tr) for tr in registered.history]
        if given[: len(stored)] != stored:
            raise StoreError(
                f"agreement {a.id} changed since it was loaded; load it again and retry"
            )
        with translate(StoreError, f"saving agreement {a.id}"):
            self._append(a.id, len(stored), registered.history[len(stored) :])
            review = registered.review
            if review is not None and review != current.review:
                self.session.execute(
                    t.agreement_reviews.insert().values(
                        agreement_id=a.id,
                        version=review.version,
                        reviewer=review.reviewer,
                        reviewed_on=review.reviewed_on,
                        findings=review.findings,
                        approved=review.approved,
                    )
                )
            self.session.execute(
                update(t.agreements)
                .where(t.agreements.c.id == a.id)
                .values(status=registered.status.value, updated_at=datetime.now(UTC))
            )
            self._changed()
        return self.get(a.id)

    def _history_length(self, agreement_id: str) -> int:
        return int(
            self.session.execute(
                select(func.count())
                .select_from(t.agreement_transitions)
                .where(t.agreement_transitions.c.agreement_id == agreement_id)
            ).scalar_one()
        )

    def _append(self, agreement_id: str, start: int, steps: Sequence[Transition]) -> None:
        if steps:
            self.session.execute(
                t.agreement_transitions.insert(),
                [
                    {
                        "agreement_id": agreement_id,
                        "seq": start + i,
                        "to_status": tr.to.value,
                        "at": tr.at,
                        "actor": tr.by,
                        "note": tr.note,
                    }
                    for i, tr in enumerate(steps)
                ],
            )

    def _load(self, where: ColumnElement[bool]) -> builtins.list[Registered]:
        """Agreements matching ``where`` with their latest review and history: three queries."""
        a, r, h = t.agreements.c, t.agreement_reviews.c, t.agreement_transitions.c
        with translate(StoreError, "reading agreements"):
            rows = self.session.execute(
                select(a.id, a.document, a.status).where(where).order_by(a.id)
            ).all()
            if not rows:
                return []
            ids = [row.id for row in rows]
            latest = (
                select(func.max(r.id))
                .where(r.agreement_id.in_(ids))
                .group_by(r.agreement_id)
                .scalar_subquery()
            )
            reviews = {
                row.agreement_id: _review(row)
                for row in self.session.execute(
                    select(t.agreement_reviews).where(r.id.in_(latest))
                ).all()
            }
            history: dict[str, list[Transition]] = defaultdict(list)
            for row in self.session.execute(
                select(t.agreement_transitions)
                .where(h.agreement_id.in_(ids))
                .order_by(h.agreement_id, h.seq)
            ).all():
                history[row.agreement_id].append(
                    Transition(Status(row.to_status), row.at, row.actor, row.note)
                )
        return [
            Registered(
                agreement=parse(row.document, source=f"agreement {row.id} (as stored)"),
                status=Status(row.status),
                review=reviews.get(row.id),
                history=tuple(history[row.id]),
            )
            for row in rows
        ]


def _review(row: Row[Any]) -> Review:
    return Review(
        reviewer=row.reviewer,
        reviewed_on=row.reviewed_on,
        findings=row.findings,
        approved=row.approved,
        version=row.version,
    )
