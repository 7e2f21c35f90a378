"""One writer for several processes' ledgers (:mod:`accord.store.writer`, the ledger's job).

What a server of several workers relies on: appends of different workers waiting at once are
committed together, each caller gets the receipts of exactly its own entries and only once they
are durable, a group that fails to commit acknowledges none of its callers, a worker that cannot
reach the writer appends by itself, and a writer killed under load leaves a ledger that verifies,
with every acknowledged entry in it once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_builders import decision, release
from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from accord.errors import AccordError, ConfigError, InvalidInput, StoreError
from accord.ledger.log import APPEND_JOB, Ledger, Receipt, prepare
from accord.store.engine import make_engine, write_turn
from accord.store.writer import SharedWriter, WriterAddress, WriterClient

pytestmark = pytest.mark.integration


@pytest.fixture
def writer(ledger: Ledger) -> Iterator[SharedWriter]:
    with SharedWriter({APPEND_JOB: ledger.commit_appends}) as started:
        yield started


def _worker_ledger(url: str, client: WriterClient | None) -> Ledger:
    """A ledger on the store at ``url`` as a worker process opens it, handing appends to
    ``client``."""
    ledger = Ledger(make_engine(url))
    ledger.send_appends_to(client)
    return ledger


def _check_receipts(ledger: Ledger, appended: dict[str, list[Receipt]]) -> None:
    """Each receipt names the leaf holding the entry appended under its reason, each index once."""
    indexes = [r.index for receipts in appended.values() for r in receipts]
    assert len(indexes) == len(set(indexes))
    for reason, receipts in appended.items():
        (receipt,) = receipts
        stored = ledger.leaf(receipt.index)
        assert stored.entry()["reason"] == reason
        assert stored.leaf_hash == receipt.leaf_hash
        assert receipt.index < receipt.tree_size <= ledger.head().size
    report = ledger.verify()
    assert report.ok, report.problems


def test_groups_of_two_workers_waiting_at_once_share_one_commit(
    ledger: Ledger, writer: SharedWriter, ledger_sqlite_url: str
) -> None:
    """Each worker groups its own threads' appends and sends the group; groups of two workers
    waiting while the writer is busy are committed together (one transaction, one fsync), and
    each caller gets its own entry's receipt."""
    ledger.append([decision(0)])
    workers = [_worker_ledger(ledger_sqlite_url, WriterClient(writer.address)) for _ in range(3)]
    commits = 0

    def count(_conn: Connection) -> None:
        nonlocal commits
        commits += 1

    appended: dict[str, list[Receipt]] = {}
    sent_by: dict[str, int] = {}
    failures: list[BaseException] = []

    def append(w: int, n: int) -> None:
        entry = release(n, f"p{n}") if n % 2 else decision(n)
        sent_by[entry.reason] = w
        try:
            appended[entry.reason] = workers[w].append([entry])
        except BaseException as exc:  # noqa: BLE001  (handed to the main thread's assertion)
            failures.append(exc)

    def started(w: int, count: int) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=append, args=(w, 100 * (w + 1) + n)) for n in range(count)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while not workers[w]._writer_lock.locked():  # its first group taken, and being sent
            assert time.monotonic() < deadline
            time.sleep(0.001)
        return threads

    event.listen(ledger.engine, "commit", count)
    with write_turn(ledger.engine):  # as another process's commit would hold it
        # A third worker's append keeps the writer busy, waiting for the store's turn; the two
        # workers' first groups wait for the writer meanwhile.
        threads = started(2, 1)
        time.sleep(0.2)
        threads += started(0, 5) + started(1, 5)
        time.sleep(0.3)  # their first groups sent
        assert appended == {}, "acknowledged while the store's write turn was held elsewhere"
    for thread in threads:
        thread.join()
    event.remove(ledger.engine, "commit", count)
    assert failures == []
    _check_receipts(ledger, appended)
    # Worker 2's append, both workers' first groups together, then the rest of each worker's,
    # which queued behind its first group (in one round or two).
    assert commits <= 4
    by_commit: dict[int, set[int]] = {}
    for reason, receipts in appended.items():
        by_commit.setdefault(receipts[0].tree_size, set()).add(sent_by[reason])
    assert any({0, 1} <= w for w in by_commit.values())
    for worker in workers:
        worker.engine.dispose()


