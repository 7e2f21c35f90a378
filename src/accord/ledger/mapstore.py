"""The people map (:mod:`accord.ledger.peoplemap`) in the ledger's tables: brought up to date when
a checkpoint is signed, a person's proof read from it, and the whole map recomputed from the log's
person index (to check it, or to build it again).

The map's tables hold its state as of ``ledger_map_state.size`` leaves, the size of the newest
checkpoint that carries its line: proofs under that checkpoint are read from them as they stand.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, insert, or_, select, update

from accord.errors import LedgerIntegrityError
from accord.ledger import peoplemap
from accord.ledger.peoplemap import MapLeaf, Vuf
from accord.ledger.tables import leaves_table as _leaves
from accord.ledger.tables import map_leaves_table as _map
from accord.ledger.tables import map_nodes_table as _nodes
from accord.ledger.tables import map_state_table as _state
from accord.ledger.tables import person_index_table as _index

_CHUNK = 500
"""Values per IN list: within every backend's parameter limit."""


def map_size(conn: Connection) -> int:
    """How many leaves of the log the map covers (0 before its first checkpoint)."""
    size = conn.execute(select(_state.c.size).where(_state.c.id == 1)).scalar()
    return 0 if size is None else int(size)


def root(conn: Connection) -> bytes:
    """The map's root as stored."""
    stored = conn.execute(select(_nodes.c.hash).where(_nodes.c.pos == 1)).scalar()
    return peoplemap.EMPTY_ROOT if stored is None else bytes(stored)


