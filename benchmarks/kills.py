"""SIGKILL of the partner API's process under load, again and again: nothing acknowledged is lost.

Each round starts the partner API as ``accord serve`` runs it (``accord.api.cli:worker_app``
under uvicorn, one process, on the SQLite store), loads it with eight partner clients reading
single members' linked accounts (clause ``account-link``), and kills it with SIGKILL at a random
moment (uniformly 0 to 1 s after its first answer), so that some exchanges are being decided, some
committed and some answered. After every kill the store is opened afresh and checked:

- the ledger verifies (the tree recomputed from every leaf, every checkpoint against it);
- every release a client saw acknowledged (a 200 with its receipts) has its decision and release
  in the log, at the indexes its receipts name, and no index was acknowledged twice.

Releases logged whose answer the kill cut off are counted too: the ledger is written before the
answer, so a kill between the two leaves an entry for a release the client never received (it
says more than was released, never less). The baseline is the acknowledged releases themselves:
``lost_acknowledged_ratio`` is the share of them missing from the log (must be 0), and
``logged_unacknowledged_per_kill_ratio`` the releases logged but never answered, per kill.

100 kills (3 with ``--quick``). Prints a table and ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

console = Console(stderr=True)
CLIENTS = 8
EXCHANGE_PATH = "/v1/agreements/chirp-reelix/clauses/account-link/exchanges"


@dataclass
class Round:
    """What one round of load saw before its kill."""

    acknowledged: list[dict[str, Any]] = field(default_factory=list)
    """The bodies of the 200 answers: each with its receipts."""
    cut: int = 0
    """Requests that got no answer: the connection died with the server."""
    start_s: float = 0.0
    """Seconds from starting the server to its answering (its OpenAPI document)."""
    errors: list[str] = field(default_factory=list)
    """Answers other than 200 (there should be none: every read is allowed)."""
    answering: threading.Event = field(default_factory=threading.Event)
    """Set at the round's first acknowledged release."""


AfterKill = Callable[[int, Round, Any], None]
"""Called after each kill with the round's number, what it saw, and the store opened afresh."""


def _load(
    url: str, token: str, members: list[str], seed: int, *, stop: threading.Event, seen: Round
) -> None:
    """Eight clients reading members until ``stop`` (or their server dies), into ``seen``."""
    from api import exchange_body

    lock = threading.Lock()

    def client(n: int) -> None:
        rng = random.Random(seed * 100 + n)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                body = exchange_body(rng.choice(members))
                try:
                    r = http.post(EXCHANGE_PATH, json=body, headers=headers)
                except httpx.HTTPError:
                    with lock:
                        seen.cut += 1
                    if stop.wait(0.01):
                        return
                    continue
                with lock:
                    if r.status_code == 200:
                        seen.acknowledged.append(r.json())
                    else:
                        seen.errors.append(f"{r.status_code}: {r.text}")
                if r.status_code == 200:
                    seen.answering.set()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join()


def kill_rounds(
    folder: Path, prepared: dict[str, Any], kills: int, seed: int, after_kill: AfterKill
) -> None:
    """Serve, load, SIGKILL at a random moment, then ``after_kill``: ``kills`` times."""
    from accord.service import Accord
    from api import partner_token, serve_env, uvicorn_workers

    rng = random.Random(seed)
    env = serve_env(prepared)
    token = ""
    for number in range(kills):
        started = time.monotonic()
        with uvicorn_workers("accord.api.cli:worker_app", env, 1) as server:
            up = time.monotonic() - started  # until it answers its readiness probe
            if not token:  # tokens are in the store: one lasts every restart
                token = partner_token(server.url, prepared)
            stop = threading.Event()
            seen = Round(start_s=up)
            loader = threading.Thread(
                target=_load,
                args=(server.url, token, prepared["members"], rng.randrange(2**32)),
                kwargs={"stop": stop, "seen": seen},
            )
            loader.start()
            # A random moment once exchanges are flowing (the first ones wait for the policy).
            if not seen.answering.wait(120):
                raise RuntimeError("the server answered no exchange")
            time.sleep(rng.uniform(0.0, 1.0))
            os.kill(server.pid, signal.SIGKILL)
            stop.set()
            loader.join()
        with Accord.open(None, folder / "accord") as accord:
            after_kill(number, seen, accord)


