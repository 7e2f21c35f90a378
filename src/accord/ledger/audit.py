"""Verify a stored ledger from scratch: every leaf, every stored node, every checkpoint.

Nothing stored is trusted. Leaf hashes are recomputed from leaf data; the subject list stored
beside each leaf that commits to its subjects by a root must hash to that root
(:mod:`accord.ledger.subjects`); every perfect node is
recomputed from those and compared with the stored ones; the root of every checkpointed size and
of the current tree is recomputed and compared with the signed checkpoints and the tree state; each
checkpoint's signature is checked, and a consistency proof from it to the current tree, built from
the stored nodes, must verify. Leaves are read in aligned chunks of 2**16, so memory stays bounded
whatever the size of the log; when there are several chunks, worker processes check them, one
per core, each through its own connection.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, func, select

from accord.errors import InvalidInput, LedgerIntegrityError, StoreError, translate
from accord.ledger import mapstore, merkle, shred, subjects
from accord.ledger.checkpoint import Checkpoint, Verifier, split_note
from accord.ledger.entries import decode_leaf
from accord.ledger.peoplemap import Vuf, parse_checkpoint_line
from accord.ledger.tables import STATE_ROW_ID, STORED_MIN_LEVEL
from accord.ledger.tables import checkpoints_table as _checkpoints
from accord.ledger.tables import index_parts_table as _parts
from accord.ledger.tables import leaves_table as _leaves
from accord.ledger.tables import nodes_table as _nodes
from accord.ledger.tables import person_index_table as _index
from accord.ledger.tables import person_keys_table as _keys
from accord.ledger.tables import state_table as _state
from accord.ledger.tables import subjects_table as _subjects
from accord.store.engine import make_engine

if TYPE_CHECKING:
    from accord.ledger.log import Ledger

CHUNK_LEVEL = 16
MAX_PROBLEMS = 200


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that does not verify, and where."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(slots=True)
class VerifyReport:
    """What :func:`verify_ledger` checked and what it found wrong."""

    size: int = 0
    root: bytes = merkle.EMPTY_ROOT
    leaves_checked: int = 0
    nodes_checked: int = 0
    checkpoints_checked: int = 0
    index_rows_checked: int = 0
    subject_lists_checked: int = 0
    people_map: str | None = None
    """What the check of the people map found, when it was asked for (``None``: not checked)."""
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    problems_left_out: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.problems

    def add(self, where: str, message: str) -> None:
        """Record a problem (the first :data:`MAX_PROBLEMS` are kept, the rest counted)."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(where, message))
        else:
            self.problems_left_out += 1

    def raise_for_problems(self) -> None:
        """Raise LedgerIntegrityError naming the first problem, if there is one."""
        if self.problems:
            first = self.problems[0]
            more = len(self.problems) - 1 + self.problems_left_out
            suffix = f" (and {more} more problems)" if more else ""
            raise LedgerIntegrityError(first.message + suffix, where=first.where)


def _node_name(level: int, index: int) -> str:
    start, end = merkle.node_range((level, index))
    return f"node level {level} index {index} (leaves {start}..{end - 1})"


