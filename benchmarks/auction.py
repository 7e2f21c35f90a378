"""Ad auctions per second on one core, side by side with a bare NumPy top-k over the same scores.

``Market.request`` for a person among 1,000 candidate campaigns does everything an ad request
does: targeting (places, age bands, interests, audiences, opt-outs), schedules with day-parting,
budgets and frequency caps, pacing (each candidate's pass-through draw; rates moved at the end of
each pacing window, the day's traffic spread over a simulated day), the quality floor, the
generalised second-price auction for two slots, CPM charges and frequency counts. The bare side
takes each request's row of the same rank scores (bid × predicted CTR for every candidate,
computed beforehand) and finds its top three with ``argpartition`` and ``argsort``: the floor of
any auction that ranks these candidates (goal: the auction keeps at least 0.5 of its rate).

Both sides run the same requests in alternating rounds on this thread; times are the thread's
CPU time, so other processes on the machine do not count. A second configuration makes every
candidate eligible in every auction (no targeting, no caps, pacing rates of 1), the worst case
for the auction's work. Both are run a second time through ``Market.request_many``, 64 requests
handed over at a time (what a server does with the requests that arrive together), and checked
to place the same ads at the same prices, and charge the same, as one by one. Prints a table and
ends with one line of JSON. ``--quick`` runs it small
(``tests/test_benchmarks.py`` does).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from rich.console import Console
from rich.table import Table

from accord.ads.auction import AuctionRules
from accord.ads.market import Market, Placement
from accord.ads.model import (
    AGE_BANDS,
    Bid,
    BidStrategy,
    Campaign,
    Creative,
    PersonSignals,
    Schedule,
    Targeting,
)

DAY = datetime(2026, 3, 2, tzinfo=UTC)
PLACES = ("US", "US-CA", "US-TX", "US-NY", "DE", "FR", "GB", "CA", "BR", "MX", "EU", "LATAM")
HOMES = ("US-CA", "US-NY", "US-TX", "US-FL", "DE", "FR", "ES", "GB", "CA", "BR", "MX", "AR")
INTERESTS = tuple(f"interest-{k:02d}" for k in range(32))
AUDIENCES = tuple(f"audience-{k:02d}" for k in range(40))
SLOTS = 2
RUN = 64
"""Requests handed to ``Market.request_many`` at once in the runs configurations."""
console = Console()


@dataclass
class World:
    """Campaigns, people, their predicted CTRs, and a day of requests."""

    campaigns: list[Campaign]
    people: list[PersonSignals]
    ctr: np.ndarray
    scores: np.ndarray
    requests: np.ndarray
    times: list[datetime]


def build(candidates: int, people: int, auctions: int, *, targeted: bool, seed: int) -> World:
    rng = np.random.default_rng(seed)
    campaigns = []
    for i in range(candidates):
        cpc = rng.random() < 0.7
        bid = (
            Bid(BidStrategy.CPC, int(rng.integers(50_000, 2_000_000)))
            if cpc
            else Bid(BidStrategy.CPM, int(rng.integers(1_000, 30_000)) * 1_000)
        )
        targeting = Targeting()
        hours = None
        cap = 1_000_000
        if targeted:
            targeting = Targeting(
                regions=tuple(rng.choice(PLACES, size=rng.integers(1, 3), replace=False))
                if rng.random() < 0.6
                else (),
                age_bands=frozenset(rng.choice(AGE_BANDS[1:], size=rng.integers(2, 5)))
                if rng.random() < 0.5
                else frozenset(),
                interests=frozenset(rng.choice(INTERESTS, size=rng.integers(1, 4)))
                if rng.random() < 0.4
                else frozenset(),
                audiences=frozenset(rng.choice(AUDIENCES, size=1))
                if rng.random() < 0.1
                else frozenset(),
            )
            if rng.random() < 0.1:  # day-parted: evenings only, every day
                hours = frozenset(d * 24 + h for d in range(7) for h in range(17, 23))
            cap = 3
        # Daily budgets near what each would spend unthrottled, so pacing has work to do.
        daily = max(bid.per_event * 20, int(rng.integers(2, 40)) * 1_000_000)
        campaigns.append(
            Campaign(
                id=i + 1,
                advertiser=f"advertiser-{i % 200:03d}",
                name=f"campaign {i}",
                daily_budget=daily,
                schedule=Schedule(DAY - timedelta(days=10), hours=hours),
                bid=bid,
                creatives=(Creative("ad", "Headline", "Body", "https://example.com/"),),
                targeting=targeting,
                frequency_cap=cap,
                partner_data=bool(targeting.audiences) and rng.random() < 0.5,
            )
        )
    signals = []
    for p in range(people):
        signals.append(
            PersonSignals(
                f"c{p:07d}",
                HOMES[p % len(HOMES)],
                AGE_BANDS[1 + int(rng.integers(0, 6))],
                frozenset(rng.choice(INTERESTS, size=4, replace=False))
                if targeted
                else frozenset(),
                frozenset(rng.choice(AUDIENCES, size=2, replace=False))
                if targeted
                else frozenset(),
                opted_out=targeted and rng.random() < 0.08,
            )
        )
    ctr = rng.beta(1.2, 80.0, size=(people, candidates)) + 0.0006
    per_event = np.array([c.bid.per_event for c in campaigns], dtype=np.int64)
    cpc = np.array([c.bid.strategy is BidStrategy.CPC for c in campaigns])
    scores = per_event * np.where(cpc, ctr, 1.0)
    requests = rng.integers(0, people, size=auctions)
    step = 86_400 / auctions
    times = [DAY + timedelta(seconds=k * step) for k in range(auctions)]
    return World(campaigns, signals, ctr, scores, requests, times)


def market(world: World) -> tuple[Market, dict[str, int]]:
    rows = {p.person: n for n, p in enumerate(world.people)}
    table = world.ctr

    def predict(person: PersonSignals, _eligible: np.ndarray) -> np.ndarray:
        # The model's predictions for this person, made beforehand: the bare side gets them too.
        return table[rows[person.person]]  # type: ignore[no-any-return]

    return Market(world.campaigns, AuctionRules(), predict, seed=1), rows


def run_auctions(world: World, run: int = 1) -> tuple[float, float, int]:
    """CPU seconds for every request through a fresh market (one by one, or ``run`` at a time
    through ``Market.request_many``); median candidates that passed eligibility and pacing; ads
    placed."""
    m, _ = market(world)
    people, times = world.people, world.times
    asks = [(people[p], times[k], SLOTS) for k, p in enumerate(world.requests.tolist())]
    # A serving process is long-lived: its memory of each kind of person's targeting is warm.
    for person in people:
        m.index.targets(person)
    placed = 0
    started = time.thread_time()
    if run == 1:
        for person, at, slots in asks:
            placed += len(m.request(person, at, slots))
    else:
        for k in range(0, len(asks), run):
            placed += sum(len(p) for p in m.request_many(asks[k : k + run]))
    seconds = time.thread_time() - started
    # The candidates that passed, counted afterwards on a fresh market (not timed).
    m2, _ = market(world)
    passed = []
    for k, person in enumerate(world.requests[:2_000].tolist()):
        m2.advance(times[k])
        mask = m2.index.targets(people[person]) & m2.live
        passed.append(int(mask.sum()))
        m2.request(people[person], times[k], SLOTS)
    return seconds, statistics.median(passed), placed


def same_either_way(world: World, run: int, count: int = 5_000) -> bool:
    """Whether ``count`` requests placed the same ads at the same prices one by one and in runs
    (not timed)."""
    asks = [
        (world.people[p], world.times[k], SLOTS)
        for k, p in enumerate(world.requests[:count].tolist())
    ]
    one, _ = market(world)
    many, _ = market(world)
    alone = [one.request(*ask) for ask in asks]
    together = [r for k in range(0, count, run) for r in many.request_many(asks[k : k + run])]

    def shown(results: list[list[Placement]]) -> list[tuple[int, int, int]]:
        return [(p.slot, p.campaign.id, p.price) for r in results for p in r]

    def charged(market: Market) -> list[tuple[object, ...]]:
        # Request ids begin with a prefix of each market's own: the count after it is compared.
        return [(c.campaign, c.at, c.event, c.micros, c.request_id[16:]) for c in market.charges]

    return shown(alone) == shown(together) and charged(one) == charged(many)


def run_bare(world: World) -> float:
    """CPU seconds for the bare top-k (slots and the next one) of each request's scores."""
    scores = world.scores
    n = scores.shape[1]
    kth = n - (SLOTS + 1)
    started = time.thread_time()
    for person in world.requests.tolist():
        row = scores[person]
        top = np.argpartition(row, kth)[kth:]
        top[np.argsort(-row[top])]
    return time.thread_time() - started


