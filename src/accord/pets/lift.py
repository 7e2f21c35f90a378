"""Conversion lift: how many more people converted because they could see a campaign's ads.

A randomised holdout (a *conversion lift study*, as ad platforms run them): before the campaign
serves, each eligible person is put in the exposed group or the holdout by a hash of the campaign
and their id (:func:`assign`), the same every time, so no list needs keeping and nobody chooses.
The holdout never gets the campaign's ads. Afterwards the advertiser's conversions (sign-ups and
plays) meet the groups in the clean room, and only four numbers leave it: per group, how many
people it holds and how many of them converted, each with OpenDP noise, each group at least
:data:`MIN_PEOPLE` people (a smaller one is refused, not released).

The lift is the difference of the two conversion rates (intention to treat: everyone assigned,
whether or not an ad reached them). Its confidence interval adds, under the normal
approximation, the sampling variance of each rate, p(1 - p)/n, and the variance the noise adds,
found by the delta method for a ratio of noisy counts: s² (1 + p²) / n², where s is the
standard deviation of the OpenDP noise of each count (Laplace: √2 times its scale). An interval
that left the noise out would be too narrow at the small counts where the noise matters.

Privacy: a person is in one group and converts or not, so the vector of group sizes and the
vector of converters each change by at most 1 when one person is added or removed; each vector
spends half the epsilon (sequential composition).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist
from typing import Any

from accord.errors import InvalidInput
from accord.pets import dp
from accord.pets.checks import QueryRefused

MIN_PEOPLE = 50
"""The fewest people a group of a lift study may hold for its numbers to leave the room."""
HOLDOUT = 0.1
"""The default share of eligible people held out."""
MIN_GROUP_CHECK = "min-group-size"


class Group(StrEnum):
    """The two groups of a lift study."""

    EXPOSED = "exposed"
    HOLDOUT = "holdout"


def assign(person: str, study: str, holdout: float = HOLDOUT) -> Group:
    """The group of ``person`` in ``study``: held out with probability ``holdout``, decided by
    SHA-256 of the study and the person, so it is the same on every call and on every machine."""
    if not 0 < holdout < 1:
        raise InvalidInput(f"the holdout share is between 0 and 1, not {holdout!r}")
    digest = hashlib.sha256(f"accord-lift\x00{study}\x00{person}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64
    return Group.HOLDOUT if draw < holdout else Group.EXPOSED


@dataclass(frozen=True, slots=True)
class Counts:
    """One group's exact counts, inside the room: its people, and those who converted."""

    people: int
    converted: int


def count(groups: Mapping[str, Group], converted: Collection[str]) -> dict[Group, Counts]:
    """Each group's people and converters: ``groups`` from :func:`assign`, ``converted`` the
    people (at the platform) the advertiser saw convert. Converters outside the study are not
    counted."""
    people = dict.fromkeys(Group, 0)
    wins = dict.fromkeys(Group, 0)
    for person, group in groups.items():
        people[group] += 1
        wins[group] += person in converted
    return {g: Counts(people[g], wins[g]) for g in Group}


@dataclass(frozen=True, slots=True)
class Lift:
    """What leaves the room: noisy group sizes and converters, the rates, and the lift with its
    confidence interval (differences of conversion rates, 0.01 is one percentage point)."""

    people: Mapping[Group, int]
    converted: Mapping[Group, int]
    rates: Mapping[Group, float]
    lift: float
    low: float
    high: float
    confidence: float
    noise_sd: float
    """The standard deviation of the noise on each count."""
    epsilon: float

    @property
    def relative(self) -> float | None:
        """The lift as a share of the holdout's rate (None when that rate is not above 0)."""
        base = self.rates[Group.HOLDOUT]
        return self.lift / base if base > 0 else None

    def covers(self, value: float) -> bool:
        """Whether ``value`` is inside the confidence interval."""
        return self.low <= value <= self.high

    def to_json(self) -> dict[str, Any]:
        """A JSON object."""
        return {
            "groups": {
                g.value: {
                    "people": self.people[g],
                    "converted": self.converted[g],
                    "rate": self.rates[g],
                }
                for g in Group
            },
            "lift": self.lift,
            "relative_lift": self.relative,
            "interval": [self.low, self.high],
            "confidence": self.confidence,
            "noise_sd": self.noise_sd,
            "epsilon": self.epsilon,
        }


def check_groups(counts: Mapping[Group, Counts], min_people: int = MIN_PEOPLE) -> None:
    """Refuse (:class:`~accord.pets.checks.QueryRefused`) a study with a group of fewer than
    ``min_people`` people, or a minimum below :data:`MIN_PEOPLE`."""
    if min_people < MIN_PEOPLE:
        raise InvalidInput(f"a lift study's groups hold at least {MIN_PEOPLE} people")
    small = [g.value for g in Group if counts[g].people < min_people]
    if small:
        raise QueryRefused(
            MIN_GROUP_CHECK,
            f"the {' and '.join(small)} group of the lift study holds fewer than {min_people} "
            "people: its numbers would say too much about each of them, so none are released",
        )


def measure(
    counts: Mapping[Group, Counts],
    privacy: dp.Privacy,
    *,
    confidence: float = 0.95,
    min_people: int = MIN_PEOPLE,
) -> Lift:
    """The lift of ``counts`` with noise of ``privacy`` and its ``confidence`` interval.

    Raises :class:`~accord.pets.checks.QueryRefused` when a group holds fewer than
    ``min_people`` (at least :data:`MIN_PEOPLE`) people: nothing is released then.
    """
    if not 0 < confidence < 1:
        raise InvalidInput(f"the confidence is between 0 and 1, not {confidence!r}")
    check_groups(counts, min_people)
    half = privacy.split(2)
    noise = dp.calibrate(half, 1, integer=True)
    bounds = dp.Bounds(max_rows=1)
    order = list(Group)
    people = dict(
        zip(order, dp.noisy_counts([counts[g].people for g in order], bounds, half), strict=True)
    )
    converted = dict(
        zip(
            order,
            dp.noisy_counts([counts[g].converted for g in order], bounds, half),
            strict=True,
        )
    )
    sd = noise.standard_deviation
    rates: dict[Group, float] = {}
    variance = 0.0
    for g in order:
        n = max(people[g], 1)
        rate = min(max(converted[g] / n, 0.0), 1.0)
        rates[g] = rate
        variance += rate * (1 - rate) / n + (sd**2) * (1 + rate**2) / n**2
    lift = rates[Group.EXPOSED] - rates[Group.HOLDOUT]
    half_width = NormalDist().inv_cdf(0.5 + confidence / 2) * math.sqrt(variance)
    return Lift(
        people=people,
        converted=converted,
        rates=rates,
        lift=lift,
        low=lift - half_width,
        high=lift + half_width,
        confidence=confidence,
        noise_sd=sd,
        epsilon=privacy.epsilon,
    )


def groups_of(people: Iterable[str], study: str, holdout: float = HOLDOUT) -> dict[str, Group]:
    """:func:`assign` for each of ``people``."""
    return {p: assign(p, study, holdout) for p in people}


__all__ = [
    "HOLDOUT",
    "MIN_PEOPLE",
    "Counts",
    "Group",
    "Lift",
    "assign",
    "check_groups",
    "count",
    "groups_of",
    "measure",
]
