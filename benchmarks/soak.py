"""A soak: 50 concurrent partner clients on the partner API for five minutes, on loopback.

The partner API runs as ``accord serve`` runs it (``accord.api.cli:worker_app``, two uvicorn
workers, httptools, the SQLite store) and wrk, a compiled load generator, keeps 50 connections
busy with reads of single members' linked accounts (clause ``account-link``): each decided
against the agreement, the law and the member, and logged (decision and release) before it is
answered. The set-up, the wrk script and the figures of one side are those of
``benchmarks/api.py``.

While wrk runs, the server's resident memory (its processes, from ``/proc``) is sampled every
second. The baseline is the run's own first minute: ``rss_last_vs_first_minute_ratio`` is the
mean RSS of the last minute over that of the first (flat memory: close to 1; a leak grows it
with the run). Afterwards the ledger is opened afresh and verified in full, and it must hold
at least the decision and the release of every request wrk counted.

Goals: zero errors (connect, read, write, timeouts, non-2xx), the ledger verifies, memory flat
(ratio at most 1.2). 300 s (10 s with ``--quick``, where "minute" means the first and last fifth
of the run). Prints a table and ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

console = Console(stderr=True)
CLIENTS = 50
SAMPLE_S = 1.0


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` and its descendants, in bytes (Linux ``/proc``)."""
    total, stack = 0, [pid]
    while stack:
        proc = Path("/proc") / str(stack.pop())
        try:
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in (proc / "task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total


def sample(pid: int, seconds: float, progress: Progress) -> list[tuple[float, int]]:
    """(seconds since start, RSS) every :data:`SAMPLE_S` for ``seconds``."""
    task = progress.add_task("soak", total=seconds)
    start = time.monotonic()
    samples: list[tuple[float, int]] = []
    while (elapsed := time.monotonic() - start) < seconds:
        samples.append((elapsed, rss_bytes(pid)))
        progress.update(task, completed=elapsed)
        time.sleep(SAMPLE_S)
    progress.update(task, completed=seconds)
    return samples


def flat(samples: list[tuple[float, int]], window: float, seconds: float) -> dict[str, Any]:
    """Mean RSS over the first and last ``window`` seconds, and their ratio."""
    first = [rss for at, rss in samples if at < window]
    last = [rss for at, rss in samples if at >= seconds - window]
    first_mb = statistics.fmean(first) / 2**20
    last_mb = statistics.fmean(last) / 2**20
    return {
        "rss_first_window_mb": round(first_mb, 1),
        "rss_last_window_mb": round(last_mb, 1),
        "rss_max_mb": round(max(rss for _, rss in samples) / 2**20, 1),
        "rss_last_vs_first_minute_ratio": round(last_mb / first_mb, 3),
    }


def verify(folder: Path, database_url: str | None) -> dict[str, Any]:
    """The ledger verified in full from a fresh store: its size, the time, what went wrong."""
    from accord.service import Accord

    with Accord.open(database_url, folder / "accord") as accord:
        report = accord.ledger.verify()
    return {
        "ledger_size": report.size,
        "ledger_verified": report.ok,
        "ledger_problems": [str(p) for p in report.problems[:5]],
        "verify_s": round(report.seconds, 2),
    }


def show(figures: dict[str, Any]) -> None:
    """The figures as a table."""
    table = Table(
        title=f"Soak: {figures['connections']} partner clients (wrk), {figures['workers']} "
        f"workers, {figures['seconds']:g} s"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("requests", f"{figures['requests']:,}")
    table.add_row("requests/s", f"{figures['requests_per_s']:,}")
    table.add_row("errors (goal 0)", f"{figures['errors']}")
    table.add_row("p50 latency, ms", f"{figures['p50_ms']}")
    table.add_row("p99 latency, ms", f"{figures['p99_ms']}")
    table.add_row("server RSS, first window, MB", f"{figures['rss_first_window_mb']}")
    table.add_row("server RSS, last window, MB", f"{figures['rss_last_window_mb']}")
    table.add_row("RSS last / first (goal ≤ 1.2)", f"{figures['rss_last_vs_first_minute_ratio']}")
    table.add_row("ledger entries", f"{figures['ledger_size']:,}")
    table.add_row("ledger verifies", "yes" if figures["ledger_verified"] else "NO")
    table.add_row("ledger verify, s", f"{figures['verify_s']}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s on a small population.")
    parser.add_argument("--seconds", type=float, default=None, help="Seconds of load (300).")
    parser.add_argument("--people", type=int, default=None, help="People in the population.")
    parser.add_argument("--connections", type=int, default=CLIENTS, help="wrk's connections.")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers.")
    parser.add_argument("--database-url", default=None, help="The Accord store (default SQLite).")
    args = parser.parse_args()
    from api import (
        EXCHANGE_PATH,
        ensure_wrk,
        load,
        lua_script,
        partner_token,
        prepare,
        run_params,
        serve_env,
        side,
        uvicorn_workers,
    )

    seconds = args.seconds or (10.0 if args.quick else 300.0)
    people = args.people or (500 if args.quick else 10_000)
    window = min(60.0, seconds / 5)
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        console.print(f"preparing the scenario and the store: {people:,} people")
        prepared = prepare(folder, people, args.database_url)
        env = serve_env(prepared)
        with uvicorn_workers("accord.api.cli:worker_app", env, args.workers) as server:
            token = partner_token(server.url, prepared)
            members = random.Random(7).sample(prepared["members"], len(prepared["members"]))
            script = lua_script(folder, "soak", EXCHANGE_PATH, token, members)
            found: dict[str, Any] = {}

            def run() -> None:
                found.update(
                    load(
                        wrk,
                        server.url + EXCHANGE_PATH,
                        script,
                        seconds,
                        server.pid,
                        connections=args.connections,
                    )
                )

            console.print(f"{args.connections} clients for {seconds:g} s")
            loader = threading.Thread(target=run)
            loader.start()
            with Progress(console=console) as progress:
                samples = sample(server.pid, seconds, progress)
            loader.join()
            if not found:
                raise SystemExit("wrk failed; see above")
        checked = verify(folder, args.database_url)
    figures_side = side(found)
    memory = flat(samples, window, seconds)
    figures = {
        "benchmark": "soak",
        **run_params(args, people, seconds),
        "requests": figures_side["requests"],
        "requests_per_s": figures_side["requests_per_s"],
        "errors": figures_side["errors"],
        "p50_ms": figures_side["p50_ms"],
        "p99_ms": figures_side["p99_ms"],
        "p99_vs_p50_ratio": round(figures_side["p99_ms"] / max(1e-9, figures_side["p50_ms"]), 2),
        "rss_window_s": window,
        "rss_samples": len(samples),
        **memory,
        **checked,
        "ledger_entries_per_request_ratio": round(
            checked["ledger_size"] / max(1, figures_side["requests"]), 2
        ),
        "goal_zero_errors_met": figures_side["errors"] == 0,
        "goal_ledger_verifies_met": checked["ledger_verified"]
        and checked["ledger_size"] >= 2 * figures_side["requests"],
        "goal_memory_flat_met": memory["rss_last_vs_first_minute_ratio"] <= 1.2,
    }
    show(figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
