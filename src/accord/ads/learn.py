"""Training the click model on a platform's recorded impressions, its card to the ledger.

The impressions (in the order shown) and the platform's own profiles of its people are read from
the store; the earlier half of the impressions gives each person's past click rate, the later half
is trained on. The partner's features come only through the gateway, and this reads none: every
person's are missing, the snapshot joins nobody, and the card says the model used no partner data.
A model card of the platform already in the ledger is named as the one replaced.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

import numpy as np
from sqlalchemy import select

from accord.ads import tables as t
from accord.ads.cards import ModelCard, card_of, record_card
from accord.ads.clicks import ClickLog
from accord.ads.model import AGE_BANDS
from accord.ads.ranking import ClickRanker, Settings
from accord.ads.store import AdsStore
from accord.ads.training import PARTNER_FEATURES, ConsentSnapshot, People, past_ctr, training_matrix
from accord.consent import utc
from accord.errors import InvalidInput, StoreError, translate
from accord.ledger.log import Ledger, Receipt


def train_recorded(
    store: AdsStore, ledger: Ledger, *, at: datetime, settings: Settings | None = None
) -> tuple[ModelCard, Receipt]:
    """Train on ``store``'s impressions (see the module docstring), append the card to
    ``ledger`` and return it with its receipt."""
    im, pr = t.impressions.c, t.profiles.c
    with translate(StoreError, "reading impressions and profiles"), store.engine.connect() as c:
        profiles = c.execute(
            select(pr.person, pr.age_band, pr.interests)
            .where(pr.platform == store.platform)
            .order_by(pr.person)
        ).all()
        shown = c.execute(
            select(im.person, im.campaign_id, im.slot, im.clicked, im.p_click)
            .where(im.platform == store.platform)
            .order_by(im.at, im.id)
        ).all()
    campaigns = store.campaigns()
    if not profiles or len(shown) < 2 or not campaigns:
        raise InvalidInput(f"{store.platform} has recorded too few impressions to learn from")
    names = sorted(
        {i for p in profiles for i in json.loads(p.interests)}
        | {i for c in campaigns for i in c.targeting.interests}
    )[:64]
    bit = {name: np.uint64(1) << np.uint64(k) for k, name in enumerate(names)}

    def bits(interests: Iterable[str]) -> np.uint64:
        out = np.uint64(0)
        for name in interests:
            out |= bit.get(name, np.uint64(0))
        return out

    row = {p.person: n for n, p in enumerate(profiles)}
    column = {c.id: n for n, c in enumerate(campaigns)}
    kept = [s for s in shown if s.person in row and s.campaign_id in column]
    log = ClickLog(
        np.array([row[s.person] for s in kept], dtype=np.int64),
        np.array([column[s.campaign_id] for s in kept], dtype=np.int64),
        np.array([s.slot for s in kept], dtype=np.int64),
        np.array([bool(s.clicked) for s in kept], dtype=np.bool_),
        np.array([np.nan if s.p_click is None else s.p_click for s in kept], dtype=np.float64),
    )
    half = len(log) // 2
    early, late = (
        ClickLog(
            *(getattr(log, f)[part] for f in ("person", "campaign", "slot", "clicked", "p_click"))
        )
        for part in (slice(0, half), slice(half, len(log)))
    )
    people = People(
        tuple(p.person for p in profiles),
        np.array([AGE_BANDS.index(p.age_band) for p in profiles], dtype=np.int64),
        np.array([bits(json.loads(p.interests)) for p in profiles], dtype=np.uint64),
        past_ctr(early, len(profiles)),
        np.full((len(profiles), len(PARTNER_FEATURES)), np.nan),
    )
    topics = np.array([bits(c.targeting.interests) for c in campaigns], dtype=np.uint64)
    snapshot = ConsentSnapshot(utc(at), frozenset(), frozenset())
    ranker = ClickRanker.fit(training_matrix(late, people, topics, snapshot), snapshot, settings)
    previous = _last_card(ledger, store.platform)
    card = card_of(ranker, platform=store.platform, trained_at=at, replaces=previous)
    return card, record_card(ledger, card)


def _last_card(ledger: Ledger, platform: str) -> str | None:
    """The id of the platform's latest model card among the ledger's recent entries."""
    for leaf in ledger.recent(200):
        entry = leaf.entry()
        if entry.get("kind") == "model_card" and entry.get("platform") == platform:
            return str(entry["model"])
    return None


__all__ = ["train_recorded"]
