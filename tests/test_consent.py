from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from accord.consent import ConsentStatus, Scope, add_years, consent_status, years_before
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


LAST = timedelta(days=1) - timedelta(microseconds=1)  # from a day's first instant to its last
# Moments around the days a leap year moves (28 February to 1 March), to the microsecond, and
# anywhere else.
near_leap_days = st.builds(
    lambda year, day, offset: datetime(year, 2, 28, tzinfo=UTC) + day * DAY + offset,
    st.integers(min_value=2019, max_value=2034),
    st.integers(min_value=-1, max_value=2),
    st.sampled_from([timedelta(0), timedelta(hours=9), LAST - timedelta(microseconds=1), LAST])
    | st.timedeltas(min_value=timedelta(0), max_value=LAST),
)
moments = near_leap_days | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)


@given(moments, moments, st.integers(min_value=1, max_value=5))
# Given on a leap day, judged at the last instant of the 28th two years on: just old enough.
@example(datetime(2024, 2, 29, 9, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC) + LAST, 2)
# ... and at the hour it was given, on that 28th: not yet two years old.
@example(datetime(2024, 2, 29, 9, tzinfo=UTC), datetime(2026, 2, 28, 9, tzinfo=UTC), 2)
# Given on a 28 February, judged on the next leap day, before that day's hour: old enough.
@example(datetime(2022, 2, 28, 13, tzinfo=UTC), datetime(2024, 2, 29, 12, tzinfo=UTC), 2)
def test_a_moment_is_old_by_years_before_exactly_when_its_years_have_come(
    moment: datetime, at: datetime, years: int
) -> None:
    """The cap a filter applies (given at or before ``years_before``) and the cap as the statute
    puts it (the period ends ``years`` after the consent was given) let the same consents
    through, to the microsecond, leap days included."""
    assert (moment <= years_before(at, years)) == (add_years(moment, years) <= at)


@given(moments, moments, st.integers(min_value=-5, max_value=5))
def test_adding_years_keeps_the_order_of_time(one: datetime, other: datetime, years: int) -> None:
    earlier, later = sorted((one, other))
    assert add_years(earlier, years) <= add_years(later, years)


def test_a_leap_day_becomes_the_last_instant_of_28_february() -> None:
    given_at = datetime(2024, 2, 29, 9, tzinfo=UTC)
    assert add_years(given_at, 2) == datetime(2026, 2, 28, tzinfo=UTC) + LAST
    assert add_years(given_at, 4) == datetime(2028, 2, 29, 9, tzinfo=UTC)
    assert add_years(given_at, -1) == datetime(2023, 2, 28, tzinfo=UTC) + LAST
