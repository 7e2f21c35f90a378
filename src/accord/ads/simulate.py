"""A simulated campaign season: people open their feeds day after day and advertisers compete.

Each day every person opens their feed a Poisson number of times (their own mean activity), at
local hours drawn from a daily traffic curve, turned into UTC by their UTC offset; each opening is
one ad request for ``slots`` slots through :class:`accord.ads.market.Market`. Each ad shown is
clicked, and a click converts, with the true probabilities of a
:class:`~accord.ads.clicks.ClickModel` (seeded draws); the auction ranks by the platform's own
prediction (:meth:`ClickModel.visible`).
Each day's impressions (with their true probabilities) and charges are written to the store, the
day is closed in the spend ledger (a ledger entry per campaign), and each month is invoiced.

Pacing forecasts each campaign's day from the people its targeting reaches: their activity by
UTC window, and the hours its day-parting allows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from accord.ads.auction import AuctionRules
from accord.ads.clicks import ClickLog, ClickModel, random_model
from accord.ads.eligibility import CandidateIndex
from accord.ads.market import Market, Predictor
from accord.ads.model import (
    AGE_BANDS,
    HOURS_IN_WEEK,
    MICROS,
    Bid,
    BidStrategy,
    Campaign,
    Creative,
    PersonSignals,
    Schedule,
)
from accord.ads.pacing import PacingSettings, cumulative
from accord.ads.spend import SpendBook, month_of
from accord.ads.store import AdsStore
from accord.errors import InvalidInput

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

LOCAL_DAY: tuple[float, ...] = (
    0.9, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.4, 1.8, 1.9, 1.9, 2.0,
    2.2, 2.1, 2.0, 2.0, 2.1, 2.3, 2.6, 2.9, 3.1, 3.0, 2.4, 1.6,
)  # fmt: skip
"""Relative feed openings by local hour: a trough before dawn, a lunch bump, an evening peak (an
assumption of this simulation, in the shape diurnal use of social apps is usually reported)."""


@dataclass(frozen=True)
class World:
    """What a season runs on: the platform's people (row order of the click model), when each is
    awake (UTC offset in hours), how often each opens the feed, and the campaigns recorded."""

    platform: str
    people: Sequence[PersonSignals]
    utc_offsets: Ints
    activity: Floats
    model: ClickModel
    campaigns: Sequence[Campaign]

    def __post_init__(self) -> None:
        n = len(self.people)
        if not n:
            raise InvalidInput("a season needs people")
        if len(self.utc_offsets) != n or len(self.activity) != n:
            raise InvalidInput("every person needs a UTC offset and an activity")
        if not self.campaigns:
            raise InvalidInput("a season needs campaigns")


@dataclass(frozen=True)
class Season:
    """The days simulated: ``days`` days from ``start``, or only the days of ``sample`` among
    them (a sample of the season, in ascending order)."""

    start: date
    days: int
    slots: int = 2
    seed: int = 7
    rules: AuctionRules = field(default_factory=AuctionRules)
    pacing: PacingSettings = field(default_factory=PacingSettings)
    sample: tuple[date, ...] = ()

    def __post_init__(self) -> None:
        if self.days < 1:
            raise InvalidInput(f"a season lasts at least a day, not {self.days}")
        end = self.start + timedelta(days=self.days)
        for day in self.sample:
            if not self.start <= day < end:
                raise InvalidInput(
                    f"the sampled day {day} is outside the season ({self.start} to "
                    f"{end - timedelta(days=1)})"
                )
        if any(a >= b for a, b in pairwise(self.sample)):
            raise InvalidInput("a season's sampled days must be in ascending order, each once")

    def dates(self) -> list[date]:
        """The days simulated, in order."""
        if self.sample:
            return list(self.sample)
        return [self.start + timedelta(days=d) for d in range(self.days)]


@dataclass
class SeasonResult:
    """What a season did."""

    days: int = 0
    requests: int = 0
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0
    spend: int = 0
    ledger_entries: int = 0
    invoices: int = 0
    over_delivered: int = 0
    by_campaign_day: dict[tuple[int, date], int] = field(default_factory=dict)
    """Micros charged to each campaign each day."""


def traffic_curves(world: World, index: CandidateIndex, windows: int) -> Floats:
    """Each campaign's cumulative share of its day's traffic by UTC window: the activity of the
    people it targets, by their local hours, in the hours its day-parting allows."""
    per_hour = windows // 24
    local = np.repeat(np.asarray(LOCAL_DAY, dtype=np.float64) / per_hour, per_hour)
    offsets = sorted(set(world.utc_offsets.tolist()))
    # Activity by UTC window of each offset: the local curve moved by the offset.
    shifted = np.stack([np.roll(local, -o * per_hour) for o in offsets])
    reach = np.stack([index.targets(p) for p in world.people]).astype(np.float64)
    by_offset = np.zeros((len(offsets), index.size))
    for row, o in enumerate(offsets):
        chosen = world.utc_offsets == o
        by_offset[row] = world.activity[chosen] @ reach[chosen]
    curves = by_offset.T @ shifted
    hours = np.ones((index.size, 24))
    for position, c in enumerate(index.campaigns):
        if c.schedule.hours is not None:
            week = np.zeros(HOURS_IN_WEEK)
            week[sorted(c.schedule.hours)] = 1.0
            hours[position] = week.reshape(7, 24).mean(axis=0)
    curves *= np.repeat(hours, per_hour, axis=1)
    curves[curves.sum(axis=1) <= 0] = 1.0  # a campaign nobody can see: a flat forecast
    return cumulative(curves)


def _market(world: World, season: Season, predictor: Predictor | None) -> Market:
    """The market a season runs through: the world's campaigns, ranked by ``predictor`` (by
    default the platform's own first model, :meth:`ClickModel.visible`)."""
    index = CandidateIndex(world.campaigns)
    model = world.model
    row_of = {p.person: n for n, p in enumerate(world.people)}

    def visible(person: PersonSignals, _eligible: npt.NDArray[np.bool_]) -> Floats:
        return model.visible(row_of[person.person])

    # The click model's campaign columns are in the world's campaign order; the market's index
    # is in campaign id order.
    column = {c.id: n for n, c in enumerate(world.campaigns)}
    order = [column[c.id] for c in index.campaigns]
    if order != sorted(order):
        raise InvalidInput("the world's campaigns must be in campaign id order")
    return Market(
        world.campaigns,
        season.rules,
        predictor or visible,
        curves=traffic_curves(world, index, season.pacing.windows),
        pacing=season.pacing,
        seed=season.seed,
    )


