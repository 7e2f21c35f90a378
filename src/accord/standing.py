"""Where a person's consents and opt-outs stand at an instant: what ``accord consent list`` shows.

A consent is, at an instant, not yet given, in force, withdrawn, expired, or spent: a consent for
one disclosure that a release relied on (18 U.S.C. 2710(b)(2)(B)(ii)(I): given at the time the
disclosure is sought, for that disclosure only). A consent a US viewer gave in advance counts for
what they watched for at most two years, whatever expiry it states
(18 U.S.C. 2710(b)(2)(B)(ii)(II)): past that it is expired if it covers nothing else, and
otherwise still in force for the rest.

Everything here is pure: a function of the records, where the person lives and the instant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from accord.consent import Consent, ConsentStatus, OptOut, Scope, consent_status, utc
from accord.law import vppa


class State(StrEnum):
    """Where a consent stands at an instant."""

    NOT_YET_GIVEN = "not yet given"
    IN_FORCE = "in force"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    SPENT = "spent"


_FROM_STATUS = {
    ConsentStatus.NOT_YET_GIVEN: State.NOT_YET_GIVEN,
    ConsentStatus.IN_FORCE: State.IN_FORCE,
    ConsentStatus.WITHDRAWN: State.WITHDRAWN,
    ConsentStatus.EXPIRED: State.EXPIRED,
}


@dataclass(frozen=True, slots=True)
class Standing:
    """One consent, where it stands at ``at``, and when it ends."""

    consent: Consent
    at: datetime
    state: State
    viewing_until: datetime | None = None
    """When it stops counting for what a US viewer watched (given in advance: two years)."""
    spent_at: datetime | None = None
    """When a release relied on it, for a consent for one disclosure."""

    @property
    def viewing_lapsed(self) -> bool:
        """Whether it no longer counts for what the person watched, though in force otherwise."""
        return (
            self.state is State.IN_FORCE
            and self.viewing_until is not None
            and self.viewing_until <= self.at
        )


def standing(
    consent: Consent,
    at: datetime,
    *,
    lives_in: str | None,
    spent_at: datetime | None = None,
) -> Standing:
    """Where ``consent`` stands at ``at`` for a person who lives in ``lives_in`` (``None``:
    unknown), ``spent_at`` being when a release relied on it (a consent for one disclosure)."""
    at = utc(at)
    state = _FROM_STATUS[consent_status(consent, at)]
    spent = spent_at if consent.scope is Scope.ONE_DISCLOSURE else None
    if state is State.IN_FORCE and spent is not None and spent <= at:
        state = State.SPENT
    until = vppa.advance_limit(consent, lives_in)
    if state is State.IN_FORCE and until is not None and until <= at and vppa.only_viewing(consent):
        state = State.EXPIRED
    return Standing(consent, at, state, until, spent)


@dataclass(frozen=True, slots=True)
class PersonStanding:
    """A person at a party: where they live, their consents and their opt-outs, at ``at``."""

    party: str
    person: str
    at: datetime
    lives_in: str | None
    """Where the party says they live; ``None`` if it holds no such person."""
    consents: tuple[Standing, ...]
    opt_outs: tuple[OptOut, ...]

    @property
    def opted_out(self) -> bool:
        """Whether an opt-out of theirs is in force at ``at``."""
        return any(o.in_force_at(self.at) for o in self.opt_outs)


def person_standing(
    party: str,
    person: str,
    at: datetime,
    *,
    lives_in: str | None,
    consents: Iterable[Consent],
    opt_outs: Iterable[OptOut],
    spent: Mapping[str, datetime],
) -> PersonStanding:
    """``person``'s records at ``party`` as they stand at ``at`` (``spent``: when a release
    relied on each consent for one disclosure, by id)."""
    at = utc(at)
    return PersonStanding(
        party,
        person,
        at,
        lives_in,
        tuple(standing(c, at, lives_in=lives_in, spent_at=spent.get(c.id)) for c in consents),
        tuple(opt_outs),
    )
