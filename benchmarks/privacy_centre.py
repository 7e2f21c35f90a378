"""A person's "where my data went" page at a million people, side by side with the bare SQL lookup.

    python benchmarks/privacy_centre.py [--people 1000000] [--releases 12] [--share 0.25]
        [--sample 200] [--keep DIR] [--quick]

1. A store (SQLite file, as the demo's) whose ledger holds ``--releases`` bulk releases, each
   about a random ``--share`` of ``--people`` Chirp members (as the watch-activity and report
   flows release), and one release about each person sampled; then a signed checkpoint. Built
   through ``Ledger.append`` (untimed).
2. ``accord serve``'s app on uvicorn in this process; ``GET /me/releases`` for each sampled person
   in turn, signed in with their cookie: every entry about them, each with its inclusion proof
   under the checkpoint and its row on the page. Latency per request, p50 and p95 (goal: p95 at
   most 300 ms), and the proof bundle's size (``/me/releases/proof.json``).
3. The baseline, alternated with the page person by person: the same entries looked up with bare
   SQL on a ``sqlite3`` connection of its own — the person's key and pseudonym, their index rows
   (a search of each part of the index by pseudonym), and the leaves' bytes — no proof, no page.

A bulk release's leaf commits to the pseudonyms of everyone in it by the root of a Merkle tree
(:mod:`accord.ledger.subjects`): a person's proof of it carries the small leaf and their path in
that tree, whatever the size of the release. The largest leaf's size is printed.

``--keep DIR`` builds the store in ``DIR`` and reuses it when run again with the same options
(a million people take a while to build).

Ends with one line of JSON; ratios have "ratio" in their keys. ``--quick`` runs it small
(``tests/test_benchmarks.py`` does).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import threading
import time
from contextlib import ExitStack, closing
from pathlib import Path

import httpx
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from accord.api import create_app
from accord.api.screens import PERSON_COOKIE
from accord.api.signing import Signer
from accord.ledger.entries import ReleaseEntry
from accord.service import Accord, person_refs

console = Console()
KEY = b"benchmark-cookie-key-32-bytes-long!"
PARTY = "chirp"


def member(n: int) -> str:
    return f"c{n:07d}"


def build(accord: Accord, people: int, releases: int, share: float, sampled: list[int]) -> None:
    """The bulk releases and one release about each sampled person, into ``accord``'s ledger."""
    rng = random.Random(7)
    size = int(people * share)
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("bulk releases into the ledger", total=releases + 1)
        for r in range(releases):
            about = sorted(rng.sample(range(people), size))
            accord.ledger.append(
                [
                    ReleaseEntry(
                        agreement="chirp-reelix",
                        reason=f"bulk release {r + 1}",
                        clause="watch-activity",
                        purpose="functional.service",
                        categories=("user.behavior.media_consumption",),
                        about=person_refs(PARTY, [member(n) for n in about]),
                        provider="reelix",
                        recipient=PARTY,
                        people=size,
                    )
                ]
            )
            progress.advance(task)
        accord.ledger.append(
            [
                ReleaseEntry(
                    agreement="chirp-reelix",
                    reason="friend picker for a member",
                    clause="friend-picker",
                    purpose="functional.service",
                    categories=("user.social",),
                    about=person_refs(PARTY, [member(n)]),
                    provider=PARTY,
                    recipient="reelix",
                )
                for n in sampled
            ]
        )
        progress.advance(task)
    accord.ledger.checkpoint()


class Server:
    """The app on uvicorn in a thread, on a free loopback port."""

    def __init__(self, accord: Accord) -> None:
        app = create_app(accord, {}, key=KEY)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def bare(db: sqlite3.Connection, person: str) -> list[bytes]:
    """The person's leaves by bare SQL: their pseudonym, their index rows, the leaves' bytes."""
    row = db.execute(
        "SELECT key, lookup FROM person_keys WHERE person_id = ?", (f"{PARTY}/{person}",)
    ).fetchone()
    if row is None:
        return []
    # The index is keyed by part, then pseudonym: its parts are named, so the lookup is a search
    # of each part's key, not a scan of every row.
    return [
        bytes(data)
        for (data,) in db.execute(
            "SELECT l.data FROM ledger_person_index AS i JOIN ledger_leaves AS l "
            "ON l.idx = i.leaf_idx WHERE i.part IN (SELECT 0 UNION ALL SELECT part FROM "
            "ledger_index_parts) AND i.pseudonym = ? ORDER BY i.leaf_idx",
            (row[1],),
        )
    ]


