"""Durability and concurrency across processes: SIGKILL at random moments, two writers at once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from itertools import pairwise
from pathlib import Path
from typing import IO

import pytest

from accord.ledger.log import Ledger
from accord.ledger.tables import create_ledger_tables
from accord.store.engine import make_engine

WRITER = Path(__file__).with_name("ledger_writer.py")


def _start_writer(url: str, tag: str, count: int, seed: int) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603  (our own script, by path)
        [sys.executable, str(WRITER), url, tag, str(count), str(seed)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _collect(stream: IO[str], lines: list[str]) -> None:
    lines.extend(iter(stream.readline, ""))


def _acknowledged(lines: list[str]) -> dict[int, str]:
    receipts: dict[int, str] = {}
    for line in lines:
        if line == "ready\n" or not line.endswith("\n"):
            continue  # a line cut short by the kill was never a promise
        index, reason = line.split()
        assert int(index) not in receipts, f"index {index} acknowledged twice"
        receipts[int(index)] = reason
    return receipts


@pytest.mark.slow
@pytest.mark.integration
def test_sigkill_never_loses_an_acknowledged_append(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(url)
    create_ledger_tables(engine)
    ledger = Ledger(engine)
    seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    promised: dict[int, str] = {}
    deadline = time.monotonic() + 15
    rounds = 0
    while rounds < 3 or (rounds < 8 and time.monotonic() < deadline):
        writer = _start_writer(url, f"round{rounds}", 0, rng.randrange(2**32))
        assert writer.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=_collect, args=(writer.stdout, lines))
        reader.start()
        while not lines and writer.poll() is None:
            time.sleep(0.01)  # wait for "ready": imports take a while
        time.sleep(rng.uniform(0.05, 1.2))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        reader.join()
        assert writer.returncode == -signal.SIGKILL, writer.stderr.read() if writer.stderr else ""
        for pipe in (writer.stdin, writer.stdout, writer.stderr):
            if pipe is not None:
                pipe.close()
        got = _acknowledged(lines)
        assert got, f"round {rounds} (seed {seed}): the writer acknowledged nothing"
        promised.update(got)
        rounds += 1

        report = ledger.verify()
        assert report.ok, f"round {rounds} (seed {seed}): {report.problems}"
        head = ledger.head()
        assert max(promised) < head.size
        for index, reason in promised.items():
            assert ledger.leaf(index).entry()["reason"] == reason, f"seed {seed}, leaf {index}"
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.integration
def test_two_processes_on_postgres_never_fork_the_tree(ledger_pg_url: str) -> None:
    engine = make_engine(ledger_pg_url)
    create_ledger_tables(engine)
    per_writer = 250
    writers = [_start_writer(ledger_pg_url, tag, per_writer, n) for n, tag in enumerate("ab")]
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n"
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    outputs = [writer.communicate(timeout=120) for writer in writers]
    for writer, (_, errors) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, errors
    receipts = [_acknowledged(out.splitlines(keepends=True)) for out, _ in outputs]
    indexes = sorted([*receipts[0], *receipts[1]])
    assert indexes == list(range(2 * per_writer))  # every index exactly once
    ledger = Ledger(engine)
    assert ledger.head().size == 2 * per_writer
    for got in receipts:
        assert len(got) == per_writer
        for index, reason in got.items():
            assert ledger.leaf(index).entry()["reason"] == reason
    # Interleaved, not one after the other: both really wrote at once.
    owners = [receipts[0].get(i) is not None for i in range(2 * per_writer)]
    assert sum(a != b for a, b in pairwise(owners)) > 2
    report = ledger.verify()
    assert report.ok, report.problems
    engine.dispose()
