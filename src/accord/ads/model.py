"""Advertisers, audiences and campaigns: what an advertiser buys, in plain data (no I/O).

Money is always a whole number of micro-units of the platform's currency (one unit is 1,000,000
micros, as in the Google Ads API's ``amount_micros``): sums are exact and never a float. A bid is
per billable event: per click for a CPC campaign, per thousand impressions for a CPM campaign,
whose bid must then be a whole number of micros per impression (a multiple of 1,000 per mille),
so that each impression is charged a whole number of micros.

A campaign's targeting uses the platform's own signals about a person (where they live, their age
band, interests the platform derives from its own data) and, optionally, audiences. An audience
built from another party's data (its ``provider`` is a partner) makes every campaign that names
it, to include or to exclude people, a campaign that *uses partner data*: a person who opted out
of sale and sharing never gets such a campaign's ad (:mod:`accord.law.optout`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import StrEnum

from accord.consent import utc
from accord.errors import InvalidInput
from accord.jurisdictions import EVERYWHERE, Jurisdictions

MICROS = 1_000_000
"""Micro-units in one unit of currency."""
_MICROS_PER_CENT = MICROS // 100
_HALF_CENT = _MICROS_PER_CENT // 2
PER_MILLE = 1_000
"""Impressions a CPM bid is for."""
MAX_MONEY = 2**53 - 1
"""The largest amount in micros (about 9 billion units): exact in JSON, in a ledger leaf and in
a float64 rank score."""

AGE_BANDS: tuple[str, ...] = ("13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
"""Age bands, as ad platforms report audiences."""
MINORS = "13-17"
"""The band of people under 18: no ad based on profiling reaches them (see :class:`Targeting`)."""
MAX_INTERESTS = 64
"""Interests a platform may derive (one bit each in the eligibility index)."""

_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def money(value: str | int | Decimal, *, where: str = "amount") -> int:
    """An amount of currency (``"12.50"``, ``12``) in micros; exact, or a clear error."""
    if isinstance(value, bool):
        raise InvalidInput(f"{value!r} is not an amount of money", where=where)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidInput(f"{value!r} is not an amount of money", where=where) from None
    micros = amount * MICROS
    if not amount.is_finite() or micros != micros.to_integral_value():
        raise InvalidInput(f"{value!r} is not a whole number of micro-units", where=where)
    return _amount(int(micros), where)


def _amount(micros: int, where: str, *, minimum: int = 0) -> int:
    if isinstance(micros, bool) or not isinstance(micros, int):
        raise InvalidInput(f"{micros!r} is not a whole number of micros", where=where)
    if not minimum <= micros <= MAX_MONEY:
        raise InvalidInput(
            f"{micros} micros is outside {minimum} to {MAX_MONEY} micros", where=where
        )
    return micros


def show_money(micros: int, *, exact: bool = False) -> str:
    """Micros as currency units: to the cent (``12504000`` → ``12.50``), or ``exact`` with every
    micro that is not zero (``12.504``)."""
    if not exact and type(micros) is int and micros >= 0:
        # To the cent in whole numbers: micros to cents, half to even (as Decimal's quantize).
        cents, rest = divmod(micros, _MICROS_PER_CENT)
        if rest > _HALF_CENT or (rest == _HALF_CENT and cents & 1):
            cents += 1
        return f"{cents // 100:,}.{cents % 100:02d}"
    amount = Decimal(micros) / MICROS
    if not exact:
        return f"{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN):,}"
    whole, _, fraction = f"{amount:f}".partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"


def key(value: str, what: str, where: str) -> str:
    """An identifier: lower-case letters, digits, ``.``, ``_``, ``-``; at most 64 characters."""
    if not isinstance(value, str) or not _KEY.match(value):
        raise InvalidInput(
            f"{what} {value!r} is not an identifier (lower-case letters, digits, '.', '_', '-'; "
            "at most 64 characters)",
            where=where,
        )
    return value


class BidStrategy(StrEnum):
    """What the advertiser pays for: a click (cost per click) or impressions (per thousand)."""

    CPC = "cpc"
    CPM = "cpm"


@dataclass(frozen=True, slots=True)
class Bid:
    """A manual bid: the most the advertiser pays per click (CPC) or per thousand impressions
    (CPM), in micros."""

    strategy: BidStrategy
    micros: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategy", BidStrategy(self.strategy))
        _amount(self.micros, "bid", minimum=1)
        if self.strategy is BidStrategy.CPM and self.micros % PER_MILLE:
            raise InvalidInput(
                f"a CPM bid of {self.micros} micros is not a whole number of micros per "
                f"impression: use a multiple of {PER_MILLE}",
                where="bid",
            )

    @property
    def per_event(self) -> int:
        """The bid per billable event: per click, or per impression."""
        return self.micros if self.strategy is BidStrategy.CPC else self.micros // PER_MILLE


@dataclass(frozen=True, slots=True)
class Targeting:
    """Whom a campaign may reach; every part left empty reaches everyone.

    ``regions`` are jurisdiction codes or region names (``US-CA``, ``DE``, ``EU``, ``LATAM``);
    ``age_bands`` from :data:`AGE_BANDS`; ``interests`` the platform's own, any of which
    qualifies; ``audiences`` any of which qualifies; ``excluded_audiences`` keep their members out.

    Interests and audiences are profiling: a person under 18 never gets an ad that uses them
    (EU Digital Services Act, Art. 28(2)), only ads targeted by place and age.
    """

    regions: tuple[str, ...] = ()
    age_bands: frozenset[str] = frozenset()
    interests: frozenset[str] = frozenset()
    audiences: frozenset[str] = frozenset()
    excluded_audiences: frozenset[str] = frozenset()
    places: Jurisdictions = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        where = "targeting"
        object.__setattr__(self, "regions", tuple(sorted({r.strip() for r in self.regions})))
        try:
            places = Jurisdictions.of(self.regions) if self.regions else EVERYWHERE
        except InvalidInput as exc:
            raise InvalidInput(exc.message, where=f"{where}.regions") from None
        object.__setattr__(self, "places", places)
        for name in ("age_bands", "interests", "audiences", "excluded_audiences"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        unknown = sorted(self.age_bands - set(AGE_BANDS))
        if unknown:
            raise InvalidInput(
                f"unknown age band {unknown[0]!r}: use one of {', '.join(AGE_BANDS)}",
                where=f"{where}.age_bands",
            )
        for interest in self.interests:
            key(interest, "interest", f"{where}.interests")
        for audience in self.audiences | self.excluded_audiences:
            key(audience, "audience", f"{where}.audiences")
        both = sorted(self.audiences & self.excluded_audiences)
        if both:
            raise InvalidInput(
                f"audience {both[0]!r} is both included and excluded", where=f"{where}.audiences"
            )

    @property
    def profiling(self) -> bool:
        """Whether it targets by interests or audiences (more than place and age)."""
        return bool(self.interests or self.audiences or self.excluded_audiences)

    @property
    def every_audience(self) -> frozenset[str]:
        """Every audience it names, to include or to exclude."""
        return self.audiences | self.excluded_audiences


HOURS_IN_WEEK = 168


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a campaign runs: from ``start`` until ``end`` (exclusive; None: until stopped), and,
    with day-parting, only in the given hours of the week (0 is Monday 00:00–01:00 UTC)."""

    start: datetime
    end: datetime | None = None
    hours: frozenset[int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", utc(self.start))
        if self.end is not None:
            object.__setattr__(self, "end", utc(self.end))
            if self.end <= self.start:
                raise InvalidInput("the schedule ends before it starts", where="schedule")
        if self.hours is not None:
            hours = frozenset(self.hours)
            if not hours:
                raise InvalidInput("day-parting names no hour", where="schedule.hours")
            if any(isinstance(h, bool) or not 0 <= h < HOURS_IN_WEEK for h in hours):
                raise InvalidInput(
                    f"hours of the week run from 0 to {HOURS_IN_WEEK - 1}", where="schedule.hours"
                )
            object.__setattr__(self, "hours", hours)

    def runs_at(self, at: datetime) -> bool:
        """Whether the campaign may serve at ``at``."""
        at = utc(at)
        if at < self.start or (self.end is not None and at >= self.end):
            return False
        return self.hours is None or hour_of_week(at) in self.hours


def hour_of_week(at: datetime) -> int:
    """The hour of the week of ``at`` in UTC: 0 is Monday 00:00–01:00."""
    at = utc(at)
    return at.weekday() * 24 + at.hour


@dataclass(frozen=True, slots=True)
class Creative:
    """One ad: what the person sees and where it leads."""

    id: str
    headline: str
    body: str
    url: str

    def __post_init__(self) -> None:
        key(self.id, "creative", "creative")
        if not self.headline.strip():
            raise InvalidInput("a creative needs a headline", where=f"creative {self.id}")
        if not self.url.startswith("https://"):
            raise InvalidInput(
                f"the landing page {self.url!r} is not an https:// URL", where=f"creative {self.id}"
            )


class CampaignStatus(StrEnum):
    """Whether a campaign takes part in auctions."""

    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Campaign:
    """A campaign: budgets, schedule, bid, targeting, frequency cap and creatives.

    ``daily_budget`` is what the campaign aims to spend each day (see :mod:`accord.ads.pacing`
    for the exact limits); ``lifetime_budget`` (None: no limit) is never exceeded.
    ``frequency_cap`` is the most impressions one person gets from it in one (UTC) day.
    ``partner_data`` says whether any audience it names is built from a partner's data (the store
    sets it from the audiences).
    """

    id: int
    advertiser: str
    name: str
    daily_budget: int
    schedule: Schedule
    bid: Bid
    creatives: tuple[Creative, ...]
    targeting: Targeting = field(default_factory=Targeting)
    lifetime_budget: int | None = None
    frequency_cap: int = 3
    status: CampaignStatus = CampaignStatus.ACTIVE
    partner_data: bool = False

    def __post_init__(self) -> None:
        where = f"campaign {self.name!r}"
        if isinstance(self.id, bool) or not isinstance(self.id, int) or self.id < 0:
            raise InvalidInput(f"campaign id {self.id!r} is not a whole number", where=where)
        key(self.advertiser, "advertiser", where)
        if not self.name.strip():
            raise InvalidInput("a campaign needs a name", where="campaign")
        _amount(self.daily_budget, f"{where}: daily budget", minimum=1)
        if self.lifetime_budget is not None:
            _amount(self.lifetime_budget, f"{where}: lifetime budget", minimum=1)
        if self.bid.per_event > self.daily_budget:
            raise InvalidInput(
                "the bid is more than the daily budget: not one event could be paid for",
                where=where,
            )
        cap = self.frequency_cap
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise InvalidInput(
                f"the frequency cap must be at least 1 impression a day, not {cap!r}", where=where
            )
        if not self.creatives:
            raise InvalidInput("a campaign needs at least one creative", where=where)
        ids = [c.id for c in self.creatives]
        if len(set(ids)) != len(ids):
            raise InvalidInput("two creatives share an id", where=where)
        object.__setattr__(self, "status", CampaignStatus(self.status))


@dataclass(frozen=True, slots=True)
class Advertiser:
    """An advertiser's account on a platform; ``party`` is its party in Accord, if it is one
    (Reelix is both a partner and an advertiser)."""

    id: str
    name: str
    platform: str
    party: str | None = None

    def __post_init__(self) -> None:
        key(self.id, "advertiser", "advertiser")
        if not self.name.strip():
            raise InvalidInput("an advertiser needs a name", where=f"advertiser {self.id}")


@dataclass(frozen=True, slots=True)
class Audience:
    """A list of people an advertiser targets; ``provider`` is the party whose data it is built
    from (None: the platform's own data)."""

    id: str
    advertiser: str
    name: str
    provider: str | None = None

    def __post_init__(self) -> None:
        key(self.id, "audience", "audience")
        key(self.advertiser, "advertiser", f"audience {self.id}")

    def partner_data(self, platform: str) -> bool:
        """Whether it is built from another party's data than the platform's."""
        return self.provider is not None and self.provider != platform


@dataclass(frozen=True, slots=True)
class PersonSignals:
    """What the platform knows of a person for an ad request.

    ``jurisdiction`` and ``age_band`` and ``interests`` are the platform's own signals;
    ``audiences`` the audiences the person is in; ``opted_out`` whether a sale/sharing opt-out is
    in force for them (recorded, or a ``Sec-GPC: 1`` on this very request).
    """

    person: str
    jurisdiction: str
    age_band: str
    interests: frozenset[str] = frozenset()
    audiences: frozenset[str] = frozenset()
    opted_out: bool = False

    def __post_init__(self) -> None:
        if self.age_band not in AGE_BANDS:
            raise InvalidInput(
                f"unknown age band {self.age_band!r}: use one of {', '.join(AGE_BANDS)}",
                where=f"person {self.person}",
            )


__all__ = [
    "AGE_BANDS",
    "MAX_MONEY",
    "MICROS",
    "MINORS",
    "PER_MILLE",
    "Advertiser",
    "Audience",
    "Bid",
    "BidStrategy",
    "Campaign",
    "CampaignStatus",
    "Creative",
    "PersonSignals",
    "Schedule",
    "Targeting",
    "hour_of_week",
    "key",
    "money",
    "show_money",
]
