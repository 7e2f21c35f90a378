"""Single-person reads over HTTP through the partner API, side by side with a bare endpoint.

Two uvicorn workers on loopback serve the partner API as ``accord serve`` runs it
(``accord.api.cli:worker_app``, httptools with Nagle's algorithm off) and answer reads of one
member's linked account (clause ``account-link``): each is authenticated by its bearer token,
decided against the agreement, the law and the member, read from Reelix's database, and logged
to the ledger (decision and release) durably before it is answered. The baseline is a bare async
FastAPI endpoint, also two uvicorn workers on the same HTTP stack, reading the same row from the
same database with no token, no decision and no ledger. A third side, the floor, is the bare
endpoint that also appends the exchange's two ledger entries durably through Accord's ledger
before it answers (as the API's workers do: group commits on one shared store): the most any
design that logs each exchange with this ledger can reach, so the distance between the API and
the floor is what the token check, the decision and the read cost, and the distance between
the floor and the bare endpoint is the ledger's.

The load comes from wrk (Debian's package; installed by ``scripts/ensure-wrk.sh`` when missing),
a compiled load generator, so the client is not what sets the rate: 16 connections, one thread,
a Lua script that asks for a different member each time and prints wrk's summary as JSON. Both
servers run at once and each side is loaded for the same time (10 s a side, 2 s with
``--quick``), after a warm-up. The CPU time of wrk and of each server (its processes, read from
``/proc``) is measured too, to show which side set the rate: the bare endpoint must saturate the
server, not wrk. Goals: at least 0.5 of the bare endpoint's requests/s, at least 2,000
requests/s with p99 at most 25 ms on a quiet machine.

Prints a table and ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
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
THREADS = 1
EXCHANGE_PATH = "/v1/agreements/chirp-reelix/clauses/account-link/exchanges"


# -- the bare baseline, served by uvicorn from this module -----------------------------------------


def bare_app() -> Any:
    """A bare async FastAPI endpoint reading one member's linked account, nothing else.

    It reads the same JSON body the API reads and the same row, through one SQLite connection
    per worker opened at start (the read is an indexed lookup of a few microseconds, so it runs
    on the event loop without a thread hop).
    """
    from fastapi import FastAPI

    read_row = linked_read()
    app = FastAPI()

    @app.post("/bare")
    async def read(request: Request) -> Response:
        _, rows = read_row(await request.body())
        out = {"columns": ["chirp_person_id", "linked_at"], "rows": rows}
        return Response(json.dumps(out), media_type="application/json")

    return app


def linked_read() -> Any:
    """What the bare endpoints do with a request's body: the member it names, and their linked
    account's row read on one SQLite connection of the worker's, opened here."""
    url = os.environ["BENCH_REELIX_URL"].removeprefix("sqlite:///")
    db = sqlite3.connect(url, check_same_thread=False)
    query = "SELECT chirp_person_id, linked_at FROM linked_accounts WHERE member_id = ?"

    def read(body: bytes) -> tuple[str, list[list[Any]]]:
        (member,) = json.loads(body)["subjects"]["people"]
        return member, [list(r) for r in db.execute(query, (member,))]

    return read


def floor_app() -> Any:
    """The bare endpoint and, before it answers, the exchange's two ledger entries (a decision
    and a release about the member, shaped as the gateway shapes them) appended durably through
    Accord's ledger, as the API's workers append them: group commits on one store shared by the
    workers, each append in a thread (``EXCHANGE_THREADS`` of them) while the event loop goes on.

    No token, no decision, no policy: the least any design that logs each exchange before
    answering it pays with this ledger. Where this side is under half the bare endpoint, no
    trimming of the rest reaches the API's goal.
    """
    import asyncio
    import itertools

    from fastapi import FastAPI

    from accord.api.handoff import ExchangeThreads
    from accord.api.routes import EXCHANGE_THREADS
    from accord.ledger.log import Ledger
    from accord.store.erased import suppressed_refs
    from accord.store.migrate import open_store
    from ledger_small import exchange

    read_row = linked_read()
    engine, _ = open_store(os.environ["BENCH_FLOOR_STORE_URL"])
    ledger = Ledger(engine, suppressed=suppressed_refs)
    threads = ExchangeThreads(EXCHANGE_THREADS, "floor")  # the API's own hop to its threads
    numbers = itertools.count(secrets.randbelow(1 << 20))
    app = FastAPI()

    @app.post("/floor")
    async def read(request: Request) -> Response:
        _, rows = read_row(await request.body())
        loop = asyncio.get_running_loop()
        await threads.run(loop, ledger.append, exchange(next(numbers)))
        out = {"columns": ["chirp_person_id", "linked_at"], "rows": rows}
        return Response(json.dumps(out), media_type="application/json")

    return app


# -- wrk -------------------------------------------------------------------------------------------

LUA = """
local bodies = {%(bodies)s}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"

