"""Chirp's ad business in the reference scenario: its people as an audience, and the advertisers
of a season in which Reelix spends what the court filings describe.

* **People.** Chirp's own database gives each person's place and, from their feed posts, the
  interests Chirp derives (a post about a run: fitness; about a concert: music ...). Chirp asks
  for a birth date at sign-up but the reference databases hold none, so each person's age band is
  drawn from a seeded generator with shares close to a social network's adult audience. How often
  each opens the feed grows with their friend count. A person whose record in the population has
  a sale/sharing opt-out sends Chirp the same Global Privacy Control signal: the opt-out is
  recorded at Chirp too.
* **The truth.** Who clicks follows :class:`accord.ads.clicks.ClickModel`; its hidden terms are
  each person's own propensity (seeded) and their streaming affinity, read from how much they
  watched in Reelix's database: the world knows it, Chirp does not (Reelix's ads convert better
  among people who stream more, which is what partner data would sell).
* **Money.** The filings put Netflix's ad spend on Facebook at about $40M a year before the
  "Watch" agreement (2017), about $150M after it (2018) and about $200M two years later. The
  season gives Reelix those yearly budgets scaled from a reference audience of
  :data:`SCALE_AUDIENCE` people to the population, a CPC and a CPM campaign each year; five
  smaller advertisers run all season.
"""

from __future__ import annotations

import math
import random
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from accord.ads.auction import AuctionRules
from accord.ads.clicks import ClickModel
from accord.ads.model import (
    AGE_BANDS,
    MICROS,
    Advertiser,
    Bid,
    BidStrategy,
    Campaign,
    Creative,
    PersonSignals,
    Schedule,
    Targeting,
    show_money,
)
from accord.ads.simulate import Season, SeasonResult, World, run_season
from accord.ads.spend import SpendBook
from accord.ads.store import AdsStore
from accord.consent import OptOut, OptOutKind, Person, SignalSource
from accord.errors import InvalidInput
from accord.scenario.population import CHIRP, REELIX, Population, generate, person_id
from accord.service import Accord

SCALE_AUDIENCE = 200_000_000
"""People the filings' yearly amounts are scaled from: the order of the social network's US and
Canadian audience in those years (an assumption of the scenario)."""
RULES = AuctionRules(reserve_cpc=50_000, reserve_cpm=3_000_000, min_ctr=0.001)
"""Chirp's auction: a floor of $0.05 a click and $3 a thousand impressions."""
REELIX_YEARLY = (40_000_000, 150_000_000, 200_000_000)
"""Reelix's yearly ad spend on Chirp, in dollars, in the filings' shape (the last year repeats)."""

POST_INTERESTS = {
    "Beautiful morning for a run": "fitness",
    "Finally finished the book, no spoilers": "books",
    "Anyone know a good plumber?": "home",
    "Best tacos in town, fight me": "food",
    "Throwback to last summer": "travel",
    "New job starts Monday!": "careers",
    "Concert was incredible": "music",
    "Who else is watching the game tonight?": "sports",
}
"""What Chirp derives from a person's own posts."""
INTERESTS = tuple(sorted(set(POST_INTERESTS.values())))
AGE_SHARES = (0.05, 0.21, 0.26, 0.19, 0.13, 0.10, 0.06)
"""Shares of :data:`accord.ads.model.AGE_BANDS` among the scenario's people."""
UTC_OFFSETS = {
    "US-CA": -8, "US-WA": -8, "US-CO": -7, "US-TX": -6, "US-IL": -6, "US-NY": -5, "US-FL": -5,
    "CA": -5, "MX": -6, "CO": -5, "BR": -3, "AR": -3, "GB": 0, "IE": 0,
    "DE": 1, "FR": 1, "ES": 1, "NL": 1,
}  # fmt: skip
"""Standard-time offsets of the scenario's places (a country's main time zone)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """One advertiser's campaigns: budget per person of the population per year, and the rest."""

    advertiser: Advertiser
    name: str
    per_person_year: float
    """Dollars per person of the population per year (Reelix's come from the filings)."""
    bid: Bid
    targeting: Targeting
    appeal: float
    hours: frozenset[int] | None = None
    topic: frozenset[str] = frozenset()
    affinity_lift: float = 0.0
    conversion_affinity: float = 0.0


