"""Serving ad requests from the store: a market per platform, kept in step with the spend records.

:class:`AdServer` loads a platform's campaigns, starts their budgets from the spend records
(today's, this month's, each campaign's life), and answers each request through its
:class:`accord.ads.market.Market`: the person's signals are read from the store (where they
live, their profile, audiences, opt-outs), the auction runs, and the impressions and charges are
written before the answer goes out. Requests are served one at a time per server (a lock).

Several processes may serve one store: each re-reads the spend records every
:data:`SYNC_SECONDS`, so what one process charged counts against the budgets of all within that
time (a campaign can overspend by what the processes charge in that time, no more).

The predicted click-through rate, until a click model is trained on the impressions, is each
campaign's own smoothed rate so far: ``(clicks + 1) / (impressions + 100)``.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime

import numpy as np
import numpy.typing as npt
from sqlalchemy import case, func, select

from accord.ads import tables as t
from accord.ads.auction import AuctionRules
from accord.ads.market import Market, Placement
from accord.ads.model import PersonSignals
from accord.ads.store import AdsStore
from accord.consent import utc
from accord.errors import NotFound, StoreError, translate

SYNC_SECONDS = 5.0
"""How often a server re-reads what every process has charged."""
PRIOR_CLICKS, PRIOR_IMPRESSIONS = 1, 100


class AdServer:
    """Ad requests for one platform's people, over the Accord store."""

    def __init__(self, store: AdsStore, rules: AuctionRules | None = None) -> None:
        self.store = store
        self.rules = rules or AuctionRules()
        self._lock = threading.Lock()
        campaigns = store.campaigns()
        if not campaigns:
            raise NotFound(f"{store.platform} runs no campaign")
        self._ctr = self._prior_ctr([c.id for c in campaigns])
        self.market = Market(campaigns, self.rules, self._predict)
        self._synced = -np.inf

    def _predict(
        self, _person: PersonSignals, _eligible: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.float64]:
        return self._ctr

    def _prior_ctr(self, ids: list[int]) -> npt.NDArray[np.float64]:
        im = t.impressions.c
        with translate(StoreError, "reading click-through rates"), self.store.engine.connect() as c:
            rows = {
                r[0]: (int(r[1]), int(r[2] or 0))
                for r in c.execute(
                    select(
                        im.campaign_id,
                        func.count(),
                        func.sum(case((im.clicked.is_(True), 1), else_=0)),
                    ).group_by(im.campaign_id)
                )
            }
        ordered = sorted(ids)
        shown = [rows.get(i, (0, 0)) for i in ordered]
        return np.array(
            [(clicks + PRIOR_CLICKS) / (seen + PRIOR_IMPRESSIONS) for seen, clicks in shown]
        )

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
        """The ads for ``person`` in ``slots`` slots, charged and recorded."""
        moment = utc(at) if at is not None else datetime.now(UTC)
        signals = self.store.signals(person, moment, gpc=gpc)
        with self._lock:
            self.market.advance(moment)
            now = time.monotonic()
            if now - self._synced >= SYNC_SECONDS:
                self._sync(moment)
                self._synced = now
            placements = self.market.request(signals, moment, slots)
            charges = self.market.take_charges()
            day: date = moment.date()
            self.store.record(
                [
                    (
                        p.request_id,
                        self.store.platform,
                        person,
                        p.campaign.id,
                        p.campaign.advertiser,
                        p.creative.id,
                        p.slot,
                        moment,
                        day,
                        p.billing.value,
                        p.price,
                        p.predicted_ctr,
                        None,
                        False,
                        None,
                        False,
                    )
                    for p in placements
                ],
                charges,
            )
        return placements


__all__ = ["SYNC_SECONDS", "AdServer"]
