"""The append-only log: typed entries in, receipts out, proofs on demand.

Writing. :meth:`Ledger.append` returns only once its entries are committed (SQLite with WAL and
``synchronous=FULL``; PostgreSQL commit), so a receipt is never handed out for an entry a crash
could lose. Concurrent callers in one process are grouped (group commit, as databases do for their
own write-ahead log): whoever holds the writer lock waits for the database's write lock, then
commits everything queued by then in one transaction (up to ``batch_size`` entries), and the
others find their receipts waiting; if that commit fails, every caller of the group gets the
error and none a receipt. Across processes, every append first takes the database's write lock
(``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` of the one ``ledger_state`` row on
PostgreSQL), reads the tree size and frontier under it, and moves them forward in the same
transaction, so two writers can never both write leaf ``n``: the tree cannot fork.

Reading. Every complete perfect subtree of 16 leaves or more is stored by position, so the hash of
any range a proof needs is a fold of O(log n) stored nodes, and nodes below level 4 are recomputed
from at most 16 leaf hashes. A proof reads the tree head, then every hash it needs in one indexed
query, whatever the size of the log.
"""

from __future__ import annotations

import hashlib
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import repeat
from operator import itemgetter
from types import TracebackType
from typing import Any, cast

from sqlalchemy import Connection, Engine, RootTransaction, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import QueuePool

from accord.errors import (
    AccordError,
    InvalidInput,
    LedgerError,
    LedgerIntegrityError,
    NotFound,
    StoreError,
    translate,
)
from accord.ledger import mapstore, merkle, peoplemap, shred, subjects
from accord.ledger.audit import VerifyReport, verify_ledger
from accord.ledger.checkpoint import Checkpoint, SignedCheckpoint, Signer, Verifier
from accord.ledger.entries import Entry, ErasureEntry, decode_leaf, leaf_writer
from accord.ledger.results import (
    ConsistencyProof,
    InclusionProof,
    Receipt,
    StoredLeaf,
    TreeHead,
)
from accord.ledger.tables import STATE_ROW_ID, STORED_MIN_LEVEL
from accord.ledger.tables import checkpoints_table as _checkpoints
from accord.ledger.tables import leaves_table as _leaves
from accord.ledger.tables import state_table as _state
from accord.store.driver import fetch_one
from accord.store.engine import turn_of
from accord.store.writer import WriterClient

__all__ = [
    "APPEND_JOB",
    "PROOF_FORMAT",
    "ConsistencyProof",
    "InclusionProof",
    "Leaves",
    "Ledger",
    "Receipt",
    "StoredLeaf",
    "TreeHead",
    "prepare",
]

PROOF_FORMAT = "accord-ledger-proof/v1"

APPEND_JOB = "ledger.append"
"""The shared writer's job (:mod:`accord.store.writer`) that appends:
:meth:`Ledger.commit_appends`."""


@dataclass(frozen=True, slots=True)
class _State:
    size: int
    root: bytes
    frontier: list[bytes]


def _state_after(kept: tuple[bytes, bytes, _State] | None) -> _State:
    """The state a write left (:meth:`Ledger._write_locked` keeps it), for the next write of
    the same transaction."""
    if kept is None:
        raise LedgerError("the ledger's state was not kept by the write before")
    return kept[2]


@dataclass(slots=True)
class Leaves:
    """Entries with their leaves and leaf hashes, in three parallel lists.

    A leaf about nobody is the same at any index, so it is written and hashed before any lock is
    taken: concurrent callers do it while the writer waits on the disk. Leaves about people carry
    tags that depend on their index; they are ``None`` here and written under the lock.
    """

    entries: list[Entry]
    datas: list[bytes | None]
    hashes: list[bytes | None]

    def __len__(self) -> int:
        return len(self.entries)

    def part(self, start: int, end: int) -> Leaves:
        """The leaves ``[start, end)`` of this batch."""
        return Leaves(self.entries[start:end], self.datas[start:end], self.hashes[start:end])

    @classmethod
    def joined(cls, parts: Iterable[Leaves]) -> Leaves:
        """One batch of several, in order."""
        joined = cls([], [], [])
        for part in parts:
            joined.entries += part.entries
            joined.datas += part.datas
            joined.hashes += part.hashes
        return joined


def prepare(entries: Iterable[Entry]) -> Leaves:
    """Write and hash, ahead of the lock, every leaf that does not depend on its index."""
    batch = list(entries)
    writers = _WRITERS
    for kind in set(map(type, batch)):
        if kind not in writers:
            if not issubclass(kind, Entry):
                raise InvalidInput(f"not a ledger entry: {kind.__name__}")
            writers[kind] = leaf_writer(kind)
    sha256 = hashlib.sha256
    datas: list[bytes | None] = []
    hashes: list[bytes | None] = []
    for entry in batch:
        if entry.about:
            datas.append(None)
            hashes.append(None)
        else:
            data = writers[type(entry)](entry, None)
            datas.append(data)
            hashes.append(sha256(b"\x00" + data).digest())
    return Leaves(batch, datas, hashes)


_WRITERS: dict[type[Entry], Callable[[Entry, None], bytes]] = {}
"""The leaf writer of each entry class met (:func:`accord.ledger.entries.leaf_writer`)."""


def _joined(group: list[_Pending]) -> Leaves:
    """The leaves of a group of appends, in order (those of its one append, if it is one)."""
    if len(group) == 1:
        return group[0].leaves
    return Leaves.joined(pending.leaves for pending in group)


def _well_formed(leaves: object) -> bool:
    return (
        isinstance(leaves, Leaves)
        and isinstance(leaves.entries, list)
        and len(leaves.entries) == len(leaves.datas) == len(leaves.hashes) > 0
    )


class AppendInDoubt(StoreError):
    """The store failed while committing an append: the commit may have happened or not (its
    acknowledgement was lost, as when a connection drops during ``COMMIT``).

    ``receipts`` are the receipts the append would have had: :meth:`Ledger.holds` says, once the
    store answers again, whether they are in the ledger. Whoever answered for the append must
    then say what happened (the gateway notes a release its caller never received)."""

    def __init__(
        self, message: str, *, where: str | None = None, receipts: tuple[Receipt, ...] = ()
    ) -> None:
        super().__init__(message, where=where)
        self.receipts = receipts


class _Wake:
    """A wake-up for the caller of one append: set by any thread, any number of times; taken by
    that caller, who sleeps until it is set and leaves it unset (a wake-up set after that is
    kept for its next wait).

    What :class:`threading.Event` does with ``wait()`` then ``clear()``, as one lock held while
    unset: setting it lets go of the lock (if it was held), waiting takes it. An event waits and
    wakes through a condition's Python code, and every append of a group is woken so.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        """Wake the caller, or keep the wake-up for its next wait (once, however many sets)."""
        with suppress(RuntimeError):  # set already, and not taken since
            self._lock.release()

    def wait(self) -> None:
        """Sleep until set, and unset it."""
        self._lock.acquire()


@dataclass(slots=True)
class _Pending:
    """One caller's entries waiting for the writer."""

    leaves: Leaves
    count: int
    """How many leaves: ``len(leaves)``, looked at by every writer that takes a group."""
    receipts: list[Receipt] = field(default_factory=list)
    error: AccordError | None = None
    done: bool = False
    woken: _Wake = field(default_factory=_Wake)
    """Set when the append is done, or when its caller may take the writer's turn."""

    def finish(self) -> None:
        """Done, receipts or error: its caller is woken."""
        self.done = True
        self.woken.set()