def verify_ledger(
    ledger: Ledger,
    *,
    workers: int | None = None,
    chunk_level: int = CHUNK_LEVEL,
    people_map: Vuf | None = None,
) -> VerifyReport:
    """Recompute everything from the leaves and compare; never raises for what it finds.

    Chunks of ``2**chunk_level`` leaves are checked by up to ``workers`` processes (default: one
    per core) when there are several chunks and the database can be opened again; else here.
    """
    if chunk_level < STORED_MIN_LEVEL:
        raise InvalidInput(f"chunk_level must be at least {STORED_MIN_LEVEL}, not {chunk_level}")
    report = VerifyReport()
    began = time.perf_counter()
    with translate(StoreError, "verifying the ledger"), ledger.engine.connect() as conn:
        state = conn.execute(
            select(_state.c.size, _state.c.root, _state.c.frontier).where(
                _state.c.id == STATE_ROW_ID
            )
        ).first()
        size = int(state.size) if state else 0
        report.size = size
        report.root = bytes(state.root) if state else merkle.EMPTY_ROOT
        checkpoints = [
            (int(s), bytes(r), str(n))
            for s, r, n in conn.execute(
                select(_checkpoints.c.size, _checkpoints.c.root, _checkpoints.c.note).order_by(
                    _checkpoints.c.size
                )
            )
        ]
        wanted_sizes = sorted({size} | {s for s, _, _ in checkpoints if 0 < s <= size})
        trees: dict[int, tuple[int, bytes] | None] = {}
        roots = _check_tree(
            ledger,
            conn,
            report,
            size=size,
            wanted_sizes=wanted_sizes,
            chunking=_Chunking(chunk_level, workers),
            trees=trees,
        )
        _check_subject_lists(conn, trees, report)
        if roots is not None and state is not None:
            _check_state(size, bytes(state.root), bytes(state.frontier), roots[size], report)
        _check_people(conn, report)
        if people_map is not None:
            _check_people_map(conn, people_map, checkpoints, report)
    _check_checkpoints(
        ledger,
        checkpoints=checkpoints,
        roots=roots,
        size=size,
        report=report,
    )
    report.seconds = time.perf_counter() - began
    return report


def _check_tree(
    ledger: Ledger,
    conn: Connection,
    report: VerifyReport,
    *,
    size: int,
    wanted_sizes: list[int],
    chunking: _Chunking,
    trees: dict[int, tuple[int, bytes] | None],
) -> dict[int, bytes] | None:
    """Recompute leaves and nodes chunk by chunk; returns the root of every wanted size, and
    puts in ``trees`` the subject count and root of every leaf that commits to its subjects by a
    root (``None`` where they are malformed).

    Returns None when leaves are missing, since then no root can be recomputed.
    """
    lowest, highest = conn.execute(select(func.min(_leaves.c.idx), func.max(_leaves.c.idx))).one()
    if (lowest, highest) != ((0, size - 1) if size else (None, None)):
        # Leaves missing in between are found chunk by chunk; these are leaves outside the tree.
        report.add(
            "ledger_leaves",
            f"holds leaves numbered {lowest}..{highest}, but the tree has {size} leaves "
            f"numbered 0..{size - 1}",
        )
    chunk = 1 << chunking.level
    spans = [(start, min(start + chunk, size)) for start in range(0, size, chunk)]
    chunk_roots: list[bytes] = []
    inside: dict[merkle.NodeId, bytes] = {}  # nodes below chunk level that wanted roots need
    for result in _chunk_results(ledger, conn, spans, wanted_sizes, chunking):
        report.leaves_checked += result.leaves_checked
        report.nodes_checked += result.nodes_checked
        for where, message in result.problems:
            report.add(where, message)
        report.problems_left_out += result.problems_left_out
        trees.update(result.trees)
        if result.missing:
            return None
        if result.root is not None:
            chunk_roots.append(result.root)
        inside.update(result.inside)
    upper = merkle.levels(chunk_roots)
    report.nodes_checked += _check_upper_nodes(conn, upper, report, chunking.level)
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
    for wanted in wanted_sizes:
        parts = [
            inside[node] if node in inside else upper[node[0] - chunking.level][node[1]]
            for node in merkle.subtree_nodes(0, wanted)
        ]
        roots[wanted] = merkle.fold(parts)
    return roots


@dataclass(frozen=True, slots=True)
class _Chunking:
    level: int
    """Chunks hold ``2**level`` leaves."""
    workers: int | None
    """How many processes check chunks; None for one per core."""


