"""The ledger, side by side: durable appends against raw SQLite inserts and pymerkle, proofs and
verification at a million leaves.

    python benchmarks/ledger.py [--leaves 1000000] [--appends 100000] [--quick]

1. Durable appends: ``Ledger.append`` in batches of ``Settings.ledger_batch_size`` entries, each
   batch one transaction committed with SQLite WAL and ``synchronous=FULL`` before it returns,
   from one thread and from four (as a server's request threads would: one writes and waits on
   the disk while the others write their leaves); against raw inserts of the very same rows
   (index, canonical JSON, leaf hash, computed beforehand) into the same table in the same kind of
   SQLite file (same pragmas), with ``executemany`` in one transaction per batch (the headline
   baseline); against raw inserts of every row the ledger writes (those leaf rows, plus the
   stored Merkle nodes and the tree-state update of each batch, all computed beforehand); and
   against appending the same leaves to pymerkle's in-memory tree. Building the entry objects is
   outside every timing; turning them into leaves is inside the ledger's.
2. A log of ``--leaves`` leaves, built through the bulk path (large transactions), then flushed
   to disk (untimed) so that what follows is not timed against the build's own writes.
3. Inclusion proofs on it, read from the store: goal at most 1 ms each.
4. Its full verification from the leaves: goal at most 5 s for a million; with worker processes
   (one per core, the default) and in one process.

Ends with one line of JSON holding the figures; ratios have "ratio" in their keys.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from pymerkle import InmemoryTree
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from accord.config import Settings
from accord.ledger import merkle
from accord.ledger.entries import DecisionEntry, Entry, ReleaseEntry
from accord.ledger.log import Ledger
from accord.ledger.tables import STORED_MIN_LEVEL, create_ledger_tables
from accord.store.engine import make_engine

console = Console()
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def entry(number: int) -> Entry:
    """A realistic entry: mostly decisions, every third a release."""
    if number % 3:
        return DecisionEntry(
            agreement="chirp-reelix-recommendations",
            clause="send-recommendation",
            purpose="personalize.content",
            categories=("user.behavior.media_consumption",),
            people=1,
            reason=f"Allowed: clause send-recommendation covers request {number}",
            allowed=True,
            rules=("agreement:chirp-reelix-recommendations/send-recommendation",),
            recipient="chirp",
            at=AT,
        )
    return ReleaseEntry(
        agreement="chirp-reelix-recommendations",
        clause="send-recommendation",
        purpose="personalize.content",
        categories=("user.behavior.media_consumption",),
        people=1,
        reason=f"Released title {number} to one friend who consented",
        provider="reelix",
        recipient="chirp",
        fields=("title_id", "message"),
        at=AT,
    )


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


class LedgerRace:
    """Durable appends to one ledger, one append per batch, from ``threads`` threads."""

    def __init__(self, path: Path, threads: int, batch: int) -> None:
        self.engine = make_engine(f"sqlite:///{path}")
        create_ledger_tables(self.engine)
        self.ledger = Ledger(self.engine, batch_size=batch)
        self.threads = threads
        self.seconds = 0.0

    def run(self, batches: list[list[Entry]]) -> None:
        todo = iter(batches)
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    chunk = next(todo, None)
                if chunk is None:
                    return
                self.ledger.append(chunk)

        workers = [threading.Thread(target=work) for _ in range(self.threads)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        self.seconds += time.perf_counter() - started


class RawRace:
    """The same rows, same table, same kind of SQLite file: one transaction per batch."""

    def __init__(self, path: Path, *, state: bool = False) -> None:
        engine = make_engine(f"sqlite:///{path}")
        create_ledger_tables(engine)  # the very table the ledger writes its leaves to
        engine.dispose()
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            self.conn.execute(f"PRAGMA {pragma}")
        if state:
            self.conn.execute(
                "INSERT INTO ledger_state (id, size, root, frontier) VALUES (1, 0, ?, ?)",
                (merkle.EMPTY_ROOT, b""),
            )
        self.seconds = 0.0

    def run(self, batches: list[list[tuple[int, bytes, bytes]]]) -> None:
        started = time.perf_counter()
        for rows in batches:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(
                "INSERT INTO ledger_leaves (idx, data, leaf_hash) VALUES (?, ?, ?)", rows
            )
            self.conn.execute("COMMIT")
        self.seconds += time.perf_counter() - started

    def run_all(self, batches: list[Written]) -> None:
        """Every row the ledger writes: leaves, stored nodes, the state update."""
        started = time.perf_counter()
        for written in batches:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(
                "INSERT INTO ledger_leaves (idx, data, leaf_hash) VALUES (?, ?, ?)", written.leaves
            )
            self.conn.executemany(
                "INSERT INTO ledger_nodes (pos, hash) VALUES (?, ?)", written.nodes
            )
            self.conn.execute(
                "UPDATE ledger_state SET size = ?, root = ?, frontier = ? "
                "WHERE id = 1 AND size = ?",
                written.state,
            )
            self.conn.execute("COMMIT")
        self.seconds += time.perf_counter() - started


class Written(NamedTuple):
    """The rows one durable batch writes, computed beforehand for the raw baseline."""

    leaves: list[tuple[int, bytes, bytes]]
    nodes: list[tuple[int, bytes]]
    state: tuple[int, bytes, bytes, int]


def written_batches(rows: list[tuple[int, bytes, bytes]], batch: int) -> list[Written]:
    size, frontier = 0, list[bytes]()
    out = []
    for start in range(0, len(rows), batch):
        leaves = rows[start : start + batch]
        grown = merkle.extend(
            size, frontier, [hashed for _, _, hashed in leaves], min_level=STORED_MIN_LEVEL
        )
        nodes = [(merkle.node_position(level, index), h) for level, index, h in grown.nodes]
        new_size = size + len(leaves)
        out.append(Written(leaves, nodes, (new_size, grown.root, b"".join(grown.frontier), size)))
        size, frontier = new_size, grown.frontier
    return out


def bench_appends(folder: Path, count: int, batch: int) -> dict[str, float]:
    """Each contender in turn, round after round, so a busy machine slows them all alike."""
    entries = [entry(i) for i in range(count)]
    rows = []
    for index, item in enumerate(entries):
        data = item.encode()
        rows.append((index, data, hashlib.sha256(b"\x00" + data).digest()))
    one, four = LedgerRace(folder / "one.db", 1, batch), LedgerRace(folder / "four.db", 4, batch)
    raw = RawRace(folder / "raw.db")
    raw_all = RawRace(folder / "raw-all.db", state=True)
    written = written_batches(rows, batch)
    tree = InmemoryTree(algorithm="sha256")
    pymerkle_seconds = 0.0
    rounds = 10
    per_round = -(-count // rounds // batch) * batch
    with progress() as bar:
        task = bar.add_task("appends: ledger (1 and 4 threads), raw SQLite, pymerkle", total=count)
        for start in range(0, count, per_round):
            end = min(start + per_round, count)
            chunk = [entries[i : min(i + batch, end)] for i in range(start, end, batch)]
            one.run(chunk)
            raw.run([rows[i : min(i + batch, end)] for i in range(start, end, batch)])
            four.run(chunk)
            raw_all.run_all(written[start // batch : -(-end // batch)])
            started = time.perf_counter()
            for _, data, _ in rows[start:end]:
                tree.append_entry(data)
            pymerkle_seconds += time.perf_counter() - started
            bar.advance(task, end - start)
    for race in (one, four):
        if race.ledger.head().size != count:
            raise SystemExit("the ledger lost appends")
        race.engine.dispose()
    raw.conn.close()
    raw_all.conn.close()
    return {
        "ledger_appends_per_s": count / one.seconds,
        "ledger_appends_4_threads_per_s": count / four.seconds,
        "raw_sqlite_inserts_per_s": count / raw.seconds,
        "raw_sqlite_all_rows_per_s": count / raw_all.seconds,
        "pymerkle_appends_per_s": count / pymerkle_seconds,
    }


def build(folder: Path, leaves: int) -> Ledger:
    engine = make_engine(f"sqlite:///{folder / 'million.db'}")
    create_ledger_tables(engine)
    ledger = Ledger(engine)
    chunk = 50_000
    with progress() as bar:
        task = bar.add_task(f"building a {leaves:,}-leaf log (bulk path)", total=leaves)

        def stream() -> Iterator[Entry]:
            for number in range(leaves):
                yield entry(number)
                if number % chunk == chunk - 1:
                    bar.advance(task, chunk)

        ledger.append_bulk(stream(), batch_size=chunk)
        bar.update(task, completed=leaves)
    return ledger


def settle(ledger: Ledger) -> None:
    """Fold the write-ahead log into the database and flush it to disk (not timed).

    Otherwise the system would still be writing the freshly built log out while the proofs and
    the verification read it, and they would be timed against the build's own writes.
    """
    with console.status("flushing the built log to disk"):
        with ledger.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        os.sync()


def bench_proofs(ledger: Ledger, samples: int) -> dict[str, float]:
    size = ledger.head().size
    rng = random.Random(1)
    timings = []
    for _ in range(20):  # warm the connection pool and the statement caches
        ledger.inclusion_proof(rng.randrange(size))
    with progress() as bar:
        task = bar.add_task("inclusion proofs", total=samples)
        for _ in range(samples):
            index = rng.randrange(size)
            started = time.perf_counter()
            proof = ledger.inclusion_proof(index)
            timings.append(time.perf_counter() - started)
            if not proof.verify():
                raise SystemExit(f"the proof of leaf {index} does not verify")
            bar.advance(task)
    timings.sort()
    return {
        "proof_median_ms": statistics.median(timings) * 1000,
        "proof_mean_ms": statistics.fmean(timings) * 1000,
        "proof_p99_ms": timings[int(len(timings) * 0.99)] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leaves", type=int, default=1_000_000, help="size of the large log")
    parser.add_argument("--appends", type=int, default=100_000, help="entries in the append race")
    parser.add_argument("--proofs", type=int, default=2000, help="inclusion proofs to time")
    parser.add_argument(
        "--quick", action="store_true", help="a quick check: 20,000 leaves and appends"
    )
    args = parser.parse_args()
    if args.quick:
        args.leaves, args.appends, args.proofs = 20_000, 20_000, 200
    batch = Settings().ledger_batch_size
    figures: dict[str, float] = {"leaves": args.leaves, "batch_size": batch}
    with tempfile.TemporaryDirectory(prefix="accord-ledger-bench-") as name:
        folder = Path(name)
        figures.update(bench_appends(folder, args.appends, batch))
        figures["ledger_vs_raw_sqlite_ratio"] = (
            figures["ledger_appends_per_s"] / figures["raw_sqlite_inserts_per_s"]
        )
        figures["ledger_4_threads_vs_raw_sqlite_ratio"] = (
            figures["ledger_appends_4_threads_per_s"] / figures["raw_sqlite_inserts_per_s"]
        )
        figures["ledger_vs_raw_all_rows_ratio"] = (
            figures["ledger_appends_per_s"] / figures["raw_sqlite_all_rows_per_s"]
        )
        figures["ledger_vs_pymerkle_ratio"] = (
            figures["ledger_appends_per_s"] / figures["pymerkle_appends_per_s"]
        )
        started = time.perf_counter()
        ledger = build(folder, args.leaves)
        figures["bulk_build_s"] = time.perf_counter() - started
        figures["bulk_appends_per_s"] = args.leaves / figures["bulk_build_s"]
        settle(ledger)
        figures.update(bench_proofs(ledger, args.proofs))
        with console.status("verifying every leaf, node and root (one process per core)"):
            report = ledger.verify()
        if not report.ok:
            raise SystemExit(f"the ledger does not verify: {report.problems[:3]}")
        figures["verify_s"] = report.seconds
        with console.status("verifying every leaf, node and root (in one process)"):
            alone = ledger.verify(workers=1)
        if not alone.ok:
            raise SystemExit(f"the ledger does not verify: {alone.problems[:3]}")
        figures["verify_one_process_s"] = alone.seconds
        ledger.engine.dispose()

    table = Table(title="Accord ledger benchmark")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("goal")
    goals = {
        "ledger_vs_raw_sqlite_ratio": ">= 0.5",
        "ledger_4_threads_vs_raw_sqlite_ratio": ">= 0.5",
        "proof_median_ms": "<= 1 ms",
        "verify_s": "<= 5 s" if args.leaves <= 1_000_000 else "",
    }
    for key, value in figures.items():
        shown = f"{value:,.0f}" if value >= 100 else f"{value:.3f}"
        table.add_row(key, shown, goals.get(key, ""))
    console.print(table)
    print(json.dumps({k: round(v, 4) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
