"""The ledger's durable append of one exchange: CPU per ``Ledger.append([decision, release])``.

    python benchmarks/ledger_small.py [--appends 4000] [--rounds 5] [--quick] [--profile N]
                                      [--folder DIR]

Each exchange of the partner API appends two entries about one person, a decision and a release
(built as the gateway builds them), and returns once they are durable. This measures the CPU
time (``time.process_time``, every thread of the process; and apart, its user-mode share, without
the kernel's flush of each commit to disk) each such append costs, building the two entries
included:

1. from one thread, one group commit per append;
2. from eight threads at once, as a server's request threads would: appends that arrive while
   one commits are grouped into the next commit;

each in an Accord store opened as Accord opens it (SQLite, WAL, ``synchronous=FULL``, migrated
schema), beside the bare baseline: the same rows (the two leaves, the person's index row, the
tree state), computed beforehand, inserted with the standard library's ``sqlite3`` in one
transaction per exchange in the same kind of file. Contenders alternate round after round, so a
busy machine slows them alike; medians of the rounds are reported. ``--profile N`` prints the
top ``N`` functions by own time (cProfile on the CPU clock) of the one-thread append.

Ends with one line of JSON holding the figures; ratios have "ratio" in their keys.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import sqlite3
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from accord.ledger import merkle, shred
from accord.ledger.entries import DecisionEntry, ReleaseEntry
from accord.ledger.log import Ledger
from accord.ledger.rows import rows_sum
from accord.ledger.tables import STORED_MIN_LEVEL
from accord.store.erased import suppressed_refs
from accord.store.migrate import open_store

AGREEMENT = "chirp-reelix"
CLAUSE = "account-link"
PURPOSE = "essential.service.authentication"
CATEGORIES = ("user.account.linked",)
MEMBERS = 500
"""People the exchanges are about, in turn: each has a ledger key after their first."""


def cpu() -> tuple[float, float]:
    """CPU seconds of the process so far: all of it (``time.process_time``), and in user mode
    only (without the kernel's share, mostly the disk flush of each commit, the noisiest part)."""
    return time.process_time(), os.times().user


def spent(since: tuple[float, float], count: int) -> tuple[float, float]:
    """CPU seconds per exchange since ``since``: all of it, and in user mode."""
    now = cpu()
    return (now[0] - since[0]) / count, (now[1] - since[1]) / count


def exchange(number: int) -> list[DecisionEntry | ReleaseEntry]:
    """The two entries of one partner API exchange about one person, shaped as the gateway's
    ``_log_release`` and ``service.decision_entry`` shape them."""
    member = f"m{number % MEMBERS:05d}"
    at = datetime.now(UTC)
    row = (member, f"chirp-{number % MEMBERS}", "2024-05-01T12:00:00")
    return [
        DecisionEntry(
            agreement=AGREEMENT,
            clause=CLAUSE,
            purpose=PURPOSE,
            categories=tuple(sorted(CATEGORIES)),
            reason=(
                f"Allowed: agreement {AGREEMENT}, clause {CLAUSE} covers {PURPOSE} of "
                "user.account.linked for the person acting"
            ),
            people=1,
            allowed=True,
            rules=(f"agreement:{AGREEMENT}/clause:{CLAUSE}",),
            recipient="reelix",
            action="read",
            at=at,
            client="reelix-app",
        ),
        ReleaseEntry(
            agreement=AGREEMENT,
            clause=CLAUSE,
            purpose=PURPOSE,
            categories=tuple(sorted(CATEGORIES)),
            reason="chirp → reelix: 1 rows of linked_accounts about 1 person, record level",
            people=1,
            about=(f"reelix/{member}",),
            provider="chirp",
            recipient="reelix",
            fields=("linked_accounts.chirp_id", "linked_accounts.linked_at"),
            granularity="record",
            at=at,
            operation="read",
            title=None,
            scope="people",
            rows=1,
            rows_sum=rows_sum([row]),
        ),
    ]


class Store:
    """An Accord store's ledger, opened as Accord opens it."""

    def __init__(self, path: Path) -> None:
        self.engine, _ = open_store(f"sqlite:///{path}")
        self.ledger = Ledger(self.engine, suppressed=suppressed_refs)
        self.done = 0

    def one_thread(self, count: int) -> tuple[float, float]:
        """CPU seconds per exchange (all, user), appending ``count`` exchanges from this
        thread."""
        started = cpu()
        for _ in range(count):
            self.ledger.append(exchange(self.done))
            self.done += 1
        return spent(started, count)

    def threads(self, count: int, threads: int = 8) -> tuple[float, float]:
        """CPU seconds per exchange, ``count`` exchanges from ``threads`` threads at once."""
        numbers = iter(range(self.done, self.done + count))
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    number = next(numbers, None)
                if number is None:
                    return
                self.ledger.append(exchange(number))

        workers = [threading.Thread(target=work) for _ in range(threads)]
        started = cpu()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        self.done += count
        return spent(started, count)


class Raw:
    """The same rows inserted by ``sqlite3`` into the same tables of the same kind of file."""

    def __init__(self, path: Path) -> None:
        engine, _ = open_store(f"sqlite:///{path}")
        engine.dispose()
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            self.conn.execute(f"PRAGMA {pragma}")
        self.size, self.frontier = 0, list[bytes]()
        self.lock = threading.Lock()

    def rows(self, count: int) -> list[tuple[list[tuple[int, bytes, bytes]], tuple[object, ...]]]:
        """Each exchange's leaf rows and state update, computed beforehand (not timed)."""
        out = []
        for number in range(count):
            leaves = []
            for entry in exchange(number):
                data = entry.encode([hashlib.sha256(entry.reason.encode()).hexdigest()])
                leaves.append((self.size + len(leaves), data, merkle.leaf_hash(data)))
            grown = merkle.extend(
                self.size, self.frontier, [h for _, _, h in leaves], min_level=STORED_MIN_LEVEL
            )
            state = (self.size + 2, grown.root, b"".join(grown.frontier), self.size)
            out.append((leaves, state))
            self.size, self.frontier = self.size + 2, grown.frontier
        return out

    def insert(self, rows: list[tuple[list[tuple[int, bytes, bytes]], tuple[object, ...]]]) -> None:
        lookup = shred.lookup_pseudonym(b"k" * shred.KEY_SIZE)
        with self.lock:
            for leaves, state in rows:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.executemany(
                    "INSERT INTO ledger_leaves (idx, data, leaf_hash) VALUES (?, ?, ?)", leaves
                )
                self.conn.execute(
                    "INSERT INTO ledger_person_index (part, pseudonym, leaf_idx) VALUES (0, ?, ?)",
                    (lookup, leaves[1][0]),
                )
                self.conn.execute(
                    "UPDATE ledger_state SET size = ?, root = ?, frontier = ? "
                    "WHERE id = 1 AND size = ?",
                    state,
                )
                self.conn.execute("COMMIT")

    def timed(self, count: int) -> tuple[float, float]:
        """CPU seconds per exchange's rows (all, user; computed beforehand, untimed)."""
        if self.size == 0:
            self.conn.execute(
                "INSERT INTO ledger_state (id, size, root, frontier) VALUES (1, 0, ?, ?)",
                (merkle.EMPTY_ROOT, b""),
            )
        rows = self.rows(count)
        started = cpu()
        self.insert(rows)
        return spent(started, count)


def profile(store: Store, count: int, top: int) -> None:
    """The top functions by own CPU time of ``count`` one-thread appends."""
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    store.one_thread(count)
    profiler.disable()
    stats = pstats.Stats(profiler)
    print(f"calls per exchange: {stats.total_calls / count:.0f}")  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appends", type=int, default=4000, help="exchanges a round, each")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every contender")
    parser.add_argument("--quick", action="store_true", help="a quick check: 2 rounds of 300")
    parser.add_argument("--profile", type=int, default=0, help="print this many profile lines")
    parser.add_argument(
        "--folder",
        type=Path,
        default=None,
        help="where to make the stores (default: the system's temporary folder); a folder in "
        "memory (/dev/shm) leaves out the disk, to see the CPU of the append itself",
    )
    args = parser.parse_args()
    if args.quick:
        args.appends, args.rounds = 300, 2
    one: list[tuple[float, float]] = []
    eight: list[tuple[float, float]] = []
    raw: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="accord-ledger-small-", dir=args.folder) as name:
        folder = Path(name)
        store, bare = Store(folder / "accord.db"), Raw(folder / "raw.db")
        store.one_thread(MEMBERS)  # warm: connection, statement caches, every person's key
        for _ in range(args.rounds):
            one.append(store.one_thread(args.appends))
            raw.append(bare.timed(args.appends))
            eight.append(store.threads(args.appends))
        if store.ledger.head().size != 2 * store.done:
            raise SystemExit("the ledger lost appends")
        if args.profile:
            profile(store, args.appends, args.profile)
        store.engine.dispose()
        bare.conn.close()
    figures: dict[str, float | str] = {"benchmark": "ledger_small"}
    figures["appends"] = args.appends * args.rounds
    for name, timings in (("one_thread", one), ("eight_threads", eight), ("raw_sqlite", raw)):
        figures[f"{name}_us"] = statistics.median(t[0] for t in timings) * 1e6
        figures[f"{name}_user_us"] = statistics.median(t[1] for t in timings) * 1e6
    for name in ("one_thread", "eight_threads"):
        for part in ("", "_user"):
            figures[f"{name}{part}_vs_raw_sqlite_ratio"] = float(
                figures[f"{name}{part}_us"]
            ) / float(figures[f"raw_sqlite{part}_us"])
    for key, value in figures.items():
        if isinstance(value, float):
            print(f"{key:>36}: {value:10.1f}" if value >= 10 else f"{key:>36}: {value:10.3f}")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