def run_season(
    world: World,
    season: Season,
    store: AdsStore,
    book: SpendBook,
    progress: Callable[[int], None] | None = None,
    *,
    predictor: Predictor | None = None,
) -> SeasonResult:
    """Simulate ``season`` on ``world``, writing impressions, charges, ledger entries and
    invoices; ``progress`` is told of each day done. The auction ranks by ``predictor`` (a
    trained click model, :class:`accord.ads.ranking.RankingPredictor`), or by default by the
    platform's own first model."""
    market = _market(world, season, predictor)
    row_of = {p.person: n for n, p in enumerate(world.people)}
    rng = np.random.default_rng([season.seed, 1])
    result = SeasonResult()
    dates = season.dates()
    for n, day in enumerate(dates):
        impressions = _one_day(world, season, market, rng, row_of=row_of, day=day, result=result)
        charges = market.take_charges()
        store.record(impressions, charges)
        for charge in charges:
            key = (charge.campaign, day)
            result.by_campaign_day[key] = result.by_campaign_day.get(key, 0) + charge.micros
            result.spend += charge.micros
        result.impressions += len(impressions)
        result.ledger_entries += len(book.close_day(day))
        # A month is invoiced once its last day is done: the calendar's last, or, for a sample,
        # the last sampled day in it (no charge can come in it after that).
        after = dates[n + 1] if n + 1 < len(dates) else None
        if (day + timedelta(days=1)).month != day.month or (
            season.sample and (after is None or month_of(after) != month_of(day))
        ):
            result.invoices += len(book.invoice_month(month_of(day)))
        result.days += 1
        if progress is not None:
            progress(1)
    result.over_delivered = int(market.pacer.over_delivered.sum())
    return result


