"""Where an ad request's CPU goes, in process, beside a bare endpoint called the same way.

``POST /v1/ads/request`` is served by the app ``accord serve`` builds for a worker
(``accord.api.cli:worker_app``), called as an ASGI application on one event loop without
sockets: many requests at once (``--concurrency``, as connections keep requests in flight under
load), so that the requests waiting while a group is served form the next group, as they do
under load. Each request is for another of Chirp's people: the token checked, the person's
signals read from the store, the auction run among the campaigns of ``benchmarks/ads_api.py``'s
store, the impressions and charges written durably. The baseline is a bare async FastAPI
endpoint that reads the POST and answers a fixed document of the same size, called the same
way. The server's own part (:meth:`accord.ads.serving.AdServer.serve_many`, groups of the same
size, no ASGI) is timed too.

CPU is the process's (every thread's: the groups are served in a worker thread), by
``time.process_time``; the sides are run in turn several times and the medians reported. Then a
cProfile of the endpoint on a CPU clock (the groups served in the event loop's thread, so that
one profiler sees them), sorted by own time.

Prints a table and ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import logging
import os
import pstats
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
HERE = Path(__file__).resolve().parent
PATH = "/v1/ads/request"

Asgi = Callable[..., Any]


class Inline(ThreadPoolExecutor):
    """An executor that runs each call at once in the caller's thread (for one profiler)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        done: Future[Any] = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting caller
            done.set_exception(exc)
        return done


async def call(
    app: Asgi, path: str, body: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[int, bytes]:
    """One POST to ``app`` as a server would make it: its status and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    finished = asyncio.Event()
    status = 0
    parts: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    await app(scope, receive, send)
    return status, b"".join(parts)


async def load(
    app: Asgi,
    path: str,
    bodies: list[bytes],
    headers: list[tuple[bytes, bytes]],
    *,
    count: int,
    concurrency: int,
    start: int = 0,
) -> float:
    """CPU seconds per request of ``count`` requests, ``concurrency`` in flight at a time."""
    queue = iter(range(start, start + count))
    failed: list[tuple[int, bytes]] = []

    async def connection() -> None:
        for n in queue:
            status, answer = await call(app, path, bodies[n % len(bodies)], headers)
            if status != 200:
                failed.append((status, answer))

    began = time.process_time()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    spent = time.process_time() - began
    if failed:
        raise RuntimeError(f"{len(failed)} requests failed, the first: {failed[0]!r}")
    return spent / count


def bare_app(answer: bytes) -> Asgi:
    """A bare async FastAPI endpoint: reads the POST, answers a fixed JSON document."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/bare")
    async def bare(request: Request) -> Response:
        await request.body()
        return Response(answer, media_type="application/json")

    return app


async def token_of(app: Asgi, prepared: dict[str, Any]) -> str:
    import base64

    basic = base64.b64encode(f"{prepared['client_id']}:{prepared['secret']}".encode())
    status, body = await call(
        app,
        "/oauth/token",
        b"grant_type=client_credentials",
        [
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"authorization", b"Basic " + basic),
        ],
    )
    if status != 200:
        raise RuntimeError(f"no token: {status} {body!r}")
    return str(json.loads(body)["access_token"])


