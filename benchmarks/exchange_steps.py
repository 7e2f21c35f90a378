"""Where a single-person exchange's CPU goes, step by step, beside a bare read of the same row.

The partner API's exchanges handler (``accord.api.routes``) is run in this process, without HTTP,
on the app ``accord serve`` builds for a worker, for reads of one member's linked account (clause
``account-link``): the token checked, the request decided (the registry's revision, Cedar), the
person judged, the row read, the decision and the release appended to the ledger durably, the
answer serialised. First without a profiler, by one thread and by eight at once (as a worker's
exchange threads run, sharing group commits), for the CPU time of an exchange; then under
cProfile with a CPU clock, for each step's share. The baseline is the bare read of the same row
on one SQLite connection, timed the same way.

Prints a table and ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import secrets
import sqlite3
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
HERE = Path(__file__).resolve().parent

# (label, file, function): each step is the cumulative CPU of one function of the exchange.
STEPS = (
    ("token check", "api/access.py", "caller"),
    ("scope check", "api/access.py", "check"),
    ("registry revision", "accord/service.py", "policy"),
    ("decision (Cedar)", "accord/policy.py", "decide"),
    ("plan", "gateway/door.py", "_plan"),
    ("allowed people", "sources/allowed.py", "by_filter"),
    ("read rows", "gateway/door.py", "_records"),
    ("ledger append", "gateway/door.py", "_log_release"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A small population, few exchanges.")
    parser.add_argument("--exchanges", type=int, default=None, help="Exchanges timed per run.")
    parser.add_argument("--people", type=int, default=None, help="People in the population.")
    args = parser.parse_args()
    count = args.exchanges or (200 if args.quick else 3000)
    people = args.people or (300 if args.quick else 2000)
    sys.path.insert(0, str(HERE))
    from api import exchange_body, prepare

    with tempfile.TemporaryDirectory() as tmp:
        console.print(f"preparing the scenario and the store: {people:,} people")
        prepared = prepare(Path(tmp), people, None)
        os.environ.update(
            {
                "ACCORD_API_SERVE": json.dumps(prepared["layout"]),
                "ACCORD_API_SECRET": secrets.token_urlsafe(32),
                "ACCORD_API_RATE_LIMIT": "100000000/minute",
            }
        )
        figures = run(prepared, count, exchange_body)
    show(figures)
    print(json.dumps({"benchmark": "exchange_steps", **figures}))


def run(prepared: dict[str, Any], count: int, body_of: Any) -> dict[str, Any]:
    import logging
    import warnings

    from starlette.requests import Request

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # its note on httpx: not ours
        from starlette.testclient import TestClient

    from accord.api.cli import worker_app
    from accord.api.routes import _exchange_in_thread

    app = worker_app()
    logging.getLogger("accord.api").setLevel(logging.WARNING)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        token = client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(prepared["client_id"], prepared["secret"]),
        ).json()["access_token"]
    members: list[str] = prepared["members"]
    bodies = [body_of(m) for m in members]
    headers = [(b"authorization", f"Bearer {token}".encode())]
    params = {"agreement": "chirp-reelix", "clause": "account-link"}

    def exchange(n: int) -> None:
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/agreements/chirp-reelix/clauses/account-link/exchanges",
            "headers": headers,
            "app": app,
            "path_params": params,
            "state": {},
            "query_string": b"",
        }
        answer = _exchange_in_thread(Request(scope), bodies[n % len(bodies)])
        if answer.status_code != 200:
            raise RuntimeError(f"the exchange answered {answer.status_code}: {answer.body!r}")

    db = sqlite3.connect(prepared["reelix_url"].removeprefix("sqlite:///"))
    query = "SELECT chirp_person_id, linked_at FROM linked_accounts WHERE member_id = ?"

    def bare(n: int) -> None:
        rows = [list(r) for r in db.execute(query, (members[n % len(members)],))]
        json.dumps({"columns": ["chirp_person_id", "linked_at"], "rows": rows})

    for n in range(min(200, count)):
        exchange(n)
    one = cpu_per_call(exchange, count, threads=1)
    eight = cpu_per_call(exchange, count, threads=8)
    bare_cpu = cpu_per_call(bare, 20 * count, threads=1)
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    for n in range(count):
        exchange(n)
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]

    def cumulative(file: str, name: str) -> float:
        return float(sum(v[3] for k, v in stats.items() if file in k[0] and k[2] == name))

    total = cumulative("api/routes.py", "_exchange_in_thread")
    shares = {label: cumulative(file, name) / total for label, file, name in STEPS}
    shares["the rest (body, request, answer)"] = 1 - sum(shares.values())
    return {
        "exchanges": count,
        "exchange_cpu_ms": round(1000 * one, 3),
        "exchange_cpu_ms_8_threads": round(1000 * eight, 3),
        "bare_read_cpu_ms": round(1000 * bare_cpu, 4),
        "bare_read_vs_exchange_cpu_ratio": round(bare_cpu / one, 4),
        "steps": {label: round(share, 3) for label, share in shares.items()},
    }


def cpu_per_call(call: Any, count: int, *, threads: int) -> float:
    """CPU seconds (this process's, every thread's) per call of ``call(n)``, ``count`` calls."""
    started = time.process_time()
    if threads == 1:
        for n in range(count):
            call(n)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(call, range(count)))
    return (time.process_time() - started) / count


def show(figures: dict[str, Any]) -> None:
    table = Table(title="A single-person exchange in one worker, without HTTP: CPU by step")
    table.add_column("step")
    table.add_column("share of the exchange's CPU", justify="right")
    for label, share in figures["steps"].items():
        table.add_row(label, f"{100 * share:.1f}%")
    table.add_row("CPU ms an exchange (one thread)", f"{figures['exchange_cpu_ms']}")
    table.add_row("CPU ms an exchange (eight threads)", f"{figures['exchange_cpu_ms_8_threads']}")
    table.add_row("CPU ms a bare read of the row", f"{figures['bare_read_cpu_ms']}")
    table.add_row("bare read / exchange", f"{figures['bare_read_vs_exchange_cpu_ratio']}")
    console.print(table)


if __name__ == "__main__":
    main()
