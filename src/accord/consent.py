"""Consent records and opt-out signals, and whether a record is in force at a given instant.

A :class:`Consent` follows the fields of ISO/IEC TS 27560:2023 (consent record information
structure) and the Kantara Initiative Consent Receipt Specification v1.1: who gave it (the
subject, as known to the controller), to whom the data may go (the recipient), for which purposes
and data categories, how and under which notice it was collected, when, in which jurisdiction,
until when, whether and when it was withdrawn, and its scope: one disclosure or ongoing, with
titles the person excluded case by case.

Everything here is pure: validity at an instant is a function of the record and the instant.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from accord import taxonomy
from accord.errors import ConsentError
from accord.jurisdictions import validate_code


class Scope(StrEnum):
    """Whether a consent covers one disclosure or every disclosure until it ends."""

    ONGOING = "ongoing"
    ONE_DISCLOSURE = "one_disclosure"


class Operation(StrEnum):
    """What a recipient may do with the person's data: read it, or write (send) on their behalf."""

    READ = "read"
    WRITE = "write"


class Method(StrEnum):
    """How a consent was collected (ISO/IEC TS 27560 'collection method')."""

    IN_APP_DIALOG = "in_app_dialog"
    WEB_FORM = "web_form"
    OAUTH_CONSENT_SCREEN = "oauth_consent_screen"
    SETTINGS_PAGE = "settings_page"
    PAPER = "paper"
    API = "api"


def utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime; naive datetimes are taken to be UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def add_years(moment: datetime, years: int) -> datetime:
    """The same calendar instant ``years`` later (negative: earlier).

    A 29 February that lands in a year without one becomes the last instant of 28 February, the
    day that year has in its place: never past that day, and never before a moment of the 28th,
    so that a later moment never comes out earlier than an earlier one. A consent given on a
    leap day with a two-year cap runs to the end of 28 February two years on.
    """
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February in a year without one
        return datetime.combine(date(moment.year + years, 2, 28), _LAST_INSTANT, moment.tzinfo)


def years_before(at: datetime, years: int) -> datetime:
    """The last moment that is ``years`` (by :func:`add_years`) old at ``at``.

    A moment ``m`` is ``years`` old at ``at`` exactly when ``m <= years_before(at, years)``, that
    is when ``add_years(m, years) <= at``: a cap of ``years`` judged either way lets the same
    consents through. Shifting ``at`` back by ``years`` is that moment, but for one instant:
    every moment of a 29 February comes out at the last instant of the 28th, so that instant is
    when all of them have become ``years`` old.
    """
    earlier = add_years(at, -years)
    if (
        (at.month, at.day) == (2, 28)
        and at.time() == _LAST_INSTANT
        and calendar.isleap(earlier.year)
        and not calendar.isleap(at.year)
    ):
        return earlier + timedelta(days=1)
    return earlier


_LAST_INSTANT = time(23, 59, 59, 999_999)


