"""Agreements between a provider and a recipient: their YAML format, validation and lifecycle.

An agreement names its two parties, its validity dates and its clauses. A clause says which data
categories and fields may move, in which direction, for which purposes, at which granularity
(``record``, ``aggregate`` with a minimum group size, or ``match_only``), under which privacy
budget, for how long the recipient may keep it, in which regions, on which lawful basis, and
whether the people's consent is needed.

Lifecycle (the FTC's 2019 order against Facebook, Part VII, requires a documented privacy review
of every new or changed practice before it launches)::

    draft ──submit──▶ in_review ──approve (review)──▶ approved ──activate──▶ active
      ▲                  │                                                  │  ▲
      └───changes asked──┘                                        suspend ▼  │ resume
                                                                     suspended
    any state ──end──▶ ended

Activation needs a recorded privacy review (reviewer, date, findings) that approved this version
of the agreement. Every active agreement is published.

Errors in a document point to the file, line and field, and suggest the nearest valid key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from accord import taxonomy
from accord.consent import Operation
from accord.documents import parse_document
from accord.errors import AgreementFormatError, InvalidInput, LifecycleError
from accord.jurisdictions import Jurisdictions
from accord.law import LegalBasis


class Direction(StrEnum):
    """Which way data moves under a clause."""

    PROVIDER_TO_RECIPIENT = "provider_to_recipient"
    RECIPIENT_TO_PROVIDER = "recipient_to_provider"


class Granularity(StrEnum):
    """How much of each record may cross: all of it, only aggregates, or only whether it matches."""

    RECORD = "record"
    AGGREGATE = "aggregate"
    MATCH_ONLY = "match_only"


def _category(key: str) -> str:
    try:
        return taxonomy.validate(taxonomy.Kind.CATEGORY, key)
    except InvalidInput as exc:
        raise ValueError(exc.message) from exc


def _purpose(key: str) -> str:
    try:
        return taxonomy.validate(taxonomy.Kind.PURPOSE, key)
    except InvalidInput as exc:
        raise ValueError(exc.message) from exc


def _regions(names: tuple[str, ...]) -> tuple[str, ...]:
    try:
        Jurisdictions.of(names)
    except InvalidInput as exc:
        raise ValueError(exc.message) from exc
    return names


def _slug(value: str) -> str:
    if not value or not all(ch.isalnum() or ch in "-_." for ch in value):
        raise ValueError(f"{value!r} must be letters, digits, '-', '_' or '.'")
    return value


Slug = Annotated[str, AfterValidator(_slug)]
CategoryKey = Annotated[str, AfterValidator(_category)]
PurposeKey = Annotated[str, AfterValidator(_purpose)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Clause(_Strict):
    """One permitted flow of an agreement."""

    id: Slug
    description: str = ""
    direction: Direction
    operations: frozenset[Operation] = frozenset({Operation.READ})
    categories: Annotated[frozenset[CategoryKey], Field(min_length=1)]
    fields: frozenset[str] = frozenset()
    purposes: Annotated[frozenset[PurposeKey], Field(min_length=1)]
    granularity: Granularity = Granularity.RECORD
    min_group_size: int | None = Field(default=None, ge=2)
    privacy_budget: float | None = Field(default=None, gt=0)
    retention_days: int = Field(ge=0)
    regions: Annotated[tuple[str, ...], AfterValidator(_regions)] = ("*",)
    legal_basis: LegalBasis = LegalBasis.CONSENT
    consent_needed: bool = True
    rows_where: Mapping[str, str | int | bool | None] = Field(default_factory=dict)
    """Conditions every row the clause moves meets, ``collection.field: value`` (``null`` for
    none): message sync reads only the messages the partner itself sent, say."""

    @model_validator(mode="after")
    def _consistent(self) -> Clause:
        if self.granularity is Granularity.AGGREGATE and self.min_group_size is None:
            raise ValueError("an aggregate clause needs min_group_size (the smallest group shown)")
        if self.granularity is not Granularity.AGGREGATE and self.min_group_size is not None:
            raise ValueError("min_group_size applies only to granularity: aggregate")
        if self.legal_basis is LegalBasis.CONSENT and not self.consent_needed:
            raise ValueError("legal_basis consent with consent_needed false contradicts itself")
        for name in (*self.fields, *self.rows_where):
            if name.count(".") != 1 or not all(part for part in name.split(".")):
                raise ValueError(f"field {name!r} must be written collection.field")
        return self

    def conditions_on(self, collection: str) -> dict[str, str | int | bool | None]:
        """The clause's row conditions on ``collection``, by bare field name."""
        out: dict[str, str | int | bool | None] = {}
        for name, value in self.rows_where.items():
            where, _, field_name = name.partition(".")
            if where == collection:
                out[field_name] = value
        return out

    @property
    def region_set(self) -> Jurisdictions:
        """The clause's regions as a set of jurisdictions."""
        return Jurisdictions.of(self.regions)

    def covers_category(self, category: str) -> bool:
        """Whether ``category`` is one of the clause's categories or lies under one."""
        return taxonomy.covered_by_any(category, self.categories)

    def covers_purpose(self, purpose: str) -> bool:
        """Whether ``purpose`` is one of the clause's purposes or lies under one."""
        return taxonomy.covered_by_any(purpose, self.purposes)


