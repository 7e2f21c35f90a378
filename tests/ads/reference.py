"""A straightforward ad market, written apart from :mod:`accord.ads.market` to check it.

Everything a request decides is decided here campaign by campaign in plain Python, from the
campaigns' own fields: targeting from :class:`~accord.ads.model.Targeting` (places, age bands,
interests, audiences, minors, opt-outs), the schedule from :meth:`Schedule.runs_at`, budgets and
frequency caps from sums of what was charged and shown, ranking by ``sorted`` on (score
descending, campaign id), and each second price by a binary search for the least bid that still
ranks the winner above the candidate below it.

Two things are taken as the market specifies them rather than recomputed: the pass-through rates
and each day's allowances come from a :class:`~accord.ads.pacing.Pacer` of their own (its
window and day arithmetic is not on the request path), fed with this market's charges; and the
pacing draws follow the market's published scheme so that both see the same random numbers —
blocks of 128 auctions × 16 bits per campaign from a generator of the same seed, a block started
afresh at each *tick*: the first request, and any request at or after a boundary passed since the
last tick (a pacing window's end, an hour's end, a campaign's start or end).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime

import numpy as np

from accord.ads.auction import AuctionRules, PriceRule
from accord.ads.market import Charge, Placement, Predictor
from accord.ads.model import MINORS, BidStrategy, Campaign, CampaignStatus, PersonSignals
from accord.ads.pacing import NO_LIMIT, Pacer, PacingSettings

ROWS = 128
SCALE = 1 << 16


def seconds(at: datetime) -> int:
    return int(at.timestamp())


def reaches(campaign: Campaign, person: PersonSignals) -> bool:
    """Whether the campaign's targeting reaches the person, judged on the campaign itself."""
    t = campaign.targeting
    if not t.places.contains(person.jurisdiction):
        return False
    if t.age_bands and person.age_band not in t.age_bands:
        return False
    if t.interests and not t.interests & person.interests:
        return False
    if t.audiences and not t.audiences & person.audiences:
        return False
    if t.excluded_audiences & person.audiences:
        return False
    if person.age_band == MINORS and t.profiling:
        return False
    return not (person.opted_out and campaign.partner_data)


