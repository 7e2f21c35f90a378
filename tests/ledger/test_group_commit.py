"""Group commit: concurrent appends share commits, and each is acknowledged only with its group.

What must hold whatever the timing (the contract of :meth:`accord.ledger.log.Ledger.append`):
every receipt names the leaf holding exactly the entry its caller appended, no index is handed
out twice, the tree verifies, and when the commit of a group fails, no caller of that group gets
a receipt and none of their entries is in the log.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_builders import decision, release
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from accord.errors import AccordError
from accord.ledger import merkle
from accord.ledger.log import AppendInDoubt, Ledger, Receipt
from accord.ledger.tables import create_ledger_tables
from accord.store.engine import make_engine

pytestmark = pytest.mark.integration


def _append_at_once(
    ledger: Ledger, batches: list[list[Any]]
) -> tuple[list[list[Receipt] | BaseException], int]:
    """Append each batch from its own thread, all released at once; returns what each thread
    got (its receipts, or the error it raised) and how many commits the ledger's engine made."""
    commits = 0

    def count(_conn: Connection) -> None:
        nonlocal commits
        commits += 1

    event.listen(ledger.engine, "commit", count)
    got: list[list[Receipt] | BaseException] = [[] for _ in batches]
    start = threading.Barrier(len(batches))

    def writer(n: int) -> None:
        start.wait()
        try:
            got[n] = ledger.append(batches[n])
        except BaseException as exc:  # noqa: BLE001  (handed to the main thread's assertion)
            got[n] = exc

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    event.remove(ledger.engine, "commit", count)
    return got, commits


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(sizes=st.lists(st.integers(1, 4), min_size=2, max_size=24))
def test_every_receipt_names_its_own_entry(ledger: Ledger, sizes: list[int]) -> None:
    """Threads appending at once: each receipt's leaf is that thread's entry, each index once."""
    before = ledger.head().size
    batches: list[list[Any]] = [
        [
            release(k, f"p{k % 3}") if k % 2 else decision(k)
            for k in range(1000 * n, 1000 * n + size)
        ]
        for n, size in enumerate(sizes)
    ]
    got, commits = _append_at_once(ledger, batches)
    indexes: list[int] = []
    for batch, receipts in zip(batches, got, strict=True):
        assert not isinstance(receipts, BaseException), receipts
        assert len(receipts) == len(batch)
        for entry, receipt in zip(batch, receipts, strict=True):
            stored = ledger.leaf(receipt.index)
            assert stored.entry()["reason"] == entry.reason
            assert merkle.leaf_hash(stored.data) == stored.leaf_hash == receipt.leaf_hash
            # Acknowledged as durable in a tree that holds it.
            assert receipt.index < receipt.tree_size <= ledger.head().size
            indexes.append(receipt.index)
        # One caller's entries stay together and in order.
        assert [r.index for r in receipts] == list(
            range(receipts[0].index, receipts[0].index + len(batch))
        )
    assert sorted(indexes) == list(range(before, before + sum(sizes)))
    assert ledger.head().size == before + sum(sizes)
    assert commits <= len(batches)
    report = ledger.verify()
    assert report.ok, report.problems


def test_a_failed_group_commit_acknowledges_none_of_its_group(ledger: Ledger) -> None:
    """The disk fails as a group is committed: every caller in it gets an error, none a receipt,
    and none of their entries is in the log; the next append is written after the last good one."""
    first = ledger.append([decision(0)])
    callers = 6
    outcomes: list[list[Receipt] | BaseException | None] = [None] * callers

    def writer(n: int) -> None:
        try:
            outcomes[n] = ledger.append([decision(100 + n), release(200 + n, f"p{n}")])
        except BaseException as exc:  # noqa: BLE001  (handed to the main thread's assertion)
            outcomes[n] = exc

    def failing_disk(_conn: Connection) -> None:
        raise OperationalError("COMMIT", {}, OSError("disk I/O error"))

    # Hold the writer's turn so that every caller queues behind it, then fail the next commit:
    # the whole queue is one group, committed (and failed) at once.
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(callers)]
    with ledger._writing():  # the test forms the group deterministically
        for thread in threads:
            thread.start()
        while True:
            with ledger._queue_lock:
                if len(ledger._queue) == callers:
                    break
            time.sleep(0.001)
        event.listen(ledger.engine, "commit", failing_disk)
    for thread in threads:
        thread.join()
    event.remove(ledger.engine, "commit", failing_disk)
    for outcome in outcomes:
        assert isinstance(outcome, AccordError), outcome
        assert "disk I/O error" in str(outcome)
    assert ledger.head().size == first[0].tree_size
    after = ledger.append([decision(999)])
    assert after[0].index == first[0].tree_size
    report = ledger.verify()
    assert report.ok, report.problems