def test_a_failed_group_commit_acknowledges_none_of_its_callers(
    ledger: Ledger, writer: SharedWriter, ledger_sqlite_url: str
) -> None:
    """The disk fails as the writer commits a group of several workers' appends: each caller
    gets the store's error as the writer raised it, none a receipt, and nothing is in the log;
    the next append is written after the last good one."""
    first = ledger.append([decision(0)])
    worker = _worker_ledger(ledger_sqlite_url, WriterClient(writer.address))
    outcomes: list[list[Receipt] | BaseException | None] = [None] * 6

    def append(n: int) -> None:
        try:
            outcomes[n] = worker.append([decision(100 + n), release(200 + n, f"p{n}")])
        except BaseException as exc:  # noqa: BLE001  (handed to the main thread's assertion)
            outcomes[n] = exc

    def failing_disk(_conn: Connection) -> None:
        raise OperationalError("COMMIT", {}, OSError("disk I/O error"))

    threads = [threading.Thread(target=append, args=(n,)) for n in range(6)]
    event.listen(ledger.engine, "commit", failing_disk)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        event.remove(ledger.engine, "commit", failing_disk)
    for outcome in outcomes:
        assert isinstance(outcome, AccordError), outcome
        assert "disk I/O error" in str(outcome)
    assert ledger.head().size == first[0].tree_size
    (after,) = worker.append([decision(999)])
    assert after.index == first[0].tree_size
    assert ledger.verify().ok
    worker.engine.dispose()


def test_a_worker_that_cannot_reach_the_writer_appends_by_itself(
    ledger: Ledger, ledger_sqlite_url: str, tmp_path: Path
) -> None:
    """No writer listens at the address: the append is committed by the worker itself."""
    nowhere = WriterAddress(str(tmp_path / "no-writer" / "socket"), os.urandom(32))
    worker = _worker_ledger(ledger_sqlite_url, WriterClient(nowhere))
    appended = {e.reason: worker.append([e]) for e in (decision(1), release(2, "p2"))}
    _check_receipts(ledger, appended)
    worker.engine.dispose()


def test_a_client_with_the_wrong_key_is_refused(
    writer: SharedWriter, ledger_sqlite_url: str
) -> None:
    """A process that does not hold the server's key cannot append through its writer; it is
    told which setting is wrong, and the writer goes on serving those that do."""
    wrong = WriterAddress(writer.address.path, os.urandom(32))
    stranger = _worker_ledger(ledger_sqlite_url, WriterClient(wrong))
    with pytest.raises(ConfigError, match="ACCORD_SHARED_WRITER_ADDRESS"):
        stranger.append([decision(1)])
    worker = _worker_ledger(ledger_sqlite_url, WriterClient(writer.address))
    (receipt,) = worker.append([decision(2)])
    assert receipt.index == 0
    for engine in (stranger.engine, worker.engine):
        engine.dispose()


def test_an_address_that_is_not_one_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="ACCORD_SHARED_WRITER_ADDRESS is not a shared writer"):
        WriterAddress.from_env('{"path": "/somewhere"}')
    address = WriterAddress("/somewhere/socket", b"\x01" * 32)
    assert WriterAddress.from_env(address.to_env()) == address


def test_the_writer_answers_what_it_cannot_do_with_an_error(
    ledger: Ledger, writer: SharedWriter
) -> None:
    """A message of no known kind, or an append that is not leaves, gets an error back and
    writes nothing; the appends beside it in the same round are committed."""
    from multiprocessing.connection import Client

    with Client(writer.address.path, family="AF_UNIX", authkey=writer.address.key) as conn:
        conn.send(["not", "leaves"])
        status, kind, message, _ = conn.recv()
        assert (status, kind) == ("error", "InvalidInput")
        assert "no job for" in message
        conn.send((APPEND_JOB, ["not", "leaves"]))
        status, kind, message, _ = conn.recv()
        assert (status, kind) == ("error", "InvalidInput")
        assert "other than leaves" in message
    assert ledger.head().size == 0
    out = ledger.commit_appends([["junk"], prepare([decision(1)]), None, prepare([decision(2)])])
    assert [type(o).__name__ for o in out] == ["InvalidInput", "list", "InvalidInput", "list"]
    assert [r.index for o in out if isinstance(o, list) for r in o] == [0, 1]