async def measure(
    prepared: dict[str, Any],
    count: int,
    concurrency: int,
    rounds: int,
    top: int,
    *,
    loop_only: bool = False,
) -> dict[str, Any]:
    from accord.api.ads import AdServers
    from accord.api.cli import worker_app

    app = worker_app()
    logging.getLogger("accord.api").setLevel(logging.WARNING)
    people: list[str] = prepared["people"]
    bodies = [json.dumps({"person": p, "party": "chirp", "slots": 2}).encode() for p in people]
    async with app.router.lifespan_context(app):
        token = await token_of(app, prepared)
        headers = [
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
        ]
        status, answer = await call(app, PATH, bodies[0], headers)
        if status != 200 or len(json.loads(answer)["ads"]) != 2:
            raise RuntimeError(f"the ads endpoint answered {status}: {answer!r}")
        bare = bare_app(answer)
        servers: AdServers = app.state.ads
        server = servers.get("chirp")
        loop = asyncio.get_running_loop()

        def direct(n: int) -> float:
            began, width = time.process_time(), concurrency
            for k in range(n, n + count, width):
                asks = [(people[j % len(people)], 2, None, False) for j in range(k, k + width)]
                refused = [f for f in server.serve_many(asks) if isinstance(f, Exception)]
                if refused:
                    raise RuntimeError(f"the server refused a request: {refused[0]}")
            return (time.process_time() - began) / (count // concurrency * concurrency)

        # Warm up both sides (the market, the masks of each kind of person, the caches).
        sizes = {"count": count, "concurrency": concurrency}
        await load(app, PATH, bodies, headers, **sizes)
        await load(bare, "/bare", bodies, headers, **sizes)
        endpoint, baseline, served = [], [], []
        offset = count
        for _ in range(rounds):
            endpoint.append(await load(app, PATH, bodies, headers, **sizes, start=offset))
            baseline.append(await load(bare, "/bare", bodies, headers, **sizes, start=offset))
            served.append(await loop.run_in_executor(None, direct, offset))
            offset += count

        # The profile: every group served in this thread, so that one profiler sees it all
        # (or, with loop_only, the event loop's part alone, the groups served in their threads).
        if not loop_only:
            loop.set_default_executor(Inline())
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        await load(app, PATH, bodies, headers, **sizes, start=offset)
        profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    calls = sum(v[1] for v in stats.stats.values()) / count  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    ads_ms, bare_ms, served_ms = (1000 * statistics.median(x) for x in (endpoint, baseline, served))
    return {
        "requests": count,
        "concurrency": concurrency,
        "rounds": rounds,
        "ads_cpu_ms": round(ads_ms, 4),
        "bare_cpu_ms": round(bare_ms, 4),
        "serve_many_cpu_ms": round(served_ms, 4),
        "ads_runs_cpu_ms": [round(1000 * x, 4) for x in endpoint],
        "bare_runs_cpu_ms": [round(1000 * x, 4) for x in baseline],
        "serve_many_runs_cpu_ms": [round(1000 * x, 4) for x in served],
        "bare_vs_ads_cpu_ratio": round(bare_ms / ads_ms, 4),
        "serve_many_vs_ads_cpu_ratio": round(served_ms / ads_ms, 4),
        "function_calls_per_request": round(calls, 1),
        "profile": out.getvalue(),
    }


def show(figures: dict[str, Any]) -> None:
    table = Table(
        title=f"POST {PATH} in process (ASGI, no sockets), {figures['concurrency']} in flight, "
        f"{figures['requests']:,} requests a run, medians of {figures['rounds']} runs"
    )
    table.add_column("measure")
    table.add_column("CPU ms per request", justify="right")
    table.add_row("the ad endpoint", f"{figures['ads_cpu_ms']}")
    table.add_row("  of which AdServer.serve_many", f"{figures['serve_many_cpu_ms']}")
    table.add_row("a bare endpoint", f"{figures['bare_cpu_ms']}")
    table.add_row("bare / ads", f"{figures['bare_vs_ads_cpu_ratio']}")
    table.add_row("serve_many / ads", f"{figures['serve_many_vs_ads_cpu_ratio']}")
    table.add_row("Python calls per ad request", f"{figures['function_calls_per_request']}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A small store, few requests.")
    parser.add_argument("--requests", type=int, default=None, help="Requests a run.")
    parser.add_argument("--people", type=int, default=None, help="People at each party.")
    parser.add_argument("--campaigns", type=int, default=None, help="Campaigns in the market.")
    parser.add_argument("--concurrency", type=int, default=8, help="Requests in flight.")
    parser.add_argument("--rounds", type=int, default=None, help="Runs of each side, in turn.")
    parser.add_argument("--top", type=int, default=30, help="Functions of the profile shown.")
    parser.add_argument("--no-profile", action="store_true", help="Do not print the profile.")
    parser.add_argument(
        "--loop-only",
        action="store_true",
        help="Profile the event loop's thread alone (the groups served in worker threads).",
    )
    args = parser.parse_args()
    count = args.requests or (400 if args.quick else 4_000)
    people = args.people or (300 if args.quick else 2_000)
    campaigns = args.campaigns or (200 if args.quick else 1_000)
    rounds = args.rounds or (2 if args.quick else 5)
    sys.path.insert(0, str(HERE))
    from ads_api import prepare

    with tempfile.TemporaryDirectory() as tmp:
        console.print(f"preparing a store: {people:,} people, {campaigns:,} campaigns")
        prepared = prepare(Path(tmp), people, campaigns)
        os.environ.update(
            {
                "ACCORD_API_SERVE": json.dumps(prepared["layout"]),
                "ACCORD_API_SECRET": secrets.token_urlsafe(32),
                "ACCORD_API_RATE_LIMIT": "100000000/minute",
            }
        )
        figures = asyncio.run(
            measure(prepared, count, args.concurrency, rounds, args.top, loop_only=args.loop_only)
        )
    profile = figures.pop("profile")
    if not args.no_profile:
        print(profile, file=sys.stderr)
    show(figures)
    print(json.dumps({"benchmark": "ads_steps", **figures}))


if __name__ == "__main__":
    main()