request = function()
  n = n + 1
  return wrk.format(nil, "%(path)s", nil, bodies[(n %% #bodies) + 1])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %%d, "duration_us": %%d, "bytes": %%d, "p50_us": %%d, "p99_us": %%d, '
    .. '"mean_us": %%.1f, "max_us": %%d, "connect_errors": %%d, "read_errors": %%d, '
    .. '"write_errors": %%d, "status_errors": %%d, "timeouts": %%d}\\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(99), latency.mean, latency.max, e.connect, e.read, e.write, e.status,
    e.timeout))
end
"""


def exchange_body(member: str) -> dict[str, Any]:
    """The partner's read of one member's linked account."""
    return {
        "collection": "linked_accounts",
        "purpose": "essential.service.authentication",
        "categories": ["user.account.linked"],
        "subjects": {"kind": "people", "people": [member]},
    }


def lua_script(folder: Path, name: str, path: str, token: str, members: list[str]) -> Path:
    """A wrk script posting a read of each of ``members`` in turn."""
    bodies = ",\n".join(json.dumps(json.dumps(exchange_body(m))) for m in members)
    script = folder / f"{name}.lua"
    script.write_text(LUA % {"bodies": bodies, "token": token, "path": path})
    return script


def children_cpu() -> float:
    """CPU seconds used by this process's finished children (wrk runs)."""
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def ensure_wrk() -> str:
    """The wrk command, installed from Debian's packages (scripts/ensure-wrk.sh) if missing."""
    import shutil

    found = shutil.which("wrk")
    if found is None:
        console.print("wrk not found: installing it with scripts/ensure-wrk.sh")
        done = subprocess.run(["bash", str(ROOT / "scripts" / "ensure-wrk.sh")], check=False)
        found = shutil.which("wrk")
        if done.returncode != 0 or found is None:
            console.print(
                "[bold red]error:[/] wrk is needed for this benchmark and could not be installed "
                "(apt-get install -y wrk, as root)"
            )
            raise SystemExit(1)
    return found


def load(
    wrk: str, url: str, script: Path, seconds: float, server_pid: int, *, connections: int
) -> dict[str, Any]:
    """wrk's summary of ``seconds`` of load on ``url``, with its CPU time and the server's."""
    client_before, server_before = children_cpu(), cpu_seconds(server_pid)
    done = subprocess.run(
        [
            wrk,
            f"-t{THREADS}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    client, server = children_cpu() - client_before, cpu_seconds(server_pid) - server_before
    lines = [line for line in done.stdout.splitlines() if line.startswith("WRK ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    found: dict[str, Any] = json.loads(lines[-1][4:])
    found["client_cpu_s"] = client
    found["server_cpu_s"] = server
    return found


def profiler(pid: int, seconds: float, out: Path | None) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the server ``pid`` and its workers for ``seconds``, if ``out`` is given:
    collapsed stacks (one line per stack with its count of samples) written to ``out``."""
    if out is None:
        return None
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--nonblocking",
            "--pid",
            str(pid),
            "--subprocesses",
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def warm_up(
    wrk: str,
    servers: dict[str, Server],
    paths: dict[str, str],
    scripts: dict[str, Path],
    seconds: float,
    *,
    connections: int,
) -> None:
    """Each server loaded for up to 2 s before it is measured (pools filled, code paths warm)."""
    for name, server in servers.items():
        console.print(f"warming up the {name} endpoint")
        url = server.url + paths[name]
        load(wrk, url, scripts[name], min(2.0, seconds), server.pid, connections=connections)


def side(found: dict[str, Any]) -> dict[str, Any]:
    """One side's figures from wrk's summary and the CPU times."""
    seconds = found["duration_us"] / 1e6
    errors = sum(
        found[k]
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return {
        "requests": found["requests"],
        "errors": errors,
        "requests_per_s": round(found["requests"] / seconds),
        "p50_ms": round(found["p50_us"] / 1000, 2),
        "p99_ms": round(found["p99_us"] / 1000, 2),
        "server_cores": round(found["server_cpu_s"] / seconds, 2),
        "wrk_cores": round(found["client_cpu_s"] / seconds, 2),
        "server_cpu_ms_per_request": round(1000 * found["server_cpu_s"] / found["requests"], 3),
        # wrk's thread busy less than 90% of the time: it kept up, the server set the rate.
        "server_bound": found["client_cpu_s"] / seconds < 0.9 * THREADS,
    }


# -- servers ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) used so far by process ``pid`` and its descendants
    (Linux ``/proc``; 0 elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total, stack = 0.0, [pid]
    while stack:
        proc = Path("/proc") / str(stack.pop())
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in (proc / "task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total


@dataclass
class Server:
    """A running uvicorn server: its URL and its process id."""

    url: str
    pid: int


SERVE = """
import json, sys
from accord.api.cli import run_workers
from accord.api.serving import PROTOCOL, run
if __name__ == "__main__":
    options = json.loads(sys.argv[2])
    app_dir = options.pop("app_dir")
    if app_dir:
        sys.path.insert(0, app_dir)
    (run_workers if sys.argv[1] == "accord.api.cli:worker_app" else run)(
        sys.argv[1], http=PROTOCOL, **options
    )
"""
"""A server's process: as ``accord serve`` runs the API (:func:`accord.api.cli.run_workers`, its
workers and their shared ledger writer), or :func:`accord.api.serving.run` over another app."""


@contextmanager
def uvicorn_workers(
    target: str, env: dict[str, str], workers: int, app_dir: Path | None = None
) -> Iterator[Server]:
    port = free_port()
    # As accord serve runs it: each worker listening on a socket of its own, and both servers
    # parsing HTTP with httptools with Nagle's algorithm off (see accord.api.serving): the same
    # HTTP stack, so the ratio compares what lies behind it.
    options = {
        "host": "127.0.0.1",
        "port": port,
        "workers": workers,
        "factory": True,
        "log_level": "warning",
        "access_log": False,
        "app_dir": None if app_dir is None else str(app_dir),
    }
    command = [sys.executable, "-c", SERVE, target, json.dumps(options)]
    process = subprocess.Popen(
        command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{target} did not start")
            time.sleep(0.2)
        yield Server(url, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


# -- the run ------------------------------------------------------------------------------------


def prepare(folder: Path, people: int, database_url: str | None) -> dict[str, Any]:
    from accord import agreements as ag
    from accord.api import PartnerApps
    from accord.api.cli import plan
    from accord.scenario.generate import write_databases
    from accord.scenario.population import generate
    from accord.service import Accord

    at = datetime.now(UTC).replace(microsecond=0)
    written = write_databases(folder / "parties", people=people, seed=5, at=at, parallel=False)
    population = generate(people, seed=5, at=at)
    examples = resources.files("accord") / "examples"
    with Accord.open(database_url, folder / "accord") as accord:
        accord.register((examples / "chirp-reelix.yaml").read_text(), source="x", by="legal")
        accord.review("chirp-reelix", reviewer="Dana", findings="none", approved=True)
        accord.move("chirp-reelix", ag.Status.ACTIVE, by="dpo")
        accord.import_records(population.people, population.consents, population.opt_outs)
        apps = PartnerApps(accord)
        chirp, secret = apps.register("Chirp", party="chirp", agreement="chirp-reelix")
        for scope in apps.offered(chirp):
            apps.review(chirp.client_id, scope, approved=True, reviewer="bench", findings="ok")
    with sqlite3.connect(written.reelix) as db:
        members = [m for (m,) in db.execute("SELECT member_id FROM linked_accounts")]
    layout = plan([], [], written.chirp.parent, folder / "accord", database_url)
    return {
        "layout": layout,
        "client_id": chirp.client_id,
        "secret": secret,
        "members": members,
        "reelix_url": f"sqlite:///{written.reelix}",
        "store_url": database_url or f"sqlite:///{folder / 'accord' / 'accord.db'}",
        "floor_store_url": floor_store(folder),
    }


def floor_store(folder: Path) -> str:
    """A migrated Accord store of its own for the floor's ledger (SQLite, as Accord opens it)."""
    from accord.store.migrate import open_store

    url = f"sqlite:///{folder / 'floor.db'}"
    engine, _ = open_store(url)
    engine.dispose()
    return url


def serve_env(prepared: dict[str, Any]) -> dict[str, str]:
    """The environment ``accord serve`` leaves its workers, for the prepared store, with no
    rate limit that load could reach."""
    return {
        "ACCORD_API_SERVE": json.dumps(prepared["layout"]),
        "ACCORD_API_SECRET": secrets.token_urlsafe(32),
        "ACCORD_API_RATE_LIMIT": "100000000/minute",
    }


def partner_token(url: str, prepared: dict[str, Any]) -> str:
    """A client-credentials token of the prepared partner app, from the API at ``url``."""
    answer = httpx.post(
        f"{url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(prepared["client_id"], prepared["secret"]),
    )
    token: str = answer.json()["access_token"]
    return token


def ledger_size(folder: Path, database_url: str | None) -> int:
    from accord.service import Accord

    with Accord.open(database_url, folder / "accord") as accord:
        return accord.ledger.head().size


def show(figures: dict[str, Any]) -> None:
    """The figures as a table."""
    api, bare, floor = figures["api"], figures["bare"], figures["floor"]
    table = Table(
        title=f"Single-person reads over HTTP, {figures['workers']} uvicorn workers (httptools), "
        f"wrk {figures['connections']} connections, {figures['seconds']:g} s a side"
    )
    table.add_column("measure")
    table.add_column("partner API", justify="right")
    table.add_column("bare endpoint", justify="right")
    table.add_column("floor: bare + ledger", justify="right")
    table.add_column("API / bare", justify="right")
    sides = (api, bare, floor)

    def row(measure: str, key: str, ratio: str = "") -> None:
        table.add_row(measure, *(f"{s[key]:,}" for s in sides), ratio)

    row(
        "requests/s (goal ≥ 2,000)",
        "requests_per_s",
        f"{figures['api_vs_bare_ratio']} (goal ≥ 0.5)",
    )
    row("p50 latency, ms", "p50_ms")
    row("p99 latency, ms (goal ≤ 25)", "p99_ms")
    row("errors", "errors")
    row("server CPU, cores", "server_cores")
    row("wrk CPU, cores (1 thread)", "wrk_cores")
    row(
        "server CPU ms per request",
        "server_cpu_ms_per_request",
        f"{figures['bare_vs_api_server_cpu_per_request_ratio']} (bare / API)",
    )
    table.add_row(
        "rate set by", *("the server" if s["server_bound"] else "the client" for s in sides), ""
    )
    table.add_row(
        "ledger entries per request", f"{figures['ledger_entries_per_request']}", "none", "2", ""
    )
    table.add_row(
        "floor / bare", "", "", f"{figures['floor_vs_bare_ratio']}", "the most any design reaches"
    )
    console.print(table)


def run_params(args: argparse.Namespace, people: int, seconds: float) -> dict[str, Any]:
    """What a load run was: the population, the workers, wrk's connections, its length, the
    machine's cores and the store (``args``: ``workers``, ``connections``, ``database_url``)."""
    return {
        "people": people,
        "workers": args.workers,
        "connections": args.connections,
        "seconds": seconds,
        "cores": os.cpu_count() or 1,
        "store": "postgresql" if args.database_url else "sqlite",
    }


def figures_of(
    args: argparse.Namespace,
    people: int,
    seconds: float,
    found: dict[str, dict[str, Any]],
    logged: int,
) -> dict[str, Any]:
    """The run's figures: each side's, their ratios, and the goals met or not."""
    api, bare, floor = side(found["api"]), side(found["bare"]), side(found["floor"])
    ratio = api["requests_per_s"] / max(1, bare["requests_per_s"])
    return {
        **run_params(args, people, seconds),
        "shared_writer": args.shared_writer,
        "api": api,
        "bare": bare,
        "floor": floor,
        "api_vs_bare_ratio": round(ratio, 3),
        "floor_vs_bare_ratio": round(floor["requests_per_s"] / max(1, bare["requests_per_s"]), 3),
        "api_vs_floor_ratio": round(api["requests_per_s"] / max(1, floor["requests_per_s"]), 3),
        "bare_vs_api_server_cpu_per_request_ratio": round(
            bare["server_cpu_ms_per_request"] / max(1e-9, api["server_cpu_ms_per_request"]), 3
        ),
        "ledger_entries_per_request": round(logged / max(1, api["requests"]), 2),
        "goal_ratio_met": ratio >= 0.5,
        "goal_requests_per_s_met": api["requests_per_s"] >= 2000,
        "goal_p99_met": api["p99_ms"] <= 25,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A small population and 2 s a side.")
    parser.add_argument("--people", type=int, default=None, help="People in the population.")
    parser.add_argument("--seconds", type=float, default=None, help="Seconds of load per side.")
    parser.add_argument(
        "--connections", type=int, default=CONNECTIONS, help="wrk's open connections."
    )
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers per server.")
    parser.add_argument(
        "--shared-writer",
        action="store_true",
        help="The API's workers hand their writes to one writer (ACCORD_SHARED_WRITER=1).",
    )
    parser.add_argument("--database-url", default=None, help="The Accord store (default SQLite).")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="Sample the API's workers with py-spy during its load; collapsed stacks to this file.",
    )
    args = parser.parse_args()
    people = args.people or (500 if args.quick else 10_000)
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        console.print(f"preparing the scenario and the store: {people:,} people")
        prepared = prepare(folder, people, args.database_url)
        env = serve_env(prepared)
        if args.shared_writer:
            env["ACCORD_SHARED_WRITER"] = "1"
        bare_env = {"BENCH_REELIX_URL": prepared["reelix_url"]}
        floor_env = {**bare_env, "BENCH_FLOOR_STORE_URL": prepared["floor_store_url"]}
        with (
            uvicorn_workers("accord.api.cli:worker_app", env, args.workers) as api_server,
            uvicorn_workers("api:bare_app", bare_env, args.workers, app_dir=HERE) as bare_server,
            uvicorn_workers("api:floor_app", floor_env, args.workers, app_dir=HERE) as floor_server,
        ):
            token = partner_token(api_server.url, prepared)
            members = random.Random(3).sample(prepared["members"], len(prepared["members"]))
            # Both sides answer the same member with the same row before any load.
            first = exchange_body(members[0])
            headers = {"Authorization": f"Bearer {token}"}
            api_rows = httpx.post(
                api_server.url + EXCHANGE_PATH, json=first, headers=headers, timeout=60
            ).json()["rows"]
            bare_rows = httpx.post(bare_server.url + "/bare", json=first, timeout=60).json()["rows"]
            floor_rows = httpx.post(floor_server.url + "/floor", json=first, timeout=60).json()
            if not api_rows or not api_rows == bare_rows == floor_rows["rows"]:
                raise RuntimeError(f"the sides disagree: {api_rows}, {bare_rows}, {floor_rows}")
            scripts = {
                "api": lua_script(folder, "api", EXCHANGE_PATH, token, members),
                "bare": lua_script(folder, "bare", "/bare", token, members),
                "floor": lua_script(folder, "floor", "/floor", token, members),
            }
            servers = {"api": api_server, "bare": bare_server, "floor": floor_server}
            paths = {"api": EXCHANGE_PATH, "bare": "/bare", "floor": "/floor"}
            warm_up(wrk, servers, paths, scripts, seconds, connections=args.connections)
            before = ledger_size(folder, args.database_url)
            found = {}
            for name, server in servers.items():
                console.print(f"loading the {name} endpoint for {seconds:g} s")
                url = server.url + paths[name]
                sampler = profiler(server.pid, seconds, args.profile) if name == "api" else None
                found[name] = load(
                    wrk, url, scripts[name], seconds, server.pid, connections=args.connections
                )
                if sampler is not None:
                    sampler.wait()
            logged = ledger_size(folder, args.database_url) - before
    figures = figures_of(args, people, seconds, found, logged)
    show(figures)
    api, bare, floor = figures["api"], figures["bare"], figures["floor"]
    flat = {
        "benchmark": "api",
        **{k: v for k, v in figures.items() if k not in ("api", "bare", "floor")},
        **{f"api_{k}": v for k, v in api.items()},
        **{f"bare_{k}": v for k, v in bare.items()},
        **{f"floor_{k}": v for k, v in floor.items()},
    }
    print(json.dumps(flat))


if __name__ == "__main__":
    main()
