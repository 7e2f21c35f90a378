"""Single-person reads over HTTP through the partner API, side by side with a bare endpoint.

Two uvicorn workers on loopback serve the partner API (``accord.api.cli:worker_app``); a load
generator in another process (asyncio + httpx, keep-alive connections) sends reads of one member's
linked account (clause ``account-link``): each is authenticated by its bearer token, decided
against the agreement, the law and the member, read from Reelix's database, and logged to the
ledger (decision and release) durably before it is answered. The baseline is a bare FastAPI
endpoint, also two uvicorn workers, reading the same row from the same database with no token,
no decision and no ledger. Goals: at least 2,000 requests/s with p99 at most 25 ms, and a ratio
of at least 0.5 to the bare endpoint.

Both servers run at once and the load alternates between them in rounds, so the shared machine's
changing load falls on both alike. The servers' CPU time per request (their processes and workers,
read from ``/proc``) is printed too: other load on the machine moves it far less than requests/s.

Prints a table and ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import socket
import sqlite3
import statistics
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
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

console = Console(stderr=True)
HERE = Path(__file__).resolve().parent


# -- the bare baseline, served by uvicorn from this module -----------------------------------------


def bare_app() -> Any:
    """A bare FastAPI endpoint reading one member's linked account, nothing else."""
    from fastapi import FastAPI
    from sqlalchemy import text

    from accord.store.engine import make_engine

    engine = make_engine(os.environ["BENCH_REELIX_URL"])
    app = FastAPI()
    query = text("SELECT chirp_person_id, linked_at FROM linked_accounts WHERE member_id = :member")

    @app.get("/bare/{member}")
    def read(member: str) -> dict[str, Any]:
        with engine.connect() as conn:
            rows = [list(r) for r in conn.execute(query, {"member": member})]
        return {"columns": ["chirp_person_id", "linked_at"], "rows": rows}

    return app


# -- the load generator (a process of its own) -----------------------------------------------------


async def _load(url: str, seconds: float, concurrency: int, spec: dict[str, Any]) -> dict[str, Any]:
    members: list[str] = spec["members"]
    headers = {"Authorization": f"Bearer {spec['token']}"} if spec.get("token") else {}
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        rng = random.Random(1)
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                member = rng.choice(members)
                started = time.perf_counter()
                if spec["kind"] == "bare":
                    r = await client.get(f"/bare/{member}")
                else:
                    r = await client.post(
                        "/v1/agreements/chirp-reelix/clauses/account-link/exchanges",
                        json={
                            "collection": "linked_accounts",
                            "purpose": "essential.service.authentication",
                            "categories": ["user.account.linked"],
                            "subjects": {"kind": "people", "people": [member]},
                        },
                        headers=headers,
                    )
                latencies.append(time.perf_counter() - started)
                if r.status_code != 200 or not r.json()["rows"]:
                    errors += 1

        begun = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - begun
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "latencies": latencies,
        **percentiles(latencies),
    }