@dataclass(slots=True)
class _ChunkResult:
    """What checking one chunk of leaves found; small, so a worker process can send it back."""

    root: bytes | None = None
    """The chunk's root, if the chunk is complete."""
    inside: dict[merkle.NodeId, bytes] = field(default_factory=dict)
    """Nodes inside the chunk that the roots of wanted sizes are folded from."""
    leaves_checked: int = 0
    nodes_checked: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    problems_left_out: int = 0
    missing: bool = False
    trees: dict[int, tuple[int, bytes] | None] = field(default_factory=dict)
    """The subject count and root of each leaf committing to its subjects by a root."""

    def add(self, where: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append((where, message))
        else:
            self.problems_left_out += 1


def _chunk_results(
    ledger: Ledger,
    conn: Connection,
    spans: list[tuple[int, int]],
    wanted_sizes: list[int],
    chunking: _Chunking,
) -> Iterator[_ChunkResult]:
    """Each chunk's result, in order: here, or from worker processes on every core.

    Hashing is CPU work that threads cannot share (hashlib holds the interpreter lock for data
    this short), so large logs are checked by processes, each reading its own chunks through
    its own connection. An in-memory database cannot be opened twice and is checked here.
    """
    tasks = [
        _ChunkTask(start, end, chunking.level, [w for w in wanted_sizes if start < w <= end])
        for start, end in spans
    ]
    url = _shareable_url(ledger.engine)
    workers = chunking.workers if chunking.workers is not None else _usable_cores()
    if min(workers, len(tasks)) < 2 or url is None:
        dbapi, mark = _driver_connection(conn), _mark(conn.engine)
        for task in tasks:
            yield _check_chunk(dbapi, mark, task)
        return
    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=_start_context())
    try:
        yield from pool.map(_check_chunk_apart, repeat(url), tasks)
    finally:
        # Missing leaves stop the walk early: chunks not yet started are not worth checking.
        pool.shutdown(wait=True, cancel_futures=True)


_START_METHODS = multiprocessing.get_all_start_methods()


def _start_context() -> BaseContext:
    """How the chunk workers start. ``fork`` starts one in milliseconds, and the workers open
    their own connections and never touch the ones they inherit; but a fork copies only the
    thread that forks, with every lock as it was at that instant: one another thread held then
    (a pool's, the ledger's, a connection cache's) stays held in the child for ever, and the
    verification with it. So a process running other threads (a server, a test run's leftover
    servers) starts its workers from a fork server, which has none."""
    if "fork" in _START_METHODS and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in _START_METHODS:
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


def _usable_cores() -> int:
    """The cores this process may run on (its affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_WORKER_ENGINES: dict[str, Engine] = {}


def _shareable_url(engine: Engine) -> str | None:
    """The URL another process can open the same database with, or None for in-memory ones."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and (
        url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    ):
        return None
    return url.render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class _ChunkTask:
    start: int
    end: int
    level: int
    """The chunk is the perfect subtree of ``2**level`` leaves from ``start`` (maybe unfinished)."""
    wanted: list[int]
    """Tree sizes in ``(start, end]`` whose roots are wanted."""


def _check_chunk_apart(url: str, task: _ChunkTask) -> _ChunkResult:
    """:func:`_check_chunk` in a worker process, through the worker's own engine."""
    engine = _WORKER_ENGINES.get(url)
    if engine is None:
        engine = _WORKER_ENGINES[url] = make_engine(url)
    with engine.connect() as conn:
        return _check_chunk(_driver_connection(conn), _mark(engine), task)


def _driver_connection(conn: Connection) -> Any:
    return conn.connection.dbapi_connection


def _mark(engine: Engine) -> str:
    return "?" if engine.dialect.paramstyle == "qmark" else "%s"