class ReferenceMarket:
    """The same market as :class:`accord.ads.market.Market`, the plain way."""

    def __init__(
        self,
        campaigns: Sequence[Campaign],
        rules: AuctionRules,
        predictor: Predictor,
        *,
        pacing: PacingSettings | None = None,
        seed: int = 0,
    ) -> None:
        self.campaigns = sorted(campaigns, key=lambda c: c.id)
        self.rules = rules
        self.predict = predictor
        self.bids = [c.bid.per_event for c in self.campaigns]
        self.pacer = Pacer(
            np.array([c.daily_budget for c in self.campaigns], dtype=np.int64),
            np.array([c.lifetime_budget or NO_LIMIT for c in self.campaigns], dtype=np.int64),
            np.array(self.bids, dtype=np.int64),
            [c.schedule.start.date() for c in self.campaigns],
            settings=pacing,
        )
        window = 86_400 // self.pacer.settings.windows
        self.boundaries = sorted(
            {seconds(c.schedule.start) for c in self.campaigns}
            | {seconds(c.schedule.end) for c in self.campaigns if c.schedule.end}
        )
        self.window = window
        self.rng = np.random.default_rng(seed)
        self.rows: list[list[bool]] = []
        self.last_tick: int | None = None
        self.day: date | None = None
        self.shown: dict[tuple[str, int], int] = defaultdict(int)
        self.turns: dict[int, int] = defaultdict(int)
        self.auctions = 0
        self.charges: list[Charge] = []

    # -- time and money ---------------------------------------------------------------------------

    def _passed_boundary(self, now: int) -> bool:
        last = self.last_tick
        if last is None:
            return True
        if now // self.window > last // self.window or now // 3600 > last // 3600:
            return True
        return any(last < b <= now for b in self.boundaries)

    def _clock(self, at: datetime) -> None:
        now = seconds(at)
        if self._passed_boundary(now):
            self.last_tick = now
            self.rows = []  # a fresh block of draws at the next auction
        self.pacer.advance(at)
        today = at.astimezone(UTC).date()
        if today != self.day:
            self.day = today
            self.shown.clear()

    def _room(self, i: int) -> int:
        p = self.pacer
        return min(
            int(p.allowance[i]) - int(p.spent_today[i]),
            int(p.lifetime[i]) - int(p.spent_total[i]),
        )

    def _charge(self, i: int, price: int, at: datetime, event: str, request: str) -> None:
        charged = min(price, max(self._room(i), 0))
        self.pacer.spent_today[i] += charged
        self.pacer.spent_total[i] += charged
        c = self.campaigns[i]
        self.charges.append(Charge(c.id, c.advertiser, at.astimezone(UTC), event, charged, request))

    def _draw(self) -> None:
        n = len(self.campaigns)
        words = -(-ROWS * n // 4)
        raw = self.rng.bit_generator.random_raw(words).view(np.uint16)[: ROWS * n]
        last = [min(max(round(r * SCALE), 1), SCALE) - 1 for r in self.pacer.rate.tolist()]
        self.rows = [[int(raw[row * n + i]) <= last[i] for i in range(n)] for row in range(ROWS)]

    # -- requests ---------------------------------------------------------------------------------

    def request(self, person: PersonSignals, at: datetime, slots: int) -> list[Placement]:
        self._clock(at)
        self.auctions += 1
        if not self.rows:
            self._draw()
        passed = self.rows.pop(0)
        eligible = []
        for i, c in enumerate(self.campaigns):
            reserve = self.rules.reserve(c.bid.strategy)
            eligible.append(
                c.status is CampaignStatus.ACTIVE
                and self.bids[i] >= reserve
                and c.schedule.runs_at(at)
                and self._room(i) >= self.bids[i]
                and passed[i]
                and reaches(c, person)
                and self.shown[(person.person, c.id)] < c.frequency_cap
            )
        ctr = self.predict(person, np.array(eligible, dtype=bool)).tolist()
        weight = [
            ctr[i] if c.bid.strategy is BidStrategy.CPC else 1.0
            for i, c in enumerate(self.campaigns)
        ]
        score = [self.bids[i] * weight[i] for i in range(len(self.campaigns))]
        candidates = [
            i for i in range(len(self.campaigns)) if eligible[i] and ctr[i] >= self.rules.min_ctr
        ]
        order = sorted(candidates, key=lambda i: (-score[i], self.campaigns[i].id))
        request = f"{self.auctions:016x}"
        placements = []
        for slot, i in enumerate(order[:slots]):
            c = self.campaigns[i]
            reserve = self.rules.reserve(c.bid.strategy)
            if self.rules.price_rule is PriceRule.FIRST:
                price = self.bids[i]
            elif slot + 1 < len(order):
                below = order[slot + 1]
                first = c.id < self.campaigns[below].id

                def keeps(bid: int, i: int = i, below: int = below, first: bool = first) -> bool:
                    mine = bid * weight[i]
                    return mine > score[below] or (first and mine == score[below])

                lo, hi = 1, self.bids[i]
                while lo < hi:
                    mid = (lo + hi) // 2
                    if keeps(mid):
                        hi = mid
                    else:
                        lo = mid + 1
                price = min(max(reserve, lo), self.bids[i])
            else:
                price = reserve
            creative = c.creatives[self.turns[i] % len(c.creatives)]
            self.turns[i] += 1
            placements.append(Placement(request, slot, c, creative, price, ctr[i], score[i], i))
            self.shown[(person.person, c.id)] += 1
            if c.bid.strategy is BidStrategy.CPM:
                self._charge(i, price, at, "impression", request)
        return placements

    def click(self, placement: Placement, at: datetime) -> None:
        if placement.campaign.bid.strategy is BidStrategy.CPC:
            self._clock(at)
            self._charge(placement.position, placement.price, at, "click", placement.request_id)


def request_number(request_id: str) -> str:
    """The count part of a market's request id (its first 16 characters are a random prefix)."""
    return request_id[-16:]


__all__ = ["ReferenceMarket", "reaches", "request_number"]