class Agreement(_Strict):
    """The terms between a provider and a recipient (what the YAML document holds)."""

    id: Slug
    title: str
    version: int = Field(default=1, ge=1)
    provider: Slug
    recipient: Slug
    valid_from: date
    valid_until: date
    description: str = ""
    clauses: Annotated[tuple[Clause, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> Agreement:
        if self.provider == self.recipient:
            raise ValueError("provider and recipient must be two different parties")
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must come after valid_from")
        ids = [c.id for c in self.clauses]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"clause ids must be unique; repeated: {', '.join(dupes)}")
        return self

    def clause(self, clause_id: str) -> Clause | None:
        """The clause with this id, if any."""
        return next((c for c in self.clauses if c.id == clause_id), None)

    def sender_of(self, clause: Clause) -> str:
        """The party data leaves under ``clause``."""
        if clause.direction is Direction.PROVIDER_TO_RECIPIENT:
            return self.provider
        return self.recipient

    def receiver_of(self, clause: Clause) -> str:
        """The party data reaches under ``clause``."""
        return self.recipient if self.sender_of(clause) == self.provider else self.provider


# ---------------------------------------------------------------------------------------------
# Parsing with locations


def parse(text: str, *, source: str = "<agreement>") -> Agreement:
    """Parse and validate an agreement document; errors name ``source``, the line and the field."""
    return parse_document(
        text,
        Agreement,
        source=source,
        what="an agreement",
        error=AgreementFormatError,
        model_at=lambda loc: Clause if "clauses" in loc else Agreement,
    )


# ---------------------------------------------------------------------------------------------
# Lifecycle


class Status(StrEnum):
    """Where an agreement stands."""

    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    ENDED = "ended"


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.DRAFT: frozenset({Status.IN_REVIEW, Status.ENDED}),
    Status.IN_REVIEW: frozenset({Status.APPROVED, Status.DRAFT, Status.ENDED}),
    Status.APPROVED: frozenset({Status.ACTIVE, Status.ENDED}),
    Status.ACTIVE: frozenset({Status.SUSPENDED, Status.ENDED}),
    Status.SUSPENDED: frozenset({Status.ACTIVE, Status.ENDED}),
    Status.ENDED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Review:
    """A recorded privacy review of one version of an agreement."""

    reviewer: str
    reviewed_on: date
    findings: str
    approved: bool
    version: int

    def __post_init__(self) -> None:
        if not self.reviewer.strip():
            raise LifecycleError("a privacy review names its reviewer")
        if not self.findings.strip():
            raise LifecycleError("a privacy review records its findings, even 'none'")


@dataclass(frozen=True, slots=True)
class Transition:
    """One step of an agreement's history."""

    to: Status
    at: datetime
    by: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Registered:
    """An agreement as the registry holds it: its terms, where it stands, its review and history."""

    agreement: Agreement
    status: Status = Status.DRAFT
    review: Review | None = None
    history: tuple[Transition, ...] = field(default=())

    @property
    def published(self) -> bool:
        """Active agreements are published: no confidential agreements."""
        return self.status in {Status.ACTIVE, Status.SUSPENDED, Status.ENDED} and bool(self.review)

    def in_force(self, on: date) -> bool:
        """Active, reviewed, and ``on`` within its validity dates."""
        return (
            self.status is Status.ACTIVE
            and self.review is not None
            and self.review.approved
            and self.review.version == self.agreement.version
            and self.agreement.valid_from <= on < self.agreement.valid_until
        )

    def why_not_in_force(self, on: date) -> str | None:
        """A sentence saying why the agreement does not permit anything on ``on``, or None."""
        a = self.agreement
        if self.status is not Status.ACTIVE:
            if self.review is None:
                return (
                    f"agreement {a.id} is {self.status.value.replace('_', ' ')} and has never "
                    "had a privacy review; nothing flows under it until it is reviewed and "
                    "published"
                )
            return f"agreement {a.id} is {self.status.value.replace('_', ' ')}, not active"
        if self.review is None or not self.review.approved:
            return f"agreement {a.id} has no approving privacy review"
        if self.review.version != a.version:
            return (
                f"agreement {a.id} version {a.version} changed after its review of version "
                f"{self.review.version}; it needs a new review"
            )
        if on < a.valid_from:
            return f"agreement {a.id} is valid only from {a.valid_from.isoformat()}"
        if on >= a.valid_until:
            return f"agreement {a.id} expired on {a.valid_until.isoformat()}"
        return None


def advance(
    reg: Registered,
    to: Status,
    *,
    at: datetime,
    by: str,
    review: Review | None = None,
    note: str = "",
) -> Registered:
    """Move ``reg`` to ``to``, or raise :class:`LifecycleError` saying why it cannot."""
    a = reg.agreement
    if to not in TRANSITIONS[reg.status]:
        allowed = ", ".join(sorted(TRANSITIONS[reg.status])) or "nothing (it has ended)"
        raise LifecycleError(
            f"agreement {a.id} is {reg.status.value}; it can move to {allowed}, not {to.value}"
        )
    if to is Status.APPROVED:
        if review is None:
            raise LifecycleError(f"approving agreement {a.id} needs a recorded privacy review")
        if not review.approved:
            raise LifecycleError(
                f"the privacy review of agreement {a.id} did not approve it; send it back to draft"
            )
        if review.version != a.version:
            raise LifecycleError(
                f"the review is of version {review.version}, the agreement is version {a.version}"
            )
    if to is Status.ACTIVE:
        current = review or reg.review
        if current is None or not current.approved or current.version != a.version:
            raise LifecycleError(
                f"agreement {a.id} cannot be activated without an approving privacy review of "
                f"version {a.version} (reviewer, date and findings)"
            )
        review = current
    return replace(
        reg,
        status=to,
        review=review if review is not None else reg.review,
        history=(*reg.history, Transition(to, at, by, note)),
    )


def describe(agreement: Agreement) -> str:
    """A plain-language account of what the agreement lets through, for ``agreement check``."""
    lines = [
        f"{agreement.title} ({agreement.id}, version {agreement.version})",
        (
            f"between {agreement.provider} (provider) and {agreement.recipient} (recipient), "
            f"valid {agreement.valid_from.isoformat()} to {agreement.valid_until.isoformat()}"
        ),
    ]
    for c in agreement.clauses:
        ops = " and ".join(sorted(o.value for o in c.operations))
        grain = c.granularity.value.replace("_", " ")
        if c.granularity is Granularity.AGGREGATE:
            grain += f" (groups of at least {c.min_group_size})"
        lines.append(
            f"- {c.id}: {agreement.sender_of(c)} → {agreement.receiver_of(c)} ({ops}), "
            f"{', '.join(sorted(c.categories))} for {', '.join(sorted(c.purposes))}; {grain}; "
            f"kept {c.retention_days} days; regions {c.region_set.describe()}; "
            f"basis {c.legal_basis.value}"
            + ("; each person's consent needed" if c.consent_needed else "")
            + "".join(
                f"; only rows where {name} is {'empty' if value is None else repr(value)}"
                for name, value in sorted(c.rows_where.items())
            )
        )
    return "\n".join(lines)