def _check_chunk(dbapi: Any, mark: str, task: _ChunkTask) -> _ChunkResult:
    """Rehash the leaves ``[start, end)`` and compare the stored nodes over them.

    Verification reads every leaf, so it reads them straight from the driver's cursor as plain
    tuples: SQLAlchemy's row objects would double the time it takes.
    """
    result = _ChunkResult()
    start, end = task.start, task.end
    rows = _rows(dbapi, _LEAVES_SQL.format(mark=mark), (start, end))
    # Indexes are the primary key, so a run with the right ends and length has none missing.
    if len(rows) != end - start or (rows and (rows[0][0] != start or rows[-1][0] != end - 1)):
        present = [int(row[0]) for row in rows]
        first = next((i for i, idx in enumerate(present) if idx != start + i), len(present))
        result.add(f"leaf {start + first}", "is missing")
        result.missing = True
        return result
    hashes = _rehash(rows, result)
    result.trees = {
        int(idx): _tree_of(bytes(data))
        for idx, data, _ in rows
        if isinstance(data, _BYTES) and _TREE_MARK in data
    }
    stored = [row[2] for row in rows]  # bytes from both drivers
    if hashes != stored:
        for offset, (hashed, on_disk) in enumerate(zip(hashes, stored, strict=True)):
            if hashed != on_disk:
                result.add(
                    f"leaf {start + offset}", "its data does not hash to its stored leaf hash"
                )
    result.leaves_checked = len(hashes)
    del rows, stored
    levels = merkle.levels(hashes)
    # Every node under the chunk's subtree has an in-order position in [2*start, 2*(start+2**L)-1).
    stored_nodes = {
        int(pos): bytes(hashed)
        for pos, hashed in _rows(
            dbapi, _NODES_SQL.format(mark=mark), (2 * start, 2 * (start + (1 << task.level)) - 1)
        )
    }
    for level in range(STORED_MIN_LEVEL, len(levels)):
        base = start >> level
        for offset, hashed in enumerate(levels[level]):
            result.nodes_checked += 1
            kept = stored_nodes.pop(merkle.node_position(level, base + offset), None)
            if kept is None:
                result.add(_node_name(level, base + offset), "is missing from ledger_nodes")
            elif kept != hashed:
                result.add(_node_name(level, base + offset), "differs from the leaves under it")
    for position in stored_nodes:
        result.add(_node_name(*merkle.position_node(position)), "is stored but not complete")
    if end - start == 1 << task.level:
        result.root = levels[task.level][0]
    for size in task.wanted:
        for level, index in merkle.subtree_nodes(start, size):
            result.inside[(level, index)] = levels[level][index - (start >> level)]
    return result


_BYTES = (bytes, bytearray, memoryview)
_TREE_MARK = b'"subjects_root":'


def _tree_of(data: bytes) -> tuple[int, bytes] | None:
    """A leaf's subject count and root (``None`` if it does not decode or they are malformed)."""
    try:
        leaf = decode_leaf(data)
        count, root = leaf["subjects_count"], bytes.fromhex(leaf["subjects_root"])
    except (InvalidInput, KeyError, TypeError, ValueError):
        return None
    if not isinstance(count, int) or len(root) != merkle.HASH_SIZE:
        return None
    return count, root


def _check_subject_lists(
    conn: Connection, trees: dict[int, tuple[int, bytes] | None], report: VerifyReport
) -> None:
    """The subject list stored beside each leaf that commits to its subjects by a root hashes to
    that root, and none is stored beside any other leaf."""
    c = _subjects.c
    stored = {int(i) for (i,) in conn.execute(select(c.leaf_idx).distinct())}
    for idx in sorted(stored - trees.keys()):
        report.add(f"leaf {idx}", "has a subject list stored beside it, but no subjects_root")
    for idx, tree in sorted(trees.items()):
        if tree is None:
            report.add(f"leaf {idx}", "its subjects_count or subjects_root is malformed")
            continue
        problem = _stored_list(conn, idx, tree)[1]
        report.subject_lists_checked += 1
        if problem is not None:
            report.add(f"leaf {idx}", problem)


def _stored_list(
    conn: Connection, idx: int, tree: tuple[int, bytes]
) -> tuple[subjects.SubjectTree | None, str | None]:
    """The subject list stored beside leaf ``idx``, checked against its ``(count, root)``."""
    c = _subjects.c
    rows = [
        (int(n), bytes(first), bytes(tags), bytes(root))
        for n, first, tags, root in conn.execute(
            select(c.chunk, c.first, c.tags, c.root).where(c.leaf_idx == idx).order_by(c.chunk)
        )
    ]
    if not rows:
        return None, "commits to its subjects by a root, but no subject list is stored beside it"
    return subjects.check_chunks(rows, *tree)