class Ledger:
    """The ledger in an Accord store, signing checkpoints with ``signer``.

    ``signer`` may be left out to only read and verify; then pass ``verifier`` to check stored
    checkpoints against a published verifier key.
    """

    def __init__(
        self,
        engine: Engine,
        signer: Signer | None = None,
        *,
        verifier: Verifier | None = None,
        batch_size: int = 512,
        suppressed: shred.Suppressed | None = None,
    ) -> None:
        if batch_size < 1:
            raise InvalidInput(f"batch_size must be at least 1, not {batch_size}")
        self.engine = engine
        self.signer = signer
        self.verifier = verifier or (signer.verifier if signer else None)
        self.batch_size = batch_size
        self.suppressed = suppressed
        """Which people were erased (the store's suppression list): none gets a key again."""
        self._sqlite = engine.dialect.name == "sqlite"
        self._placeholder = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._writer_lock = threading.Lock()
        self.last_map_cost: dict[str, int] = {}
        """What bringing the people map up to date cost at the last checkpoint (rows read,
        people touched, functions signed, buckets rebuilt)."""
        self._writer = _WriterConnection(engine)
        self._turn = turn_of(engine)
        self._state: tuple[bytes, bytes, _State] | None = None
        """The tree state as this process last wrote or read it under the lock, with its root
        and frontier as stored: read again at every append, it is decoded and checked again
        only where the stored bytes differ (another process appended since)."""
        self._heads: dict[int, subjects.Heads] = {}
        self._heads_lock = threading.Lock()
        self._remote: WriterClient | None = None
        self._kept_keys = shred.KeptKeys()
        """The keys of people named by entries about many, kept by the writer between appends."""
        self._few_keys = shred.KeptKeys(limit=_FEW_KEPT, scan=_FEW_SCAN)
        """The keys of people named by entries about few (an exchange's release), kept alike."""
        self._grown: tuple[int, int] | None = None
        """The sizes before and after the transaction under way, if it appends no erasure: once
        it commits, the kept keys are known to be still valid at the size after."""
        self._sql_leaves = self._sql(_INSERT_LEAVES)
        self._sql_nodes = self._sql(_INSERT_NODES)
        self._sql_subjects = self._sql(_INSERT_SUBJECTS)
        self._sql_index = self._sql(_INSERT_INDEX)
        self._sql_move = self._sql(_MOVE_SQL)

    # Writing ------------------------------------------------------------------------------------

    def append(self, entries: Iterable[Entry]) -> list[Receipt]:
        """Append entries, in order; returns their receipts once they are durable.

        With a shared writer (:meth:`send_appends_to`), this process's group is committed by
        that writer, in its round with every other process's groups; when it cannot be reached,
        here.
        """
        return self._append_prepared(prepare(entries))

    def send_appends_to(self, writer: WriterClient | None) -> None:
        """Hand appends to ``writer``, a shared writer whose :data:`APPEND_JOB` is this store's
        :meth:`commit_appends`, from now on (``None``: commit them here again)."""
        self._remote = writer

    def commit_appends(self, appends: list[Any]) -> list[list[Receipt] | AccordError]:
        """The shared writer's job: commit other processes' appends (leaves :func:`prepare`
        made), in as few groups as ``batch_size`` allows, in order: the receipts of each, or
        the error of its group if that group failed to commit (every append in it gets the
        error, none a receipt), or an error for one that is not leaves."""
        out: list[list[Receipt] | AccordError] = [
            InvalidInput("the ledger's writer was sent something other than leaves")
        ] * len(appends)
        group: list[int] = []
        size = 0

        def commit() -> None:
            try:
                receipts = self._append_prepared(Leaves.joined(appends[n] for n in group))
            except AppendInDoubt as doubt:
                # Each append learns the receipts it would have had.
                offset = 0
                for n in group:
                    mine = doubt.receipts[offset : offset + len(appends[n])]
                    out[n] = AppendInDoubt(doubt.message, receipts=mine)
                    offset += len(appends[n])
                return
            except AccordError as exc:
                for n in group:
                    out[n] = exc
                return
            offset = 0
            for n in group:
                out[n] = receipts[offset : offset + len(appends[n])]
                offset += len(appends[n])

        for n, leaves in enumerate(appends):
            if not _well_formed(leaves):
                continue
            if group and size + len(leaves) > self.batch_size:
                commit()
                group, size = [], 0
            group.append(n)
            size += len(leaves)
        if group:
            commit()
        return out

    def _append_prepared(self, leaves: Leaves) -> list[Receipt]:
        """Append the leaves :func:`prepare` made of some entries, committed by this process (in a
        group with its other callers' appends); returns their receipts once they are durable."""
        if not leaves.entries:
            return []
        pending = _Pending(leaves, len(leaves.entries))
        with self._queue_lock:
            self._queue.append(pending)
        while not pending.done:
            # Whoever finds the writer lock free commits the queue's groups until its own append
            # is done; the others sleep until theirs is (woken one by one, each by its group's
            # writer), or until the writer leaves with appends still queued and the oldest's
            # caller is woken to take its turn. They never queue on the lock itself: after a
            # commit each would take it and let it go in turn, each waiting for the
            # interpreter lock, before the next found its receipts.
            if self._writer_lock.acquire(blocking=False):
                try:
                    while not pending.done:
                        self._commit_next_group()
                finally:
                    self._leave_writer()
            else:
                # Unset before done is looked at again: a wake-up set after this is kept.
                pending.woken.wait()
        if pending.error is not None:
            raise pending.error
        return pending.receipts

    def _leave_writer(self) -> None:
        """Let go of the writer lock, waking the caller of the oldest append still queued to
        take the writer's turn (after letting go: whoever it wakes finds the lock free, or taken
        by a writer who will wake the next in turn when it leaves)."""
        self._writer_lock.release()
        with self._queue_lock:
            if self._queue:
                self._queue[0].woken.set()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """The writer lock, held for something other than appends (erasure, checkpoints)."""
        self._writer_lock.acquire()
        try:
            yield
        finally:
            self._leave_writer()

    def _commit_next_group(self) -> None:
        """Commit the oldest queued appends together (called holding the writer lock).

        The group is taken from the queue only once the database's write lock is held: every
        append that arrives while this writer waits for another process's commit (or for the
        disk) joins the group, so the writers of several processes share each commit between
        them as the threads of one process do.
        """
        with self._queue_lock:
            lone = self._queue[0].count > self.batch_size
        if lone:
            self._commit_alone()
            return
        remote = self._remote
        if remote is not None and self._commit_remotely(remote):
            return
        group: list[_Pending] = []
        written: list[Receipt] = []
        locked = self._locked("appending to the ledger")
        try:
            with locked as (conn, state):
                group = self._take_group()
                written = self._write_locked(conn, state, _joined(group))
            # Committed: only now does any caller of the group get its receipts.
            offset = 0
            for pending in group:
                pending.receipts = written[offset : offset + pending.count]
                offset += pending.count
        except AccordError as exc:
            # Failed before the group was taken (the database could not be reached, say): the
            # oldest appends get the error, and are done, as a group that failed to commit.
            group = group or self._take_group()
            offset = 0
            for pending in group:
                pending.error = exc
                if locked.in_doubt and written:
                    # The commit itself failed: each caller learns what it would have had.
                    mine = tuple(written[offset : offset + pending.count])
                    pending.error = AppendInDoubt(
                        f"the store failed while committing this append, which may or may not "
                        f"be in the ledger: {exc.message}",
                        receipts=mine,
                    )
                offset += pending.count
        except BaseException:
            interrupted = LedgerError("the writer was interrupted before acknowledging this append")
            for pending in group or self._take_group():
                pending.error = interrupted
                pending.finish()
            raise
        for pending in group:
            pending.finish()

    def _commit_remotely(self, remote: WriterClient) -> bool:
        """Have the shared writer commit the oldest queued appends, as one (called holding the
        writer lock); ``False`` if it could not be reached, the appends queued again as they
        were, to be committed here.

        The group is taken at once: the writer waits for the database, and the appends that
        arrive meanwhile make this process's next group, sent when this one is answered.
        """
        group = self._take_group()
        try:
            sent, written = remote.call(APPEND_JOB, _joined(group))
            if not sent:
                with self._queue_lock:
                    self._queue[0:0] = group
                return False
            receipts = cast(list[Receipt], written)
            offset = 0
            for pending in group:
                pending.receipts = receipts[offset : offset + pending.count]
                offset += pending.count
        except AccordError as exc:
            for pending in group:
                pending.error = exc
        except BaseException:
            interrupted = LedgerError("the writer was interrupted before acknowledging this append")
            for pending in group:
                pending.error = interrupted
                pending.finish()
            raise
        for pending in group:
            pending.finish()
        return True

    def _take_group(self) -> list[_Pending]:
        """The oldest queued appends, up to ``batch_size`` entries (at least one append)."""
        with self._queue_lock:
            group = [self._queue.pop(0)]
            total = group[0].count
            while self._queue and total + self._queue[0].count <= self.batch_size:
                total += self._queue[0].count
                group.append(self._queue.pop(0))
        return group

    def _commit_alone(self) -> None:
        """Commit the oldest queued append, larger than a batch, alone: written batch by batch
        (each statement as large as a group's), in one transaction, so that it is committed
        whole or not at all, as any append; acknowledged once that commit is durable."""
        with self._queue_lock:
            pending = self._queue.pop(0)
        written: list[Receipt] = []
        locked = self._locked("appending to the ledger")
        try:
            leaves = pending.leaves
            with locked as (conn, before):
                state, clean = before, True
                for start in range(0, len(leaves), self.batch_size):
                    self._grown = None
                    written += self._write_locked(
                        conn, state, leaves.part(start, start + self.batch_size)
                    )
                    clean = clean and self._grown is not None
                    state = _state_after(self._state)
                # Told to the kept keys once committed: grown by the whole append, if no part
                # of it is an erasure's.
                self._grown = (before.size, state.size) if clean else None
            pending.receipts = written
        except AccordError as exc:
            # A key made by one part is read, and kept, by the next: forgotten, as the whole
            # transaction may be.
            self._kept_keys.clear()
            self._few_keys.clear()
            pending.receipts = []
            pending.error = exc
            if locked.in_doubt and written:
                pending.error = AppendInDoubt(
                    f"the store failed while committing this append, which may or may not be "
                    f"in the ledger: {exc.message}",
                    receipts=tuple(written),
                )
        except BaseException:
            self._kept_keys.clear()
            self._few_keys.clear()
            pending.receipts = []
            pending.error = LedgerError(
                "the writer was interrupted before acknowledging this append"
            )
            pending.finish()
            raise
        pending.finish()

    def _write(self, leaves: Leaves) -> list[Receipt]:
        with self._locked("appending to the ledger") as (conn, state):
            return self._write_locked(conn, state, leaves)

    def append_bulk(self, entries: Iterable[Entry], batch_size: int = 20_000) -> TreeHead:
        """Append many entries in large transactions, without receipts (loading, benchmarks)."""
        batch: list[Entry] = []
        with self._writing():
            for entry in entries:
                batch.append(entry)
                if len(batch) >= batch_size:
                    self._write(prepare(batch))
                    batch = []
            if batch:
                self._write(prepare(batch))
        return self.head()

    def erase(self, person_id: str, reason: str) -> Receipt:
        """Forget a person: delete their key and index rows, and record an erasure naming nobody.

        Their earlier entries stay in the log, which still verifies, but can no longer be tied
        to them. All of it happens in one transaction.
        """
        with self._writing(), self._locked("erasing a person from the ledger") as (conn, state):
            forgotten = shred.forget(conn, person_id)
            entry = ErasureEntry(
                agreement=None, reason=reason, people=1, entries_forgotten=forgotten
            )
            (receipt,) = self._write_locked(conn, state, prepare([entry]))
        return receipt

    def compact_index(self) -> tuple[int, int]:
        """Fold the person index's parts into one (:func:`accord.ledger.shred.merge_parts`):
        returns how many parts were folded and how many rows they held.

        Run it from time to time (``accord ledger compact``): each entry about many people adds a
        part, and finding a person's entries searches each part once. It changes no leaf, so the
        tree and every proof stay as they are; it holds the append lock while it runs.
        """
        with self._writing(), self._locked("folding the person index's parts") as (conn, _):
            return shred.merge_parts(conn)

    def _locked(self, doing: str) -> _Locked:
        """A transaction holding the database's ledger write lock, committed on success.

        Called holding the writer lock: the transaction runs on the writer's own connection
        (:class:`_WriterConnection`), kept between groups rather than taken from the pool each
        time. On any failure it is rolled back and that connection given back; the next group
        takes a new one.
        """
        return _Locked(self, doing)

    def _begin_locked(self) -> tuple[Connection, RootTransaction, _State]:
        """The writer's connection in a transaction holding the ledger write lock, and the state
        read under it.

        A kept connection the database has closed meanwhile (a restart) fails here, before
        anything is written: it is given back and the lock taken once more on a new connection,
        which the pool checks first, as a connection taken from the pool for this group would
        have been.
        """
        reused = self._writer.held
        conn = self._writer.connection()
        try:
            return self._begin_on(conn)
        except Exception as exc:
            lost = reused and self._writer.lost(exc)
            self._writer.drop()
            if not lost:
                raise
        conn = self._writer.connection()
        try:
            return self._begin_on(conn)
        except BaseException:
            self._writer.drop()
            raise

    def _begin_on(self, conn: Connection) -> tuple[Connection, RootTransaction, _State]:
        # The transaction is begun explicitly: statements below go through the driver's own
        # cursor, which SQLAlchemy does not see, and it must still commit them.
        transaction = conn.begin()
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if self._sqlite:
                # pysqlite would open a deferred transaction at the first write; take the write
                # lock up front so the size read below cannot go stale before we write.
                cursor.execute("BEGIN IMMEDIATE")
                cursor.execute(_STATE_SQL)
            else:
                # FOR UPDATE holds the row until commit on PostgreSQL; SQLite already holds the
                # whole database since BEGIN IMMEDIATE, and has no such clause.
                cursor.execute(_STATE_SQL + " FOR UPDATE")
            row = cursor.fetchone()
        finally:
            cursor.close()
        kept = self._state
        if row is not None and kept is not None and row[0] == kept[2].size:
            # The state as this process last knew it, unless its bytes changed since: then it
            # is decoded and checked again.
            root, frontier = row[1], row[2]
            if root == kept[0] and frontier == kept[1]:
                return conn, transaction, kept[2]
        return conn, transaction, self._lock_state(conn, row)

    def _lock_state(self, conn: Connection, row: Any) -> _State:
        """The state from its ``row`` read under the lock: decoded and checked, or made if there
        is none yet."""
        query = _STATE_SQL if self._sqlite else _STATE_SQL + " FOR UPDATE"
        if row is None:
            values = {
                "id": STATE_ROW_ID,
                "size": 0,
                "root": merkle.EMPTY_ROOT,
                "frontier": b"",
            }
            conn.execute(_insert_if_absent(conn, _state).values(values).on_conflict_do_nothing())
            row = fetch_one(conn, query)
        if row is None:
            raise LedgerError("the ledger's state row could not be created")
        root, frontier = bytes(row[1]), bytes(row[2])
        state = _decode_state(int(row[0]), root, frontier)
        self._state = (root, frontier, state)
        return state

    def _write_locked(self, conn: Connection, state: _State, leaves: Leaves) -> list[Receipt]:
        """Write a batch after ``state``, inside the locked transaction."""
        start = state.size
        size = start + len(leaves.entries)
        datas, hashes = leaves.datas, leaves.hashes
        index_rows: list[tuple[bytes, int]] = []
        subject_rows: list[tuple[int, int, bytes, bytes, bytes]] = []
        if None in datas:
            about = [offset for offset, data in enumerate(datas) if data is None]
            datas, hashes = list(datas), list(hashes)
            named = {offset: set(leaves.entries[offset].about) for offset in about}
            keys = self._keys_of(conn, start, named)
            many = [offset for offset in about if len(named[offset]) >= shred.MANY]
            # The index rows of an entry about many people are one statement the database runs
            # in another thread, while this one computes the entry's tags and writes its leaf:
            # the driver lets go of the interpreter lock for the statement, so the two share the
            # cores. Leaving the block waits for it, even on an error, so the transaction is only
            # committed or rolled back once nothing else is using its connection.
            # No thread at all where no entry is about that many (an exchange's release).
            listed = {offset: list(map(keys.__getitem__, named[offset])) for offset in about}
            seal = partial(
                _seal,
                leaves,
                start,
                listed,
                datas=datas,
                hashes=hashes,
                rows=(index_rows, subject_rows),
            )
            if many:
                with ThreadPoolExecutor(1, thread_name_prefix="accord-ledger-index") as beside:
                    indexing = [
                        beside.submit(
                            shred.index_many, conn, start + offset, named[offset], listed[offset]
                        )
                        for offset in many
                    ]
                    seal()
                    for done in indexing:
                        done.result()
            else:
                seal()
        leaf_hashes = cast(list[bytes], hashes)
        grown = merkle.extend(start, state.frontier, leaf_hashes, min_level=STORED_MIN_LEVEL)
        # The driver's executemany straight from tuples: the hot path of every append, where
        # SQLAlchemy's per-statement and per-row handling would cost as much as the insert itself.
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(
                self._sql_leaves,
                list(zip(range(start, size), datas, leaf_hashes, strict=True)),
            )
            if grown.nodes:
                position = merkle.node_position
                cursor.executemany(
                    self._sql_nodes, [(position(lv, i), h) for lv, i, h in grown.nodes]
                )
            if subject_rows:
                cursor.executemany(self._sql_subjects, subject_rows)
            if index_rows:
                # In key order: random pseudonyms inserted in order touch each index page once.
                index_rows.sort(key=itemgetter(0))
                cursor.executemany(self._sql_index, index_rows)
            frontier = b"".join(grown.frontier)
            cursor.execute(self._sql_move, (size, grown.root, frontier, start))
            moved = cursor.rowcount
        finally:
            cursor.close()
        if moved != 1:
            raise LedgerError(f"the tree moved past size {start} while this append held its lock")
        # As stored if this commits; if it does not, the stored bytes differ and it goes unused.
        self._state = (grown.root, frontier, _State(size, grown.root, grown.frontier))
        # The test the kept keys make of leaves appended since (a mark no leaf but an erasure's
        # holds, nor two leaves joined: each ends in a brace), on this group's own leaves.
        if shred.ERASURE_MARK not in b"".join(cast(list[bytes], datas)):
            self._grown = (start, size)
        return list(map(Receipt, range(start, size), leaf_hashes, repeat(size)))

    def _keys_of(
        self, conn: Connection, start: int, named: dict[int, set[str]]
    ) -> Mapping[str, shred.PersonKey]:
        """The keys of everyone the entries ``named`` are about (made for those who have none),
        inside the locked transaction of a tree of ``start`` leaves: kept between appends where
        one entry is about many people (not for many entries about one person each, as an
        import writes)."""
        groups = list(named.values())
        people = groups[0] if len(groups) == 1 else set().union(*groups)
        if any(len(group) >= shred.MANY for group in groups):
            # Kept between appends: a bulk release names much the same people each time.
            return self._kept_keys.keys_for(conn, start, people, suppressed=self.suppressed)
        # Kept too: the partner API's exchanges name the same people again and again.
        return self._few_keys.keys_for(conn, start, people, suppressed=self.suppressed)

    def _sql(self, statement: str) -> str:
        """A constant statement with the driver's placeholder."""
        return statement.format(mark=self._placeholder)

    # Reading ------------------------------------------------------------------------------------

    @contextmanager
    def _reading(self, doing: str) -> Iterator[Connection]:
        with translate(StoreError, doing), self.engine.connect() as conn:
            yield conn

    def _head(self, conn: Connection) -> TreeHead:
        row = conn.exec_driver_sql(_HEAD_SQL).first()
        if row is None:
            return TreeHead(0, merkle.EMPTY_ROOT)
        return TreeHead(int(row[0]), bytes(row[1]))

    def head(self) -> TreeHead:
        """The current tree size and root."""
        with self._reading("reading the ledger head") as conn:
            return self._head(conn)

    def leaf(self, index: int) -> StoredLeaf:
        """The stored leaf at ``index``."""
        with self._reading("reading a ledger leaf") as conn:
            row = conn.execute(
                select(_leaves.c.idx, _leaves.c.data, _leaves.c.leaf_hash).where(
                    _leaves.c.idx == index
                )
            ).first()
        if row is None:
            raise NotFound(f"the ledger has no leaf {index}")
        return StoredLeaf(int(row.idx), bytes(row.data), bytes(row.leaf_hash))

    def holds(self, receipts: Iterable[Receipt]) -> bool:
        """Whether every one of ``receipts`` names a leaf the ledger holds, with its hash (the
        receipts of an :class:`AppendInDoubt`: an append is committed whole or not at all)."""
        wanted = {r.index: r.leaf_hash for r in receipts}
        if not wanted:
            return True
        with self._reading("looking for the leaves of an append") as conn:
            rows = conn.execute(
                select(_leaves.c.idx, _leaves.c.leaf_hash).where(_leaves.c.idx.in_(list(wanted)))
            ).all()
        found = {int(row.idx): bytes(row.leaf_hash) for row in rows}
        return found == wanted

    def recent(self, limit: int = 20) -> list[StoredLeaf]:
        """The last ``limit`` leaves, newest first."""
        with self._reading("reading recent ledger entries") as conn:
            rows = conn.execute(
                select(_leaves.c.idx, _leaves.c.data, _leaves.c.leaf_hash)
                .order_by(_leaves.c.idx.desc())
                .limit(limit)
            )
            return [StoredLeaf(int(i), bytes(d), bytes(h)) for i, d, h in rows]

    def read_nodes(
        self, conn: Connection, wanted: Iterable[merkle.NodeId]
    ) -> dict[merkle.NodeId, bytes]:
        """The hashes of complete perfect nodes: stored ones read, low ones rebuilt from leaves.

        One query fetches both the stored nodes and the leaf hashes under the low ones: a proof
        is one round trip, whatever the size of the log.
        """
        stored: dict[int, merkle.NodeId] = {}
        low: list[merkle.NodeId] = []
        for node in wanted:
            if node[0] >= STORED_MIN_LEVEL:
                stored[merkle.node_position(*node)] = node
            else:
                low.append(node)
        indexes = sorted({i for node in low for i in range(*merkle.node_range(node))})
        hashes = self._fetch_hashes(conn, list(stored), indexes)
        found = {
            node: hashes[0][position] for position, node in stored.items() if position in hashes[0]
        }
        for position, node in stored.items():
            if node not in found:
                raise LedgerIntegrityError(
                    f"node at level {node[0]}, index {node[1]} (position {position}) is missing",
                    where="ledger_nodes",
                )
        for node in low:
            start, end = merkle.node_range(node)
            try:
                found[node] = merkle.perfect_root([hashes[1][i] for i in range(start, end)])
            except KeyError as exc:
                raise LedgerIntegrityError(
                    f"leaf {exc.args[0]} is missing from the store", where="ledger_leaves"
                ) from None
        return found

    def _fetch_hashes(
        self, conn: Connection, positions: list[int], indexes: list[int]
    ) -> tuple[dict[int, bytes], dict[int, bytes]]:
        """Stored node hashes by position and leaf hashes by index, in one query."""
        selects = []
        if positions:
            selects.append(
                _select_in("0, pos, hash", "ledger_nodes", "pos", self._marks(len(positions)))
            )
        if indexes:
            selects.append(
                _select_in("1, idx, leaf_hash", "ledger_leaves", "idx", self._marks(len(indexes)))
            )
        found: tuple[dict[int, bytes], dict[int, bytes]] = ({}, {})
        if selects:
            rows = conn.exec_driver_sql(" UNION ALL ".join(selects), (*positions, *indexes))
            for source, key, hashed in rows:
                found[source][int(key)] = bytes(hashed)
        return found

    def _marks(self, count: int) -> str:
        return ", ".join([self._placeholder] * count)

    def _checked_size(self, conn: Connection, size: int | None) -> TreeHead:
        head = self._head(conn)
        if size is None or size == head.size:
            return head
        if not 0 <= size <= head.size:
            raise LedgerError(f"the ledger has {head.size} entries, so no tree of size {size}")
        nodes = self.read_nodes(conn, merkle.frontier_nodes(size))
        return TreeHead(size, merkle.fold([nodes[n] for n in merkle.frontier_nodes(size)]))

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the tree of ``size`` leaves (default: now)."""
        with self._reading("computing a ledger root") as conn:
            return self._checked_size(conn, size).root

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        """Proof that leaf ``index`` is in the tree of ``size`` leaves (default: now)."""
        with self._reading("proving inclusion in the ledger") as conn:
            head = self._checked_size(conn, size)
            if not 0 <= index < head.size:
                raise LedgerError(f"leaf {index} is not in the tree of {head.size} entries")
            ranges = merkle.inclusion_ranges(index, head.size)
            nodes = self.read_nodes(conn, [(0, index), *merkle.nodes_for(ranges)])
        path = tuple(merkle.resolve(ranges, nodes))
        return InclusionProof(index, head.size, nodes[(0, index)], path, head.root)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """Proof that the tree of ``old_size`` leaves is a prefix of the tree of ``new_size``."""
        with self._reading("proving ledger consistency") as conn:
            new = self._checked_size(conn, new_size)
            if not 0 <= old_size <= new.size:
                raise LedgerError(f"no consistency proof from size {old_size} to size {new.size}")
            old = self._checked_size(conn, old_size)
            ranges = merkle.consistency_ranges(old_size, new.size)
            nodes = self.read_nodes(conn, merkle.nodes_for(ranges))
        path = tuple(merkle.resolve(ranges, nodes))
        return ConsistencyProof(old.size, new.size, old.root, new.root, path)

    # Checkpoints --------------------------------------------------------------------------------

    def checkpoint(self) -> SignedCheckpoint:
        """Sign the current tree head and store it; the same head is signed only once.

        The people map (:mod:`accord.ledger.peoplemap`) is brought up to the same size in the
        same transaction, under the append lock, and its root signed in the checkpoint's
        extension line; :attr:`last_map_cost` tells what that took.
        """
        if self.signer is None:
            raise LedgerError("this ledger was opened without a signing key")
        vuf = self.signer.vuf()
        with (
            self._writing(),
            self._locked("signing a ledger checkpoint") as (conn, state),
        ):
            map_root, self.last_map_cost = mapstore.bring_up_to_date(conn, state.size, vuf)
            return self._sign_locked(conn, state, map_root)

    def _sign_locked(self, conn: Connection, state: _State, map_root: bytes) -> SignedCheckpoint:
        """Sign and store the checkpoint of ``state`` with the people map's ``map_root``, inside
        the locked transaction (the checkpoint already stored at that size, if there is one)."""
        if self.signer is None:
            raise LedgerError("this ledger was opened without a signing key")
        line = peoplemap.checkpoint_line(map_root, self.signer.vuf().public_key)
        checkpoint = Checkpoint(self.signer.name, state.size, state.root, (line,))
        signed = self.signer.sign(checkpoint)
        conn.execute(
            _insert_if_absent(conn, _checkpoints)
            .values(
                size=state.size, root=state.root, note=signed.note, created_at=datetime.now(UTC)
            )
            .on_conflict_do_nothing(index_elements=["size"])
        )
        note = conn.execute(
            select(_checkpoints.c.note).where(_checkpoints.c.size == state.size)
        ).scalar_one()
        return SignedCheckpoint(self.signer.verifier.open(note), note)

    def rebuild_people_map(self) -> SignedCheckpoint:
        """Build the people map again from the person index and the leaf hashes, as of the
        current tree, and sign a checkpoint committing to it (``accord ledger rebuild-map``): for
        a store whose map tables were lost or damaged. Refused, with nothing changed, where the
        tree has not grown since a checkpoint that committed to another map: that signature
        stands, and the log would contradict it."""
        if self.signer is None:
            raise LedgerError("this ledger was opened without a signing key")
        vuf = self.signer.vuf()
        with (
            self._writing(),
            self._locked("rebuilding the people map") as (conn, state),
        ):
            map_root, self.last_map_cost = mapstore.rebuild(conn, state.size, vuf)
            note = conn.execute(
                select(_checkpoints.c.note).where(_checkpoints.c.size == state.size)
            ).scalar()
            if note is not None and self.verifier is not None:
                signed = peoplemap.parse_checkpoint_line(self.verifier.open(note).extensions)
                if signed is not None and signed[0] != map_root:
                    raise LedgerIntegrityError(
                        f"the people map rebuilt from the person index is not the one the "
                        f"checkpoint of size {state.size} signed: the person index or the leaves "
                        "changed since; nothing was rebuilt",
                        where="ledger_person_index",
                    )
            return self._sign_locked(conn, state, map_root)

    def checkpoint_if_grown(self) -> SignedCheckpoint | None:
        """Sign a checkpoint if the tree has grown past the latest stored one (``None`` if it
        has not): what a maintenance step runs (:class:`accord.ledger.signing.Checkpointer`)."""
        latest = self.stored_checkpoint()
        if latest is not None and latest[0] >= self.head().size:
            return None
        return self.checkpoint()

    def checkpoints(self) -> list[tuple[int, bytes, str]]:
        """Every stored checkpoint as ``(size, root, signed note)``, oldest first."""
        with self._reading("reading ledger checkpoints") as conn:
            rows = conn.execute(
                select(_checkpoints.c.size, _checkpoints.c.root, _checkpoints.c.note).order_by(
                    _checkpoints.c.size
                )
            )
            return [(int(size), bytes(root), str(note)) for size, root, note in rows]

    def checkpoint_count(self) -> int:
        """How many checkpoints are stored."""
        with self._reading("counting ledger checkpoints") as conn:
            return int(conn.execute(select(func.count()).select_from(_checkpoints)).scalar_one())

    def recent_checkpoints(
        self, limit: int, offset: int = 0
    ) -> list[tuple[int, bytes, str, datetime]]:
        """Stored checkpoints, newest first, as ``(size, root, signed note, stored at)``: at most
        ``limit`` of them after skipping the ``offset`` newest."""
        c = _checkpoints.c
        query = (
            select(c.size, c.root, c.note, c.created_at)
            .order_by(c.size.desc())
            .limit(max(limit, 0))
            .offset(max(offset, 0))
        )
        with self._reading("reading ledger checkpoints") as conn:
            rows = conn.execute(query).all()
        return [(int(s), bytes(r), str(n), _aware(at)) for s, r, n, at in rows]

    def latest_checkpoint(self) -> str | None:
        """The signed note of the largest stored checkpoint, if any."""
        latest = self.stored_checkpoint()
        return latest[2] if latest else None

    def stored_checkpoint(self, size: int | None = None) -> tuple[int, bytes, str] | None:
        """The stored checkpoint of ``size`` leaves (default: the largest) as ``(size, root,
        signed note)``, if there is one: one indexed row, however many are stored."""
        c = _checkpoints.c
        query = select(c.size, c.root, c.note)
        if size is None:
            query = query.order_by(c.size.desc()).limit(1)
        else:
            query = query.where(c.size == size)
        with self._reading("reading a ledger checkpoint") as conn:
            row = conn.execute(query).first()
        return None if row is None else (int(row[0]), bytes(row[1]), str(row[2]))

    def verify(self, *, workers: int | None = None, people_map: bool = False) -> VerifyReport:
        """Recompute the whole tree from the leaves and check every checkpoint against it; with
        ``people_map``, recompute the people map from the person index too (it needs the
        signing key, from which the map's keying function is derived).

        Large logs are checked by ``workers`` processes (default: one per core).
        """
        if people_map and self.signer is None:
            raise LedgerError(
                "checking the people map needs the log's signing key (its keying function is "
                "derived from it): run it where the data folder holds the key"
            )
        vuf = self.signer.vuf() if people_map and self.signer is not None else None
        return verify_ledger(self, workers=workers, people_map=vuf)

    # People -------------------------------------------------------------------------------------

    def entries_about(self, person_id: str) -> list[int]:
        """Indexes of the leaves about a person (none once they are erased)."""
        with self._reading("looking up a person in the ledger") as conn:
            found = shred.leaves_of(conn, person_id)
        return found[1] if found else []

    def key_of(self, person_id: str) -> tuple[bytes, bytes] | None:
        """A person's key and lookup pseudonym; ``None`` if they have none (never recorded, or
        erased)."""
        with self._reading("reading a person's ledger key") as conn:
            return shred.keys_for(conn, [person_id], create=False).get(person_id)

    def leaves_about(self, person_id: str) -> list[dict[str, Any]]:
        """The entries about a person, as the JSON objects of their leaves (none once erased)."""
        return [entry for _, entry in self.indexed_leaves_about(person_id)]

    def indexed_leaves_about(self, person_id: str) -> list[tuple[int, dict[str, Any]]]:
        """The entries about a person, each with its index, oldest first (none once erased)."""
        with self._reading("reading a person's ledger entries") as conn:
            found = shred.leaves_of(conn, person_id)
            if found is None:
                return []
            indexes = found[1]
            rows: list[tuple[int, bytes]] = []
            for start in range(0, len(indexes), 500):  # within every backend's parameter limit
                chunk = conn.execute(
                    select(_leaves.c.idx, _leaves.c.data)
                    .where(_leaves.c.idx.in_(indexes[start : start + 500]))
                    .order_by(_leaves.c.idx)
                )
                rows.extend((int(idx), bytes(data)) for idx, data in chunk)
        return [(idx, decode_leaf(data)) for idx, data in rows]

    def prove_person(self, person_id: str, *, sign: bool = False) -> dict[str, Any]:
        """Every entry about a person with its inclusion proof under a signed checkpoint.

        The proofs are under the latest stored checkpoint; with ``sign``, under a new one of the
        current tree (a write: the only one this method makes). Entries appended after the
        checkpoint are listed by index under ``pending``, without proofs: they are proved once a
        checkpoint covers them.

        The bundle includes the person's key, so whoever holds it can check that each leaf's
        subject tag is theirs: it is the person's to share. ``verify_proof.py`` checks it alone.
        """
        if self.verifier is None:
            raise LedgerError("this ledger was opened without a key to sign or check checkpoints")
        if not self.entries_about(person_id):
            raise NotFound(
                f"the ledger holds no entries about {person_id!r} (never recorded, or erased)"
            )
        if sign:
            signed = self.checkpoint()
        else:
            note = self.latest_checkpoint()
            if note is None:
                raise NotFound(
                    "the ledger has no signed checkpoint to prove entries under yet: sign one "
                    "with `accord ledger checkpoint` (or ask for one with --checkpoint)"
                )
            signed = SignedCheckpoint(self.verifier.open(note), note)
        size = signed.checkpoint.size
        with self._reading("proving a person's entries") as conn:
            found = shred.leaves_of(conn, person_id)
            if found is None:
                raise NotFound(
                    f"the ledger holds no entries about {person_id!r} (never recorded, or erased)"
                )
            key, indexes = found
            pending = [i for i in indexes if i >= size]
            indexes = [i for i in indexes if i < size]
            leaves: dict[int, bytes] = {}
            for start in range(0, len(indexes), 500):  # within every backend's parameter limit
                chunk = indexes[start : start + 500]
                rows = conn.execute(
                    select(_leaves.c.idx, _leaves.c.data).where(_leaves.c.idx.in_(chunk))
                )
                leaves.update({int(i): bytes(d) for i, d in rows})
            memberships = self._memberships(conn, key, leaves)
        completeness = self._completeness(key, signed)
        entries = []
        for index in indexes:
            proof = self.inclusion_proof(index, size)
            if proof.root != signed.checkpoint.root:
                raise LedgerIntegrityError(f"tree of size {size} does not match its checkpoint")
            entries.append(
                {
                    "index": index,
                    "leaf": leaves[index].decode("utf-8"),
                    "leaf_hash": proof.leaf_hash.hex(),
                    "subject": shred.subject_tag(key, index),
                    "inclusion_proof": [p.hex() for p in proof.path],
                    **(
                        {"subject_proof": memberships[index].json()} if index in memberships else {}
                    ),
                }
            )
        return {
            "format": PROOF_FORMAT,
            "person": {"id": person_id, "key": key.hex()},
            "vkey": self.verifier.vkey,
            "checkpoint": signed.note,
            "tree_size": size,
            "root": signed.checkpoint.root.hex(),
            "entries": entries,
            "pending": pending,
            **({"completeness": completeness} if completeness is not None else {}),
        }

    def _memberships(
        self, conn: Connection, key: bytes, leaves: dict[int, bytes]
    ) -> dict[int, subjects.Membership]:
        """The person's place in the subject tree of each of ``leaves`` that commits to its
        subjects by a root, read from the chunks stored beside it: the entry's chunk heads (kept
        once read: they never change), then the one chunk that holds the person."""
        trees = sorted(index for index, data in leaves.items() if _TREE_MARK in data)
        if not trees:
            return {}
        heads = self._subject_heads(conn, trees)
        found: dict[int, subjects.Membership] = {}
        cursor = conn.connection.cursor()
        try:
            for index in trees:
                tag = bytes.fromhex(shred.subject_tag(key, index))
                chunk = heads[index].chunk_of(tag)
                cursor.execute(self._sql(_CHUNK_SQL), (index, chunk))
                row = cursor.fetchone()
                membership = (
                    None
                    if row is None
                    else subjects.membership(tag, chunk, bytes(row[0]), heads[index])
                )
                if membership is None:
                    raise LedgerIntegrityError(
                        f"leaf {index} is indexed as about this person, but its stored subject "
                        "list does not hold their tag",
                        where="ledger_subjects",
                    )
                found[index] = membership
        finally:
            cursor.close()
        return found

    def _subject_heads(self, conn: Connection, trees: list[int]) -> dict[int, subjects.Heads]:
        """The chunk heads of the entries ``trees``: kept ones, and the others read (every
        chunk's first tag and root, in one statement through the driver) and kept."""
        with self._heads_lock:
            found = {index: self._heads[index] for index in trees if index in self._heads}
        missing = [index for index in trees if index not in found]
        rows: dict[int, list[tuple[bytes, bytes]]] = {index: [] for index in missing}
        cursor = conn.connection.cursor()
        try:
            for start in range(0, len(missing), 500):  # within every backend's parameter limit
                part = missing[start : start + 500]
                cursor.execute(_HEADS_SQL.format(marks=self._marks(len(part))), part)
                for index, first, root in cursor.fetchall():
                    rows[int(index)].append((bytes(first), bytes(root)))
        finally:
            cursor.close()
        for index, pairs in rows.items():
            found[index] = subjects.Heads.of([f for f, _ in pairs], [r for _, r in pairs])
        with self._heads_lock:
            for index in missing:
                self._heads[index] = found[index]
            while len(self._heads) > _HEADS_KEPT:
                self._heads.pop(next(iter(self._heads)))
        return found

    def _completeness(self, key: bytes, signed: SignedCheckpoint) -> dict[str, Any] | None:
        """The person's proof in the people map under ``signed``, if the checkpoint carries the
        map's line and the map still stands at its size (``None`` otherwise: an older
        checkpoint, or one signed while this was read)."""
        committed = peoplemap.parse_checkpoint_line(signed.checkpoint.extensions)
        if committed is None or self.signer is None:
            return None
        vuf = self.signer.vuf()
        with self._reading("proving a person's completeness") as conn, conn.begin():
            if mapstore.map_size(conn) != signed.checkpoint.size:
                return None
            found = mapstore.prove(conn, shred.lookup_pseudonym(key), vuf)
            if mapstore.map_size(conn) != signed.checkpoint.size:
                return None
        if committed[1] != vuf.public_key:
            raise LedgerIntegrityError(
                "the checkpoint names another key for the people map than this log's"
            )
        return found


# Constant statements, run through the driver: the state row (id 1, STATE_ROW_ID) is read and
# moved by every append.
_HEAD_SQL = "SELECT size, root FROM ledger_state WHERE id = 1"
_STATE_SQL = "SELECT size, root, frontier FROM ledger_state WHERE id = 1"
_INSERT_LEAVES = "INSERT INTO ledger_leaves (idx, data, leaf_hash) VALUES ({mark}, {mark}, {mark})"
_INSERT_NODES = "INSERT INTO ledger_nodes (pos, hash) VALUES ({mark}, {mark})"
_INSERT_INDEX = (
    "INSERT INTO ledger_person_index (part, pseudonym, leaf_idx) VALUES (0, {mark}, {mark})"
)
_INSERT_SUBJECTS = (
    "INSERT INTO ledger_subjects (leaf_idx, chunk, first, root, tags) "
    "VALUES ({mark}, {mark}, {mark}, {mark}, {mark})"
)
_TREE_MARK = b'"subjects_root":'
_HEADS_SQL = (
    "SELECT leaf_idx, first, root FROM ledger_subjects WHERE leaf_idx IN ({marks}) "
    "ORDER BY leaf_idx, chunk"
)
_CHUNK_SQL = "SELECT tags FROM ledger_subjects WHERE leaf_idx = {mark} AND chunk = {mark}"
_FEW_KEPT = 20_000
"""At most this many keys of people named by entries about few are kept (some 5 MB)."""
_FEW_SCAN = 2_000
"""Keys of people named by entries about few are checked against at most this many leaves
appended by others since; past that they are read again."""
_HEADS_KEPT = 64
"""Entries whose chunk heads a ledger keeps (a bulk release's are about 60 KB a million people)."""
"""How a leaf committing to its subjects by a root reads (canonical JSON: no space)."""
_MOVE_SQL = (
    "UPDATE ledger_state SET size = {mark}, root = {mark}, frontier = {mark} "
    "WHERE id = 1 AND size = {mark}"
)


class _Locked:
    """What :meth:`Ledger._locked` returns: a plain context manager, not a generator's (every
    group commit enters one). Entering takes the turn to write (:func:`accord.store.engine.turn_of`)
    and begins the locked transaction; leaving commits it, or rolls it back on an error, gives
    the writer's connection back if it is not kept (or failed), then the turn. A foreign error,
    raised inside or by any of these steps, comes out as :class:`~accord.errors.StoreError`
    saying what was being done."""

    __slots__ = ("doing", "in_doubt", "ledger", "transaction", "turn")

    def __init__(self, ledger: Ledger, doing: str) -> None:
        self.ledger = ledger
        self.doing = doing
        self.turn = ledger._turn
        self.transaction: RootTransaction | None = None
        self.in_doubt = False
        """The commit itself failed: what it wrote may or may not be stored."""

    def __enter__(self) -> tuple[Connection, _State]:
        turn = self.turn
        try:
            if turn is not None:
                turn.acquire()
            try:
                self.ledger._grown = None
                conn, self.transaction, state = self.ledger._begin_locked()
            except BaseException:
                if turn is not None:
                    turn.release()
                raise
        except Exception as exc:
            self._translate(exc)
            raise
        return conn, state

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        writer, transaction = self.ledger._writer, self.transaction
        try:
            try:
                if transaction is not None:
                    # Committed, or rolled back on an error (the commit's own included).
                    transaction.__exit__(kind, exc, tb)
            except BaseException:
                self.in_doubt = kind is None
                writer.drop()
                raise
            if exc is not None or not writer.kept:
                writer.drop()
            grown, self.ledger._grown = self.ledger._grown, None
            if exc is None and grown is not None:
                # Committed, and no key deleted by it: the keys kept are still valid after it.
                self.ledger._kept_keys.grown(*grown)
                self.ledger._few_keys.grown(*grown)
        except Exception as error:
            self._translate(error)
            raise
        finally:
            if self.turn is not None:
                self.turn.release()
        if isinstance(exc, Exception):
            self._translate(exc)

    def _translate(self, exc: Exception) -> None:
        """Raise ``exc`` as :class:`~accord.errors.StoreError` if it is foreign (as
        :func:`~accord.errors.translate` does); return if it is Accord's own."""
        translate(StoreError, self.doing).__exit__(type(exc), exc, exc.__traceback__)


class _WriterConnection:
    """The connection the ledger's writer appends on, used only under the writer lock.

    Taking a connection from the pool and giving it back costs about as much as writing an
    exchange's two leaves; the writer keeps one between groups instead (per process: a forked
    child takes its own). Engines whose pool does not queue connections for any thread (SQLite
    in memory) are used as before, a connection per group. The connection is closed when the
    ledger is dropped, or after any failure; it is held apart from the pool, which may open
    another in its place.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.kept = isinstance(engine.pool, QueuePool)
        """Whether the connection is kept between groups."""
        self._conn: Connection | None = None
        self._pid = 0
        self._release: weakref.finalize[Any, Any] | None = None

    @property
    def held(self) -> bool:
        """Whether a connection is held now by this process (kept from an earlier group)."""
        return self._conn is not None and self._pid == os.getpid()

    def connection(self) -> Connection:
        """The connection held, or a new one from the pool."""
        if self.held and self._conn is not None:
            return self._conn
        if self._release is not None:
            # Inherited from the parent process: never used nor closed here.
            self._release.detach()
            self._release = None
        conn = self.engine.connect()
        if self.kept:
            # Out of the pool's count: the pool may open another in its place, and closing this
            # one closes it, even after the engine was disposed.
            conn.detach()
        self._conn, self._pid = conn, os.getpid()
        self._release = weakref.finalize(self, _close_quietly, conn)
        return conn

    def drop(self) -> None:
        """Close the connection held (rolling back anything begun on it)."""
        release, self._release, self._conn = self._release, None, None
        if release is not None:
            release()

    def lost(self, exc: Exception) -> bool:
        """Whether ``exc``, raised on the connection held, says the database closed it."""
        conn = self._conn
        if conn is None:
            return False
        if conn.invalidated:
            return True
        dialect = self.engine.dialect
        error = getattr(dialect, "loaded_dbapi", None)
        if error is None or not isinstance(exc, error.Error):
            return False
        try:
            return bool(dialect.is_disconnect(exc, conn.connection.dbapi_connection, None))
        except Exception:  # noqa: BLE001 - a connection that cannot even say is lost too
            return True


def _seal(
    leaves: Leaves,
    start: int,
    listed: dict[int, list[shred.PersonKey]],
    *,
    datas: list[bytes | None],
    hashes: list[bytes | None],
    rows: tuple[list[tuple[bytes, int]], list[tuple[int, int, bytes, bytes, bytes]]],
) -> None:
    """Write the leaves about people of a batch after ``start`` leaves, whose keys are
    ``listed`` by offset, into ``datas`` and ``hashes``; their index rows (but for entries about
    many, indexed apart) and subject chunks are added to ``rows`` (index rows, subject rows)."""
    index_rows, subject_rows = rows
    sha256 = hashlib.sha256
    for offset, mine in listed.items():
        index = start + offset
        secret = list(map(itemgetter(0), mine))
        if len(mine) < shred.MANY:
            index_rows.extend([(lookup, index) for _, lookup in mine])
        written = _subjects_of(secret, index, subject_rows)
        data = leaves.entries[offset].sealed(secret, index).encode(written)
        datas[offset] = data
        hashes[offset] = sha256(b"\x00" + data).digest()


def _subjects_of(
    secret: list[bytes], index: int, subject_rows: list[tuple[int, int, bytes, bytes, bytes]]
) -> subjects.SubjectTree | list[str]:
    """What leaf ``index`` holds of the tags of the people with keys ``secret``: their tags, or
    for many people the tree over them, whose chunks are added to ``subject_rows`` (stored beside
    the leaf)."""
    if len(secret) < subjects.TREE_MIN:
        return shred.subject_tags(secret, index)
    # Raw tags, sorted as bytes (as their lowercase hex would sort), never written as hex.
    tree = subjects.SubjectTree.of_digests(shred.subject_digests(secret, index))
    subject_rows.extend((index, n, first, root, chunk) for n, first, chunk, root in tree.chunks())
    return tree


def _close_quietly(conn: Connection) -> None:
    """Close a connection that may already be broken (its database gone): nothing to report."""
    with suppress(Exception):
        conn.close()


def _select_in(columns: str, table: str, column: str, marks: str) -> str:
    # Only this module's constant names and placeholders are formatted in; values are parameters.
    return f"SELECT {columns} FROM {table} WHERE {column} IN ({marks})"  # noqa: S608


def _insert_if_absent(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can take ON CONFLICT DO NOTHING, in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _decode_state(size: int, root: bytes, frontier: bytes) -> _State:
    expected = size.bit_count()
    if len(frontier) != expected * merkle.HASH_SIZE:
        raise LedgerIntegrityError(
            f"the stored frontier has {len(frontier)} bytes; a tree of {size} leaves needs "
            f"{expected} hashes",
            where="ledger_state",
        )
    hashes = [frontier[i : i + merkle.HASH_SIZE] for i in range(0, len(frontier), merkle.HASH_SIZE)]
    if merkle.fold(hashes) != root:
        raise LedgerIntegrityError(
            "the stored root is not the fold of the stored frontier", where="ledger_state"
        )
    return _State(size, root, hashes)


def _aware(at: datetime) -> datetime:
    """A stored time as UTC (SQLite hands it back without its zone)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
