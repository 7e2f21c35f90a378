"""A ledger writer for the crash and concurrency tests, run as its own process.

    python ledger_writer.py URL TAG COUNT SEED

Prints ``ready``; with a COUNT, waits for a line on stdin (so several writers start together), then
appends decisions in random batches of 1 to 8 until COUNT entries are in (forever if COUNT is 0),
printing, after each append returns, one line ``<index> <reason>`` per receipt. A line is printed
only once its entry is durable, so every printed line is a promise the ledger must keep.
"""

from __future__ import annotations

import random
import sys

from accord.ledger.entries import DecisionEntry
from accord.ledger.log import Ledger
from accord.store.engine import make_engine


def main(url: str, tag: str, count: int, seed: int) -> None:
    rng = random.Random(seed)
    ledger = Ledger(make_engine(url))
    print("ready", flush=True)
    if count:
        sys.stdin.readline()
    written = 0
    while count == 0 or written < count:
        size = rng.randint(1, 8) if count == 0 else min(rng.randint(1, 8), count - written)
        batch = [
            DecisionEntry(agreement="crash-test", reason=f"{tag}-{written + i}", allowed=True)
            for i in range(size)
        ]
        receipts = ledger.append(batch)
        lines = "".join(f"{r.index} {e.reason}\n" for r, e in zip(receipts, batch, strict=True))
        sys.stdout.write(lines)
        sys.stdout.flush()
        written += size


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
