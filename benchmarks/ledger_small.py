"""The ledger's durable append of one exchange: CPU per ``Ledger.append([decision, release])``.

    python benchmarks/ledger_small.py [--appends 4000] [--rounds 5] [--quick] [--profile N]

Each exchange of the partner API appends two entries about one person, a decision and a release
(built as the gateway builds them), and returns once they are durable. This measures the CPU
time (``time.process_time``, every thread of the process) each such append costs, building the
two entries included:

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

    def one_thread(self, count: int) -> float:
        """CPU seconds per exchange, appending ``count`` exchanges from this thread."""
        started = time.process_time()
        for _ in range(count):
            self.ledger.append(exchange(self.done))
            self.done += 1
        return (time.process_time() - started) / count

    def threads(self, count: int, threads: int = 8) -> float:
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
        started = time.process_time()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        self.done += count
        return (time.process_time() - started) / count


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

    def timed(self, count: int) -> float:
        """CPU seconds per exchange's rows (computed beforehand, untimed)."""
        if self.size == 0:
            self.conn.execute(
                "INSERT INTO ledger_state (id, size, root, frontier) VALUES (1, 0, ?, ?)",
                (merkle.EMPTY_ROOT, b""),
            )
        rows = self.rows(count)
        started = time.process_time()
        self.insert(rows)
        return (time.process_time() - started) / count


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
    args = parser.parse_args()
    if args.quick:
        args.appends, args.rounds = 300, 2
    one: list[float] = []
    eight: list[float] = []
    raw: list[float] = []
    with tempfile.TemporaryDirectory(prefix="accord-ledger-small-") as name:
        folder = Path(name)
        store, bare = Store(folder / "accord.db"), Raw(folder / "raw.db")
        store.one_thread(50)  # warm: connection, statement caches, the first people's keys
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
    figures = {
        "benchmark": "ledger_small",
        "appends": args.appends * args.rounds,
        "one_thread_us": statistics.median(one) * 1e6,
        "eight_threads_us": statistics.median(eight) * 1e6,
        "raw_sqlite_us": statistics.median(raw) * 1e6,
    }
    figures["one_thread_vs_raw_sqlite_ratio"] = figures["one_thread_us"] / figures["raw_sqlite_us"]
    figures["eight_threads_vs_raw_sqlite_ratio"] = (
        figures["eight_threads_us"] / figures["raw_sqlite_us"]
    )
    for key, value in figures.items():
        if isinstance(value, float):
            print(f"{key:>36}: {value:10.1f}" if value >= 10 else f"{key:>36}: {value:10.3f}")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