@dataclass
class Tally:
    """What the benchmark's own check of every round adds up."""

    acknowledged: int = 0
    lost: int = 0
    cut: int = 0
    verified: int = 0
    indexes: set[int] = field(default_factory=set)
    starts: list[float] = field(default_factory=list)
    verify_s: list[float] = field(default_factory=list)

    def check(self, _number: int, seen: Round, accord: Any) -> None:
        """The ledger verifies; each acknowledged receipt's entry is in it, once."""
        ledger = accord.ledger
        report = ledger.verify(workers=1)
        if not report.ok:
            raise RuntimeError(f"the ledger does not verify after a kill: {report.problems}")
        self.verified += 1
        if seen.errors:
            raise RuntimeError(f"the server refused or failed reads: {seen.errors[:3]}")
        self.verify_s.append(report.seconds)
        self.starts.append(seen.start_s)
        self.cut += seen.cut
        for answer in seen.acknowledged:
            self.acknowledged += 1
            for receipt in answer["receipts"]:
                index = receipt["index"]
                if index in self.indexes:
                    raise RuntimeError(f"index {index} was acknowledged twice")
                self.indexes.add(index)
                try:
                    stored = ledger.leaf(index).leaf_hash.hex()
                except Exception:  # noqa: BLE001 - a missing leaf is what is counted
                    stored = None
                if stored != receipt["leaf_hash"]:
                    self.lost += 1
                    break


def releases_logged(folder: Path) -> tuple[int, int]:
    """How many release entries the ledger holds, and how many entries in all."""
    from accord.service import Accord

    with Accord.open(None, folder / "accord") as accord:
        size = accord.ledger.head().size
        kinds = (accord.ledger.leaf(i).entry()["kind"] for i in range(size))
        return sum(kind == "release" for kind in kinds), size


def show(figures: dict[str, Any]) -> None:
    """The figures as a table."""
    table = Table(title=f"SIGKILL of the partner API under load, {figures['kills']} times")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("kills (ledger verified after each)", f"{figures['verified_after_kills']}")
    table.add_row("releases acknowledged to clients", f"{figures['acknowledged']:,}")
    table.add_row("… of them missing from the ledger (goal 0)", f"{figures['lost']}")
    table.add_row("requests cut off by a kill", f"{figures['cut']:,}")
    table.add_row("releases logged but never answered", f"{figures['logged_unacknowledged']}")
    table.add_row("ledger entries at the end", f"{figures['ledger_size']:,}")
    table.add_row("restart until answering, median s", f"{figures['restart_median_s']}")
    table.add_row("ledger verify after a kill, max s", f"{figures['verify_max_s']}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 kills on a small population.")
    parser.add_argument("--kills", type=int, default=None, help="How many kills (default 100).")
    parser.add_argument("--people", type=int, default=None, help="People in the population.")
    parser.add_argument("--seed", type=int, default=None, help="Seed of the kill moments.")
    args = parser.parse_args()
    from api import prepare

    kills = args.kills or (3 if args.quick else 100)
    people = args.people or (300 if args.quick else 2_000)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        console.print(f"preparing the scenario and the store: {people:,} people (seed {seed})")
        prepared = prepare(folder, people, None)
        with Progress(console=console) as progress:
            task = progress.add_task("kills", total=kills)

            def after(number: int, seen: Round, accord: Any) -> None:
                tally.check(number, seen, accord)
                progress.advance(task)

            kill_rounds(folder, prepared, kills, seed, after)
        logged, size = releases_logged(folder)
    # Releases before the rounds: none (the store's set-up logs agreements and consents only).
    unanswered = logged - (tally.acknowledged - tally.lost)
    starts = sorted(tally.starts)
    figures = {
        "benchmark": "kills",
        "seed": seed,
        "people": people,
        "kills": kills,
        "clients": CLIENTS,
        "verified_after_kills": tally.verified,
        "acknowledged": tally.acknowledged,
        "lost": tally.lost,
        "cut": tally.cut,
        "logged_unacknowledged": unanswered,
        "ledger_size": size,
        "restart_median_s": round(starts[len(starts) // 2], 2),
        "verify_max_s": round(max(tally.verify_s), 3),
        "lost_acknowledged_ratio": round(tally.lost / max(1, tally.acknowledged), 6),
        "logged_unacknowledged_per_kill_ratio": round(unanswered / kills, 3),
        "goal_nothing_lost_met": tally.lost == 0 and tally.verified == kills,
    }
    show(figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