def _rehash(rows: list[tuple[Any, ...]], result: _ChunkResult) -> list[bytes]:
    """The leaf hash of each row's data; a leaf stored as anything but bytes is named.

    Such a leaf is hashed as its UTF-8 text, so the nodes above it are still compared.
    """
    sha256 = hashlib.sha256
    try:
        return [sha256(b"\x00" + data).digest() for _, data, _ in rows]
    except TypeError:
        pass  # some leaf is not bytes: find which, below
    hashes = []
    for idx, data, _ in rows:
        raw = data
        if not isinstance(data, _BYTES):
            result.add(f"leaf {idx}", _not_bytes(data))
            raw = str(data).encode("utf-8")
        hashes.append(sha256(b"\x00" + raw).digest())
    return hashes


def _not_bytes(data: object) -> str:
    return (
        f"its data is stored as {type(data).__name__}, not as the bytes that were hashed "
        "(the leaf was rewritten)"
    )


_LEAVES_SQL = (
    "SELECT idx, data, leaf_hash FROM ledger_leaves WHERE idx >= {mark} AND idx < {mark} "
    "ORDER BY idx"
)
_NODES_SQL = "SELECT pos, hash FROM ledger_nodes WHERE pos >= {mark} AND pos < {mark}"


def _rows(dbapi: Any, sql: str, params: tuple[int, ...]) -> list[tuple[Any, ...]]:
    """All rows of a constant query, from the driver's own cursor."""
    cursor = dbapi.cursor()
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _check_upper_nodes(
    conn: Connection, upper: list[list[bytes]], report: VerifyReport, chunk_level: int
) -> int:
    """Compare stored nodes above chunk level; flag stored nodes nobody accounted for."""
    expected = {
        merkle.node_position(chunk_level + depth, index): hashed
        for depth in range(1, len(upper))
        for index, hashed in enumerate(upper[depth])
    }
    positions = list(expected)
    for start in range(0, len(positions), 500):
        chunk = positions[start : start + 500]
        for pos, hashed in conn.execute(
            select(_nodes.c.pos, _nodes.c.hash).where(_nodes.c.pos.in_(chunk))
        ):
            if bytes(hashed) != expected.pop(int(pos)):
                report.add(
                    _node_name(*merkle.position_node(int(pos))), "differs from the leaves under it"
                )
    for position in expected:
        report.add(_node_name(*merkle.position_node(position)), "is missing from ledger_nodes")
    return len(positions)


def _check_state(
    size: int, root: bytes, frontier: bytes, computed_root: bytes, report: VerifyReport
) -> None:
    if root != computed_root:
        report.add("ledger_state", f"its root for size {size} differs from the leaves' root")
    hashes = [frontier[i : i + 32] for i in range(0, len(frontier), 32)]
    if len(hashes) != size.bit_count() or merkle.fold(hashes) != computed_root:
        report.add("ledger_state", "its frontier does not fold to the leaves' root")


def _check_checkpoints(
    ledger: Ledger,
    *,
    checkpoints: list[tuple[int, bytes, str]],
    roots: dict[int, bytes] | None,
    size: int,
    report: VerifyReport,
) -> None:
    for cp_size, cp_root, note in checkpoints:
        where = f"checkpoint at size {cp_size}"
        report.checkpoints_checked += 1
        if ledger.verifier is None:
            report.add(where, "cannot be checked: no verifier key was given")
            continue
        foreign = _signed_by_another_key(note, ledger.verifier)
        if foreign is not None:
            report.add(where, foreign)
            continue
        try:
            signed = ledger.verifier.open(note)
        except LedgerIntegrityError as exc:
            report.add(where, exc.message)
            continue
        if signed.size != cp_size or signed.root != cp_root:
            report.add(where, "its signed note disagrees with its stored size or root")
            continue
        if cp_size > size:
            report.add(where, f"is past the end of the tree ({size} leaves)")
            continue
        if roots is None:
            report.add(where, "cannot be checked against the leaves: some are missing")
            continue
        if signed.root != roots[cp_size]:
            report.add(where, "its signed root differs from the root of the stored leaves")
            continue
        try:
            proof = ledger.consistency_proof(cp_size, size)
        except LedgerIntegrityError as exc:
            report.add(where, f"no consistency proof to the current tree: {exc}")
            continue
        if not merkle.verify_consistency(cp_size, size, signed.root, roots[size], proof.path):
            report.add(where, f"the consistency proof to size {size} does not verify")