def _evenings_and_lunch() -> frozenset[int]:
    # UTC hours around lunch and dinner in Mexico and the US west and south (UTC-6 to -8).
    return frozenset(d * 24 + h for d in range(7) for h in (18, 19, 20, 1, 2, 3, 4))


def plans() -> list[Plan]:
    """Every advertiser's campaigns but Reelix's yearly ones."""
    chirp = CHIRP
    return [
        Plan(
            Advertiser("northwind-shoes", "Northwind Shoes", chirp),
            "Northwind running shoes",
            0.17,
            Bid(BidStrategy.CPC, 300_000),
            Targeting(regions=("US", "CA", "GB"), interests=frozenset({"fitness", "sports"})),
            -4.3,
            topic=frozenset({"fitness", "sports"}),
        ),
        Plan(
            Advertiser("lumen-bank", "Lumen Bank", chirp),
            "Lumen savings account",
            0.15,
            Bid(BidStrategy.CPC, 400_000),
            Targeting(regions=("US",), age_bands=frozenset({"25-34", "35-44", "45-54"})),
            -4.6,
            topic=frozenset({"careers"}),
        ),
        Plan(
            Advertiser("fjord-air", "Fjord Air", chirp),
            "Fjord Air winter fares",
            0.12,
            Bid(BidStrategy.CPM, 5_000_000),
            Targeting(regions=("EU", "GB"), interests=frozenset({"travel"})),
            -4.4,
            topic=frozenset({"travel"}),
        ),
        Plan(
            Advertiser("casa-tacos", "Casa Tacos", chirp),
            "Casa Tacos lunch and dinner",
            0.06,
            Bid(BidStrategy.CPC, 150_000),
            Targeting(regions=("MX", "US-TX", "US-CA"), interests=frozenset({"food"})),
            -4.0,
            hours=_evenings_and_lunch(),
            topic=frozenset({"food"}),
        ),
        Plan(
            Advertiser("pagina-books", "Página Books", chirp),
            "Página new releases",
            0.08,
            Bid(BidStrategy.CPC, 200_000),
            Targeting(regions=("LATAM",), interests=frozenset({"books"})),
            -4.2,
            topic=frozenset({"books"}),
        ),
    ]


REELIX_ADVERTISER = Advertiser("reelix", "Reelix", CHIRP, party=REELIX)


def reelix_plans(year: int) -> list[tuple[Plan, float]]:
    """Reelix's two campaigns of season year ``year`` (0 first) and their share of its budget."""
    yearly = REELIX_YEARLY[min(year, len(REELIX_YEARLY) - 1)] / SCALE_AUDIENCE
    adults = frozenset(AGE_BANDS[1:5])
    return [
        (
            Plan(
                REELIX_ADVERTISER,
                f"Reelix free month, year {year + 1}",
                yearly,
                Bid(BidStrategy.CPC, 150_000),
                Targeting(age_bands=adults),
                -4.1,
                affinity_lift=0.9,
                conversion_affinity=0.8,
            ),
            0.3,
        ),
        (
            Plan(
                REELIX_ADVERTISER,
                f"Reelix originals, year {year + 1}",
                yearly,
                Bid(BidStrategy.CPM, 6_000_000),
                Targeting(),
                -4.4,
                affinity_lift=0.7,
                conversion_affinity=0.6,
            ),
            0.7,
        ),
    ]


def _creative(plan: Plan) -> Creative:
    slug = plan.advertiser.id
    return Creative(
        f"{slug}-1", plan.name, f"{plan.advertiser.name}: {plan.name}.", f"https://{slug}.example/"
    )


