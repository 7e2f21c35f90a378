"""Ad requests over HTTP under load, side by side with a bare endpoint on the same HTTP stack.

Two uvicorn workers serve the API as ``accord serve`` runs it (``accord.api.cli:worker_app``,
httptools with Nagle's algorithm off) and answer ``POST /v1/ads/request`` for Chirp's own ad
service: the app's token checked, the person's signals read from the store (place, profile,
audiences, opt-outs), the auction run among the platform's campaigns (targeting, schedules,
budgets, frequency caps, pacing, second price), and the impressions and charges written, durably,
before the answer. The baseline is a bare async FastAPI endpoint, also two uvicorn workers on the
same HTTP stack, that reads the same POST and answers a fixed JSON document of the same size as
an ad answer (one taken from the API during the warm-up).

The load comes from wrk (Debian's package; installed by ``scripts/ensure-wrk.sh`` when missing):
16 connections (``--connections``), one thread, a Lua script that posts a request for a different
person each time and prints wrk's own summary as JSON. Each side is loaded for the same time
(10 s, 2 s with ``--quick``), after a warm-up. The CPU time of wrk and of each server (its
processes, from ``/proc``) is measured too, to show which side limited the rate: the bare
endpoint must saturate the server, not the client; and each worker's, to show that the
connections spread over the workers (both servers run each worker on a listening socket of its
own, as ``accord serve`` does: see ``accord.api.serving``). Goals: at least 0.6 of the bare
endpoint's requests/s, p99 at most 30 ms.

Prints a table and ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from fastapi import Request, Response
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONNECTIONS = 16
INTERESTS = tuple(f"interest-{k:02d}" for k in range(24))
PLACES = ("US", "US-CA", "US-TX", "US-NY", "DE", "FR", "GB", "CA", "BR", "MX", "EU", "LATAM")

# -- the bare baseline, served by uvicorn from this module -----------------------------------------


def bare_app() -> Any:
    """A bare async FastAPI endpoint: reads the POST, answers a fixed JSON document."""
    from fastapi import FastAPI

    answer = os.environ["BENCH_BARE_ANSWER"].encode()
    app = FastAPI()

    @app.post("/bare")
    async def bare(request: Request) -> Response:
        await request.body()
        return Response(answer, media_type="application/json")

    return app


# -- wrk -------------------------------------------------------------------------------------------


def lua_script(folder: Path, name: str, path: str, token: str, people: list[str]) -> Path:
    """A wrk script posting an ad request for each of ``people`` in turn (``api.py``'s, which
    prints wrk's summary as JSON)."""
    from api import LUA

    bodies = ",\n".join(
        json.dumps(json.dumps({"person": p, "party": "chirp", "slots": 2})) for p in people
    )
    script = folder / f"{name}.lua"
    script.write_text(LUA % {"bodies": bodies, "token": token, "path": path})
    return script


def workers_cpu(pid: int) -> dict[int, float]:
    """CPU seconds used so far by each worker process (child) of the server ``pid``, with its
    own descendants (Linux ``/proc``; none elsewhere)."""
    from api import cpu_seconds

    children: list[int] = []
    try:
        for task in (Path("/proc") / str(pid) / "task").iterdir():
            children += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        return {}
    # uvicorn's workers, not multiprocessing's resource tracker (also a child).
    return {
        child: cpu_seconds(child)
        for child in children
        if b"resource_tracker" not in _cmdline(child)
    }


def _cmdline(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def load(
    wrk: str, url: str, script: Path, seconds: float, server_pid: int, *, connections: int
) -> dict[str, Any]:
    """wrk's summary of ``seconds`` of load on ``url``, with its CPU time, the server's
    (``api.py``'s load), and each of the server's workers' (to show whether the load spread
    over them)."""
    from api import load as loaded

    before = workers_cpu(server_pid)
    found = loaded(wrk, url, script, seconds, server_pid, connections=connections)
    after = workers_cpu(server_pid)
    found["workers_cpu_s"] = sorted(
        (after[w] - before[w] for w in after if w in before),
        reverse=True,
    )
    return found


# -- the store -------------------------------------------------------------------------------------


def prepare(folder: Path, people: int, campaigns: int, seed: int = 7) -> dict[str, Any]:
    """A store with Chirp's people and ad profiles, advertisers, audiences (some of Reelix's
    data), ``campaigns`` campaigns targeted as in benchmarks/auction.py, and Chirp's own app."""
    from sqlalchemy import select

    from accord import agreements as ag
    from accord.ads.model import (
        AGE_BANDS,
        Advertiser,
        Audience,
        Bid,
        BidStrategy,
        Campaign,
        Creative,
        Schedule,
        Targeting,
    )
    from accord.ads.store import AdsStore
    from accord.api import PartnerApps
    from accord.api.cli import plan
    from accord.scenario.population import CHIRP, REELIX, generate
    from accord.service import Accord
    from accord.store import tables as t

    rng = random.Random(seed)
    at = datetime.now(UTC).replace(microsecond=0)
    population = generate(people, seed=5, at=at)
    examples = resources.files("accord") / "examples"
    with Accord.open(None, folder / "accord") as accord:
        accord.register((examples / "chirp-reelix.yaml").read_text(), source="x", by="legal")
        accord.review("chirp-reelix", reviewer="Dana", findings="none", approved=True)
        accord.move("chirp-reelix", ag.Status.ACTIVE, by="dpo")
        accord.import_records(population.people, population.consents, population.opt_outs)
        chirp, secret = PartnerApps(accord).register(
            "Chirp ads", party=CHIRP, agreement="chirp-reelix"
        )
        with accord.engine.connect() as c:
            ids = list(
                c.execute(
                    select(t.people.c.person_id)
                    .where(t.people.c.party == CHIRP)
                    .order_by(t.people.c.person_id)
                ).scalars()
            )
        store = AdsStore(accord.engine, CHIRP)
        store.set_profiles(
            (p, rng.choice(AGE_BANDS[1:]), frozenset(rng.sample(INTERESTS, 4))) for p in ids
        )
        advertisers = [f"advertiser-{k:02d}" for k in range(20)]
        for name in advertisers:
            store.add_advertiser(Advertiser(name, name.title(), CHIRP))
        store.add_advertiser(Advertiser("reelix", "Reelix", CHIRP, party=REELIX))
        audiences = []
        for k in range(12):
            provider = REELIX if k % 3 == 0 else None
            owner = "reelix" if provider else advertisers[k]
            members = rng.sample(ids, len(ids) // 6)
            store.add_audience(
                Audience(f"audience-{k:02d}", owner, f"Audience {k}", provider=provider),
                [(p, ("r" + p[1:]) if provider else None) for p in members],
            )
            audiences.append((f"audience-{k:02d}", owner))
        start = at - timedelta(days=3)
        for i in range(campaigns):
            cpc = rng.random() < 0.7
            bid = (
                Bid(BidStrategy.CPC, rng.randrange(50_000, 2_000_000))
                if cpc
                else Bid(BidStrategy.CPM, rng.randrange(1_000, 30_000) * 1_000)
            )
            named: frozenset[str] = frozenset()
            advertiser = advertisers[i % len(advertisers)]
            if rng.random() < 0.1:
                audience, advertiser = rng.choice(audiences)
                named = frozenset({audience})
            store.add_campaign(
                Campaign(
                    id=0,
                    advertiser=advertiser,
                    name=f"campaign {i}",
                    daily_budget=10_000_000_000,
                    schedule=Schedule(start),
                    bid=bid,
                    creatives=(
                        Creative(
                            f"ad-{i}",
                            f"Headline of campaign {i}",
                            "A line of body text for the ad.",
                            f"https://example.com/campaign/{i}",
                        ),
                    ),
                    targeting=Targeting(
                        regions=tuple(rng.sample(PLACES, rng.randint(1, 2)))
                        if rng.random() < 0.6
                        else (),
                        age_bands=frozenset(rng.sample(AGE_BANDS[1:], rng.randint(2, 4)))
                        if rng.random() < 0.5
                        else frozenset(),
                        interests=frozenset(rng.sample(INTERESTS, rng.randint(1, 3)))
                        if rng.random() < 0.4
                        else frozenset(),
                        audiences=named,
                    ),
                    frequency_cap=3,
                )
            )
    layout = plan([], [], None, folder / "accord", None)
    return {"layout": layout, "client_id": chirp.client_id, "secret": secret, "people": ids}


# -- the run ---------------------------------------------------------------------------------------


def show(figures: dict[str, Any]) -> None:
    ads, bare = figures["ads"], figures["bare"]
    table = Table(
        title=f"POST /v1/ads/request, {figures['workers']} uvicorn workers (httptools), wrk "
        f"{figures['connections']} connections, {figures['seconds']:g} s a side, "
        f"{figures['campaigns']:,} campaigns"
    )
    table.add_column("measure")
    table.add_column("ads endpoint", justify="right")
    table.add_column("bare endpoint", justify="right")
    table.add_column("ads / bare", justify="right")
    table.add_row(
        "requests/s",
        f"{ads['requests_per_s']:,}",
        f"{bare['requests_per_s']:,}",
        f"{figures['ads_vs_bare_ratio']} (goal ≥ 0.6)",
    )
    table.add_row("p50 latency, ms", f"{ads['p50_ms']}", f"{bare['p50_ms']}", "")
    table.add_row("p99 latency, ms (goal ≤ 30)", f"{ads['p99_ms']}", f"{bare['p99_ms']}", "")
    table.add_row("errors", f"{ads['errors']}", f"{bare['errors']}", "")
    table.add_row("server CPU, cores", f"{ads['server_cores']}", f"{bare['server_cores']}", "")
    table.add_row(
        "each worker's CPU, cores",
        *(" / ".join(f"{c}" for c in s["worker_cores"]) for s in (ads, bare)),
        "",
    )
    table.add_row("wrk CPU, cores (1 thread)", f"{ads['wrk_cores']}", f"{bare['wrk_cores']}", "")
    table.add_row(
        "server CPU ms per request",
        f"{ads['server_cpu_ms_per_request']}",
        f"{bare['server_cpu_ms_per_request']}",
        "",
    )
    table.add_row(
        "rate set by",
        *("the server" if s["server_bound"] else "the client" for s in (ads, bare)),
        "",
    )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A small store and 2 s of load.")
    parser.add_argument("--seconds", type=float, default=None, help="Seconds of load per side.")
    parser.add_argument("--people", type=int, default=None, help="People at each party.")
    parser.add_argument("--campaigns", type=int, default=None, help="Campaigns in the market.")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers per server.")
    parser.add_argument(
        "--connections",
        type=int,
        default=CONNECTIONS,
        help="wrk's connections (requests in flight) on each side.",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="Sample the ads endpoint's workers with py-spy during its load; collapsed stacks "
        "to this file.",
    )
    args = parser.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    people = args.people or (300 if args.quick else 2_000)
    campaigns = args.campaigns or (200 if args.quick else 1_000)
    sys.path.insert(0, str(HERE))
    from api import ensure_wrk, profiler, side, uvicorn_workers, warm_up

    wrk = ensure_wrk()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        console.print(f"preparing a store: {people:,} people, {campaigns:,} campaigns")
        prepared = prepare(folder, people, campaigns)
        env = {
            "ACCORD_API_SERVE": json.dumps(prepared["layout"]),
            "ACCORD_API_SECRET": secrets.token_urlsafe(32),
            "ACCORD_API_RATE_LIMIT": "100000000/minute",
        }
        with uvicorn_workers("accord.api.cli:worker_app", env, args.workers) as api_server:
            token = httpx.post(
                f"{api_server.url}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(prepared["client_id"], prepared["secret"]),
            ).json()["access_token"]
            # One answer of the API, as the bare endpoint's fixed answer (the same size).
            answer = httpx.post(
                f"{api_server.url}/v1/ads/request",
                json={"person": prepared["people"][0], "party": "chirp", "slots": 2},
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            if answer.status_code != 200 or len(answer.json()["ads"]) != 2:
                raise RuntimeError(f"the ads endpoint answered {answer.status_code}: {answer.text}")
            bare_env = {"BENCH_BARE_ANSWER": answer.text}
            shuffled = random.Random(3).sample(prepared["people"], len(prepared["people"]))
            scripts = {
                "ads": lua_script(folder, "ads", "/v1/ads/request", token, shuffled),
                "bare": lua_script(folder, "bare", "/bare", token, shuffled),
            }
            with uvicorn_workers("ads_api:bare_app", bare_env, args.workers, HERE) as bare_server:
                servers = {"ads": api_server, "bare": bare_server}
                paths = {"ads": "/v1/ads/request", "bare": "/bare"}
                found = {}
                warm_up(wrk, servers, paths, scripts, seconds, connections=args.connections)
                for name, server in servers.items():
                    console.print(f"loading the {name} endpoint for {seconds:g} s")
                    url = server.url + paths[name]
                    sampler = profiler(server.pid, seconds, args.profile) if name == "ads" else None
                    found[name] = load(
                        wrk, url, scripts[name], seconds, server.pid, connections=args.connections
                    )
                    if sampler is not None:
                        sampler.wait()
    cores = os.cpu_count() or 1
    ads, bare = side(found["ads"]), side(found["bare"])
    for name, figures_of in (("ads", ads), ("bare", bare)):
        # Each worker's cores, busiest first: near equal when the connections spread over them.
        spent = found[name]["duration_us"] / 1e6
        figures_of["worker_cores"] = [round(s / spent, 2) for s in found[name]["workers_cpu_s"]]
    ratio = ads["requests_per_s"] / max(1, bare["requests_per_s"])
    figures = {
        "people": people,
        "campaigns": campaigns,
        "workers": args.workers,
        "connections": args.connections,
        "seconds": seconds,
        "cores": cores,
        "ads": ads,
        "bare": bare,
        "ads_vs_bare_ratio": round(ratio, 3),
        "goal_ratio_met": ratio >= 0.6,
        "goal_p99_met": ads["p99_ms"] <= 30,
    }
    show(figures)
    flat = {
        "benchmark": "ads_api",
        **{k: v for k, v in figures.items() if k not in ("ads", "bare")},
        **{f"ads_{k}": v for k, v in ads.items()},
        **{f"bare_{k}": v for k, v in bare.items()},
    }
    print(json.dumps(flat))


if __name__ == "__main__":
    main()
