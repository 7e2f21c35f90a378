"""Where a consent stands at an instant (what ``accord consent list`` shows), row by row.

The expected ends are written from 18 U.S.C. 2710(b)(2)(B)(ii): a consent a US viewer gives in
advance counts for what they watched for at most two years; one given at the time of a
disclosure is for that disclosure, once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from accord.consent import Consent, Scope
from accord.standing import State, standing

pytestmark = pytest.mark.unit

GIVEN = datetime(2024, 2, 29, 9, 0, tzinfo=UTC)  # a leap day: two years on is 28 February,
TWO_YEARS = datetime(2026, 3, 1, tzinfo=UTC) - timedelta(microseconds=1)  # to its last instant
DAY = timedelta(days=1)
MEDIA = "user.behavior.media_consumption"


def consent(**overrides: Any) -> Consent:
    fields: dict[str, Any] = {
        "id": "k1",
        "person": "r1",
        "controller": "reelix",
        "recipient": "chirp",
        "purposes": frozenset({"functional.service"}),
        "categories": frozenset({MEDIA}),
        "jurisdiction": "US-NY",
        "given_at": GIVEN,
    }
    fields.update(overrides)
    return Consent(**fields)


ONE = {"scope": Scope.ONE_DISCLOSURE, "disclosure": "t1"}

ROWS = [
    # (consent, where the person lives, when a release spent it, at, state, viewing until)
    # a US viewer's consent given in advance: in force, for viewing until two years on
    (consent(), "US-NY", None, GIVEN + DAY, State.IN_FORCE, TWO_YEARS),
    # ... and expired once the two years are over, whatever expiry it states
    (consent(expires_at=GIVEN + 5 * 365 * DAY), "US-NY", None, TWO_YEARS, State.EXPIRED, TWO_YEARS),
    # a second before the two years end, still in force
    (
        consent(),
        "US-CA",
        None,
        TWO_YEARS - timedelta(seconds=1),
        State.IN_FORCE,
        TWO_YEARS,
    ),
    # a consent covering friends' data as well stays in force for that after the two years
    (
        consent(categories=frozenset({MEDIA, "user.social"})),
        "US-NY",
        None,
        TWO_YEARS,
        State.IN_FORCE,
        TWO_YEARS,
    ),
    # a consent to a broader category covers viewing, so the two years bind it too
    (
        consent(categories=frozenset({"user.behavior"})),
        "US-NY",
        None,
        GIVEN + DAY,
        State.IN_FORCE,
        TWO_YEARS,
    ),
    # a stated expiry before the two years: the consent ends then
    (
        consent(expires_at=GIVEN + 30 * DAY),
        "US-NY",
        None,
        GIVEN + 30 * DAY,
        State.EXPIRED,
        TWO_YEARS,
    ),
    # a person in Germany: the VPPA does not bind the consent
    (consent(), "DE", None, TWO_YEARS + DAY, State.IN_FORCE, None),
    # where the person lives is unknown: no limit claimed
    (consent(), None, None, TWO_YEARS + DAY, State.IN_FORCE, None),
    # a consent that covers no viewing data
    (
        consent(categories=frozenset({"user.social"})),
        "US-NY",
        None,
        TWO_YEARS + DAY,
        State.IN_FORCE,
        None,
    ),
    # one disclosure, given at the time it is sought: no advance limit; in force until used
    (consent(**ONE), "US-NY", None, GIVEN + DAY, State.IN_FORCE, None),
    # ... spent once a release relied on it
    (consent(**ONE), "US-NY", GIVEN + DAY, GIVEN + 2 * DAY, State.SPENT, None),
    # ... but not before that release
    (consent(**ONE), "US-NY", GIVEN + DAY, GIVEN + DAY / 2, State.IN_FORCE, None),
    # withdrawn (spent or not, withdrawn is what it is)
    (consent(withdrawn_at=GIVEN + DAY, **ONE), "US-NY", GIVEN, GIVEN + DAY, State.WITHDRAWN, None),
    # not yet given
    (consent(), "US-NY", None, GIVEN - DAY, State.NOT_YET_GIVEN, TWO_YEARS),
]


@pytest.mark.parametrize(("record", "home", "spent", "at", "state", "until"), ROWS)
def test_where_a_consent_stands(
    *,
    record: Consent,
    home: str | None,
    spent: datetime | None,
    at: datetime,
    state: State,
    until: datetime | None,
) -> None:
    s = standing(record, at, lives_in=home, spent_at=spent)
    assert s.state is state
    assert s.viewing_until == until
    assert s.viewing_lapsed == (state is State.IN_FORCE and until is not None and until <= at)
