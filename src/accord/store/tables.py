"""The store's tables: parties, people, agreements with their reviews and history, consents and
opt-outs.

A consent's purposes, categories and excluded titles sit in child tables, one key a row, so the
per-person filter can match them with ``IN`` lists (:mod:`accord.store.filter_sql`). Instants are
:class:`~accord.store.types.UTCDateTime` (UTC, comparable in SQL on both backends).

Consents and opt-outs name their person by id at the controller without a foreign key to
``people``: a controller may record a consent before it tells Accord where the person lives, and a
person without a ``people`` row is simply never let through.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from accord.store.engine import Base
from accord.store.types import UTCDateTime


def _now() -> datetime:
    return datetime.now(UTC)


class PartyRow(Base):
    """An organisation that holds or receives data."""

    __tablename__ = "parties"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


class PersonRow(Base):
    """A data subject as one party knows them, and where they live."""

    __tablename__ = "people"

    party: Mapped[str] = mapped_column(
        String, ForeignKey("parties.id", name="fk_people_party"), primary_key=True
    )
    person_id: Mapped[str] = mapped_column(String, primary_key=True)
    jurisdiction: Mapped[str] = mapped_column(String)
    # The country part of the jurisdiction, so a set of countries is one IN list.
    country: Mapped[str] = mapped_column(String)

    __table_args__ = (
        Index("ix_people_party_country", "party", "country"),
        Index("ix_people_party_jurisdiction", "party", "jurisdiction"),
        # The consent filter reads each consenting person's country from this index alone.
        Index("ix_people_filter", "party", "person_id", "country", "jurisdiction"),
    )


class AgreementRow(Base):
    """The current terms of an agreement (its YAML document) and where it stands."""

    __tablename__ = "agreements"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String)
    provider: Mapped[str] = mapped_column(
        String, ForeignKey("parties.id", name="fk_agreements_provider")
    )
    recipient: Mapped[str] = mapped_column(
        String, ForeignKey("parties.id", name="fk_agreements_recipient")
    )
    document: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)

    __table_args__ = (Index("ix_agreements_status", "status"),)


class AgreementReviewRow(Base):
    """A privacy review of one version of an agreement; the latest row is the current review."""

    __tablename__ = "agreement_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agreement_id: Mapped[str] = mapped_column(
        String,
        ForeignKey("agreements.id", name="fk_agreement_reviews_agreement", ondelete="CASCADE"),
    )
    version: Mapped[int] = mapped_column(Integer)
    reviewer: Mapped[str] = mapped_column(String)
    reviewed_on: Mapped[date] = mapped_column(Date)
    findings: Mapped[str] = mapped_column(Text)
    approved: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (Index("ix_agreement_reviews_agreement", "agreement_id", "id"),)


class RegistryRevisionRow(Base):
    """How many times the agreement registry has changed, in its one row.

    Every registration and every move of an agreement adds one in the same transaction. A process
    holding a compiled policy compares it before each decision: an agreement suspended by another
    process (the command line, another worker) is refused on the very next request.
    """

    __tablename__ = "registry_revision"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BigInteger)


class StandingRevisionRow(Base):
    """How many times anyone's standing has changed, in its one row.

    Kept by triggers (migration ``0017_standing_revision``) on the tables a verdict on a person
    reads: :data:`accord.store.maintained.STANDING_TABLES`. A process keeping who a clause lets
    through reads it to learn whether another process changed anything.
    """

    __tablename__ = "standing_revision"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BigInteger)


class AgreementTransitionRow(Base):
    """One step of an agreement's history, numbered from 0."""

    __tablename__ = "agreement_transitions"

    agreement_id: Mapped[str] = mapped_column(
        String,
        ForeignKey("agreements.id", name="fk_agreement_transitions_agreement", ondelete="CASCADE"),
        primary_key=True,
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    to_status: Mapped[str] = mapped_column(String)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String)
    note: Mapped[str] = mapped_column(Text, default="")


