"""A season on a sample of its days: the days, the windows, the budgets scaled to them; periods;
how its rows are stored."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.ads.access import period_days, period_of
from accord.ads.model import MICROS
from accord.ads.simulate import Season
from accord.ads.store import _sqlite_form
from accord.errors import InvalidInput
from accord.scenario import ADS_BY_DEFAULT_FROM
from accord.scenario.ads import (
    REELIX_ADVERTISER,
    REELIX_YEARLY,
    SCALE_AUDIENCE,
    plans,
    sample_windows,
    season_campaigns,
)
from accord.store.types import to_text

days = st.dates(min_value=date(2001, 1, 1), max_value=date(2090, 12, 31))


def test_a_season_simulates_its_sample_or_every_day() -> None:
    start = date(2024, 11, 22)
    assert Season(start, 3).dates() == [start, date(2024, 11, 23), date(2024, 11, 24)]
    sample = (date(2024, 11, 22), date(2025, 11, 22))
    assert Season(start, 400, sample=sample).dates() == list(sample)


@pytest.mark.parametrize(
    ("sample", "said"),
    [
        ((date(2024, 11, 21),), "outside the season"),
        ((date(2025, 12, 27),), "outside the season"),
        ((date(2024, 11, 23), date(2024, 11, 22)), "ascending"),
        ((date(2024, 11, 23), date(2024, 11, 23)), "each once"),
    ],
)
def test_a_sample_outside_its_season_or_out_of_order_is_refused(
    sample: tuple[date, ...], said: str
) -> None:
    with pytest.raises(InvalidInput, match=said):
        Season(date(2024, 11, 22), 400, sample=sample)


@given(days, st.integers(1, 5), st.integers(1, 365))
def test_sample_windows_are_the_same_days_of_each_year(last: date, years: int, n: int) -> None:
    windows = sample_windows(last, years, n)
    assert len(windows) == years
    for k, (begins, ends) in enumerate(windows):
        assert ends - begins == timedelta(days=n)
        end = ends - timedelta(days=1)
        assert end.year == last.year - (years - 1 - k)
        # The same day of the year (the 28th of February where there is no 29th).
        assert (end.month, end.day) == (last.month, last.day) or (
            (last.month, last.day) == (2, 29) and (end.month, end.day) == (2, 28)
        )
    # In order, and never overlapping.
    for (_, before), (after, _) in pairwise(windows):
        assert before <= after


def test_sample_windows_refuse_nonsense() -> None:
    with pytest.raises(InvalidInput):
        sample_windows(date(2026, 11, 28), 3, 0)
    with pytest.raises(InvalidInput):
        sample_windows(date(2026, 11, 28), 3, 366)


@given(st.integers(1_000, 200_000), st.integers(1, 30))
def test_each_years_budgets_are_scaled_to_its_window(people: int, n: int) -> None:
    windows = sample_windows(date(2026, 11, 28), 3, n)
    planned = season_campaigns(people, start=windows[0][0], years=3, windows=windows)
    # Every advertiser has a campaign in each window; Reelix two.
    assert len(planned) == 3 * (len(plans()) + 2)
    for plan, campaign in planned:
        window = (campaign.schedule.start.date(), campaign.schedule.end.date())  # type: ignore[union-attr]
        assert window in windows
        assert campaign.lifetime_budget is not None
        assert campaign.daily_budget == campaign.lifetime_budget // n
        if plan.advertiser != REELIX_ADVERTISER:
            yearly = plan.per_person_year * people * MICROS
            assert abs(campaign.lifetime_budget - yearly * n / 365) <= 1
    for year, window in enumerate(windows):
        reelix = sum(
            c.lifetime_budget or 0
            for p, c in planned
            if p.advertiser == REELIX_ADVERTISER
            and (c.schedule.start.date(), c.schedule.end.date()) == window  # type: ignore[union-attr]
        )
        filed = REELIX_YEARLY[year] * people / SCALE_AUDIENCE * MICROS
        assert abs(reelix - filed * n / 365) <= 2


def test_too_few_people_for_a_window_say_which_campaign() -> None:
    windows = sample_windows(date(2026, 11, 28), 3, 7)
    with pytest.raises(InvalidInput, match="too few for"):
        season_campaigns(500, start=windows[0][0], years=3, windows=windows)
    # The demo runs its season by default from this many people: every budget pays.
    assert season_campaigns(ADS_BY_DEFAULT_FROM, start=windows[0][0], years=3, windows=windows)


@given(days)
def test_a_day_falls_in_its_period(day: date) -> None:
    for by in ("year", "month"):
        first, after = period_days(period_of(day, by))  # type: ignore[arg-type]
        assert first <= day < after
        assert period_of(first, by) == period_of(after - timedelta(days=1), by)  # type: ignore[arg-type]
        assert period_of(after, by) != period_of(day, by)  # type: ignore[arg-type]


def test_a_period_that_is_no_year_or_month_is_refused() -> None:
    with pytest.raises(InvalidInput, match="YYYY or YYYY-MM"):
        period_days("2026-13")


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(2200, 1, 1),
        timezones=st.one_of(
            st.none(),
            st.just(UTC),
            st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-900, 900)),
        ),
    )
)
def test_impressions_and_charges_store_instants_as_the_column_type_does(moment: datetime) -> None:
    """Rows written in bulk keep the text the store's instant type writes (RFC 3339, UTC, Z)."""
    assert _sqlite_form(moment)(moment) == to_text(moment)
    day = moment.date()
    assert _sqlite_form(day)(day) == day.isoformat()
    assert _sqlite_form(True)(True) == 1
