"""What the partner's data bought: the same season ranked with and without partner features.

A first season is run with the platform's own first model; its impressions train two click
models, one with the partner features the consent snapshot allows and one with Chirp's own
features only (the first half of the season gives each person's past click rate, the second half
the rows trained on, so no row's feature holds its own label). A second season is then run
twice on the same traffic (same seed: the same people open their feeds at the same instants and
draw the same chances), once ranked by each model: the difference in revenue and clicks is what
the data bought, beside how many people's data was used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accord.ads.clicks import ClickLog
from accord.ads.model import AGE_BANDS
from accord.ads.ranking import ClickRanker, RankingPredictor, Settings, auc
from accord.ads.simulate import Season, SeasonResult, World, replay
from accord.ads.training import ConsentSnapshot, Floats, People, past_ctr, training_matrix
from accord.errors import InvalidInput


@dataclass(frozen=True)
class Ranked:
    """A second season ranked by one model: its revenue and clicks, and the model's AUC on the
    impressions of the second season as the platform's first model ranked it (the same rows for
    every model)."""

    result: SeasonResult
    auc: float
    ranker: ClickRanker


@dataclass(frozen=True)
class PartnerValue:
    """The second season ranked with partner features, without them, and by the platform's
    first model; and how many people's partner data the model used."""

    with_partner: Ranked
    chirp_only: Ranked
    first_model: SeasonResult
    partner_people: int

    @property
    def revenue_lift(self) -> float:
        """Revenue with partner features over revenue without, less one."""
        base = self.chirp_only.result.spend
        return self.with_partner.result.spend / base - 1.0 if base else 0.0


def people_of(world: World, history: ClickLog, partner: Floats) -> People:
    """The world's people as a click model sees them: Chirp's signals, their past click rate in
    ``history``, and what the partner holds on them."""
    return People(
        tuple(p.person for p in world.people),
        np.array([AGE_BANDS.index(p.age_band) for p in world.people], dtype=np.int64),
        world.model.person_interests,
        past_ctr(history, len(world.people)),
        partner,
    )


def partner_value(
    world: World,
    first: Season,
    second: Season,
    partner: Floats,
    snapshot: ConsentSnapshot,
    *,
    settings: Settings | None = None,
) -> PartnerValue:
    """Run ``first``, train on it with and without partner features (as ``snapshot`` allows),
    and run ``second`` ranked by each (see the module docstring)."""
    _, log = replay(world, first)
    if len(log) < 2:
        raise InvalidInput("the first season showed too few ads to learn from")
    half = len(log) // 2
    history = _rows(log, slice(0, half))
    train = _rows(log, slice(half, len(log)))
    people = people_of(world, history, partner)
    topics = world.model.topics
    baseline, shown = replay(world, second)
    ranked = []
    for use in (True, False):
        matrix = training_matrix(train, people, topics, snapshot, partner=use)
        ranker = ClickRanker.fit(matrix, snapshot, settings)
        predictor = RankingPredictor(ranker, people, topics, snapshot.joined)
        result, _ = replay(world, second, predictor)
        scored = training_matrix(shown, people, topics, snapshot, partner=use)
        ranked.append(Ranked(result, auc(scored.y, ranker.predict(scored.x)), ranker))
    return PartnerValue(ranked[0], ranked[1], baseline, len(snapshot.joined - snapshot.erased))


def _rows(log: ClickLog, part: slice) -> ClickLog:
    return ClickLog(
        log.person[part], log.campaign[part], log.slot[part], log.clicked[part], log.p_click[part]
    )


__all__ = ["PartnerValue", "Ranked", "partner_value", "people_of"]