class ConsentRow(Base):
    """One consent record (see :class:`accord.consent.Consent`)."""

    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    person: Mapped[str] = mapped_column(String)
    controller: Mapped[str] = mapped_column(
        String, ForeignKey("parties.id", name="fk_consents_controller")
    )
    recipient: Mapped[str] = mapped_column(
        String, ForeignKey("parties.id", name="fk_consents_recipient")
    )
    jurisdiction: Mapped[str] = mapped_column(String)
    given_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    method: Mapped[str] = mapped_column(String)
    notice: Mapped[str] = mapped_column(Text)
    distinct_and_separate: Mapped[bool] = mapped_column(Boolean)
    withdrawal_method: Mapped[str | None] = mapped_column(String)
    scope: Mapped[str] = mapped_column(String)
    disclosure: Mapped[str | None] = mapped_column(String)
    # The operations, sorted and comma-joined ("read", "read,write"): one IN list matches them.
    operations: Mapped[str] = mapped_column(String)

    __table_args__ = (
        # The filter's EXISTS looks a person's consents up by these three.
        Index("ix_consents_controller_person_recipient", "controller", "person", "recipient"),
        # The consent filter scans a controller's consents for a recipient from this index alone
        # (a consent's row is wide: it carries its notice).
        Index(
            "ix_consents_filter",
            "controller",
            "recipient",
            "scope",
            "operations",
            "person",
            "id",
            "given_at",
            "expires_at",
            "withdrawn_at",
            "distinct_and_separate",
        ),
    )


def _child_fk(table: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["consent_id"], ["consents.id"], name=f"fk_{table}_consent", ondelete="CASCADE"
    )


class ConsentPurposeRow(Base):
    """A purpose a consent is for (the primary key is the filter's index)."""

    __tablename__ = "consent_purposes"

    consent_id: Mapped[str] = mapped_column(String, primary_key=True)
    purpose: Mapped[str] = mapped_column(String, primary_key=True)

    __table_args__ = (_child_fk("consent_purposes"),)


class ConsentCategoryRow(Base):
    """A data category a consent covers."""

    __tablename__ = "consent_categories"

    consent_id: Mapped[str] = mapped_column(String, primary_key=True)
    category: Mapped[str] = mapped_column(String, primary_key=True)

    __table_args__ = (_child_fk("consent_categories"),)


class ConsentExcludedTitleRow(Base):
    """A title the person excluded from an otherwise covered consent."""

    __tablename__ = "consent_excluded_titles"

    consent_id: Mapped[str] = mapped_column(String, primary_key=True)
    title: Mapped[str] = mapped_column(String, primary_key=True)

    __table_args__ = (_child_fk("consent_excluded_titles"),)


class ConsentUseRow(Base):
    """A consent for one disclosure, spent: a release relied on it, and no later one may.

    18 U.S.C. 2710(b)(2)(B)(ii)(I): consent "given at the time the disclosure is sought" is for
    that disclosure only.
    """

    __tablename__ = "consent_uses"

    consent_id: Mapped[str] = mapped_column(String, primary_key=True)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime())
    request_id: Mapped[str] = mapped_column(String)

    __table_args__ = (_child_fk("consent_uses"),)


class OptOutRow(Base):
    """An opt-out signal (see :class:`accord.consent.OptOut`)."""

    __tablename__ = "opt_outs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person: Mapped[str] = mapped_column(String)
    controller: Mapped[str] = mapped_column(
        String, ForeignKey("parties.id", name="fk_opt_outs_controller")
    )
    kind: Mapped[str] = mapped_column(String)
    source: Mapped[str] = mapped_column(String)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_opt_outs_controller_person_kind", "controller", "person", "kind"),)


