"""Pacing over simulated days: budgets delivered, spread through the day, never exceeded.

Four campaigns whose unthrottled demand is several times their daily budgets compete for ten days
of traffic that follows a daily curve. Pacing must deliver at least 95% of each daily budget
every day, never spend more than 1.75 times it in a day, never exceed a lifetime budget, cut
(over-deliver) less than 1% of what it charged, and spread each day's spend: not spent out by
the morning.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from accord.ads.auction import AuctionRules
from accord.ads.market import Market
from accord.ads.model import Bid, BidStrategy, Campaign, Creative, PersonSignals, Schedule
from accord.ads.pacing import (
    Pacer,
    PacingSettings,
    cumulative,
    day_cap,
)
from accord.ads.simulate import LOCAL_DAY
from accord.errors import InvalidInput

pytestmark = pytest.mark.unit

START = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = 10
REQUESTS_A_DAY = 4_000


def _campaign(i: int, bid: Bid, daily: int, lifetime: int | None = None) -> Campaign:
    return Campaign(
        id=i,
        advertiser=f"advertiser-{i}",
        name=f"campaign {i}",
        daily_budget=daily,
        schedule=Schedule(START),
        bid=bid,
        creatives=(Creative("ad", "An ad", "", "https://example.com/"),),
        lifetime_budget=lifetime,
    )


def test_pacing_delivers_each_daily_budget_spread_through_the_day() -> None:
    paced = [
        _campaign(1, Bid(BidStrategy.CPM, 6_000_000), 3_000_000),
        _campaign(2, Bid(BidStrategy.CPM, 5_000_000), 2_000_000),
        _campaign(3, Bid(BidStrategy.CPC, 200_000), 8_000_000),
        # A lifetime budget that runs out on the eighth day.
        _campaign(4, Bid(BidStrategy.CPM, 5_500_000), 1_500_000, lifetime=11_000_000),
    ]
    # Advertisers with budgets too large to pace, bidding a little less: every auction has
    # competition, so second prices are near the bids, as in a thick market.
    others = [
        _campaign(10 + i, Bid(BidStrategy.CPM, (3_000 + 200 * i) * 1_000), 10**12) for i in range(6)
    ]
    chosen = paced + others
    rng = random.Random(5)
    people = [PersonSignals(f"c{i:07d}", "US-NY", "25-34") for i in range(3_000)]
    ctr = {p.person: np.array([rng.uniform(0.01, 0.05) for _ in chosen]) for p in people}
    windows = PacingSettings().windows
    per_hour = windows // 24
    traffic = np.repeat(np.asarray(LOCAL_DAY) / per_hour, per_hour)
    market = Market(
        chosen,
        AuctionRules(),
        lambda person, _mask: ctr[person.person],
        curves=cumulative(traffic),
        seed=3,
    )
    hours = rng.choices(range(24), weights=LOCAL_DAY, k=REQUESTS_A_DAY * DAYS)
    spent: dict[tuple[int, date], int] = defaultdict(int)
    before_noon: dict[tuple[int, date], int] = defaultdict(int)
    for d in range(DAYS):
        midnight = START + timedelta(days=d)
        times = sorted(
            midnight + timedelta(hours=h, seconds=rng.randrange(3600))
            for h in hours[d * REQUESTS_A_DAY : (d + 1) * REQUESTS_A_DAY]
        )
        for at in times:
            for placement in market.request(rng.choice(people), at, 2):
                cpc = placement.campaign.bid.strategy is BidStrategy.CPC
                if cpc and rng.random() < placement.predicted_ctr:
                    market.click(placement, at)
            for charge in market.take_charges():
                spent[(charge.campaign, charge.at.date())] += charge.micros
                if charge.at.hour < 12:
                    before_noon[(charge.campaign, charge.at.date())] += charge.micros
    charged = sum(spent.values())
    assert int(market.pacer.over_delivered.sum()) <= charged // 100
    share_by_noon = sum(LOCAL_DAY[:12]) / sum(LOCAL_DAY)
    for campaign in paced:
        total = 0
        for d in range(DAYS):
            day = (START + timedelta(days=d)).date()
            amount = spent[(campaign.id, day)]
            # What the day could spend: its budget, or what is left of the lifetime budget.
            due = campaign.daily_budget
            if campaign.lifetime_budget is not None:
                due = min(due, campaign.lifetime_budget - total)
            total += amount
            assert amount <= day_cap(campaign.daily_budget)
            # Less than a bid left is left unspent (it could not pay for one event).
            assert amount >= 0.95 * due - campaign.bid.per_event, (campaign.id, day, amount)
            if due == campaign.daily_budget:
                # Spread: by noon about the share of the day's traffic that has come, not all.
                assert before_noon[(campaign.id, day)] <= amount * (share_by_noon + 0.2)
        if campaign.lifetime_budget is not None:
            assert total <= campaign.lifetime_budget
            assert total >= 0.95 * campaign.lifetime_budget
        # Over the ten days, no more than the daily budget on average.
        assert total <= campaign.daily_budget * DAYS


def test_a_day_makes_up_for_the_month_so_far_but_never_beyond_one_and_three_quarters() -> None:
    pacer = Pacer(
        np.array([1_000_000]),
        np.array([10**12]),
        np.array([1_000]),
        [date(2026, 3, 1)],
    )
    pacer.advance(datetime(2026, 3, 1, 12, tzinfo=UTC))
    assert pacer.allowance.tolist() == [1_000_000]
    pacer.charge(0, 200_000)  # the first day spends a fifth of its budget
    pacer.advance(datetime(2026, 3, 2, 0, 30, tzinfo=UTC))
    assert pacer.allowance.tolist() == [1_750_000]  # 1.8 million would make up; 1.75 is the cap
    pacer.advance(datetime(2026, 4, 1, 0, 30, tzinfo=UTC))
    assert pacer.allowance.tolist() == [1_000_000]  # a new month starts afresh


def test_a_charge_beyond_what_is_left_is_cut_and_counted_as_over_delivery() -> None:
    pacer = Pacer(np.array([1_000]), np.array([1_500]), np.array([400]), [date(2026, 3, 1)])
    pacer.advance(datetime(2026, 3, 1, tzinfo=UTC))
    assert pacer.charge(0, 500) == 500
    assert bool(pacer.funded[0])  # 500 left: one more event at the bid
    assert pacer.charge(0, 200) == 200
    assert not pacer.funded[0]  # 300 left: less than one more event, out of the auctions
    # A click of an ad shown before arrives now: cut to what is left, the rest over-delivered.
    assert pacer.charge(0, 400) == 300
    assert pacer.over_delivered.tolist() == [100]


def test_spend_read_again_in_the_day_counts_once_against_the_lifetime_budget() -> None:
    """A server re-reads the spend records during the day and recomputes the allowances: what
    was spent today must count once against what is left, not once in the day's allowance and
    again in the room left of it."""
    pacer = Pacer(np.array([1_000]), np.array([800]), np.array([100]), [date(2026, 3, 1)])
    pacer.advance(datetime(2026, 3, 1, 9, tzinfo=UTC))
    assert pacer.allowance.tolist() == [800]  # the lifetime budget binds, not the daily one
    assert pacer.charge(0, 500) == 500
    assert pacer.room(0) == 300
    pacer.refresh()  # the same spend, read again from the records
    assert pacer.room(0) == 300
    assert bool(pacer.funded[0])
    assert pacer.charge(0, 300) == 300  # the whole lifetime budget, and not a micro more
    assert pacer.charge(0, 100) == 0
    assert pacer.spent_total.tolist() == [800]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"windows": 7}, "divide"),  # 1440 minutes are not seven equal windows
        ({"step": 1.5}, "step"),
        ({"floor": 0.5, "start": 0.2}, "floor"),
    ],
)
def test_unusable_pacing_settings_are_refused(settings: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        PacingSettings(**settings)  # type: ignore[arg-type]