def test_an_append_that_cannot_reach_the_database_gets_the_error_and_the_next_is_written(
    ledger: Ledger,
) -> None:
    """The database fails as the writer begins, before it takes any group: the append waiting
    gets the store's error (not a failure of the writer's own), the writer gives its connection
    up, and the next append is written after the last good one on a new connection."""
    first = ledger.append([decision(0)])

    def unreachable(_conn: Connection) -> None:
        raise OperationalError("BEGIN", {}, OSError("connection refused"))

    event.listen(ledger.engine, "begin", unreachable)
    try:
        with pytest.raises(AccordError, match="connection refused"):
            ledger.append([decision(1), release(2, "p1")])
    finally:
        event.remove(ledger.engine, "begin", unreachable)
    assert ledger.head().size == first[0].tree_size
    after = ledger.append([decision(3)])
    assert after[0].index == first[0].tree_size
    assert ledger.verify().ok


def test_two_ledgers_on_one_sqlite_file_share_the_writers_turn(ledger_sqlite_url: str) -> None:
    """Two ledgers on one file (as two processes would open it) append at once: one tree."""
    engines = [make_engine(ledger_sqlite_url) for _ in range(2)]
    create_ledger_tables(engines[0])
    ledgers = [Ledger(engine) for engine in engines]
    got: list[list[int]] = [[], []]
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for k in range(60):
                got[n].extend(r.index for r in ledgers[n].append([decision(1000 * n + k)]))
        except BaseException as exc:  # noqa: BLE001  (handed to the main thread's assertion)
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(got[0] + got[1]) == list(range(120))
    for n in range(2):
        for k, index in enumerate(got[n]):
            assert ledgers[0].leaf(index).entry()["reason"] == f"decision {1000 * n + k}"
    report = ledgers[0].verify()
    assert report.ok, report.problems
    for engine in engines:
        engine.dispose()


