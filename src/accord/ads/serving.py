"""Serving ad requests from the store: a market per platform, kept in step with the spend records.

:class:`AdServer` loads a platform's campaigns, starts their budgets from the spend records
(today's, this month's, each campaign's life), and answers each request through its
:class:`accord.ads.market.Market`: the person's signals are read from the store (where they
live, their profile, audiences, opt-outs), the auction runs, and the impressions and charges are
written before the answer goes out.

Requests are served in groups (group commit): one group at a time per server, and the requests
that arrive meanwhile wait and form the next group, in the order they arrived. A group's signals
are read from the store with one statement (:meth:`AdsStore.signals_many`; read afresh for every
group, so that an opt-out or a profile written by any process counts at the next request), its
auctions run through :meth:`Market.request_many` (each gets what serving the requests one by one
in that order gives), and its impressions and charges are written in one transaction: one
durable commit for the group, not one per request.

Several processes may serve one store: each re-reads the spend records every
:data:`SYNC_SECONDS`, so what one process charged counts against the budgets of all within that
time (a campaign can overspend by what the processes charge in that time, no more).

The campaigns follow the store: the statement that reads a group's signals also reads the
platform's campaigns revision (:meth:`AdsStore.signals_and_revision`), which every campaign write
moves in its own transaction (added, paused, resumed, by any process). When it moved since the
market was built, the market is built again from the store's campaigns before the group's
auctions (:meth:`Market.take_over` carries spend, pacing rates, frequency caps and creatives'
turns over, by campaign id) and the spend records are read again at once: a campaign paused
before the group's read is not shown in it, one added is shown from it on, and the budgets hold.
A click reads the revision too (one small query) before it is charged.

The predicted click-through rate, until a click model is trained on the impressions and handed
to the server (``predictor``), is each campaign's own smoothed rate so far:
``(clicks + 1) / (impressions + 100)``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from sqlalchemy import case, func, select

from accord.ads import tables as t
from accord.ads.auction import AuctionRules
from accord.ads.market import Charge, Market, Placement, Predictor
from accord.ads.model import PersonSignals
from accord.ads.store import AdsStore, Click
from accord.consent import utc
from accord.errors import AccordError, InvalidInput, NotFound, StoreError, translate

SYNC_SECONDS = 5.0
"""How often a server re-reads what every process has charged."""
PRIOR_CLICKS, PRIOR_IMPRESSIONS = 1, 100


class AdServer:
    """Ad requests for one platform's people, over the Accord store."""

    def __init__(
        self,
        store: AdsStore,
        rules: AuctionRules | None = None,
        *,
        predictor: Predictor | None = None,
    ) -> None:
        """A server of ``store``'s campaigns; the auction ranks by ``predictor`` (a trained click
        model, :class:`accord.ads.ranking.RankingPredictor`) or, by default, by each campaign's
        smoothed click-through rate so far."""
        self.store = store
        self.rules = rules or AuctionRules()
        # Requests waiting to be served, and whether a group is being served.
        self._turn = threading.Condition()
        self._waiting: list[_Ask] = []
        self._busy = False
        # The revision first: a campaign written while they are read moves it past this one.
        self.revision = store.campaigns_revision()
        """The campaigns revision the market was built from."""
        campaigns = store.campaigns()
        if not campaigns:
            raise NotFound(f"{store.platform} runs no campaign")
        self._predictor = predictor
        # A trained predictor answers for the campaigns it was built for, in their order: the
        # market keeps to them (their status changes still count).
        self._kept = None if predictor is None else frozenset(c.id for c in campaigns)
        self._ctr = self._prior_ctr([c.id for c in campaigns])
        self.market = Market(campaigns, self.rules, predictor or self._predict)
        self._synced = -np.inf

    def _predict(
        self, _person: PersonSignals, _eligible: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.float64]:
        return self._ctr

    def _prior_ctr(self, ids: list[int], *, only: bool = False) -> npt.NDArray[np.float64]:
        """Each of ``ids``' smoothed click-through rate, in id order (read for them ``only``, or
        for every campaign)."""
        im = t.impressions.c
        query = select(
            im.campaign_id,
            func.count(),
            func.sum(case((im.clicked.is_(True), 1), else_=0)),
        ).group_by(im.campaign_id)
        if only:
            query = query.where(im.campaign_id.in_(sorted(ids)))
        with translate(StoreError, "reading click-through rates"), self.store.engine.connect() as c:
            rows = {r[0]: (int(r[1]), int(r[2] or 0)) for r in c.execute(query)}
        ordered = sorted(ids)
        shown = [rows.get(i, (0, 0)) for i in ordered]
        return np.array(
            [(clicks + PRIOR_CLICKS) / (seen + PRIOR_IMPRESSIONS) for seen, clicks in shown]
        )

    def _rebuild(self, revision: int) -> None:
        """Build the market again from the store's campaigns (read at ``revision`` or later),
        carrying on from the one before (:meth:`Market.take_over`); the caller re-reads the
        spend records before the next auction."""
        campaigns = self.store.campaigns()
        if self._kept is not None:
            campaigns = [c for c in campaigns if c.id in self._kept]
        before = self.market
        rates = dict(zip([c.id for c in before.index.campaigns], self._ctr.tolist(), strict=True))
        new = [c.id for c in campaigns if c.id not in rates]
        if new:
            rates.update(zip(sorted(new), self._prior_ctr(new, only=True).tolist(), strict=True))
        market = Market(campaigns, self.rules, self._predictor or self._predict)
        market.take_over(before)
        self._ctr = np.array([rates[c.id] for c in market.index.campaigns])
        self.market = market
        self.revision = revision

    def _follow(self, revision: int | None, at: datetime) -> None:
        """Before serving at ``at``: the market built again if the campaigns ``revision`` moved,
        its clock moved on, and the spend records read if they are due (at once after a
        rebuild)."""
        rebuilt = False
        if revision is not None and revision != self.revision:
            self._rebuild(revision)
            rebuilt = True
        self.market.advance(at)
        now = time.monotonic()
        if rebuilt or now - self._synced >= SYNC_SECONDS:
            self._sync(at)
            self._synced = now

    def _sync(self, at: datetime) -> None:
        """Set every campaign's spend (life, month before today, today) from the records."""
        s = t.spend.c
        today = at.date()
        month_start = today.replace(day=1)
        with translate(StoreError, "reading the spend records"), self.store.engine.connect() as c:
            rows = c.execute(
                select(
                    s.campaign_id,
                    func.sum(s.amount_micros),
                    func.sum(case((s.day >= month_start, s.amount_micros), else_=0)),
                    func.sum(case((s.day >= today, s.amount_micros), else_=0)),
                ).group_by(s.campaign_id)
            ).all()
        pacer, position = self.market.pacer, self.market.index.position
        for campaign, total, month, day in rows:
            i = position.get(campaign)
            if i is None:
                continue
            pacer.spent_total[i] = int(total or 0)
            pacer.spent_today[i] = int(day or 0)
            pacer.spent_month[i] = int(month or 0) - int(day or 0)
        self.market.refresh()

    def serve(
        self, person: str, slots: int, *, at: datetime | None = None, gpc: bool = False
    ) -> list[Placement]:
        """The ads for ``person`` in ``slots`` slots, charged and recorded.

        Requests that arrive while another group is being served wait and are then served
        together, in the order they arrived (group commit): their people's signals read at
        once, their auctions run as :meth:`Market.request_many` runs them (the results of
        serving them one by one), and their impressions and charges written in one transaction,
        before any of them is answered."""
        ask = _Ask(person, slots, utc(at) if at is not None else datetime.now(UTC), gpc)
        group: list[_Ask] = []
        with self._turn:
            self._waiting.append(ask)
            while not ask.done and self._busy:
                self._turn.wait()
            if not ask.done:
                # Nobody is serving: serve everyone waiting, this request among them.
                self._busy = True
                group, self._waiting = self._waiting, []
        if group:
            try:
                self._serve(group)
            except BaseException as exc:
                for other in group:
                    if not other.done:
                        other.error, other.done = exc, True
                raise
            finally:
                with self._turn:
                    self._busy = False
                    self._turn.notify_all()
        if ask.error is not None:
            raise ask.error
        return ask.placements

    def serve_many(
        self, requests: Sequence[tuple[str, int, datetime | None, bool]]
    ) -> list[list[Placement] | AccordError]:
        """:meth:`serve` for each of ``requests`` (person, slots, instant or None for now, GPC
        signal) as one group, in order: the ads of each, or the error that refused it (a person
        the platform does not know). An error of the store fails them all (it is raised)."""
        now = datetime.now(UTC)
        group = [
            _Ask(person, slots, utc(at) if at is not None else now, gpc)
            for person, slots, at, gpc in requests
        ]
        with self._turn:
            while self._busy:
                self._turn.wait()
            self._busy = True
        try:
            self._serve(group)
        finally:
            with self._turn:
                self._busy = False
                self._turn.notify_all()
        out: list[list[Placement] | AccordError] = []
        for ask in group:
            if isinstance(ask.error, AccordError):
                out.append(ask.error)
            elif ask.error is not None:
                raise ask.error
            else:
                out.append(ask.placements)
        return out

    def _serve(self, group: list[_Ask]) -> None:
        found, revision = self.store.signals_and_revision([(a.person, a.at, a.gpc) for a in group])
        runs: list[tuple[_Ask, PersonSignals]] = []
        for ask, signals in zip(group, found, strict=True):
            if isinstance(signals, NotFound):
                ask.error, ask.done = signals, True
            elif not 1 <= ask.slots <= self.rules.max_slots:
                ask.error = InvalidInput(
                    f"slots must be from 1 to {self.rules.max_slots}, not {ask.slots}"
                )
                ask.done = True
            else:
                runs.append((ask, signals))
        if not runs:
            return
        self._follow(revision, runs[0][0].at)
        placed = self.market.request_many([(sig, ask.at, ask.slots) for ask, sig in runs])
        charges = self.market.take_charges()
        platform = self.store.platform
        self.store.record(
            [
                (
                    p.request_id,
                    platform,
                    ask.person,
                    p.campaign.id,
                    p.campaign.advertiser,
                    p.creative.id,
                    p.slot,
                    ask.at,
                    ask.at.date(),
                    p.billing.value,
                    p.price,
                    p.predicted_ctr,
                    None,
                    False,
                    None,
                    False,
                )
                for (ask, _signals), placements in zip(runs, placed, strict=True)
                for p in placements
            ],
            charges,
        )
        for (ask, _signals), placements in zip(runs, placed, strict=True):
            ask.placements, ask.done = placements, True

    def click(self, request_id: str, slot: int, at: datetime | None = None) -> Click:
        """Record a click on the ad shown in ``slot`` of ``request_id`` (see
        :meth:`AdsStore.click`): counted once, and a CPC campaign charged its price, at most
        what its budgets have left. Served in turn with the groups of requests, so that the
        market's budgets move one change at a time. If the records refuse the write, the budget
        already taken in this process is given back at the next re-read of the records."""
        moment = utc(at) if at is not None else datetime.now(UTC)
        with self._turn:
            while self._busy:
                self._turn.wait()
            self._busy = True
        try:
            revision = self.store.campaigns_revision()
            if revision != self.revision:
                # A campaign added elsewhere is charged for its clicks here too, its spend read
                # from the records at once (on the market's day: the click may be a later one's).
                self._rebuild(revision)
                day = self.market.pacer.day
                if day is not None:
                    self._sync(datetime.combine(day, datetime.min.time(), UTC))
                    self._synced = time.monotonic()

            def charge(campaign: int, price: int, when: datetime, request: str) -> Charge | None:
                amount = self.market.charge_click(campaign, price, when, request)
                charges = self.market.take_charges()
                return charges[-1] if amount and charges else None

            return self.store.click(request_id, slot, moment, charge)
        finally:
            with self._turn:
                self._busy = False
                self._turn.notify_all()


class _Ask:
    """One ad request waiting to be served, and then its answer (placements or an error)."""

    __slots__ = ("at", "done", "error", "gpc", "person", "placements", "slots")

    def __init__(self, person: str, slots: int, at: datetime, gpc: bool) -> None:
        self.person, self.slots, self.at, self.gpc = person, slots, at, gpc
        self.done = False
        self.placements: list[Placement] = []
        self.error: BaseException | None = None


__all__ = ["SYNC_SECONDS", "AdServer"]
