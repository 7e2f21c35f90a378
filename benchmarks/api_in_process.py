"""The partner API's CPU per single-person read, in process, beside a bare endpoint's.

The whole ASGI app one ``accord serve`` worker serves (``accord.api.cli:worker_app``: its
middleware, routing, token check, validation, the exchange through the door, the ledger's
durable appends, the answer) is called directly with a scope, a ``receive`` and a ``send``, as a
server would call it but without sockets or HTTP parsing, for reads of one member's linked
account (clause ``account-link``). Many requests run at once on one event loop (16 by default,
as ``benchmarks/api.py`` opens 16 connections), so the exchange threads and the ledger's group
commit work as they do under load. The CPU time of the process (every thread) is divided by the
requests answered.

Beside it, the same driver calls:

- the bare FastAPI endpoint of ``benchmarks/api.py`` (``bare_app``) reading the same row;
- the API with the door replaced by one that answers a release recorded beforehand: what the API
  costs around :meth:`accord.gateway.Gateway.exchange` (middleware, routing, token, validation,
  thread hand-over, serialisation);
- an ASGI app that answers at once: the driver's own cost, in every figure above.

Each is run several times, alternately, and the medians are shown. ``--profile`` then profiles
the API's requests (cProfile on a CPU clock, the event loop's thread and the exchange threads)
and prints the functions by their own time, and the calls per request.

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
from base64 import b64encode
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
HERE = Path(__file__).resolve().parent
CONCURRENCY = 16

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


# -- the driver ------------------------------------------------------------------------------------


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """A scope as uvicorn builds it for a request on a keep-alive connection."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
    }