def _signed_by_another_key(note: str, verifier: Verifier) -> str | None:
    """Why a checkpoint cannot be checked with ``verifier`` when no signature on it claims to be
    that key's (another log's key, or this log's key replaced): a different problem from a
    signature that claims the key and fails, which is what tampering looks like."""
    try:
        text, signatures = split_note(note)
    except LedgerIntegrityError:
        return None
    if any(name == verifier.name and blob[:4] == verifier.key_id for name, blob in signatures):
        return None
    signers = ", ".join(sorted({f"{name} (key {blob[:4].hex()})" for name, blob in signatures}))
    origin = text.split("\n", 1)[0]
    return (
        f"signed for the log {origin!r} by {signers or 'nobody'}, not by the key checked "
        f"against, {verifier.name} (key {verifier.key_id.hex()}): the store and the signing key "
        "come from different data folders, or the key was replaced. Name the folder that holds "
        "both with --data-dir, or check against the log's published key with --vkey"
    )


def _check_people_map(
    conn: Connection, vuf: Vuf, checkpoints: list[tuple[int, bytes, str]], report: VerifyReport
) -> None:
    """The stored people map, and the map recomputed from the person index and the leaf hashes,
    are the one the checkpoint of the map's size signed."""
    size = mapstore.map_size(conn)
    note = next((n for s, _, n in checkpoints if s == size), None)
    if size == 0 or note is None:
        report.people_map = "no checkpoint commits to a people map yet"
        return
    try:
        committed = parse_checkpoint_line(Checkpoint.parse(split_note(note)[0]).extensions)
    except LedgerIntegrityError:
        committed = None  # a malformed note is reported with the checkpoints
    if committed is None:
        report.add("people map", f"the checkpoint of size {size} commits to no people map")
        return
    if committed[1] != vuf.public_key:
        report.add("people map", f"the checkpoint of size {size} names another map key")
        return
    # Its stored nodes and its stored leaves, each: proofs read both.
    if committed[0] != mapstore.root(conn) or committed[0] != mapstore.root_of_leaves(conn):
        report.add(
            "people map",
            f"the stored map is not the one the checkpoint of size {size} signed: rebuild it "
            "with `accord ledger rebuild-map`",
        )
    erased = mapstore.pending_removals(conn)
    if erased:
        report.people_map = (
            f"stored map checked; not recomputed: {erased} people erased since the checkpoint of "
            f"size {size} leave it at the next one"
        )
        return
    recomputed, people = mapstore.recompute(conn, size, vuf)
    if recomputed != committed[0]:
        report.add(
            "people map",
            f"the map recomputed from the person index is not the one the checkpoint of size "
            f"{size} signed: the index or the leaves changed since",
        )
    report.people_map = f"recomputed for {people} people at size {size}"