@dataclass(frozen=True, slots=True)
class Consent:
    """One person's consent to one recipient, for some purposes and categories.

    ``person`` is the person's id at the ``controller`` (the party that holds the data and
    collected the consent). ``jurisdiction`` is where the consent was collected (ISO 3166); where
    the person lives is the controller's to record (:class:`Person`), and a consent never
    changes it.
    """

    id: str
    person: str
    controller: str
    recipient: str
    purposes: frozenset[str]
    categories: frozenset[str]
    jurisdiction: str
    given_at: datetime
    method: Method = Method.IN_APP_DIALOG
    notice: str = ""
    operations: frozenset[Operation] = frozenset({Operation.READ})
    distinct_and_separate: bool = False
    withdrawal_method: Method | None = None
    expires_at: datetime | None = None
    withdrawn_at: datetime | None = None
    scope: Scope = Scope.ONGOING
    disclosure: str | None = None
    excluded_titles: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        where = f"consent {self.id}"
        for name in ("id", "person", "controller", "recipient"):
            if not getattr(self, name):
                raise ConsentError(f"{name} is empty", where=where)
        if not self.purposes:
            raise ConsentError(
                "names no purpose: consent must be for specific purposes", where=where
            )
        if not self.categories:
            raise ConsentError("names no data category", where=where)
        try:
            taxonomy.validate_all(taxonomy.Kind.PURPOSE, self.purposes)
            taxonomy.validate_all(taxonomy.Kind.CATEGORY, self.categories)
        except ConsentError:
            raise
        except Exception as exc:
            raise ConsentError(str(exc), where=where) from exc
        object.__setattr__(self, "jurisdiction", validate_code(self.jurisdiction))
        object.__setattr__(self, "given_at", utc(self.given_at))
        if self.expires_at is not None:
            object.__setattr__(self, "expires_at", utc(self.expires_at))
            if self.expires_at <= self.given_at:
                raise ConsentError("expires before it was given", where=where)
        if self.withdrawn_at is not None:
            object.__setattr__(self, "withdrawn_at", utc(self.withdrawn_at))
            if self.withdrawn_at < self.given_at:
                raise ConsentError("withdrawn before it was given", where=where)
        if self.scope is Scope.ONE_DISCLOSURE and not self.disclosure:
            raise ConsentError(
                "a one-disclosure consent must name the disclosure (e.g. the title) it is for",
                where=where,
            )
        if not self.operations:
            raise ConsentError("allows no operation (read or write)", where=where)

    def in_force_at(self, at: datetime) -> bool:
        """Given at or before ``at``, not expired and not withdrawn by then."""
        return consent_status(self, at) is ConsentStatus.IN_FORCE

    def covers(
        self,
        *,
        recipient: str,
        purpose: str,
        category: str,
        operation: Operation = Operation.READ,
    ) -> bool:
        """Whether this record is for ``recipient`` and covers the purpose, category and operation.

        A consent to a broader key covers the narrower keys below it (``user.behavior`` covers
        ``user.behavior.media_consumption``).
        """
        return (
            self.recipient == recipient
            and operation in self.operations
            and taxonomy.covered_by_any(purpose, self.purposes)
            and taxonomy.covered_by_any(category, self.categories)
        )

    def allows_title(self, title: str | None) -> bool:
        """Whether a disclosure about ``title`` is within scope (not excluded; the named one)."""
        if title is not None and title in self.excluded_titles:
            return False
        if self.scope is Scope.ONE_DISCLOSURE:
            return title is not None and title == self.disclosure
        return True

    def withdrawn(self, at: datetime) -> Consent:
        """This record, withdrawn at ``at``."""
        return replace(self, withdrawn_at=utc(at))


class ConsentStatus(StrEnum):
    """Where a consent stands at an instant."""

    NOT_YET_GIVEN = "not yet given"
    IN_FORCE = "in force"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


def consent_status(consent: Consent, at: datetime) -> ConsentStatus:
    """Where ``consent`` stands at ``at``: a pure function of the record and the instant.

    The record is in force on ``[given_at, min(expires_at, withdrawn_at))``.
    """
    at = utc(at)
    if at < consent.given_at:
        return ConsentStatus.NOT_YET_GIVEN
    if consent.withdrawn_at is not None and at >= consent.withdrawn_at:
        return ConsentStatus.WITHDRAWN
    if consent.expires_at is not None and at >= consent.expires_at:
        return ConsentStatus.EXPIRED
    return ConsentStatus.IN_FORCE


class OptOutKind(StrEnum):
    """Kinds of opt-out signal."""

    SALE_SHARING = "sale_sharing"


class SignalSource(StrEnum):
    """Where an opt-out came from."""

    GPC = "global_privacy_control"
    FORM = "form"
    SETTINGS = "settings"


@dataclass(frozen=True, slots=True)
class OptOut:
    """A person's opt-out of sale and sharing (CCPA/CPRA), from a form or a Global Privacy Control
    signal; in force from ``at`` until ``revoked_at``."""

    person: str
    controller: str
    kind: OptOutKind
    source: SignalSource
    at: datetime
    revoked_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", utc(self.at))
        if self.revoked_at is not None:
            object.__setattr__(self, "revoked_at", utc(self.revoked_at))

    def in_force_at(self, at: datetime) -> bool:
        """Whether this opt-out applies at ``at``."""
        at = utc(at)
        return self.at <= at and (self.revoked_at is None or at < self.revoked_at)


@dataclass(frozen=True, slots=True)
class Person:
    """What Accord knows of a data subject for deciding: their id at a party and jurisdiction."""

    id: str
    party: str
    jurisdiction: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "jurisdiction", validate_code(self.jurisdiction))


@dataclass(frozen=True, slots=True)
class PersonFacts:
    """A person with every consent and opt-out on record for them: what a filter is judged on."""

    person: Person
    consents: tuple[Consent, ...] = ()
    opt_outs: tuple[OptOut, ...] = ()

    @classmethod
    def of(
        cls, person: Person, consents: Iterable[Consent] = (), opt_outs: Iterable[OptOut] = ()
    ) -> PersonFacts:
        """Facts for ``person`` from records that may include other people's (kept: theirs)."""
        return cls(
            person,
            tuple(c for c in consents if c.person == person.id and c.controller == person.party),
            tuple(o for o in opt_outs if o.person == person.id and o.controller == person.party),
        )