class ErasedPersonRow(Base):
    """A person a party erased: the suppression entry every read joins against.

    It holds the person's id at the party in clear, and nothing else about them but when. A
    keyed hash of the id would hide it from a reader of the store, but every read would then have
    to hash every person it judges inside the database: SQLite has no HMAC, and a function called
    back into Python for each row would turn the set-based filter into a per-person loop. The id
    alone tells nothing about the person (no consent, no place, no activity: those are deleted),
    and keeping it is what lets the party honour the erasure for good: a suppression list is the
    minimum the controller needs to comply with it (GDPR Art. 17(3)(b)), so that a reload from
    its own systems cannot bring the person back.

    It holds no time either: the ledger's withdrawals and erasure entry carry the instant of the
    erasure, and a time here would tie the person's id to those entries (and to what they had
    consented to).
    """

    __tablename__ = "erased_people"

    party: Mapped[str] = mapped_column(
        String, ForeignKey("parties.id", name="fk_erased_people_party"), primary_key=True
    )
    person_id: Mapped[str] = mapped_column(String, primary_key=True)


class ErasureNoticeRow(Base):
    """A recipient's notice that a person whose data it received was erased (GDPR Art. 19).

    It names the person by the id the recipient knows them by until the recipient acknowledges
    it: the only row naming an erased person besides the suppression entry, and only for as long
    as the recipient takes to act on it. Then the id is cleared and the row stays, so the
    request's state per recipient can still be shown (:mod:`accord.erasure`).
    """

    __tablename__ = "erasure_notices"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    recipient: Mapped[str] = mapped_column(
        String, ForeignKey("parties.id", name="fk_erasure_notices_recipient")
    )
    provider: Mapped[str] = mapped_column(
        String, ForeignKey("parties.id", name="fk_erasure_notices_provider")
    )
    person: Mapped[str | None] = mapped_column(String, nullable=True)
    """The person's id as the recipient knows them; cleared once it acknowledges."""
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime())
    request: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """The erasure request the notice belongs to (none for notices left before requests)."""
    told_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    """When the recipient was last told."""
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    """By when it must acknowledge; past it, the notice is overdue and is sent again."""
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    """How many times the recipient was told."""
    problem: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Why it was told again, in a sentence a person can read."""

    __table_args__ = (
        Index("ix_erasure_notices_recipient", "recipient"),
        Index("ix_erasure_notices_request", "request"),
    )


class ErasureRequestRow(Base):
    """One erasure, by an unguessable id the person keeps to follow it; names no person."""

    __tablename__ = "erasure_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    provider: Mapped[str] = mapped_column(
        String, ForeignKey("parties.id", name="fk_erasure_requests_provider")
    )
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SealedConsentProofRow(Base):
    """An erased person's consent records, sealed under a key derived from their ledger key.

    Found by the person's ledger lookup pseudonym (which whoever holds their key can recompute),
    never by their id. Shredding the ledger key leaves it unreadable.
    """

    __tablename__ = "sealed_consent_proofs"

    lookup: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_at: Mapped[datetime] = mapped_column(UTCDateTime())


def _table(row: type[Base]) -> Table:
    return cast(Table, row.__table__)


# Core handles on the tables, for set-based queries and executemany.
parties = _table(PartyRow)
people = _table(PersonRow)
agreements = _table(AgreementRow)
agreement_reviews = _table(AgreementReviewRow)
agreement_transitions = _table(AgreementTransitionRow)
registry_revision = _table(RegistryRevisionRow)
standing_revision = _table(StandingRevisionRow)
consents = _table(ConsentRow)
consent_purposes = _table(ConsentPurposeRow)
consent_categories = _table(ConsentCategoryRow)
consent_excluded_titles = _table(ConsentExcludedTitleRow)
consent_uses = _table(ConsentUseRow)
opt_outs = _table(OptOutRow)
erased_people = _table(ErasedPersonRow)
erasure_notices = _table(ErasureNoticeRow)
erasure_requests = _table(ErasureRequestRow)
sealed_consent_proofs = _table(SealedConsentProofRow)