HOLD_TURN = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
"""


def test_an_append_waits_for_the_files_turn_held_by_another_process(
    ledger_sqlite_url: str,
) -> None:
    """The ledger writes in the same turn as every other writer of its SQLite file (the ads
    store's impressions and charges take it too): held by another process, an append waits."""
    engine = make_engine(ledger_sqlite_url)
    create_ledger_tables(engine)
    ledger = Ledger(engine)
    holder = subprocess.Popen(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", HOLD_TURN, f"{engine.url.database}-writers.lock"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "held"
        done = threading.Event()
        thread = threading.Thread(target=lambda: (ledger.append([decision(1)]), done.set()))
        thread.start()
        assert not done.wait(0.5), "appended while another process held the file's turn"
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert done.wait(30)
        thread.join()
    finally:
        holder.kill()
        holder.communicate()
    assert ledger.head().size == 1
    engine.dispose()


def _one_commit_while_the_database_is_held(ledger: Ledger, hold: Any, release_hold: Any) -> None:
    """Appends arriving while the database's write lock is held elsewhere (another process's
    commit) share one commit once it is let go, and each gets its own entry's receipt."""
    ledger.append([decision(0)])  # the state row exists
    before = ledger.head().size
    callers = 5
    commits = 0

    def count(_conn: Connection) -> None:
        nonlocal commits
        commits += 1

    outcomes: list[list[Receipt] | BaseException | None] = [None] * callers

    def writer(n: int) -> None:
        try:
            outcomes[n] = ledger.append([decision(300 + n)])
        except BaseException as exc:  # noqa: BLE001  (handed to the main thread's assertion)
            outcomes[n] = exc

    hold()
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(callers)]
    try:
        for thread in threads:
            thread.start()
        # Every caller is queued: one of them waits for the database holding the writer's turn,
        # its own append still in the queue (a writer that took its group before the database's
        # lock would leave one fewer: a guard, not a timing, ends the wait then).
        guard = time.monotonic() + 60
        while True:
            with ledger._queue_lock:
                if len(ledger._queue) == callers:
                    break
            assert time.monotonic() < guard, "a writer took its group before the database's lock"
            time.sleep(0.001)
        event.listen(ledger.engine, "commit", count)
    finally:
        release_hold()
    for thread in threads:
        thread.join()
    event.remove(ledger.engine, "commit", count)
    assert commits == 1
    for n, outcome in enumerate(outcomes):
        assert isinstance(outcome, list), outcome
        (receipt,) = outcome
        assert ledger.leaf(receipt.index).entry()["reason"] == f"decision {300 + n}"
    assert ledger.head().size == before + callers
    report = ledger.verify()
    assert report.ok, report.problems


def test_appends_waiting_for_another_writer_share_one_commit(
    ledger: Ledger, ledger_sqlite_url: str
) -> None:
    other = sqlite3.connect(ledger_sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    other.execute("PRAGMA busy_timeout=30000")

    def hold() -> None:
        other.execute("BEGIN IMMEDIATE")

    def release_hold() -> None:
        other.execute("COMMIT")

    _one_commit_while_the_database_is_held(ledger, hold, release_hold)
    other.close()


@pytest.mark.postgres
def test_appends_waiting_for_another_writer_share_one_commit_on_postgres(
    ledger_pg_url: str,
) -> None:
    engine = make_engine(ledger_pg_url)
    create_ledger_tables(engine)
    ledger = Ledger(engine)
    other = make_engine(ledger_pg_url).connect()
    held: list[Any] = []

    def hold() -> None:
        held.append(other.begin())
        other.execute(text("SELECT size FROM ledger_state WHERE id = 1 FOR UPDATE"))

    def release_hold() -> None:
        held.pop().commit()

    _one_commit_while_the_database_is_held(ledger, hold, release_hold)
    other.close()
    other.engine.dispose()
    engine.dispose()


def test_appends_beside_erasures_and_compactions_are_all_written(ledger: Ledger) -> None:
    """Erasures and index compactions take the writer's turn between groups while appends keep
    arriving: every append returns (none is left asleep when they let go of the turn), with its
    own entries at its receipts, and the log verifies."""
    callers, rounds = 6, 15
    got: list[list[list[Receipt]]] = [[] for _ in range(callers)]

    def writer(n: int) -> None:
        for k in range(rounds):
            got[n].append(ledger.append([decision(1000 * n + k), release(k, f"p{n}-{k}")]))

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(callers)]
    for thread in threads:
        thread.start()
    for k in range(rounds):
        ledger.erase(f"nobody-{k}", "a person never appended")
        ledger.compact_index()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "an append was never woken"
    indexes = [r.index for calls in got for receipts in calls for r in receipts]
    assert len(indexes) == len(set(indexes)) == 2 * callers * rounds
    for n, calls in enumerate(got):
        for k, (first, second) in enumerate(calls):
            assert second.index == first.index + 1
            stored = ledger.leaf(first.index)
            assert stored.leaf_hash == first.leaf_hash
            assert f'"decision {1000 * n + k}"' in stored.data.decode()
    assert ledger.verify().ok


# -- an append larger than a batch ---------------------------------------------------------------


def _small_batches(engine: Any, signer: Any) -> Ledger:
    """A ledger whose groups hold 4 entries: an append of 10 is written in three parts."""
    return Ledger(engine, signer, batch_size=4)


def test_an_append_larger_than_a_batch_failing_in_its_last_part_leaves_nothing(
    engine: Any, signer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An append is committed whole or not at all, also one written in parts: a failure while
    writing its third part leaves none of it, and its caller no receipt."""
    ledger = _small_batches(engine, signer)
    before = ledger.append([decision(0)])[0].tree_size
    write = ledger._write_locked
    parts: list[int] = []

    def failing_third(conn: Any, state: Any, leaves: Any) -> list[Receipt]:
        parts.append(len(leaves.entries))
        if len(parts) == 3:
            raise OperationalError("INSERT", {}, OSError("disk I/O error"))
        return write(conn, state, leaves)

    monkeypatch.setattr(ledger, "_write_locked", failing_third)
    with pytest.raises(AccordError, match="disk I/O error"):
        ledger.append([release(k, "p-new") for k in range(10)])
    assert parts == [4, 4, 2]
    monkeypatch.undo()
    assert ledger.head().size == before
    assert ledger.entries_about("p-new") == []
    # Another writer grows the log past where the failed append reached...
    Ledger(engine, signer).append([decision(k) for k in range(1, 11)])
    # ...and the person's key, made by the rolled-back parts, is not used again: the next entry
    # about them is found through the key the ledger stores.
    (receipt,) = ledger.append([release(99, "p-new")])
    assert receipt.index == before + 10
    assert ledger.entries_about("p-new") == [before + 10]
    assert ledger.verify().ok


@pytest.mark.parametrize("stored", [True, False])
def test_an_append_larger_than_a_batch_whose_commit_fails_is_in_doubt(
    engine: Any, signer: Any, monkeypatch: pytest.MonkeyPatch, *, stored: bool
) -> None:
    """The commit of an append written in parts fails, having stored it or not: its caller gets
    the receipts it would have had, and the ledger says whether it holds them."""
    ledger = _small_batches(engine, signer)
    before = ledger.append([decision(0)])[0].tree_size
    dialect = engine.dialect
    commit = dialect.do_commit

    def failing_commit(dbapi_connection: Any) -> None:
        if stored:
            commit(dbapi_connection)
        else:
            dbapi_connection.rollback()
        raise sqlite3.OperationalError("disk I/O error")

    entries = [release(k, f"p{k % 3}") for k in range(10)]
    monkeypatch.setattr(dialect, "do_commit", failing_commit)
    with pytest.raises(AppendInDoubt) as doubt:
        ledger.append(entries)
    monkeypatch.undo()
    receipts = doubt.value.receipts
    assert [r.index for r in receipts] == list(range(before, before + 10))
    assert ledger.holds(receipts) is stored
    assert ledger.head().size == before + (10 if stored else 0)
    if stored:
        for entry, receipt in zip(entries, receipts, strict=True):
            assert ledger.leaf(receipt.index).entry()["reason"] == entry.reason
    assert ledger.verify().ok
