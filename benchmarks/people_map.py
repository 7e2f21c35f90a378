"""The people map's cost, side by side with what the ledger does anyway.

    python benchmarks/people_map.py [--people 100000] [--entries 200000] [--quick]

1. The first checkpoint over a log of ``--entries`` releases about ``--people`` people (each about
   one to three of them): bringing the map up to date from nothing (reading each person-index row
   and leaf hash once, signing the keying function once per person, building every bucket),
   against appending the same entries durably in batches, the work that made them.
2. A later checkpoint after 1% more entries: the incremental update, against appending those
   entries.
3. A person's completeness proof (one leaf row, one bucket, 16 stored nodes, one signature),
   against an inclusion proof of one of their entries; and the proof's size.

Ends with one line of JSON; ratios have "ratio" in their keys.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from accord.ledger import mapstore, shred
from accord.ledger.checkpoint import Signer
from accord.ledger.entries import Entry, ReleaseEntry
from accord.ledger.log import Ledger
from accord.ledger.tables import create_ledger_tables
from accord.store.engine import make_engine

console = Console()


def release(number: int, people: int, rng: random.Random) -> Entry:
    about = tuple(f"p{rng.randrange(people):07d}" for _ in range(rng.randint(1, 3)))
    return ReleaseEntry(
        agreement="chirp-reelix-recommendations",
        clause="send-recommendation",
        purpose="personalize.content",
        categories=("user.behavior.media_consumption",),
        reason=f"release {number}",
        provider="reelix",
        recipient="chirp",
        fields=("title_id",),
        about=about,
    )


def timed(work: object) -> float:
    start = time.perf_counter()
    work()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--proofs", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="a small run, for the tests")
    args = parser.parse_args()
    if args.quick:
        args.people, args.entries, args.proofs = 2_000, 4_000, 30
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'ledger.db'}")
        create_ledger_tables(engine)
        ledger = Ledger(engine, Signer.generate("bench.accord.local/ledger"))
        entries = [release(n, args.people, rng) for n in range(args.entries)]
        append_s = timed(lambda: ledger.append_bulk(entries, batch_size=5_000))
        first_s = timed(ledger.checkpoint)
        first_cost = dict(ledger.last_map_cost)
        more = [release(n, args.people, rng) for n in range(args.entries // 100)]
        more_append_s = timed(lambda: ledger.append_bulk(more, batch_size=5_000))
        later_s = timed(ledger.checkpoint)
        later_cost = dict(ledger.last_map_cost)
        signer = ledger.signer
        if signer is None:
            raise SystemExit("the ledger has no signing key")
        function = signer.vuf()
        people = [f"p{rng.randrange(args.people):07d}" for _ in range(args.proofs)]
        with engine.connect() as conn:
            keys = shred.keys_for(conn, people, create=False)
        prove_times, inclusion_times, sizes, lengths = [], [], [], []
        for person in people:
            if person not in keys:
                continue
            lookup = keys[person][1]
            start = time.perf_counter()
            with engine.connect() as conn:
                proof = mapstore.prove(conn, lookup, function)
            prove_times.append(time.perf_counter() - start)
            sizes.append(len(json.dumps(proof)))
            lengths.append(len(proof["siblings"]))
            index = ledger.entries_about(person)[0]
            inclusion_times.append(timed(lambda index=index: ledger.inclusion_proof(index)))
        engine.dispose()
    prove_ms = statistics.median(prove_times) * 1000
    inclusion_ms = statistics.median(inclusion_times) * 1000
    console.print(f"{args.entries:,} releases about {args.people:,} people")
    console.print(
        f"first checkpoint with the map: {first_s:.2f} s; appending the entries: {append_s:.2f} s"
        f" (ratio {first_s / append_s:.2f}); {first_cost}"
    )
    console.print(
        f"checkpoint after {len(more):,} more: {later_s:.3f} s; appending them: "
        f"{more_append_s:.3f} s (ratio {later_s / more_append_s:.2f}); {later_cost}"
    )
    console.print(
        f"completeness proof p50 {prove_ms:.2f} ms vs an inclusion proof {inclusion_ms:.2f} ms "
        f"(ratio {prove_ms / inclusion_ms:.2f}); {statistics.median(sizes):.0f} bytes of JSON, "
        f"{statistics.median(lengths):.0f} hashes on the path"
    )
    print(
        json.dumps(
            {
                "benchmark": "people_map",
                "people": args.people,
                "entries": args.entries,
                "first_checkpoint_s": round(first_s, 4),
                "first_checkpoint_vs_append_ratio": round(first_s / append_s, 4),
                "later_checkpoint_s": round(later_s, 4),
                "later_checkpoint_vs_append_ratio": round(later_s / more_append_s, 4),
                "later_people_touched": later_cost["people_touched"],
                "completeness_proof_ms": round(prove_ms, 4),
                "completeness_vs_inclusion_proof_ratio": round(prove_ms / inclusion_ms, 4),
                "completeness_proof_bytes": int(statistics.median(sizes)),
                "path_hashes": int(statistics.median(lengths)),
            }
        )
    )


if __name__ == "__main__":
    main()