def built_store(
    accord: Accord, home: Path, args: argparse.Namespace, people: int, sampled: list[int]
) -> float:
    """Build the store in ``home`` (or find it built there with the same options): the seconds
    the build took."""
    settings = f"{people} {args.releases} {args.share} {len(sampled)}"
    done = home / "built"
    if done.is_file() and done.read_text().split("\n")[0] == settings:
        return float(done.read_text().split("\n")[1])
    if accord.ledger.head().size:
        raise SystemExit(f"{home} holds a store built otherwise: remove it or keep elsewhere")
    started = time.perf_counter()
    build(accord, people, args.releases, args.share, sampled)
    built = time.perf_counter() - started
    done.write_text(f"{settings}\n{built}\n")
    return built


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run, to check it runs")
    parser.add_argument("--people", type=int, help="people (default 1,000,000)")
    parser.add_argument("--releases", type=int, default=12, help="bulk releases (default 12)")
    parser.add_argument("--share", type=float, default=0.25, help="share of people in each")
    parser.add_argument("--sample", type=int, help="people whose page is timed (default 200)")
    parser.add_argument("--keep", type=Path, help="build the store here, or reuse the one built")
    args = parser.parse_args()
    people = args.people or (20_000 if args.quick else 1_000_000)
    sample = args.sample or (30 if args.quick else 200)
    sampled = random.Random(3).sample(range(people), sample)
    cookies = Signer(KEY, "sign-in")
    page_ms: list[float] = []
    bare_ms: list[float] = []
    entries: list[int] = []
    proof_bytes: list[int] = []
    with ExitStack() as stack:
        home = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder = home / "accord-data"
        accord = stack.enter_context(Accord.open(data_dir=folder))
        built = built_store(accord, home, args, people, sampled)
        url = stack.enter_context(Server(accord))
        client = stack.enter_context(httpx.Client(base_url=url, timeout=60))
        db = stack.enter_context(closing(sqlite3.connect(folder / "accord.db")))
        # A bulk release's leaf commits to its subjects by a root: a person's proof carries it.
        leaf_bytes = int(db.execute("SELECT max(length(data)) FROM ledger_leaves").fetchone()[0])
        for n in sampled:
            person = member(n)
            client.cookies.set(
                PERSON_COOKIE, cookies.sign({"party": PARTY, "person": person}, 3600)
            )
            t0 = time.perf_counter()
            page = client.get("/me/releases", params={"party": PARTY})
            page_ms.append((time.perf_counter() - t0) * 1000)
            if page.status_code != 200:
                raise SystemExit(f"/me/releases answered {page.status_code}: {page.text[:300]}")
            t0 = time.perf_counter()
            found = bare(db, person)
            bare_ms.append((time.perf_counter() - t0) * 1000)
            entries.append(len(found))
            proof = client.get("/me/releases/proof.json", params={"party": PARTY})
            proof_bytes.append(len(proof.content))
    p50, p95 = statistics.median(page_ms), percentile(page_ms, 0.95)
    b50, b95 = statistics.median(bare_ms), percentile(bare_ms, 0.95)
    table = Table(title=f"/me/releases at {people:,} people ({args.releases} bulk releases)")
    for column in ("", "p50 ms", "p95 ms"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row("the page (proofs, rows, HTML)", f"{p50:.1f}", f"{p95:.1f}")
    table.add_row("bare SQL lookup of the same entries", f"{b50:.2f}", f"{b95:.2f}")
    console.print(table)
    console.print(
        f"entries per person: median {statistics.median(entries):.0f}; proof bundle median "
        f"{statistics.median(proof_bytes) / 1024:.1f} KiB; goal p95 ≤ 300 ms: "
        f"{'met' if p95 <= 300 else 'not met'} ({p95:.0f} ms); a bulk release's leaf "
        f"{leaf_bytes / 1024:.0f} KiB; built in {built:.0f} s"
    )
    print(
        json.dumps(
            {
                "benchmark": "privacy_centre",
                "people": people,
                "bulk_releases": args.releases,
                "sampled": sample,
                "entries_median": statistics.median(entries),
                "page_p50_ms": round(p50, 2),
                "page_p95_ms": round(p95, 2),
                "bare_p50_ms": round(b50, 3),
                "bare_p95_ms": round(b95, 3),
                "page_vs_bare_p95_ratio": round(p95 / b95, 1) if b95 else None,
                "proof_bytes_median": statistics.median(proof_bytes),
                "bulk_leaf_bytes": leaf_bytes,
                "build_seconds": round(built, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
