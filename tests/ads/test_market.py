"""The market under random traffic: budgets, frequency caps, prices and opt-outs always hold.

Every check here reads what the market did (its charges and placements), not its internal
counters: the limits are recomputed from the charges, day by day and month by month.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.ads.auction import AuctionRules, PriceRule
from accord.ads.market import Market
from accord.ads.model import (
    AGE_BANDS,
    Bid,
    BidStrategy,
    Campaign,
    Creative,
    PersonSignals,
    Schedule,
    Targeting,
)
from accord.ads.pacing import day_cap

pytestmark = pytest.mark.unit

START = datetime(2026, 1, 30, tzinfo=UTC)  # the month turns during a run
RULES = AuctionRules(reserve_cpc=20_000, reserve_cpm=200_000, min_ctr=0.001)


@st.composite
def campaigns(draw: st.DrawFn) -> list[Campaign]:
    out = []
    for i in range(draw(st.integers(1, 7))):
        cpc = draw(st.booleans())
        per_event = draw(st.integers(1_000, 300_000))
        bid = Bid(BidStrategy.CPC, per_event) if cpc else Bid(BidStrategy.CPM, per_event * 1_000)
        daily = draw(st.integers(per_event, per_event * 40))
        lifetime = draw(st.none() | st.integers(per_event, per_event * 120))
        regions = draw(st.sampled_from([(), ("US",), ("DE",), ("US-CA", "DE")]))
        audiences = draw(st.sampled_from([frozenset(), frozenset({"fans"})]))
        hours = draw(
            st.none() | st.just(frozenset(d * 24 + h for d in range(7) for h in range(8, 20)))
        )
        out.append(
            Campaign(
                id=i + 1,
                advertiser=f"advertiser-{i % 3}",
                name=f"campaign {i}",
                daily_budget=daily,
                schedule=Schedule(START - timedelta(days=draw(st.integers(0, 40))), hours=hours),
                bid=bid,
                creatives=(Creative("ad", "An ad", "", "https://example.com/"),),
                targeting=Targeting(regions=regions, audiences=audiences),
                lifetime_budget=lifetime,
                frequency_cap=draw(st.integers(1, 3)),
                partner_data=bool(audiences) and draw(st.booleans()),
            )
        )
    return out


@st.composite
def people(draw: st.DrawFn) -> list[PersonSignals]:
    return [
        PersonSignals(
            f"c{i:07d}",
            draw(st.sampled_from(["US-CA", "US-TX", "DE", "BR"])),
            draw(st.sampled_from(AGE_BANDS)),
            audiences=draw(st.sampled_from([frozenset(), frozenset({"fans"})])),
            opted_out=draw(st.booleans()),
        )
        for i in range(draw(st.integers(1, 8)))
    ]


def run(
    chosen: list[Campaign], who: list[PersonSignals], seed: int, rule: PriceRule, requests: int
) -> tuple[Market, list[tuple[PersonSignals, object]], list[object]]:
    """Random traffic over about three days; every CPC ad clicked at random."""
    rng = random.Random(seed)
    ctr = {p.person: np.array([rng.uniform(0.0005, 0.2) for _ in chosen]) for p in who}
    rules = AuctionRules(RULES.reserve_cpc, RULES.reserve_cpm, RULES.min_ctr, rule)
    market = Market(chosen, rules, lambda person, _mask: ctr[person.person], seed=seed)
    shown = []
    at = START
    for _ in range(requests):
        at += timedelta(seconds=rng.randint(1, 600))
        person = rng.choice(who)
        for placement in market.request(person, at, rng.randint(1, 3)):
            shown.append((person, placement, at))
            if rng.random() < 0.5:
                market.click(placement, at + timedelta(seconds=rng.randint(0, 30)))
    return market, shown, market.take_charges()


@settings(max_examples=120, deadline=None)
@given(campaigns(), people(), st.integers(0, 2**32), st.sampled_from(list(PriceRule)))
def test_budgets_caps_prices_and_opt_outs_hold_under_random_traffic(
    chosen: list[Campaign], who: list[PersonSignals], seed: int, rule: PriceRule
) -> None:
    _market, shown, charges = run(chosen, who, seed, rule, requests=600)
    by_id = {c.id: c for c in chosen}

    spent_day: dict[tuple[int, object], int] = defaultdict(int)
    for charge in charges:
        spent_day[(charge.campaign, charge.at.date())] += charge.micros
    for campaign in chosen:
        days = sorted(day for (c, day) in spent_day if c == campaign.id)
        total = sum(spent_day[(campaign.id, day)] for day in days)
        if campaign.lifetime_budget is not None:
            assert total <= campaign.lifetime_budget
        month: dict[tuple[int, int], int] = defaultdict(int)
        for day in days:
            amount = spent_day[(campaign.id, day)]
            assert amount <= day_cap(campaign.daily_budget)
            month[(day.year, day.month)] += amount
            first = max(day.replace(day=1), campaign.schedule.start.date())
            # Month to date never beyond the daily budget times the days run this month.
            assert month[(day.year, day.month)] <= campaign.daily_budget * ((day - first).days + 1)

    seen: dict[tuple[str, int, object], int] = defaultdict(int)
    for person, placement, at in shown:
        campaign = by_id[placement.campaign.id]
        key = (person.person, campaign.id, at.date())
        seen[key] += 1
        assert seen[key] <= campaign.frequency_cap
        reserve = RULES.reserve(campaign.bid.strategy)
        assert reserve <= placement.price <= campaign.bid.per_event
        if rule is PriceRule.FIRST:
            assert placement.price == campaign.bid.per_event
        # An opted-out person never gets an ad targeted with partner data.
        assert not (person.opted_out and campaign.partner_data)
        assert campaign.schedule.runs_at(at)
        assert campaign.targeting.places.contains(person.jurisdiction)


def test_an_opted_out_person_gets_the_same_campaign_without_partner_data_but_not_with_it() -> None:
    base = {
        "advertiser": "reelix",
        "daily_budget": 10**9,
        "schedule": Schedule(START - timedelta(days=1)),
        "bid": Bid(BidStrategy.CPM, 5_000_000),
        "creatives": (Creative("ad", "An ad", "", "https://example.com/"),),
    }
    partner = Campaign(id=1, name="with partner data", partner_data=True, **base)  # type: ignore[arg-type]
    own = Campaign(id=2, name="without", **base)  # type: ignore[arg-type]
    market = Market([partner, own], RULES, lambda _p, _m: np.array([0.02, 0.02]))
    opted = PersonSignals("c0000001", "US-CA", "25-34", opted_out=True)
    other = PersonSignals("c0000002", "US-CA", "25-34")
    market.pacer.rate[:] = 1.0
    assert [p.campaign.id for p in market.request(opted, START, 2)] == [2]
    assert [p.campaign.id for p in market.request(other, START, 2)] == [1, 2]


def test_no_ad_based_on_profiling_reaches_a_minor() -> None:
    common = {
        "advertiser": "northwind",
        "daily_budget": 10**9,
        "schedule": Schedule(START - timedelta(days=1)),
        "bid": Bid(BidStrategy.CPM, 5_000_000),
        "creatives": (Creative("ad", "An ad", "", "https://example.com/"),),
    }
    by_interest = Campaign(
        id=1, name="runners", targeting=Targeting(interests=frozenset({"fitness"})), **common
    )  # type: ignore[arg-type]
    by_place = Campaign(
        id=2, name="everyone in the US", targeting=Targeting(regions=("US",)), **common
    )  # type: ignore[arg-type]
    market = Market([by_interest, by_place], RULES, lambda _p, _m: np.array([0.02, 0.02]))
    market.pacer.rate[:] = 1.0
    teen = PersonSignals("c0000001", "US-CA", "13-17", frozenset({"fitness"}))
    adult = PersonSignals("c0000002", "US-CA", "18-24", frozenset({"fitness"}))
    assert [p.campaign.id for p in market.request(teen, START, 2)] == [2]
    assert [p.campaign.id for p in market.request(adult, START, 2)] == [1, 2]