def _check_people(conn: Connection, report: VerifyReport) -> None:
    """Every index row belongs to a person with a key, and points at a leaf tagged for them."""
    keys: dict[bytes, bytes] = {}
    mismatched = 0
    for key, stored in conn.execute(select(_keys.c.key, _keys.c.lookup)):
        lookup = shred.lookup_pseudonym(bytes(key))
        mismatched += bytes(stored) != lookup
        keys[lookup] = bytes(key)
    if mismatched:
        # Index rows are written with the stored pseudonym: a wrong one hides a person's entries
        # from them, or shows them someone else's.
        report.add("person keys", f"{mismatched} lookup pseudonym(s) not made from their key")
    # A release may name hundreds of thousands of people: its leaf is decoded once, into a set,
    # for all of their index rows (which come in leaf order), not once a row.
    tagged: dict[int, frozenset[str] | None] = {}
    pending: list[tuple[bytes, int]] = []
    # A row in a part lookups do not read hides a person's entry from them: part 0, the listed
    # part of its own leaf, or a listed part that others were merged into (numbered below 0).
    listed = {int(part) for (part,) in conn.execute(select(_parts.c.part))}
    misplaced = 0
    for part, pseudonym, leaf_idx in conn.execute(
        select(_index.c.part, _index.c.pseudonym, _index.c.leaf_idx).order_by(_index.c.leaf_idx)
    ):
        misplaced += part != 0 and (part not in listed or 0 < part != shred.own_part(leaf_idx))
        pending.append((bytes(pseudonym), int(leaf_idx)))
        if len(pending) >= 500:
            _check_index_rows(conn, pending, keys, report, tagged)
            pending = []
    _check_index_rows(conn, pending, keys, report, tagged)
    if misplaced:
        report.add(
            "person index",
            f"{misplaced} row(s) in a part that lookups do not read (not part 0, their leaf's own "
            "listed part or a listed merged part): those entries are hidden from their people",
        )


def _tags_of(
    conn: Connection, idx: int, data: bytes, report: VerifyReport
) -> frozenset[str] | None:
    """The subject tags of leaf ``idx``: listed in it, or stored beside it (``None`` where they
    cannot be read; that is reported once, here or with the stored lists)."""
    try:
        leaf = decode_leaf(data)
    except InvalidInput as exc:
        report.add(f"leaf {idx}", exc.message)
        return None
    if "subjects_root" not in leaf:
        return frozenset(leaf.get("subjects", []))
    # Checked against the root with the other stored lists: read here for its tags.
    tree = _tree_of(data)
    found = _stored_list(conn, idx, tree)[0] if tree is not None else None
    return frozenset(found.hex_tags()) if found is not None else None


def _check_index_rows(
    conn: Connection,
    rows: Iterable[tuple[bytes, int]],
    keys: dict[bytes, bytes],
    report: VerifyReport,
    tagged: dict[int, frozenset[str] | None],
) -> None:
    """Check index rows against their leaves' subject tags; ``tagged`` keeps the tags of the
    leaves decoded last (``None`` for a leaf that does not decode), across calls."""
    rows = list(rows)
    if not rows:
        return
    needed = {idx for _, idx in rows}
    if len(tagged) > 64:
        # Rows come in leaf order: the leaves of earlier batches are not needed again.
        for idx in [i for i in tagged if i not in needed and i != max(tagged)]:
            del tagged[idx]
    wanted = sorted(needed - tagged.keys())
    leaves = {
        int(idx): data
        for idx, data in conn.execute(
            select(_leaves.c.idx, _leaves.c.data).where(_leaves.c.idx.in_(wanted))
        )
    }
    for idx, data in leaves.items():
        if not isinstance(data, _BYTES):
            tagged[idx] = None  # named once already, where the leaves are rehashed
            continue
        tagged[idx] = _tags_of(conn, idx, bytes(data), report)
    for pseudonym, idx in rows:
        report.index_rows_checked += 1
        where = f"person index row for leaf {idx}"
        key = keys.get(pseudonym)
        if key is None:
            report.add(where, "belongs to no person key (left behind by an erasure?)")
            continue
        if idx not in tagged:
            report.add(where, "points at a leaf that does not exist")
            continue
        subjects = tagged[idx]
        if subjects is None:
            continue  # reported once, with the leaf
        if shred.subject_tag(key, idx) not in subjects:
            report.add(where, "the leaf carries no subject tag for this person")