def _read_people(
    chirp_db: Path,
) -> tuple[list[str], list[str], dict[str, set[str]], dict[str, int]]:
    with closing(sqlite3.connect(f"file:{chirp_db}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT person_id, jurisdiction FROM people ORDER BY person_id"
        ).fetchall()
        interests: dict[str, set[str]] = defaultdict(set)
        for person, body in db.execute("SELECT person_id, body FROM feed_posts"):
            interest = POST_INTERESTS.get(body)
            if interest:
                interests[person].add(interest)
        friends = dict(
            db.execute("SELECT person_id, count(*) FROM friendships GROUP BY person_id").fetchall()
        )
    return [r[0] for r in rows], [r[1] for r in rows], interests, friends


def _watching(reelix_db: Path) -> dict[str, int]:
    with closing(sqlite3.connect(f"file:{reelix_db}?mode=ro", uri=True)) as db:
        return dict(
            db.execute("SELECT member_id, count(*) FROM watch_events GROUP BY member_id").fetchall()
        )


def build_world(
    accord: Accord,
    scenario: Path,
    *,
    seed: int,
    start: date,
    years: int,
    windows: Sequence[tuple[date, date]] | None = None,
    population: Population | None = None,
) -> World:
    """Record Chirp's ad business for the scenario in ``scenario`` (``chirp.db``, ``reelix.db``)
    in Accord's store, and the world a season of ``years`` from ``start`` runs on.

    With ``windows`` (one per year of the season: its first day and the day after its last),
    every campaign runs in those windows only, each year's budgets scaled to its window's days:
    a sample of the season (:func:`sample_windows`). With ``population`` (the one already in the
    store, as the demo loads it), Chirp's people and their opt-outs are taken as recorded there;
    without, they are recorded here, each opt-out as the Global Privacy Control signal the person
    sends Chirp too.
    """
    chirp_db, reelix_db = scenario / "chirp.db", scenario / "reelix.db"
    for path in (chirp_db, reelix_db):
        if not path.is_file():
            raise InvalidInput(f"{path} is missing: run `accord scenario generate` first")
    if years < 1:
        raise InvalidInput(f"a season lasts at least a year, not {years}")
    if windows is not None and len(windows) != years:
        raise InvalidInput(f"a sampled season needs a window for each of its {years} years")
    ids, homes, interests, friends = _read_people(chirp_db)
    watched = _watching(reelix_db)
    n = len(ids)
    if not n:
        raise InvalidInput(f"{chirp_db} holds no people")
    # Every campaign is made (and its budget checked) before anything is recorded.
    planned = season_campaigns(n, start=start, years=years, windows=windows)
    rng = random.Random(f"{seed}:ads people")
    at = datetime(start.year, start.month, start.day, tzinfo=UTC)
    recorded = population is not None
    if population is None:
        population = generate(n, seed=seed, at=at)
    opted = {int(o.person[1:]) for o in population.opt_outs if o.kind is OptOutKind.SALE_SHARING}
    bands = rng.choices(AGE_BANDS, AGE_SHARES, k=n)
    signals = [
        PersonSignals(
            ids[i],
            homes[i],
            bands[i],
            frozenset(interests.get(ids[i], ())),
            opted_out=int(ids[i][1:]) in opted,
        )
        for i in range(n)
    ]
    accord.add_party(CHIRP, "Chirp")
    accord.add_party(REELIX, "Reelix")
    if not recorded:
        accord.add_people([Person(ids[i], CHIRP, homes[i]) for i in range(n)])
        for i in sorted(opted):
            if i < n:
                accord.opt_out(
                    OptOut(
                        person_id(CHIRP, i), CHIRP, OptOutKind.SALE_SHARING, SignalSource.GPC, at
                    )
                )
    store = AdsStore(accord.engine, CHIRP)
    store.set_profiles((s.person, s.age_band, s.interests) for s in signals)
    known = {a.id for a in store.advertisers()}
    campaigns: list[Campaign] = []
    chosen: list[Plan] = []
    for plan, campaign in planned:
        if plan.advertiser.id not in known:
            store.add_advertiser(plan.advertiser)
            known.add(plan.advertiser.id)
        campaigns.append(store.add_campaign(campaign))
        chosen.append(plan)
    return World(
        CHIRP,
        signals,
        np.array([UTC_OFFSETS.get(h, UTC_OFFSETS.get(h.split("-")[0], 0)) for h in homes]),
        np.array([0.3 + 0.15 * math.log1p(friends.get(p, 0)) for p in ids]),
        _model(chosen, signals, [watched.get(person_id(REELIX, i), 0) for i in range(n)], seed),
        campaigns,
    )


DEMO_YEARS = 3
"""Years of the demo's season, the filings' three amounts."""
DEMO_DAYS = 7
"""Days the demo simulates in each year of its season: a week."""


@dataclass(frozen=True)
class SampledSeason:
    """A season simulated on a sample of its days: the same week of each year, each year's
    budgets scaled to the week (what ``accord demo`` runs)."""

    people: int
    windows: tuple[tuple[date, date], ...]
    """Each year's sampled days: the first, and the day after the last."""
    campaigns: tuple[Campaign, ...]
    result: SeasonResult
    invoices: int
    unreconciled: tuple[str, ...]
    """What differs between an invoice and its records summed again (nothing, if all is well)."""

    @property
    def days(self) -> int:
        """Days simulated in each year."""
        begins, ends = self.windows[0]
        return (ends - begins).days

    @property
    def scale(self) -> float:
        """What a year's spend is to its sampled days' (budgets are a year's times days/365)."""
        return 365 / self.days

    def reelix_budgets(self) -> list[tuple[int, int, int]]:
        """For each year of the season: the year, Reelix's budget for the year at this
        population (the filings' amount scaled, in micros) and its budget for the sampled days
        (its campaigns' lifetime budgets)."""
        out = []
        for n, (begins, ends) in enumerate(self.windows):
            yearly = REELIX_YEARLY[min(n, len(REELIX_YEARLY) - 1)]
            sampled = sum(
                c.lifetime_budget or 0
                for c in self.campaigns
                if c.advertiser == REELIX_ADVERTISER.id and begins <= c.schedule.start.date() < ends
            )
            scaled = round(yearly * self.people / SCALE_AUDIENCE * MICROS)
            out.append((begins.year, scaled, sampled))
        return out


def run_sampled_season(
    accord: Accord,
    scenario: Path,
    population: Population,
    *,
    seed: int,
    last_day: date,
    years: int = DEMO_YEARS,
    days: int = DEMO_DAYS,
    phase: Callable[[str, int], Callable[[int], None]] | None = None,
) -> SampledSeason:
    """Run a season of ``years`` years on ``days`` days of each, the last ending on
    ``last_day``, for the people of ``population`` already in the store; every charge recorded,
    each campaign's day closed in the ledger, each month with charges invoiced and reconciled.
    ``phase(description, total)`` is told of each phase and returns what to tell of its steps."""
    windows = sample_windows(last_day, years, days)
    first = windows[0][0]
    setup = phase("Chirp's ad platform: people's signals, advertisers", 1) if phase else None
    world = build_world(
        accord,
        scenario,
        seed=seed,
        start=first,
        years=years,
        windows=windows,
        population=population,
    )
    if setup is not None:
        setup(1)
    sample = tuple(
        begins + timedelta(days=d) for begins, ends in windows for d in range((ends - begins).days)
    )
    season = Season(first, (windows[-1][1] - first).days, seed=seed, rules=RULES, sample=sample)
    book = SpendBook(accord.engine, accord.ledger, CHIRP)
    step = (
        phase(
            f"ad season: {len(world.people):,} people, {len(world.campaigns)} campaigns, "
            f"{days} days in each of {years} years",
            len(sample),
        )
        if phase
        else None
    )
    result = run_season(world, season, AdsStore(accord.engine, CHIRP), book, step)
    invoices = book.invoices()
    unreconciled = tuple(f"{i.id}: {p}" for i in invoices for p in book.reconcile(i.id))
    return SampledSeason(
        len(world.people),
        tuple(windows),
        tuple(world.campaigns),
        result,
        len(invoices),
        unreconciled,
    )


def season_campaigns(
    people: int,
    *,
    start: date,
    years: int,
    windows: Sequence[tuple[date, date]] | None = None,
) -> list[tuple[Plan, Campaign]]:
    """Every campaign of a season for ``people`` people, with the plan it comes from, in the
    order they are recorded: the smaller advertisers' (all season, or one in each window), then
    Reelix's two of each year. Refused if a daily budget would not pay for one billable event."""
    planned: list[tuple[Plan, Campaign]] = []
    season_end = _same_day(start, start.year + years)
    for plan in plans():
        if windows is None:
            planned.append((plan, _campaign(plan, people, 1.0, start, season_end)))
            continue
        for year, (begins, ends) in enumerate(windows):
            named = replace(plan, name=f"{plan.name}, year {year + 1}")
            planned.append((named, _campaign(named, people, 1.0, begins, ends)))
    for year in range(years):
        if windows is None:
            begins = _same_day(start, start.year + year)
            ends = _same_day(start, start.year + year + 1)
        else:
            begins, ends = windows[year]
        planned += [
            (plan, _campaign(plan, people, share, begins, ends))
            for plan, share in reelix_plans(year)
        ]
    return planned


def sample_windows(last_day: date, years: int, days: int) -> list[tuple[date, date]]:
    """A sample of a season of ``years`` years: ``days`` days in each, the same days of the
    year, the last window ending on ``last_day``; each as its first day and the day after its
    last."""
    if days < 1 or years < 1:
        raise InvalidInput("a sample needs at least a day in each of at least one year")
    if days > 365:
        raise InvalidInput(f"a sample of {days} days a year is more than a year")
    windows = []
    for year in range(years):
        last = _same_day(last_day, last_day.year - (years - 1 - year))
        windows.append((last - timedelta(days=days - 1), last + timedelta(days=1)))
    return windows


def _same_day(day: date, year: int) -> date:
    """``day`` in ``year`` (the 28th for the 29th of February of a year without one)."""
    try:
        return day.replace(year=year)
    except ValueError:
        return day.replace(year=year, day=28)


def _campaign(plan: Plan, people: int, share: float, begins: date, ends: date) -> Campaign:
    days = (ends - begins).days
    total = round(plan.per_person_year * people * share * MICROS * days / 365)
    daily = total // days
    if daily < plan.bid.per_event:
        raise InvalidInput(
            f"{people:,} people are too few for {plan.name!r}: its daily budget of "
            f"{show_money(daily)} would not pay for one billable event at its bid "
            f"({show_money(plan.bid.per_event)}); use more people"
        )
    return Campaign(
        id=0,
        advertiser=plan.advertiser.id,
        name=plan.name,
        daily_budget=daily,
        schedule=Schedule(
            datetime(begins.year, begins.month, begins.day, tzinfo=UTC),
            datetime(ends.year, ends.month, ends.day, tzinfo=UTC),
            plan.hours,
        ),
        bid=plan.bid,
        creatives=(_creative(plan),),
        targeting=plan.targeting,
        lifetime_budget=total,
    )


def _model(
    chosen: list[Plan], people: list[PersonSignals], watched: list[int], seed: int
) -> ClickModel:
    rng = np.random.default_rng([seed, 2])
    bit = {name: np.uint64(1) << np.uint64(k) for k, name in enumerate(INTERESTS)}

    def bits(names: frozenset[str]) -> np.uint64:
        out = np.uint64(0)
        for name in names:
            out |= bit[name]
        return out

    watching = np.log1p(np.array(watched, dtype=np.float64))
    age = np.array([AGE_BANDS.index(p.age_band) for p in people], dtype=np.int64)
    # Younger people click a little more (a gentle slope, the same for every campaign).
    slope = np.linspace(0.2, -0.3, len(AGE_BANDS))
    return ClickModel(
        appeal=np.array([p.appeal for p in chosen]),
        topics=np.array([bits(p.topic) for p in chosen], dtype=np.uint64),
        interest_lift=np.full(len(chosen), 0.8),
        age_lift=np.tile(slope, (len(chosen), 1)),
        affinity_lift=np.array([p.affinity_lift for p in chosen]),
        conversion_appeal=np.full(len(chosen), -2.6),
        conversion_affinity=np.array([p.conversion_affinity for p in chosen]),
        person_interests=np.array([bits(p.interests) for p in people], dtype=np.uint64),
        person_age=age,
        propensity=rng.normal(0.0, 0.5, len(people)),
        affinity=(watching - watching.mean()) / (watching.std() or 1.0),
    )


__all__ = [
    "DEMO_DAYS",
    "DEMO_YEARS",
    "INTERESTS",
    "REELIX_YEARLY",
    "RULES",
    "SCALE_AUDIENCE",
    "SampledSeason",
    "build_world",
    "plans",
    "reelix_plans",
    "run_sampled_season",
    "sample_windows",
    "season_campaigns",
]
