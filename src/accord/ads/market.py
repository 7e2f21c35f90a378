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

from accord.ads.auction import _ARGMAX_UP_TO, _SPENT, AuctionRules, PriceRule, best, least_bid
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
the values of campaigns outside the mask are not used. The mask is the campaigns that targeting
and the auction's pacing draw let in; frequency caps, budgets spent out earlier in a run of
requests and the quality floor may leave out more of them after the prediction."""

_GATE_ROWS = 128
"""Auctions whose pacing draws are made at once (one row of pass/fail per campaign each)."""
_GATE_CHUNK = 16
"""Rows of pacing draws made at once (a multiple of 4: whole 64-bit words)."""
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
_and, _multiply = np.logical_and, np.multiply
"""Called with the output array in third place (not as ``out=``: no keywords to parse)."""


class _RunBuffers:
    """Arrays for a run of requests (:meth:`Market.request_many`): a row per request."""

    __slots__ = ("ctrs", "masks", "rows", "scores", "usable")

    def __init__(self, n: int) -> None:
        self.masks = np.empty((_GATE_ROWS, n), dtype=bool)
        self.usable = np.empty((_GATE_ROWS, n), dtype=bool)
        self.ctrs = np.empty((_GATE_ROWS, n), dtype=np.float64)
        self.scores = np.empty((_GATE_ROWS, n), dtype=np.float64)
        self.rows = np.arange(_GATE_ROWS)


class _Seen:
    """What one person was shown today: impressions per campaign position, and the positions
    at their frequency cap (the first ``capped`` of ``positions``, an array that grows; and
    ``capped_view``, a view of them made as one is added rather than at each request)."""

    __slots__ = ("capped", "capped_view", "positions", "shown")

    def __init__(self) -> None:
        self.shown: dict[int, int] = {}
        self.positions: Ints = np.empty(4, dtype=np.int64)
        self.capped = 0
        self.capped_view: Ints = self.positions[:0]

    def cap(self, position: int) -> None:
        if self.capped == len(self.positions):
            self.positions = np.concatenate((self.positions, np.empty_like(self.positions)))
        self.positions[self.capped] = position
        self.capped += 1
        self.capped_view = self.positions[: self.capped]


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
        self._hours = _hours_of_week(ordered)
        self._scheduled = np.zeros(n, dtype=bool)
        self._recheck_at = np.iinfo(np.int64).min
        self._next_tick = np.iinfo(np.int64).min
        self._next_at = datetime.min.replace(tzinfo=UTC)
        self.live: Mask = np.zeros(n, dtype=bool)
        self._buffer = np.empty(n, dtype=bool)
        # The pacing draws' generator (numpy.random.default_rng's), used as raw 64-bit words.
        self._bits = np.random.PCG64(seed)
        self._gate = np.zeros((_GATE_ROWS, n), dtype=bool)
        # Each row as a view made once, rather than one made per auction.
        self._gate_rows: list[Mask] = list(self._gate)
        self._gate_row = self._gate_ready = _GATE_ROWS
        """The next row of pacing draws to use, and how many rows of the block are made."""
        self._gate_last: npt.NDArray[np.uint16] | None = None
        """The highest draw that passes, per campaign (from the pass-through rates)."""
        # What each person was shown today.
        self._seen: dict[str, _Seen] = {}
        # What a request reads per winner, as Python values (cheaper to index than arrays).
        self._bids: list[int] = self.bid.tolist()
        self._cpc: list[bool] = self.cpc.tolist()
        self._reserves: list[int] = self.reserve.tolist()
        self._caps: list[int] = self.caps.tolist()
        self._creatives = [c.creatives for c in ordered]
        # What settling a winner reads, by position: the campaign, its one creative (None where
        # it has several: they take turns), whether it pays per click, its bid, reserve, cap.
        self._info = [
            (c, c.creatives[0] if len(c.creatives) == 1 else None, per_click, bid, reserve, cap)
            for c, per_click, bid, reserve, cap in zip(
                ordered, self._cpc, self._bids, self._reserves, self._caps, strict=True
            )
        ]
        self._turns = [0] * n
        self._max_slots = rules.max_slots
        self._runs = _RunBuffers(n)
        self._gone: set[int] | None = None
        """Campaigns spent out during a run of requests (None outside one)."""
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
        self._restart_draws()

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
        self._restart_draws()

    def take_over(self, before: Market) -> None:
        """Carry on from ``before``, a market of the same platform's campaigns as they were
        (before one was added, paused or resumed): for each campaign both run (by id), its spend
        so far, pacing rate and over-delivery, what each person was shown of it today (so its
        frequency cap holds) and its creatives' turn; and the day and pacing window, the
        auction count, the request-id prefix and the pacing draws' generator (request ids stay
        unique, draws are not made again). The clock's other state is recomputed at the next
        request; the caller sets the spend from the records."""
        ids = self.index.position
        moved = {old: ids[c.id] for old, c in enumerate(before.index.campaigns) if c.id in ids}
        old = np.fromiter(moved.keys(), dtype=np.intp, count=len(moved))
        new = np.fromiter(moved.values(), dtype=np.intp, count=len(moved))
        mine, theirs = self.pacer, before.pacer
        mine.spent_today[new] = theirs.spent_today[old]
        mine.spent_month[new] = theirs.spent_month[old]
        mine.spent_total[new] = theirs.spent_total[old]
        mine.rate[new] = theirs.rate[old]
        mine.over_delivered[new] = theirs.over_delivered[old]
        mine.day, mine.window = theirs.day, theirs.window
        mine.refresh()
        self.day = before.day
        caps = self._caps
        for person, seen in before._seen.items():
            again = self._seen[person] = _Seen()
            for position, count in seen.shown.items():
                now = moved.get(position)
                if now is None:
                    continue
                again.shown[now] = count
                if count >= caps[now]:
                    again.cap(now)
        for was, now in moved.items():
            self._turns[now] = before._turns[was]
        self.auctions, self._prefix, self._bits = before.auctions, before._prefix, before._bits
        self.charges, before.charges = before.charges, []

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
        row = self._gate_row
        if row >= self._gate_ready:
            self._draw_gates()
            row = self._gate_row
        self._gate_row = row + 1
        mask = _and(self.index.targets(person), self._gate_rows[row], self._buffer)
        ctr = self.predict(person, mask)
        # Rank scores, bid × predicted CTR (CPC) or bid (CPM), in three passes: eligible
        # scores are above 0, the others 0 (below any eligible one).
        scores = _multiply(ctr, self._cpc_bid, self._scores)
        scores += self._cpm_bid
        scores *= mask
        who = person.person
        seen = self._seen.get(who)
        if seen is None:
            seen = self._seen[who] = _Seen()
        elif seen.capped:
            # Campaigns at their frequency cap for this person today are not eligible.
            scores[seen.capped_view] = 0.0
        # The best slots + 1 (the last sets the price of the one before it), by passes of
        # argmax, as auction.best finds them (written out here: its general form costs more
        # per call than these few passes).
        order: list[int] = []
        ranked: list[float] = []
        want, floor, argmax, value = slots + 1, self._floor, scores.argmax, scores.item
        while True:
            top = int(argmax())
            score = value(top)
            if score <= 0.0:
                break
            if ctr.item(top) >= floor:
                order.append(top)
                ranked.append(score)
                want -= 1
                if not want:
                    break
            scores[top] = _SPENT
        return self._settle(seen, at, slots, order, ranked, ctr=ctr)

    def request_many(
        self, requests: Sequence[tuple[PersonSignals, datetime, int]]
    ) -> list[list[Placement]]:
        """:meth:`request` for each of ``requests`` (person, instant, slots) in turn — the same
        placements, charges and counts, request by request — with the array work of
        consecutive requests done in one pass.

        Requests run together up to the next change of the market's clock (a pacing window's
        end, an hour's end, a campaign's start or end) and within one block of pacing draws.
        Within such a run the auctions are independent but for what earlier ones change: a
        budget spent out, a frequency cap reached. Each request's best candidates are found in
        the pass; then, in order, a request any of whose best candidates an earlier one of the
        run took out is ranked again on its own, so that every result is the one the requests
        one by one would give. Predictions are asked for the whole run before its auctions: the
        predictor must not depend on what the auctions before it in the run did.
        """
        for _person, _at, slots in requests:
            if not 1 <= slots <= self._max_slots:
                raise InvalidInput(f"slots must be from 1 to {self._max_slots}, not {slots}")
        out: list[list[Placement]] = []
        k, total = 0, len(requests)
        while k < total:
            at = requests[k][1]
            if at.tzinfo is None or at >= self._next_at:
                self.advance(at)
            if self._gate_row >= _GATE_ROWS:
                self._draw_gates()
            end, last = k + 1, min(total, k + _GATE_ROWS - self._gate_row)
            while end < last:
                at = requests[end][1]
                if at.tzinfo is None or at >= self._next_at:
                    break
                end += 1
            out += self._run(requests[k:end])
            k = end
        return out

    def _run(self, run: Sequence[tuple[PersonSignals, datetime, int]]) -> list[list[Placement]]:
        """Requests within one period of the clock and one block of pacing draws."""
        found = self._pass(run)
        ctrs = self._runs.ctrs
        # In order: what each auction changes (budgets spent out, caps reached) counts for the
        # next ones.
        self._gone = gone = set[int]()
        capped: dict[str, set[int]] = {}
        out = []
        try:
            for j, (person, at, slots) in enumerate(run):
                self.auctions += 1
                who = person.person
                seen = self._seen.get(who)
                if seen is None:
                    seen = self._seen[who] = _Seen()
                top, value = found[j]
                order, ranked = top[: slots + 1], value[: slots + 1]
                if ranked and ranked[-1] <= 0.0:
                    # Fewer eligible than asked for: up to the first that is not (scores descend).
                    cut = next(k for k, score in enumerate(ranked) if score <= 0.0)
                    order, ranked = order[:cut], ranked[:cut]
                taken = capped.get(who)
                if (gone or taken) and any(p in gone or (taken and p in taken) for p in order):
                    order, ranked = self._again(j, seen, slots)
                before = seen.capped
                out.append(self._settle(seen, at, slots, order, ranked, ctr=ctrs[j]))
                if seen.capped > before:
                    capped.setdefault(who, set()).update(
                        seen.positions[before : seen.capped].tolist()
                    )
        finally:
            self._gone = None
        return out

    def _pass(
        self, run: Sequence[tuple[PersonSignals, datetime, int]]
    ) -> list[tuple[list[int], list[float]]]:
        """The eligible candidates of each request of a run, best first (as many as the most
        slots asked and one more, or fewer), with their rank scores: array operations over the
        whole run, as things stand before its first auction."""
        size = len(run)
        first = self._gate_row
        if first + size > self._gate_ready:
            self._draw_gates(size)
        self._gate_row += size
        buffers = self._runs
        masks, ctrs, scores = buffers.masks[:size], buffers.ctrs[:size], buffers.scores[:size]
        n = self.index.size
        targets, predict = self.index.targets, self.predict
        np.concatenate([targets(person) for person, _at, _s in run], out=masks.reshape(size * n))
        np.logical_and(masks, self._gate[first : first + size], out=masks)
        for j, (person, _at, _slots) in enumerate(run):
            # Copied at once: a predictor may answer in a buffer of its own that it reuses.
            ctrs[j] = predict(person, masks[j])
        # Below the quality floor is not eligible (as if passed over in the ranking).
        masks &= np.greater_equal(ctrs, self._floor, out=buffers.usable[:size])
        np.multiply(ctrs, self._cpc_bid, out=scores)
        scores += self._cpm_bid
        scores *= masks
        # Campaigns at their frequency cap are not eligible: every request's at once.
        requests, capped = [], []
        for j, (person, _at, _slots) in enumerate(run):
            seen = self._seen.get(person.person)
            if seen is not None and seen.capped:
                requests.append(j)
                capped.append(seen.capped_view)
        if capped:
            counts = [len(positions) for positions in capped]
            scores[np.repeat(requests, counts), np.concatenate(capped)] = 0.0
        want = max(slots for _p, _a, slots in run) + 1
        if want > _ARGMAX_UP_TO:
            return [best(scores[j], want) for j in range(size)]
        # Passes of argmax along each row: the first of equal maxima, the lowest position.
        rows = buffers.rows[:size]
        tops = np.empty((want, size), dtype=np.intp)
        values = np.empty((want, size), dtype=np.float64)
        for place in range(want):
            top = scores.argmax(axis=1)
            tops[place] = top
            values[place] = scores[rows, top]
            scores[rows, top] = -np.inf
        return list(zip(tops.T.tolist(), values.T.tolist(), strict=True))

    def _again(self, j: int, seen: _Seen, slots: int) -> tuple[list[int], list[float]]:
        """Rank request ``j`` of a run on its own, without what earlier ones took out."""
        masks, ctr = self._runs.masks, self._runs.ctrs[j]
        scores = np.multiply(ctr, self._cpc_bid, out=self._scores)
        scores += self._cpm_bid
        scores *= masks[j]
        scores *= self.live
        if seen.capped:
            scores[seen.capped_view] = 0.0
        return best(scores, slots + 1, ctr, self._floor)

    def _settle(
        self,
        seen: _Seen,
        at: datetime,
        slots: int,
        order: list[int],
        ranked: list[float],
        *,
        ctr: Floats,
    ) -> list[Placement]:
        """Price the winners of an auction, place them, count them against their frequency
        caps, and charge the CPM ones."""
        if not order:
            return []
        request_id = f"{self._prefix}{self.auctions:016x}"
        placements = []
        info, shown, first_price = self._info, seen.shown, self._first_price
        last = len(order) - 1
        for slot, position in enumerate(order[:slots]):
            campaign, creative, per_click, bid, reserve, cap = info[position]
            weight = ctr.item(position)
            if first_price:
                price = bid
            else:
                price = reserve
                if slot < last:
                    # The least bid that keeps the slot (CPM: a weight of 1).
                    least = least_bid(
                        weight if per_click else 1.0, ranked[slot + 1], position < order[slot + 1]
                    )
                    price = least if least > price else price
                # Never above the bid (the bid itself keeps the slot).
                price = price if price < bid else bid
            if creative is None:
                creatives = self._creatives[position]
                turn = self._turns[position]
                self._turns[position] = turn + 1
                creative = creatives[turn % len(creatives)]
            placements.append(
                _new(
                    Placement,
                    (
                        request_id,
                        slot,
                        campaign,
                        creative,
                        price,
                        weight,
                        ranked[slot],
                        position,
                    ),
                )
            )
            # Count it against the frequency cap.
            count = shown.get(position, 0) + 1
            shown[position] = count
            if count >= cap:
                seen.cap(position)
            if not per_click:
                self._charge(position, price, at, "impression", request_id)
        return placements

    def click(self, placement: Placement, at: datetime) -> int:
        """Charge a CPC placement's click (at most what its budgets have left); the amount."""
        if placement.billing is not BidStrategy.CPC:
            return 0
        self.advance(at)
        return self._charge(placement.position, placement.price, at, "click", placement.request_id)

    def charge_click(self, campaign: int, price: int, at: datetime, request_id: str) -> int:
        """Charge a click on ``campaign``'s CPC ad, won at ``price`` in request ``request_id``
        (one the records hold, perhaps served by another process): at most what its budgets
        have left; the amount. A campaign this market does not run is charged nothing."""
        position = self.index.position.get(campaign)
        if position is None or not self._cpc[position]:
            return 0
        self.advance(at)
        return self._charge(position, price, at, "click", request_id)

    def take_charges(self) -> list[Charge]:
        """The charges since the last call, oldest first."""
        taken, self.charges = self.charges, []
        return taken

    def _charge(self, position: int, price: int, at: datetime, event: str, request: str) -> int:
        charged = self.pacer.charge(position, price)
        if not self.pacer.funded.item(position):
            # Out of budget for today: out of every auction still to come.
            self.live[position] = False
            self._gate[self._gate_row :, position] = False
            if self._gone is not None:
                self._gone.add(position)
        campaign = self.index.campaigns[position]
        moment = at if at.tzinfo is UTC else utc(at)
        self.charges.append(
            _new(Charge, (campaign.id, campaign.advertiser, moment, event, charged, request))
        )
        return charged

    def _draw_gates(self, rows: int = 1) -> None:
        """Draw pacing draws for the next ``rows`` auctions (a new block if this one is used
        up): in each auction each live campaign passes with probability its pass-through rate
        (in steps of 1/65536), independently in every auction.

        The draws are 16-bit random numbers, a row of one per campaign for each auction, in
        blocks of 128 rows; a block is started afresh when rates or what is live move (the
        rest of the one before is passed over). Rows are made as needed, 16 at a time: a block
        given up early is not made at all, the generator is moved past it (what it yields does
        not change)."""
        if self._gate_row >= _GATE_ROWS:
            self._gate_row = self._gate_ready = 0
        if self._gate_last is None:
            # A draw d in [0, 65535] passes when d < rate × 65536, i.e. d <= that - 1.
            passing = np.round(self.pacer.rate * _RATE_SCALE).astype(np.int64)
            np.clip(passing, 1, _RATE_SCALE, out=passing)
            passing -= 1
            self._gate_last = passing.astype(np.uint16)
        n = self.index.size
        while self._gate_ready < self._gate_row + rows:
            start = self._gate_ready
            made = self._gate[start : start + _GATE_CHUNK]
            draws = self._bits.random_raw(_GATE_CHUNK * n // 4).view(np.uint16)
            np.less_equal(draws.reshape(_GATE_CHUNK, n), self._gate_last, out=made)
            made &= self.live
            self._gate_ready = start + _GATE_CHUNK

    def _restart_draws(self) -> None:
        """Pass over the rest of this block of pacing draws: the next auction starts a new one."""
        unused = (_GATE_ROWS - self._gate_ready) * self.index.size // 4
        if unused:
            self._bits.advance(unused)
        self._gate_row = self._gate_ready = _GATE_ROWS
        self._gate_last = None

    def shown_today(self, person: str, campaign: int) -> int:
        """Impressions ``person`` got today from ``campaign`` (by id)."""
        seen = self._seen.get(person)
        return 0 if seen is None else seen.shown.get(self.index.position[campaign], 0)


def _hours_of_week(campaigns: Sequence[Campaign]) -> Mask:
    """Whether each campaign (column) runs in each hour of the week (row): its day-parting."""
    hours = np.ones((HOURS_IN_WEEK, len(campaigns)), dtype=bool)
    for column, c in enumerate(campaigns):
        if c.schedule.hours is not None:
            hours[:, column] = False
            hours[sorted(c.schedule.hours), column] = True
    return hours


def _seconds(at: datetime) -> int:
    """Whole seconds since 1970 of an instant (a naive one taken as UTC)."""
    return int((at if at.tzinfo is not None else utc(at)).timestamp())


__all__ = ["Charge", "Market", "Placement", "Predictor"]