def measure(world: World, rounds: int, run: int = 1) -> dict[str, float]:
    gc.collect()
    gc.freeze()
    ours, bare = [], []
    eligible, placed = 0.0, 0
    for _ in range(rounds):
        seconds, eligible, placed = run_auctions(world, run)
        ours.append(seconds)
        bare.append(run_bare(world))
    n = len(world.requests)
    ours_rate = n / statistics.median(ours)
    bare_rate = n / statistics.median(bare)
    return {
        "auctions_per_second": ours_rate,
        "bare_per_second": bare_rate,
        "ratio": ours_rate / bare_rate,
        "eligible_median": eligible,
        "ads_placed": placed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run, to check it runs")
    parser.add_argument("--auctions", type=int, help="requests per round (default 100,000)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 7)")
    parser.add_argument("--candidates", type=int, default=1_000)
    parser.add_argument("--people", type=int, default=1_000)
    args = parser.parse_args()
    auctions = args.auctions or (5_000 if args.quick else 100_000)
    rounds = args.rounds or (3 if args.quick else 7)

    targeted = build(args.candidates, args.people, auctions, targeted=True, seed=11)
    typical = measure(targeted, rounds)
    typical_runs = measure(targeted, rounds, RUN)
    open_world = build(args.candidates, args.people, auctions, targeted=False, seed=12)
    everyone = measure(open_world, rounds)
    everyone_runs = measure(open_world, rounds, RUN)
    identical = same_either_way(targeted, RUN) and same_either_way(open_world, RUN)

    table = Table(title=f"{args.candidates:,} candidates, {auctions:,} requests a round, one core")
    for column in ("configuration", "eligible (median)", "auctions/s", "bare top-k/s", "ratio"):
        table.add_column(column, justify="right" if column != "configuration" else "left")
    rows = (
        ("targeted (typical)", typical),
        (f"targeted, {RUN} at a time", typical_runs),
        ("every candidate eligible", everyone),
        (f"every candidate eligible, {RUN} at a time", everyone_runs),
    )
    for name, found in rows:
        table.add_row(
            name,
            f"{found['eligible_median']:,.0f}",
            f"{found['auctions_per_second']:,.0f}",
            f"{found['bare_per_second']:,.0f}",
            f"{found['ratio']:.2f}",
        )
    console.print(table)
    console.print(
        f"goal: at least 20,000 auctions/s and 0.5 of the bare top-k; "
        f"{typical['auctions_per_second']:,.0f}/s at {typical['ratio']:.2f} one by one, "
        f"{typical_runs['auctions_per_second']:,.0f}/s at {typical_runs['ratio']:.2f} "
        f"{RUN} at a time (the same placements and charges either way: {identical})"
    )
    print(
        json.dumps(
            {
                "benchmark": "auction",
                "candidates": args.candidates,
                "auctions": auctions,
                "rounds": rounds,
                "auctions_per_second": round(typical["auctions_per_second"]),
                "bare_topk_per_second": round(typical["bare_per_second"]),
                "auction_vs_bare_topk_ratio": round(typical["ratio"], 3),
                "eligible_median": typical["eligible_median"],
                "ads_placed": typical["ads_placed"],
                "all_eligible_auctions_per_second": round(everyone["auctions_per_second"]),
                "all_eligible_vs_bare_topk_ratio": round(everyone["ratio"], 3),
                "run": RUN,
                "runs_auctions_per_second": round(typical_runs["auctions_per_second"]),
                "runs_vs_bare_topk_ratio": round(typical_runs["ratio"], 3),
                "all_eligible_runs_auctions_per_second": round(
                    everyone_runs["auctions_per_second"]
                ),
                "all_eligible_runs_vs_bare_topk_ratio": round(everyone_runs["ratio"], 3),
                "runs_identical_to_one_by_one": identical,
            }
        )
    )


if __name__ == "__main__":
    main()
