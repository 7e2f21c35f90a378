"""The optimised market and a straightforward reference (:mod:`ads.reference`) agree exactly.

Random markets — targeting of every kind, partner data and opted-out people, minors, schedules
that start, end and day-part within the run, paused campaigns, bids below the reserve, budgets
and lifetime budgets that run out, frequency caps, several creatives, scores full of ties, CTRs
below the quality floor — under random traffic over three days with clicks (some arriving
after the budget was spent), under both price rules and with enough slots to take the
partition path: every placement (campaign, creative, slot, price, predicted CTR, score) and
every charge must be the same.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.ads.auction import AuctionRules, PriceRule
from accord.ads.market import Charge, Market, Placement
from accord.ads.model import (
    AGE_BANDS,
    Bid,
    BidStrategy,
    Campaign,
    CampaignStatus,
    Creative,
    PersonSignals,
    Schedule,
    Targeting,
)
from accord.ads.pacing import PacingSettings
from ads.reference import ReferenceMarket, request_number

pytestmark = pytest.mark.unit

START = datetime(2026, 1, 30, 22, tzinfo=UTC)  # the day and the month turn during a run
INTERESTS = ("music", "film", "running", "cooking")
AUDIENCES = ("fans", "lapsed", "buyers")
CTRS = (0.0004, 0.001, 0.004, 0.01, 0.0125, 0.02, 0.05, 0.1)  # few values: equal scores


@st.composite
def campaigns(draw: st.DrawFn) -> list[Campaign]:
    out = []
    for i in range(draw(st.integers(1, 12))):
        cpc = draw(st.booleans())
        # Few distinct bids, some below the reserve (20,000 a click, 200 an impression).
        bid = (
            Bid(BidStrategy.CPC, draw(st.sampled_from([10_000, 25_000, 50_000, 100_000, 250_000])))
            if cpc
            else Bid(BidStrategy.CPM, draw(st.sampled_from([100, 250, 500, 1_000, 2_500])) * 1_000)
        )
        per_event = bid.per_event
        audiences = draw(st.frozensets(st.sampled_from(AUDIENCES), max_size=2))
        excluded = draw(st.frozensets(st.sampled_from(AUDIENCES), max_size=1)) - audiences
        start = START + timedelta(seconds=draw(st.sampled_from([-86_400 * 3, -3_600, 0, 5_400])))
        start += timedelta(seconds=draw(st.integers(0, 1_799)))
        end = draw(st.none() | st.integers(3_600, 86_400 * 2))
        out.append(
            Campaign(
                id=draw(st.integers(1, 10_000)) * 16 + i,  # ids in any order, unique
                advertiser=f"advertiser-{i % 3}",
                name=f"campaign {i}",
                daily_budget=draw(st.integers(per_event, per_event * 30)),
                schedule=Schedule(
                    start,
                    None if end is None else start + timedelta(seconds=end),
                    draw(
                        st.none()
                        | st.just(frozenset(d * 24 + h for d in range(7) for h in range(12)))
                        | st.just(frozenset(d * 24 + h for d in range(7) for h in range(20, 24)))
                    ),
                ),
                bid=bid,
                creatives=tuple(
                    Creative(f"ad-{k}", f"Ad {k}", "", "https://example.com/")
                    for k in range(draw(st.integers(1, 3)))
                ),
                targeting=Targeting(
                    regions=draw(st.sampled_from([(), ("US",), ("DE",), ("US-CA", "DE"), ("EU",)])),
                    age_bands=draw(st.frozensets(st.sampled_from(AGE_BANDS), max_size=3)),
                    interests=draw(st.frozensets(st.sampled_from(INTERESTS), max_size=2)),
                    audiences=audiences,
                    excluded_audiences=excluded,
                ),
                lifetime_budget=draw(st.none() | st.integers(per_event, per_event * 60)),
                frequency_cap=draw(st.integers(1, 3)),
                status=draw(st.sampled_from([CampaignStatus.ACTIVE] * 5 + [CampaignStatus.PAUSED])),
                partner_data=bool(audiences | excluded) and draw(st.booleans()),
            )
        )
    return out


@st.composite
def people(draw: st.DrawFn) -> list[PersonSignals]:
    return [
        PersonSignals(
            f"c{i:07d}",
            draw(st.sampled_from(["US-CA", "US-TX", "DE", "FR", "BR"])),
            draw(st.sampled_from(AGE_BANDS)),
            draw(st.frozensets(st.sampled_from(INTERESTS))),
            draw(st.frozensets(st.sampled_from(AUDIENCES))),
            opted_out=draw(st.booleans()),
        )
        for i in range(draw(st.integers(1, 8)))
    ]


def placed(p: Placement) -> tuple[object, ...]:
    return (
        p.slot,
        p.campaign.id,
        p.creative.id,
        p.price,
        p.predicted_ctr,
        p.score,
        p.position,
        request_number(p.request_id),
    )


def charged(c: Charge) -> tuple[object, ...]:
    return (c.campaign, c.advertiser, c.at, c.event, c.micros, request_number(c.request_id))


@settings(max_examples=150, deadline=None)
@given(
    campaigns(),
    people(),
    st.integers(0, 2**32 - 1),
    st.sampled_from(list(PriceRule)),
    st.sampled_from([0.2, 1.0]),
)
def test_the_market_agrees_exactly_with_the_reference_on_random_markets(
    chosen: list[Campaign], who: list[PersonSignals], seed: int, rule: PriceRule, start: float
) -> None:
    rng = random.Random(seed)
    table = {p.person: np.array([rng.choice(CTRS) for _ in chosen]) for p in who}
    order = sorted(range(len(chosen)), key=lambda i: chosen[i].id)
    # The predictor answers in the markets' order of campaigns (ascending id).
    ctr = {person: row[order] for person, row in table.items()}

    def predict(person: PersonSignals, _eligible: object) -> np.ndarray:
        return ctr[person.person]  # type: ignore[no-any-return]

    rules = AuctionRules(20_000, 200_000, 0.001, rule, max_slots=14)
    pacing = PacingSettings(start=start)
    market = Market(chosen, rules, predict, pacing=pacing, seed=seed)
    reference = ReferenceMarket(chosen, rules, predict, pacing=pacing, seed=seed)
    at = START
    late: list[tuple[Placement, Placement]] = []
    for requests in range(400):
        at += timedelta(seconds=rng.choice([1, 30, 300, 900, 2_000]))
        # Clicks of earlier ads arrive now, some after their campaign's budget ran out.
        for mine, theirs in late:
            market.click(mine, at)
            reference.click(theirs, at)
        late = []
        person = rng.choice(who)
        slots = rng.choice([1, 2, 2, 3, 12, 14])
        ours = market.request(person, at, slots)
        expected = reference.request(person, at, slots)
        assert [placed(p) for p in ours] == [placed(p) for p in expected], (requests, at)
        for mine, theirs in zip(ours, expected, strict=True):
            if rng.random() < 0.5:
                if rng.random() < 0.5:
                    market.click(mine, at)
                    reference.click(theirs, at)
                else:
                    late.append((mine, theirs))
    assert [charged(c) for c in market.take_charges()] == [charged(c) for c in reference.charges]


@settings(max_examples=150, deadline=None)
@given(
    campaigns(),
    people(),
    st.integers(0, 2**32 - 1),
    st.sampled_from(list(PriceRule)),
    st.sampled_from([0.2, 1.0]),
)
def test_requests_run_together_give_exactly_what_they_give_one_by_one(
    chosen: list[Campaign], who: list[PersonSignals], seed: int, rule: PriceRule, start: float
) -> None:
    # Runs of requests of a few people (the same person several times in a run) against small
    # budgets and caps of 1 to 3: caps are reached and budgets spent out within a run.
    rng = random.Random(seed)
    ctr = {p.person: np.array([rng.choice(CTRS) for _ in chosen]) for p in who}

    def predict(person: PersonSignals, _eligible: object) -> np.ndarray:
        return ctr[person.person]  # type: ignore[no-any-return]

    rules = AuctionRules(20_000, 200_000, 0.001, rule, max_slots=14)
    pacing = PacingSettings(start=start)
    together = Market(chosen, rules, predict, pacing=pacing, seed=seed)
    alone = Market(chosen, rules, predict, pacing=pacing, seed=seed)
    at = START
    for _ in range(12):
        run = []
        for _ in range(rng.choice([1, 5, 40, 150])):
            at += timedelta(seconds=rng.choice([0, 1, 20, 120, 900]))
            run.append((rng.choice(who), at, rng.choice([1, 2, 2, 3, 14])))
        ours = together.request_many(run)
        expected = [alone.request(person, moment, slots) for person, moment, slots in run]
        assert [[placed(p) for p in r] for r in ours] == [[placed(p) for p in r] for r in expected]
        # Clicks between runs, at the time of the run's last request.
        for mine, theirs in zip(ours, expected, strict=True):
            for a, b in zip(mine, theirs, strict=True):
                if rng.random() < 0.5:
                    together.click(a, at)
                    alone.click(b, at)
    assert [charged(c) for c in together.take_charges()] == [
        charged(c) for c in alone.take_charges()
    ]
