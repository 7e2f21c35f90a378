"""A click model with known probabilities: the simulated world's truth about who clicks what.

The probability that a person clicks a campaign's ad in slot ``s`` is logistic in features of the
person and the campaign:

    logit = creative appeal of the campaign
          + interest lift, if the person has one of the campaign's topic interests
          + age lift of the campaign for the person's age band
          + the person's own propensity to click             (hidden from the platform)
          + affinity lift × the person's affinity            (hidden: e.g. how much they stream)
          + position effect of slot s                        (0 for the first slot)

and the probability of a conversion after a click is logistic in the campaign's conversion appeal
and the same affinity. Every impression a simulation shows records its true probabilities, so a
model learned later can be measured against the truth. The platform's own first model
(:meth:`ClickModel.visible`) sees only what the platform knows: the same weights without the
hidden terms (their average in the population put in their place).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bits = npt.NDArray[np.uint64]

POSITION_EFFECT = (0.0, -0.35, -0.6, -0.8, -0.95)
"""Logit shift of each slot: lower slots are seen less (position bias)."""


def sigmoid(x: Floats) -> Floats:
    """The logistic function."""
    out: Floats = 1.0 / (1.0 + np.exp(-x))
    return out


@dataclass(frozen=True)
class ClickModel:
    """Campaign weights (index order) and person features (row order) of the true model."""

    appeal: Floats
    topics: Bits
    interest_lift: Floats
    age_lift: Floats
    """Campaigns × age bands."""
    affinity_lift: Floats
    conversion_appeal: Floats
    conversion_affinity: Floats
    person_interests: Bits
    person_age: Ints
    propensity: Floats
    affinity: Floats
    _visible: Floats = field(init=False, repr=False)
    _logits: Floats = field(init=False, repr=False)
    _conversion: Floats = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Slot-0 logits of every person for every campaign, without and with the hidden terms.
        matches = (self.person_interests[:, None] & self.topics[None, :]) != 0
        seen = (
            self.appeal[None, :]
            + matches * self.interest_lift[None, :]
            + self.age_lift.T[self.person_age]
        )
        hidden = self.propensity[:, None] + self.affinity[:, None] * self.affinity_lift[None, :]
        mean_hidden = self.propensity.mean() + self.affinity.mean() * self.affinity_lift
        object.__setattr__(self, "_visible", sigmoid(seen + mean_hidden[None, :]))
        object.__setattr__(self, "_logits", seen + hidden)
        conversion = self.conversion_appeal[None, :] + (
            self.affinity[:, None] * self.conversion_affinity[None, :]
        )
        object.__setattr__(self, "_conversion", sigmoid(conversion))

    def visible(self, person: int) -> Floats:
        """The platform's predicted click-through rate of every campaign for ``person``."""
        row: Floats = self._visible[person]
        return row

    def p_click(self, person: int, campaign: int, slot: int) -> float:
        """The true probability that ``person`` clicks ``campaign``'s ad in ``slot``."""
        shift = POSITION_EFFECT[min(slot, len(POSITION_EFFECT) - 1)]
        logit = self._logits.item(person, campaign) + shift
        return 1.0 / (1.0 + math.exp(-logit))

    def p_clicks(self, people: Ints, campaigns: Ints, slots: Ints) -> Floats:
        """:meth:`p_click` of many impressions at once (rows of people, campaigns and slots)."""
        shift = np.asarray(POSITION_EFFECT)[np.minimum(slots, len(POSITION_EFFECT) - 1)]
        return sigmoid(self._logits[people, campaigns] + shift)

    def p_conversion(self, person: int, campaign: int) -> float:
        """The true probability of a conversion after ``person`` clicked ``campaign``'s ad."""
        return self._conversion.item(person, campaign)


def random_model(people: int, campaigns: int, *, seed: int, age_bands: int = 7) -> ClickModel:
    """A seeded world of ``people`` and ``campaigns`` with the shape of the reference scenario's:
    a click-through rate of a few percent, an interest lift, a gentle slope with age, each
    person's own hidden propensity, and a streaming affinity that lifts some campaigns more
    than others (what a streaming partner's data would tell)."""
    rng = np.random.default_rng([seed, 11])
    interests = 16
    one = np.uint64(1)

    def bits(count: int, per: int) -> Bits:
        out = np.zeros(count, dtype=np.uint64)
        for _ in range(per):
            out |= one << rng.integers(0, interests, count).astype(np.uint64)
        return out

    slope = np.linspace(0.2, -0.3, age_bands)
    return ClickModel(
        appeal=rng.normal(-3.3, 0.5, campaigns),
        topics=bits(campaigns, 2),
        interest_lift=np.full(campaigns, 0.8),
        age_lift=np.tile(slope, (campaigns, 1)),
        affinity_lift=rng.uniform(-0.2, 1.0, campaigns),
        conversion_appeal=np.full(campaigns, -2.6),
        conversion_affinity=rng.uniform(0.0, 0.8, campaigns),
        person_interests=bits(people, 3),
        person_age=rng.integers(0, age_bands, people),
        propensity=rng.normal(0.0, 0.5, people),
        affinity=rng.normal(0.0, 1.0, people),
    )


@dataclass(frozen=True)
class ClickLog:
    """Impressions as columns: who saw which campaign in which slot, whether they clicked, and
    the true probability of the click (known in a simulated world)."""

    person: Ints
    campaign: Ints
    slot: Ints
    clicked: npt.NDArray[np.bool_]
    p_click: Floats

    def __len__(self) -> int:
        return len(self.person)


def sample_log(model: ClickModel, impressions: int, *, seed: int, slots: int = 2) -> ClickLog:
    """``impressions`` impressions of random people, campaigns and slots, clicked with the true
    probabilities (seeded): a log to learn a click model from and to measure it against."""
    rng = np.random.default_rng([seed, 12])
    person = rng.integers(0, len(model.person_age), impressions)
    campaign = rng.integers(0, len(model.appeal), impressions)
    slot = rng.integers(0, slots, impressions)
    p = model.p_clicks(person, campaign, slot)
    return ClickLog(person, campaign, slot, rng.random(impressions) < p, p)


__all__ = ["POSITION_EFFECT", "ClickLog", "ClickModel", "random_model", "sample_log", "sigmoid"]