def _one_day(
    world: World,
    season: Season,
    market: Market,
    rng: np.random.Generator,
    *,
    row_of: dict[str, int],
    day: date,
    result: SeasonResult,
) -> list[tuple[object, ...]]:
    """One day's feed openings through the market; the impression rows they leave."""
    people, model = world.people, world.model
    position_of = market.index.position
    local = np.asarray(LOCAL_DAY) / sum(LOCAL_DAY)
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    opens = rng.poisson(world.activity)
    who = np.repeat(np.arange(len(people)), opens)
    hours = rng.choice(24, size=len(who), p=local)
    seconds = ((hours - world.utc_offsets[who]) % 24) * 3600 + rng.integers(0, 3600, len(who))
    draws = rng.random((len(who), season.slots, 2))
    impressions: list[tuple[object, ...]] = []
    for n in np.argsort(seconds, kind="stable").tolist():
        person = people[who[n]]
        at = midnight + timedelta(seconds=int(seconds[n]))
        placed = market.request(person, at, season.slots)
        result.requests += 1
        p_row = row_of[person.person]
        for placement in placed:
            c = position_of[placement.campaign.id]
            p_click = model.p_click(p_row, c, placement.slot)
            clicked = bool(draws[n, placement.slot, 0] < p_click)
            p_conversion = model.p_conversion(p_row, c)
            converted = clicked and bool(draws[n, placement.slot, 1] < p_conversion)
            if clicked:
                market.click(placement, at)
                result.clicks += 1
            result.conversions += converted
            impressions.append(
                (
                    placement.request_id,
                    world.platform,
                    person.person,
                    placement.campaign.id,
                    placement.campaign.advertiser,
                    placement.creative.id,
                    placement.slot,
                    at,
                    day,
                    placement.billing.value,
                    placement.price,
                    placement.predicted_ctr,
                    p_click,
                    clicked,
                    p_conversion,
                    converted,
                )
            )
    return impressions


def random_world(people: int, campaigns: int, *, seed: int, start: datetime) -> World:
    """A seeded world (:func:`accord.ads.clicks.random_model`) of ``people`` in one time zone,
    each opening the feed three times a day on average, and ``campaigns`` CPC campaigns open to
    everyone from ``start`` with budgets that do not bind: the ranking alone decides."""
    model = random_model(people, campaigns, seed=seed)
    rng = np.random.default_rng([seed, 31])
    ad = (Creative("ad", "An ad", "", "https://example.com/"),)
    made = [
        Campaign(
            id=k + 1,
            advertiser=f"advertiser-{k}",
            name=f"campaign {k}",
            daily_budget=1_000_000 * MICROS,
            schedule=Schedule(start),
            bid=Bid(BidStrategy.CPC, int(rng.integers(200_000, 800_000))),
            creatives=ad,
            frequency_cap=1_000,
        )
        for k in range(campaigns)
    ]
    signals = [
        PersonSignals(f"c{i:07d}", "US-CA", AGE_BANDS[int(model.person_age[i])])
        for i in range(people)
    ]
    return World(
        "chirp", signals, np.zeros(people, dtype=np.int64), np.full(people, 3.0), model, made
    )


def replay(
    world: World, season: Season, predictor: Predictor | None = None
) -> tuple[SeasonResult, ClickLog]:
    """``season`` on ``world`` through the market alone, nothing written: what it did (its
    ``spend`` is the revenue) and the log of its impressions, in the order shown, with their true
    click probabilities (persons as rows of the world, campaigns as its columns): what a click
    model is trained on, and how two rankings are compared on the same traffic."""
    market = _market(world, season, predictor)
    row_of = {p.person: n for n, p in enumerate(world.people)}
    column = market.index.position
    rng = np.random.default_rng([season.seed, 1])
    result = SeasonResult()
    rows: list[tuple[object, ...]] = []
    for day in season.dates():
        shown = _one_day(world, season, market, rng, row_of=row_of, day=day, result=result)
        for charge in market.take_charges():
            result.spend += charge.micros
        result.impressions += len(shown)
        result.days += 1
        rows += shown
    log = ClickLog(
        np.array([row_of[str(r[2])] for r in rows], dtype=np.int64),
        np.array([column[int(str(r[3]))] for r in rows], dtype=np.int64),
        np.array([int(str(r[6])) for r in rows], dtype=np.int64),
        np.array([bool(r[13]) for r in rows], dtype=np.bool_),
        np.array([float(str(r[12])) for r in rows], dtype=np.float64),
    )
    return result, log


__all__ = [
    "LOCAL_DAY",
    "Season",
    "SeasonResult",
    "World",
    "random_world",
    "replay",
    "run_season",
    "traffic_curves",
]
