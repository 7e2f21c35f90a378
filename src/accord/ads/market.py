"""One ad request: eligibility, pacing, the auction and the charges, for a set of campaigns.

For a person at an instant, in order (each step a few NumPy operations over the candidates, no
Python loop over them):

1. targeting, minors and opt-outs: :meth:`accord.ads.eligibility.CandidateIndex.targets`;
2. live: active, within its schedule (dates and day-parting), bid at least the reserve, and
   funded — what is left of the day's allowance and of the lifetime budget covers one more
   billable event (:mod:`accord.ads.pacing`);
3. frequency cap: fewer impressions to this person today than the campaign's cap;
4. pacing: each candidate passes with its pass-through rate (one uniform draw each);
5. quality floor: predicted click-through rate at least :attr:`AuctionRules.min_ctr`;
6. the auction (:mod:`accord.ads.auction`) for the slots asked.

A CPM winner is charged its price at once (the impression is what it pays for); a CPC winner is
charged when its click is reported (:meth:`Market.click`). Charges are kept in :attr:`charges`
until the caller takes them (:meth:`Market.take_charges`) into the spend ledger.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from accord.ads.auction import AuctionRules, PriceRule, best, second_prices
from accord.ads.eligibility import CandidateIndex
from accord.ads.model import (
    HOURS_IN_WEEK,
    BidStrategy,
    Campaign,
    CampaignStatus,
    Creative,
    PersonSignals,
    hour_of_week,
)
from accord.ads.pacing import NO_LIMIT, Pacer, PacingSettings
from accord.consent import utc
from accord.errors import InvalidInput

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

Predictor = Callable[[PersonSignals, "Mask"], Floats]
"""Predicted click-through rates of every campaign of the index for a person, in index order;
the values of campaigns outside the mask (not eligible) are not used."""

_GATE_ROWS = 128
"""Auctions whose pacing draws are made at once (one row of pass/fail per campaign each)."""
_RATE_SCALE = 1 << 16
_NEVER = np.iinfo(np.int64).max


class Placement(NamedTuple):
    """An ad that won a slot: what is shown and what it costs per billable event."""

    request_id: str
    slot: int
    campaign: Campaign
    creative: Creative
    price: int
    """Micros per billable event: per click (CPC) or per impression (CPM)."""
    predicted_ctr: float
    score: float
    """Rank score: expected micros per impression."""
    position: int
    """The campaign's position in the market's index."""

    @property
    def billing(self) -> BidStrategy:
        """What the advertiser pays for."""
        return self.campaign.bid.strategy


_new = tuple.__new__
"""A named tuple from its fields in order, without the keyword handling of its constructor."""


class _Seen:
    """What one person was shown today: impressions per campaign position, and the positions
    at their frequency cap (the first ``capped`` of ``positions``, an array that grows)."""

    __slots__ = ("capped", "positions", "shown")

    def __init__(self) -> None:
        self.shown: dict[int, int] = {}
        self.positions: Ints = np.empty(4, dtype=np.int64)
        self.capped = 0

    def cap(self, position: int) -> None:
        if self.capped == len(self.positions):
            self.positions = np.concatenate((self.positions, np.empty_like(self.positions)))
        self.positions[self.capped] = position
        self.capped += 1


class Charge(NamedTuple):
    """One charge to an advertiser: an impression (CPM) or a click (CPC)."""

    campaign: int
    advertiser: str
    at: datetime
    event: str
    micros: int
    request_id: str


class Market:
    """Campaigns competing for ad requests, with their budgets, pacing and frequency caps.

    ``curves`` are each campaign's cumulative traffic shares per pacing window (or one for all);
    ``seed`` fixes the pacing draws, so a run can be repeated exactly.
    """

    def __init__(
        self,
        campaigns: Sequence[Campaign],
        rules: AuctionRules,
        predictor: Predictor,
        *,
        curves: Floats | None = None,
        pacing: PacingSettings | None = None,
        seed: int = 0,
    ) -> None:
        self.rules = rules
        self.index = index = CandidateIndex(campaigns)
        self.predict = predictor
        ordered = index.campaigns
        n = index.size
        self.bid = np.array([c.bid.per_event for c in ordered], dtype=np.int64)
        self.cpc = np.array([c.bid.strategy is BidStrategy.CPC for c in ordered], dtype=bool)
        self._cpc_bid = np.where(self.cpc, self.bid, 0).astype(np.float64)
        self._cpm_bid = np.where(self.cpc, 0, self.bid).astype(np.float64)
        self._scores = np.empty(n, dtype=np.float64)
        self.reserve = np.array([rules.reserve(c.bid.strategy) for c in ordered], dtype=np.int64)
        self.caps = np.array([c.frequency_cap for c in ordered], dtype=np.int64)
        self.pacer = Pacer(
            np.array([c.daily_budget for c in ordered], dtype=np.int64),
            np.array([c.lifetime_budget or NO_LIMIT for c in ordered], dtype=np.int64),
            self.bid,
            [c.schedule.start.date() for c in ordered],
            curves=curves,
            settings=pacing,
        )
        self._open = np.array([c.status is CampaignStatus.ACTIVE for c in ordered], dtype=bool) & (
            self.bid >= self.reserve
        )
        self._starts = np.array([_seconds(c.schedule.start) for c in ordered], dtype=np.int64)
        self._ends = np.array(
            [
                _seconds(c.schedule.end) if c.schedule.end else np.iinfo(np.int64).max
                for c in ordered
            ],
            dtype=np.int64,
        )
        hours = np.ones((HOURS_IN_WEEK, n), dtype=bool)
        for row, c in enumerate(ordered):
            if c.schedule.hours is not None:
                hours[:, row] = False
                hours[sorted(c.schedule.hours), row] = True
        self._hours = hours
        self._scheduled = np.zeros(n, dtype=bool)
        self._recheck_at = np.iinfo(np.int64).min
        self._next_tick = np.iinfo(np.int64).min
        self._next_at = datetime.min.replace(tzinfo=UTC)
        self.live: Mask = np.zeros(n, dtype=bool)
        self._buffer = np.empty(n, dtype=bool)
        self._rng = np.random.default_rng(seed)
        self._gate = np.zeros((_GATE_ROWS, n), dtype=bool)
        # Each row as a view made once, rather than one made per auction.
        self._gate_rows: list[Mask] = list(self._gate)
        self._gate_row = _GATE_ROWS
        # What each person was shown today.
        self._seen: dict[str, _Seen] = {}
        # What a request reads per winner, as Python values (cheaper to index than arrays).
        self._bids: list[int] = self.bid.tolist()
        self._cpc: list[bool] = self.cpc.tolist()
        self._reserves: list[int] = self.reserve.tolist()
        self._caps: list[int] = self.caps.tolist()
        self._creatives = [c.creatives for c in ordered]
        self._turns = [0] * n
        self._max_slots = rules.max_slots
        self._floor = rules.min_ctr
        self._first_price = rules.price_rule is PriceRule.FIRST
        self.day: date | None = None
        self.charges: list[Charge] = []
        self.auctions = 0
        # Request ids: a random prefix per market (one per worker), then a count.
        self._prefix = uuid.uuid4().hex[:16]

    # -- time -------------------------------------------------------------------------------------

    def advance(self, at: datetime) -> None:
        """Move the market's clock to ``at``: pacing windows, new days, schedules."""
        now = _seconds(at)
        if now < self._next_tick:
            return
        if self.pacer.advance(at):
            self._seen.clear()
            self.day = self.pacer.day
        window = 86_400 // self.pacer.settings.windows
        if now >= self._recheck_at:
            self._schedule(at, now)
        self._next_tick = min(self._recheck_at, now - now % window + window)
        self._next_at = datetime.fromtimestamp(self._next_tick, UTC)
        self.live = self._open & self._scheduled & self.pacer.funded
        # Rates and what is live have moved: the pacing draws made ahead are redrawn.
        self._gate_row = _GATE_ROWS

    def _schedule(self, at: datetime, now: int) -> None:
        within = (self._starts <= now) & (now < self._ends)
        self._scheduled = within & self._hours[hour_of_week(at)]
        hour_ends = now - now % 3600 + 3600
        later = np.concatenate((self._starts[self._starts > now], self._ends[self._ends > now]))
        self._recheck_at = min(hour_ends, int(later.min())) if len(later) else hour_ends

    def refresh(self) -> None:
        """Take in budgets changed from outside (spend read from the records)."""
        self.pacer.refresh()
        self.live = self._open & self._scheduled & self.pacer.funded
        self._gate_row = _GATE_ROWS

    # -- requests ---------------------------------------------------------------------------------

    def request(self, person: PersonSignals, at: datetime, slots: int) -> list[Placement]:
        """Run the auction for ``slots`` ad slots shown to ``person`` at ``at``; charge CPM
        winners; count every winner against its frequency cap."""
        if not 1 <= slots <= self._max_slots:
            raise InvalidInput(f"slots must be from 1 to {self._max_slots}, not {slots}")
        if at.tzinfo is None or at >= self._next_at:
            self.advance(at)
        self.auctions += 1
        # Targeting, then what is live and passed its pacing draw for this auction.
        if self._gate_row >= _GATE_ROWS:
            self._draw_gates()
        gate = self._gate_rows[self._gate_row]
        self._gate_row += 1
        mask = np.logical_and(self.index.targets(person), gate, out=self._buffer)
        ctr = self.predict(person, mask)
        # Rank scores, bid × predicted CTR (CPC) or bid (CPM), in three passes: eligible
        # scores are above 0, the others 0 (below any eligible one).
        scores = np.multiply(ctr, self._cpc_bid, out=self._scores)
        scores += self._cpm_bid
        scores *= mask
        who = person.person
        seen = self._seen.get(who)
        if seen is None:
            seen = self._seen[who] = _Seen()
        elif seen.capped:
            # Campaigns at their frequency cap for this person today are not eligible.
            scores[seen.positions[: seen.capped]] = 0.0
        order, ranked = best(scores, slots + 1, ctr, self._floor)
        winners = order[:slots]
        if self._first_price:
            prices = [self._bids[i] for i in winners]
        else:
            prices = second_prices(
                order,
                ranked,
                slots,
                ctr=ctr,
                cpc=self._cpc,
                bids=self._bids,
                reserves=self._reserves,
            )
        request_id = f"{self._prefix}{self.auctions:016x}"
        placements = []
        campaigns, creatives_of, caps, shown = (
            self.index.campaigns,
            self._creatives,
            self._caps,
            seen.shown,
        )
        for slot, position in enumerate(winners):
            creatives = creatives_of[position]
            if len(creatives) == 1:
                creative = creatives[0]
            else:
                turn = self._turns[position]
                self._turns[position] = turn + 1
                creative = creatives[turn % len(creatives)]
            price = prices[slot]
            placements.append(
                _new(
                    Placement,
                    (
                        request_id,
                        slot,
                        campaigns[position],
                        creative,
                        price,
                        ctr.item(position),
                        ranked[slot],
                        position,
                    ),
                )
            )
            # Count it against the frequency cap.
            count = shown.get(position, 0) + 1
            shown[position] = count
            if count >= caps[position]:
                seen.cap(position)
            if not self._cpc[position]:
                self._charge(position, price, at, "impression", request_id)
        return placements

    def click(self, placement: Placement, at: datetime) -> int:
        """Charge a CPC placement's click (at most what its budgets have left); the amount."""
        if placement.billing is not BidStrategy.CPC:
            return 0
        self.advance(at)
        return self._charge(placement.position, placement.price, at, "click", placement.request_id)

    def take_charges(self) -> list[Charge]:
        """The charges since the last call, oldest first."""
        taken, self.charges = self.charges, []
        return taken

    def _charge(self, position: int, price: int, at: datetime, event: str, request: str) -> int:
        charged = self.pacer.charge(position, price)
        if not self.pacer.funded[position]:
            # Out of budget for today: out of every auction still to come.
            self.live[position] = False
            self._gate[self._gate_row :, position] = False
        campaign = self.index.campaigns[position]
        self.charges.append(
            Charge(campaign.id, campaign.advertiser, utc(at), event, charged, request)
        )
        return charged

    def _draw_gates(self) -> None:
        """Draw the next block of pacing draws: in each of the next auctions, each live campaign
        passes with probability its pass-through rate (in steps of 1/65536), independently in
        every auction. Rows are drawn a block at a time, as 16-bit random numbers, and redrawn
        when rates or what is live move."""
        n = self.index.size
        words = -(-_GATE_ROWS * n // 4)
        draws = self._rng.bit_generator.random_raw(words).view(np.uint16)
        # A draw d in [0, 65535] passes when d < rate × 65536, i.e. d <= that - 1.
        passing = np.round(self.pacer.rate * _RATE_SCALE).astype(np.int64)
        last = (np.clip(passing, 1, _RATE_SCALE) - 1).astype(np.uint16)
        np.less_equal(draws[: _GATE_ROWS * n].reshape(_GATE_ROWS, n), last, out=self._gate)
        self._gate &= self.live
        self._gate_row = 0

    def shown_today(self, person: str, campaign: int) -> int:
        """Impressions ``person`` got today from ``campaign`` (by id)."""
        seen = self._seen.get(person)
        return 0 if seen is None else seen.shown.get(self.index.position[campaign], 0)


def _seconds(at: datetime) -> int:
    """Whole seconds since 1970 of an instant (a naive one taken as UTC)."""
    return int((at if at.tzinfo is not None else utc(at)).timestamp())


__all__ = ["Charge", "Market", "Placement", "Predictor"]