def _chunks(values: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _touched(conn: Connection, since: int, size: int) -> tuple[dict[bytes, list[int]], int]:
    """The leaves ``[since, size)`` by the lookup pseudonym of each person they are about, and
    how many index rows that read."""
    i = _index.c
    touched: dict[bytes, list[int]] = defaultdict(list)
    rows = conn.execute(
        select(i.pseudonym, i.leaf_idx).where(
            i.leaf_idx >= since,
            i.leaf_idx < size,
            # An entry about many people has a part of its own numbered by its index plus one.
            or_(i.part <= 0, and_(i.part > since, i.part <= size)),
        )
    )
    read = 0
    for pseudonym, index in rows:
        touched[bytes(pseudonym)].append(int(index))
        read += 1
    return touched, read


def _leaf_hashes(conn: Connection, touched: dict[bytes, list[int]]) -> dict[int, bytes]:
    hashes: dict[int, bytes] = {}
    wanted = sorted({index for indexes in touched.values() for index in indexes})
    for chunk in _chunks(wanted):
        for index, hashed in conn.execute(
            select(_leaves.c.idx, _leaves.c.leaf_hash).where(_leaves.c.idx.in_(chunk))
        ):
            hashes[int(index)] = bytes(hashed)
    return hashes


def _pairs(indexes: list[int], hashes: dict[int, bytes]) -> list[tuple[int, bytes]]:
    """A person's ``(leaf index, leaf hash)`` pairs in index order, as their chain takes them."""
    indexes.sort()
    try:
        return [(index, hashes[index]) for index in indexes]
    except KeyError as exc:
        raise LedgerIntegrityError(
            f"leaf {exc.args[0]} is indexed but missing", where="ledger_leaves"
        ) from None


def bring_up_to_date(conn: Connection, size: int, vuf: Vuf) -> tuple[bytes, dict[str, int]]:
    """Fold the entries ``[map size, size)`` into the map, take out erased people, and return
    the new root with what it cost (rows read, leaves written, functions signed, buckets
    rebuilt). Call it inside the ledger's append lock, in the transaction that stores the
    checkpoint."""
    since = map_size(conn)
    if size < since:
        raise LedgerIntegrityError(
            f"the people map covers {since} entries but the log has {size}", where="ledger_map"
        )
    touched, read = _touched(conn, since, size)
    hashes = _leaf_hashes(conn, touched)
    m = _map.c
    known: dict[bytes, MapLeaf] = {}
    for chunk in _chunks(sorted(touched)):
        for lookup, key, count, head in conn.execute(
            select(m.lookup, m.key, m.count, m.head).where(m.lookup.in_(chunk))
        ):
            known[bytes(lookup)] = MapLeaf(bytes(key), int(count), bytes(head))
    changed: list[dict[str, Any]] = []
    added: list[dict[str, Any]] = []
    buckets: set[int] = set()
    for lookup, indexes in touched.items():
        pairs = _pairs(indexes, hashes)
        before = known.get(lookup)
        if before is None:
            key, _ = vuf.prove(lookup)
            head = peoplemap.chain(peoplemap.CHAIN_START, pairs)
            added.append(
                {
                    "key": key,
                    "lookup": lookup,
                    "bucket": peoplemap.bucket_of(key),
                    "count": len(pairs),
                    "head": head,
                    "removed": False,
                }
            )
        else:
            key = before.key
            head = peoplemap.chain(before.head, pairs)
            changed.append({"k": key, "c": before.count + len(pairs), "h": head})
        buckets.add(peoplemap.bucket_of(key))
    if added:
        conn.execute(insert(_map), added)
    if changed:
        conn.execute(
            update(_map)
            .where(m.key == bindparam("k"))
            .values(count=bindparam("c"), head=bindparam("h")),
            changed,
        )
    gone = [bytes(key) for (key,) in conn.execute(select(m.key).where(m.removed.is_(True)))]
    if gone:
        buckets.update(peoplemap.bucket_of(key) for key in gone)
        for chunk in _chunks(gone):
            conn.execute(delete(_map).where(m.key.in_(chunk)))
    top = _rebuild(conn, buckets)
    _set_size(conn, size)
    cost = {
        "index_rows_read": read,
        "people_touched": len(touched),
        "functions_signed": len(added),
        "people_removed": len(gone),
        "buckets_rebuilt": len(buckets),
    }
    return top, cost


def recompute(conn: Connection, size: int, vuf: Vuf) -> tuple[bytes, int]:
    """The map's root as of ``size`` leaves recomputed from the person index and the leaf hashes
    alone, without reading or writing the map's tables; and how many people it holds.

    Erased people have no index rows, so they are not in it: it equals a checkpoint's map only
    when nobody was erased since that checkpoint (a map leaf marked ``removed``)."""
    touched, _ = _touched(conn, 0, size)
    hashes = _leaf_hashes(conn, touched)
    buckets: dict[int, list[MapLeaf]] = defaultdict(list)
    for lookup, indexes in touched.items():
        pairs = _pairs(indexes, hashes)
        key, _ = vuf.prove(lookup)
        head = peoplemap.chain(peoplemap.CHAIN_START, pairs)
        buckets[peoplemap.bucket_of(key)].append(MapLeaf(key, len(pairs), head))
    return _root_of_buckets(buckets), len(touched)


def root_of_leaves(conn: Connection) -> bytes:
    """The map's root recomputed from its stored leaves (those marked removed included: they are
    in the map until the next checkpoint), not from its stored nodes."""
    m = _map.c
    buckets: dict[int, list[MapLeaf]] = defaultdict(list)
    for bucket, key, count, head in conn.execute(select(m.bucket, m.key, m.count, m.head)):
        buckets[int(bucket)].append(MapLeaf(bytes(key), int(count), bytes(head)))
    return _root_of_buckets(buckets)


def _root_of_buckets(buckets: dict[int, list[MapLeaf]]) -> bytes:
    tops = {}
    for bucket, leaves in buckets.items():
        leaves.sort(key=lambda leaf: leaf.key)
        tops[bucket] = peoplemap.subtree_hash(peoplemap.TOP, leaves)
    return peoplemap.update_top({}, tops)[1] if tops else peoplemap.EMPTY_ROOT


def pending_removals(conn: Connection) -> int:
    """How many people were erased since the map's size: their leaves leave it at the next
    checkpoint."""
    m = _map.c
    return len(conn.execute(select(m.key).where(m.removed.is_(True))).all())


def rebuild(conn: Connection, size: int, vuf: Vuf) -> tuple[bytes, dict[str, int]]:
    """Throw the map's tables away and build them again from the person index, as of ``size``
    leaves (in the ledger's append lock, in the transaction that signs the next checkpoint)."""
    conn.execute(delete(_map))
    conn.execute(delete(_nodes))
    conn.execute(delete(_state))
    return bring_up_to_date(conn, size, vuf)


def _bucket_leaves(conn: Connection, buckets: set[int]) -> dict[int, list[MapLeaf]]:
    """The leaves of each of ``buckets``, sorted by key: only those buckets' rows are read."""
    m = _map.c
    found: dict[int, list[MapLeaf]] = {bucket: [] for bucket in buckets}
    for chunk in _chunks(sorted(buckets)):
        for bucket, key, count, head in conn.execute(
            select(m.bucket, m.key, m.count, m.head).where(m.bucket.in_(chunk))
        ):
            found[int(bucket)].append(MapLeaf(bytes(key), int(count), bytes(head)))
    for leaves in found.values():
        leaves.sort(key=lambda leaf: leaf.key)
    return found


def _rebuild(conn: Connection, buckets: set[int]) -> bytes:
    """Rebuild the hashes of ``buckets`` and their ancestors; returns the root."""
    if not buckets:
        return root(conn)
    leaves = _bucket_leaves(conn, buckets)
    hashes = {b: peoplemap.subtree_hash(peoplemap.TOP, found) for b, found in leaves.items()}
    changed = peoplemap.update_top(_top_siblings(conn, buckets), hashes)
    positions = sorted(changed)
    for chunk in _chunks(positions):
        conn.execute(delete(_nodes).where(_nodes.c.pos.in_(chunk)))
    conn.execute(insert(_nodes), [{"pos": pos, "hash": changed[pos]} for pos in positions])
    return changed[1]


def _top_siblings(conn: Connection, buckets: set[int]) -> dict[int, bytes]:
    """The stored top-tree nodes beside the paths of ``buckets`` (all of them, for many)."""
    needed: set[int] = set()
    for bucket in buckets:
        position = peoplemap.top_position(peoplemap.TOP, bucket)
        while position > 1:
            needed.add(position ^ 1)
            position >>= 1
    n = _nodes.c
    if len(needed) > _CHUNK * 40:
        rows = conn.execute(select(n.pos, n.hash)).all()
    else:
        rows = [
            row
            for chunk in _chunks(sorted(needed))
            for row in conn.execute(select(n.pos, n.hash).where(n.pos.in_(chunk)))
        ]
    return {int(pos): bytes(h) for pos, h in rows}


def _set_size(conn: Connection, size: int) -> None:
    moved = conn.execute(update(_state).where(_state.c.id == 1).values(size=size)).rowcount
    if not moved:
        conn.execute(insert(_state).values(id=1, size=size))


def prove(conn: Connection, lookup: bytes, vuf: Vuf) -> dict[str, Any]:
    """A person's map proof as of the map's size: their key with the function's proof, their
    count and chain head (0 and the chain's start if the map holds no leaf for them), and the
    siblings of their path from depth 1 down, ending where their leaf (or its absence) is."""
    key, proof = vuf.prove(lookup)
    m = _map.c
    mine = conn.execute(
        select(m.key, m.count, m.head).where(m.lookup == lookup, m.removed.is_(False))
    ).first()
    if mine is not None and bytes(mine[0]) != key:
        raise LedgerIntegrityError("a person's map key is not the function's", where="ledger_map")
    bucket = [
        MapLeaf(bytes(k), int(c), bytes(h))
        for k, c, h in conn.execute(
            select(m.key, m.count, m.head)
            .where(m.bucket == peoplemap.bucket_of(key))
            .order_by(m.key)
        )
    ]
    inside, terminal = peoplemap.bucket_path(key, bucket)
    positions = peoplemap.top_siblings(key)
    stored = {
        int(pos): bytes(h)
        for pos, h in conn.execute(
            select(_nodes.c.pos, _nodes.c.hash).where(_nodes.c.pos.in_(positions))
        )
    }
    top = [
        stored.get(pos, peoplemap.EMPTY_AT[depth]) for depth, pos in enumerate(positions, start=1)
    ]
    found: dict[str, Any] = {
        "format": peoplemap.FORMAT,
        "lookup": lookup.hex(),
        "key": key.hex(),
        "vuf_proof": proof.hex(),
        "count": 0,
        "head": peoplemap.CHAIN_START.hex(),
        "siblings": [h.hex() for h in [*top, *inside]],
    }
    if terminal is not None and terminal.key == key:
        found["count"], found["head"] = terminal.count, terminal.head.hex()
    elif terminal is not None:
        # Absent: the path ends at another person's leaf, shown by its key and value hash only.
        found["other"] = {"key": terminal.key.hex(), "value": terminal.value.hex()}
    return found