async def call(app: App, scope: dict[str, Any], body: bytes, state: dict[str, Any]) -> Any:
    """One request: its status and body."""
    scope = {**scope, "state": state.copy()}
    sent = False
    answer: dict[str, Any] = {"status": 0, "body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        # As a server: the client stays connected until the answer is sent.
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer["status"], answer["body"]


class Lifespan:
    """An app's ASGI lifespan, started and ended as a server does."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._done: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _send(self, message: dict[str, Any]) -> None:
        await self._done.put(message["type"])

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        self._task = asyncio.ensure_future(self.app(scope, self._inbox.get, self._send))
        await self._inbox.put({"type": "lifespan.startup"})
        done = await self._done.get()
        if done != "lifespan.startup.complete":
            raise RuntimeError(f"the app did not start: {done}")

    async def end(self) -> None:
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._done.get()
        if self._task is not None:
            await self._task


Request = tuple[dict[str, Any], bytes]


async def drive(
    app: App, requests: list[Request], count: int, concurrency: int, state: dict[str, Any]
) -> float:
    """CPU seconds (the process's, every thread's) per request, for ``count`` requests with
    ``concurrency`` under way at once; every answer must be 200."""
    turn = iter(range(count))

    async def client() -> None:
        for n in turn:
            scope, body = requests[n % len(requests)]
            status, answer = await call(app, scope, body, state)
            if status != 200:
                raise RuntimeError(f"answered {status}: {answer[:300]!r}")

    started = time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return (time.process_time() - started) / count


async def null_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app that reads the body and answers at once: the driver's own cost."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


# -- the sides -------------------------------------------------------------------------------------


class RecordedDoor:
    """The door replaced by one answering a release recorded beforehand, for every exchange."""

    def __init__(self, door: Any) -> None:
        self.accord = door.accord
        self.release: Any = None
        self._door = door

    def exchange(self, exchange: Any) -> Any:
        if self.release is None:
            self.release = self._door.exchange(exchange)
        return self.release


def api_requests(prepared: dict[str, Any], token: str, body_of: Any) -> list[Request]:
    from api import EXCHANGE_PATH

    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {token}".encode()),
    ]
    out = []
    for member in prepared["members"]:
        body = json.dumps(body_of(member)).encode()
        scope = http_scope(
            "POST", EXCHANGE_PATH, [*headers, (b"content-length", str(len(body)).encode())]
        )
        out.append((scope, body))
    return out


def bare_requests(api: list[Request]) -> list[Request]:
    return [
        (http_scope("POST", "/bare", [h for h in scope["headers"] if h[0] != b"authorization"]), b)
        for scope, b in api
    ]


async def client_token(app: App, prepared: dict[str, Any], state: dict[str, Any]) -> str:
    """A client-credentials token of the prepared partner app, from the app itself."""
    basic = b64encode(f"{prepared['client_id']}:{prepared['secret']}".encode())
    body = b"grant_type=client_credentials"
    scope = http_scope(
        "POST",
        "/oauth/token",
        [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", b"Basic " + basic),
        ],
    )
    status, answer = await call(app, scope, body, state)
    if status != 200:
        raise RuntimeError(f"no token: {status} {answer!r}")
    token: str = json.loads(answer)["access_token"]
    return token


def profiled(svc: Any, threads: int) -> tuple[list[cProfile.Profile], Any]:
    """Fresh exchange threads for ``svc``, each profiled (cProfile on the thread's own CPU
    clock: the process's would charge a thread waiting for work with the others' CPU)."""
    profiles: list[cProfile.Profile] = []

    def start() -> None:
        profile = cProfile.Profile(time.thread_time)
        profiles.append(profile)
        profile.enable()

    from accord.api.handoff import ExchangeThreads

    pool = ExchangeThreads(threads, "accord-exchange", initializer=start)
    svc.threads = pool
    return profiles, pool


async def profile(
    args: argparse.Namespace, api: Any, requests: list[Request], state: dict[str, Any]
) -> tuple[str, float]:
    """The API's requests profiled: the profile's text, and Python calls per request."""
    from accord.api.routes import EXCHANGE_THREADS

    count = args.requests
    svc = api.state.services
    served = svc.threads
    threads, pool = profiled(svc, EXCHANGE_THREADS)
    main = cProfile.Profile(time.thread_time)
    main.enable()
    await drive(api, requests, count, args.concurrency, state)
    main.disable()
    pool.shutdown(wait=True)
    svc.threads = served
    stats = pstats.Stats(main)
    for each in threads:
        stats.add(each)
    calls = sum(v[1] for v in stats.stats.values()) / count  # type: ignore[attr-defined]
    if args.profile_out is not None:
        stats.dump_stats(args.profile_out)
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(args.top)
    return out.getvalue(), calls


async def measure(args: argparse.Namespace, prepared: dict[str, Any]) -> dict[str, Any]:
    from accord.api.cli import worker_app
    from api import bare_app, exchange_body

    # The access log written as a worker writes it, to a stream nobody reads.
    access = logging.getLogger("accord.api")
    sink = Path(os.devnull).open("w")  # noqa: SIM115 - open for the whole run
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.setLevel(logging.INFO)

    api, bare = worker_app(), bare_app()
    lives = {"api": Lifespan(api), "bare": Lifespan(bare), "null": Lifespan(null_app)}
    for life in lives.values():
        await life.start()
    token = await client_token(api, prepared, lives["api"].state)
    requests = api_requests(prepared, token, exchange_body)
    sides: dict[str, tuple[App, list[Request], dict[str, Any]]] = {
        "api": (api, requests, lives["api"].state),
        "bare": (bare, bare_requests(requests), lives["bare"].state),
        "null": (null_app, requests, lives["null"].state),
    }
    # Both answer the same member with the same rows.
    first = [await call(app, reqs[0][0], reqs[0][1], st) for app, reqs, st in sides.values()]
    api_rows, bare_rows = (json.loads(body)["rows"] for _, body in first[:2])
    if not api_rows or api_rows != bare_rows:
        raise RuntimeError(f"the sides disagree: {api_rows} and {bare_rows}")

    svc = api.state.services  # type: ignore[attr-defined]
    door = svc.gateway
    recorded = RecordedDoor(door)
    count, concurrency = args.requests, args.concurrency
    for app, reqs, st in sides.values():  # warm up
        await drive(app, reqs, min(count, 500), concurrency, st)
    cpu: dict[str, list[float]] = {"api": [], "api_outside_door": [], "bare": [], "null": []}
    for _ in range(args.rounds):
        for name, runs in cpu.items():
            app, reqs, st = sides["api" if name == "api_outside_door" else name]
            svc.gateway = recorded if name == "api_outside_door" else door
            runs.append(await drive(app, reqs, count, concurrency, st))
    svc.gateway = door

    profile_text, calls = "", 0.0
    if args.profile:
        svc.gateway = recorded if args.profile == "outside-door" else door
        profile_text, calls = await profile(args, api, requests, lives["api"].state)
        svc.gateway = door

    for life in lives.values():
        await life.end()
    access.removeHandler(handler)
    sink.close()
    median = {name: statistics.median(runs) for name, runs in cpu.items()}
    figures: dict[str, Any] = {
        "requests": count,
        "rounds": args.rounds,
        "concurrency": concurrency,
        **{f"{name}_cpu_ms": round(1000 * m, 4) for name, m in median.items()},
        **{f"{name}_cpu_ms_runs": [round(1000 * r, 4) for r in cpu[name]] for name in cpu},
        "bare_vs_api_cpu_ratio": round(median["bare"] / median["api"], 3),
        "bare_vs_api_outside_door_cpu_ratio": round(median["bare"] / median["api_outside_door"], 3),
    }
    if args.profile:
        figures["profile"] = args.profile
        figures["profiled_calls_per_request"] = round(calls, 1)
        console.print(profile_text, markup=False, highlight=False)
    return figures


def show(figures: dict[str, Any]) -> None:
    table = Table(
        title=f"CPU per single-person read, whole ASGI app in process, "
        f"{figures['concurrency']} at once (medians of {figures['rounds']} alternated runs)"
    )
    table.add_column("app")
    table.add_column("CPU ms a request", justify="right")
    table.add_row("partner API (worker_app)", f"{figures['api_cpu_ms']}")
    table.add_row("partner API, door recorded", f"{figures['api_outside_door_cpu_ms']}")
    table.add_row("bare FastAPI endpoint", f"{figures['bare_cpu_ms']}")
    table.add_row("the driver alone", f"{figures['null_cpu_ms']}")
    table.add_row("bare / API", f"{figures['bare_vs_api_cpu_ratio']}")
    table.add_row("bare / API outside the door", str(figures["bare_vs_api_outside_door_cpu_ratio"]))
    if "profiled_calls_per_request" in figures:
        table.add_row(
            "Python calls a request (profiled)", str(figures["profiled_calls_per_request"])
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A small population, few requests.")
    parser.add_argument("--requests", type=int, default=None, help="Requests per run.")
    parser.add_argument("--rounds", type=int, default=None, help="Alternated runs of each app.")
    parser.add_argument("--people", type=int, default=None, help="People in the population.")
    parser.add_argument(
        "--concurrency", type=int, default=CONCURRENCY, help="Requests under way at once."
    )
    parser.add_argument(
        "--profile",
        choices=("api", "outside-door"),
        default=None,
        help="Then profile the API's requests (with the door, or with it recorded).",
    )
    parser.add_argument("--top", type=int, default=40, help="Functions the profile shows.")
    parser.add_argument(
        "--profile-out", type=Path, default=None, help="Also write the profile (pstats) here."
    )
    args = parser.parse_args()
    args.requests = args.requests or (300 if args.quick else 3000)
    args.rounds = args.rounds or (1 if args.quick else 5)
    people = args.people or (300 if args.quick else 2000)
    sys.path.insert(0, str(HERE))
    from api import prepare

    with tempfile.TemporaryDirectory() as tmp:
        console.print(f"preparing the scenario and the store: {people:,} people")
        prepared = prepare(Path(tmp), people, None)
        os.environ.update(
            {
                "ACCORD_API_SERVE": json.dumps(prepared["layout"]),
                "ACCORD_API_SECRET": secrets.token_urlsafe(32),
                "ACCORD_API_RATE_LIMIT": "100000000/minute",
                "BENCH_REELIX_URL": prepared["reelix_url"],
            }
        )
        figures = asyncio.run(measure(args, prepared))
    show(figures)
    print(json.dumps({"benchmark": "api_in_process", **figures}))


if __name__ == "__main__":
    main()