def merged(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of the load generator as one: requests and seconds summed, latencies pooled."""
    latencies = sorted(x for r in results for x in r["latencies"])
    return {
        "requests": sum(r["requests"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "seconds": sum(r["seconds"] for r in results),
        **percentiles(latencies),
    }


def percentiles(latencies: list[float]) -> dict[str, float]:
    """p50, p99 and mean in ms of sorted ``latencies`` (seconds)."""
    return {
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "mean_ms": 1000 * statistics.fmean(latencies),
    }


def load_main(args: argparse.Namespace) -> None:
    spec = json.loads(Path(args.spec).read_text())
    result = asyncio.run(_load(args.load, args.seconds, args.concurrency, spec))
    print(json.dumps(result))


def generate_load(
    url: str, spec: dict[str, Any], seconds: float, concurrency: int, folder: Path
) -> dict[str, Any]:
    spec_file = folder / f"spec-{spec['kind']}.json"
    spec_file.write_text(json.dumps(spec))
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--load",
            url,
            "--spec",
            str(spec_file),
            "--seconds",
            str(seconds),
            "--concurrency",
            str(concurrency),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


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


@contextmanager
def uvicorn_workers(
    target: str, env: dict[str, str], workers: int, app_dir: Path | None = None
) -> Iterator[Server]:
    from accord.api.serving import PROTOCOL

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
        # Both servers parse HTTP with httptools and turn Nagle's algorithm off (see
        # accord.api.serving): the same HTTP stack, so the ratio compares what lies behind it.
        "--http",
        PROTOCOL,
    ]
    if app_dir is not None:
        command += ["--app-dir", str(app_dir)]
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


# -- the run ---------------------------------------------------------------------------------------


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
    }


def ledger_size(folder: Path, database_url: str | None) -> int:
    from accord.service import Accord

    with Accord.open(database_url, folder / "accord") as accord:
        return accord.ledger.head().size


def show(figures: dict[str, Any]) -> None:
    """The figures as a table."""
    table = Table(title=f"Single-person reads over HTTP, {figures['workers']} workers, loopback")
    table.add_column("measure")
    table.add_column("partner API", justify="right")
    table.add_column("bare endpoint", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row(
        "requests/s (goal ≥ 2,000)",
        f"{figures['api_requests_per_s']:,}",
        f"{figures['bare_requests_per_s']:,}",
        f"{figures['api_vs_bare_ratio']} (goal ≥ 0.5)",
    )
    table.add_row("p50 latency, ms", f"{figures['api_p50_ms']}", f"{figures['bare_p50_ms']}", "")
    table.add_row(
        "p50 latency one request at a time, ms",
        f"{figures['api_p50_ms_one_at_a_time']}",
        f"{figures['bare_p50_ms_one_at_a_time']}",
        "",
    )
    table.add_row(
        "p99 latency, ms (goal ≤ 25)", f"{figures['api_p99_ms']}", f"{figures['bare_p99_ms']}", ""
    )
    table.add_row(
        "server CPU ms per request",
        f"{figures['api_server_cpu_ms_per_request']}",
        f"{figures['bare_server_cpu_ms_per_request']}",
        f"{figures['bare_vs_api_server_cpu_per_request_ratio']} (bare / API)",
    )
    table.add_row(
        "ledger entries per request", f"{figures['ledger_entries_per_request']}", "none", ""
    )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A small population and short runs.")
    parser.add_argument("--people", type=int, default=None, help="People in the population.")
    parser.add_argument("--seconds", type=float, default=None, help="Seconds of load per server.")
    parser.add_argument("--concurrency", type=int, default=16, help="Requests in flight.")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers per server.")
    parser.add_argument(
        "--rounds", type=int, default=3, help="Alternating rounds of load (each server)."
    )
    parser.add_argument("--database-url", default=None, help="The Accord store (default SQLite).")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load_main(args)
        return
    people = args.people or (500 if args.quick else 10_000)
    seconds = args.seconds or (3.0 if args.quick else 15.0)
    rounds = max(1, args.rounds)
    with tempfile.TemporaryDirectory() as tmp, Progress(console=console, transient=True) as bar:
        folder = Path(tmp)
        task = bar.add_task("generating the scenario and the store", total=2 + 2 * rounds)
        prepared = prepare(folder, people, args.database_url)
        bar.advance(task)
        env = {
            "ACCORD_API_SERVE": json.dumps(prepared["layout"]),
            "ACCORD_API_SECRET": secrets.token_urlsafe(32),
            "ACCORD_API_RATE_LIMIT": "100000000/minute",
        }
        bare_env = {"BENCH_REELIX_URL": prepared["reelix_url"]}
        bar.update(task, description="starting both servers and warming them up")
        with (
            uvicorn_workers("accord.api.cli:worker_app", env, args.workers) as api_server,
            uvicorn_workers("api:bare_app", bare_env, args.workers, app_dir=HERE) as bare_server,
        ):
            token = httpx.post(
                f"{api_server.url}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(prepared["client_id"], prepared["secret"]),
            ).json()["access_token"]
            members = prepared["members"]
            runs = {
                "api": (api_server, {"kind": "api", "token": token, "members": members}),
                "bare": (bare_server, {"kind": "bare", "members": members}),
            }
            for server, spec in runs.values():
                generate_load(server.url, spec, min(2.0, seconds), args.concurrency, folder)
            bar.advance(task)
            before = ledger_size(folder, args.database_url)
            loaded: dict[str, list[dict[str, Any]]] = {"api": [], "bare": []}
            cpu = {"api": 0.0, "bare": 0.0}
            for n in range(rounds):
                for kind, (server, spec) in runs.items():
                    bar.update(task, description=f"round {n + 1} of {rounds}: {kind}")
                    started = cpu_seconds(server.pid)
                    loaded[kind].append(
                        generate_load(server.url, spec, seconds / rounds, args.concurrency, folder)
                    )
                    cpu[kind] += cpu_seconds(server.pid) - started
                    bar.advance(task)
            logged = ledger_size(folder, args.database_url) - before
            api_alone = generate_load(api_server.url, runs["api"][1], min(3.0, seconds), 1, folder)
            bare_alone = generate_load(
                bare_server.url, runs["bare"][1], min(3.0, seconds), 1, folder
            )
    api, bare = merged(loaded["api"]), merged(loaded["bare"])

    def rate(r: dict[str, Any]) -> float:
        return float(r["requests"]) / float(r["seconds"])

    def cpu_ms(kind: str, r: dict[str, Any]) -> float:
        return 1000 * cpu[kind] / max(1, r["requests"])

    figures = {
        "people": people,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "seconds": seconds,
        "store": "postgresql" if args.database_url else "sqlite",
        "api_requests": api["requests"],
        "api_errors": api["errors"],
        "api_requests_per_s": round(rate(api)),
        "api_p50_ms": round(api["p50_ms"], 2),
        "api_p99_ms": round(api["p99_ms"], 2),
        "ledger_entries_per_request": round(logged / max(1, api["requests"]), 2),
        "bare_requests_per_s": round(rate(bare)),
        "bare_p50_ms": round(bare["p50_ms"], 2),
        "bare_p99_ms": round(bare["p99_ms"], 2),
        "api_p50_ms_one_at_a_time": round(api_alone["p50_ms"], 2),
        "bare_p50_ms_one_at_a_time": round(bare_alone["p50_ms"], 2),
        "api_vs_bare_ratio": round(rate(api) / rate(bare), 3),
        "rounds": rounds,
        "api_server_cpu_ms_per_request": round(cpu_ms("api", api), 2),
        "bare_server_cpu_ms_per_request": round(cpu_ms("bare", bare), 2),
        "bare_vs_api_server_cpu_per_request_ratio": round(
            cpu_ms("bare", bare) / max(1e-9, cpu_ms("api", api)), 3
        ),
        "goal_requests_per_s_met": rate(api) >= 2000,
        "goal_p99_met": api["p99_ms"] <= 25,
        "goal_ratio_met": rate(api) / rate(bare) >= 0.5,
    }
    show(figures)
    print(json.dumps({"benchmark": "api", **figures}))


if __name__ == "__main__":
    main()
