from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.consent import ConsentStatus, Scope, add_years, consent_status
from accord.errors import ConsentError, InvalidInput
from builders import NOW, consent, opt_out

pytestmark = pytest.mark.unit
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("changes", "at", "expected"),
    [
        ({}, NOW, ConsentStatus.IN_FORCE),
        ({"given_at": NOW + DAY}, NOW, ConsentStatus.NOT_YET_GIVEN),
        ({"given_at": NOW}, NOW, ConsentStatus.IN_FORCE),  # in force from the instant it is given
        ({"expires_at": NOW}, NOW, ConsentStatus.EXPIRED),  # and not at its expiry instant
        ({"expires_at": NOW + DAY}, NOW, ConsentStatus.IN_FORCE),
        ({"withdrawn_at": NOW}, NOW, ConsentStatus.WITHDRAWN),
        ({"withdrawn_at": NOW + DAY}, NOW, ConsentStatus.IN_FORCE),
        ({"withdrawn_at": NOW - DAY, "expires_at": NOW - 2 * DAY}, NOW, ConsentStatus.WITHDRAWN),
    ],
)
def test_status_at_an_instant(
    changes: dict[str, object], at: datetime, expected: ConsentStatus
) -> None:
    assert consent_status(consent(**changes), at) is expected


def test_naive_datetimes_are_utc() -> None:
    record = consent(given_at=datetime(2026, 1, 1))
    assert record.given_at == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"purposes": frozenset()}, "names no purpose"),
        ({"categories": frozenset()}, "names no data category"),
        ({"purposes": frozenset({"marketing.ads"})}, "unknown purpose"),
        ({"expires_at": NOW - 400 * DAY}, "expires before it was given"),
        ({"withdrawn_at": NOW - 400 * DAY}, "withdrawn before it was given"),
        ({"scope": Scope.ONE_DISCLOSURE}, "must name the disclosure"),
        ({"person": ""}, "person is empty"),
    ],
)
def test_bad_records_are_refused_with_a_reason(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConsentError) as err:
        consent(**changes)
    assert message in str(err.value)


def test_bad_jurisdiction() -> None:
    with pytest.raises(InvalidInput, match="not a jurisdiction"):
        consent(jurisdiction="California")


def test_covers_follows_the_hierarchy() -> None:
    record = consent(categories=frozenset({"user.behavior"}), purposes=frozenset({"personalize"}))
    assert record.covers(
        recipient="reelix",
        purpose="personalize.content",
        category="user.behavior.media_consumption",
    )
    assert not record.covers(recipient="other", purpose="personalize", category="user.behavior")
    assert not record.covers(recipient="reelix", purpose="marketing", category="user.behavior")


def test_opt_out_in_force() -> None:
    signal = opt_out(at=NOW - DAY, revoked_at=NOW + DAY)
    assert signal.in_force_at(NOW)
    assert not signal.in_force_at(NOW + DAY)
    assert not signal.in_force_at(NOW - 2 * DAY)


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1)),
    st.integers(min_value=1, max_value=5),
)
def test_add_years_round_trips_except_leap_days(moment: datetime, years: int) -> None:
    later = add_years(moment, years)
    assert later.year == moment.year + years
    if not (moment.month == 2 and moment.day == 29):
        assert add_years(later, -years) == moment
    assert later > moment