WRITER = """
import sys, time
from accord.ledger.log import APPEND_JOB, Ledger
from accord.store.engine import make_engine
from accord.store.writer import SharedWriter
ledger = Ledger(make_engine(sys.argv[1]))
with SharedWriter({APPEND_JOB: ledger.commit_appends}) as writer:
    print(writer.address.to_env(), flush=True)
    time.sleep(3600)
"""


def test_a_writer_killed_under_load_loses_no_acknowledged_append(
    engine: Engine, ledger_sqlite_url: str
) -> None:
    """The writer's process is SIGKILLed while six threads append through it: an append it held
    is an error for its caller (never a receipt), the threads go on appending by themselves, and
    the ledger verifies with every acknowledged entry in it, at its receipt's index, once."""
    process = subprocess.Popen(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", WRITER, ledger_sqlite_url], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    try:
        address = WriterAddress.from_env(process.stdout.readline())
        worker = _worker_ledger(ledger_sqlite_url, WriterClient(address))
        appended: dict[str, list[Receipt]] = {}
        errors: list[BaseException] = []
        others: list[BaseException] = []
        killed = threading.Event()
        after: list[int] = [0] * 6

        def append(n: int) -> None:
            k = 0
            while after[n] < 15:
                entry = release(1000 * n + k, f"p{k % 5}") if k % 2 else decision(1000 * n + k)
                k += 1
                was_killed = killed.is_set()
                try:
                    appended[entry.reason] = worker.append([entry])
                except StoreError as exc:
                    errors.append(exc)
                except BaseException as exc:  # noqa: BLE001  (for the main thread)
                    others.append(exc)
                    return
                if was_killed:
                    after[n] += 1

        threads = [threading.Thread(target=append, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        while len(appended) < 60:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        killed.set()
        for thread in threads:
            thread.join(timeout=120)
        assert others == []
        for error in errors:
            assert "stopped before acknowledging" in str(error)
        reader = Ledger(engine)
        _check_receipts(reader, appended)
        # Whatever the writer committed without answering is in the log too, unacknowledged.
        assert reader.head().size >= len(appended)
        assert all(done == 15 for done in after)
        worker.engine.dispose()
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def test_a_writer_whose_thread_dies_is_left_for_writing_here(tmp_path: Path) -> None:
    """Whatever stops the writer's thread, no client is left waiting on it: the write it held is
    an error (not acknowledged), and the next is written by the client itself."""

    def dying(payloads: list[object]) -> list[object]:
        raise SystemExit("stopped")  # not an error a job is expected to raise

    with SharedWriter({"job": dying}) as writer:
        client = WriterClient(writer.address)
        with pytest.raises(StoreError, match="stopped before acknowledging"):
            client.call("job", 1)
        assert client.call("job", 2) == (False, None)
        assert not Path(writer.address.path).exists()


def test_a_writer_stops_accepting_even_once_its_accepting_thread_has_left() -> None:
    """The writer's thread stops (as above) just as its accepting thread, having taken a
    connection, sees it closing and leaves: the last connection that would wake the accepting
    thread is taken by nobody, and must not wait for an answer (it waited forever, and with it
    every client of the writer)."""
    with SharedWriter({"job": lambda payloads: payloads}) as writer:
        writer._closing = True
        accepting = writer._threads[1]
        # Wakes the accepting thread, which leaves: nobody accepts any more.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as knock:
            knock.connect(writer.address.path)
        accepting.join(timeout=30)
        assert not accepting.is_alive()
        stopping = threading.Thread(target=writer._stop_accepting, daemon=True)
        stopping.start()
        stopping.join(timeout=60)  # it took no time; it never ended before
        assert not stopping.is_alive()
        assert not Path(writer.address.path).exists()
