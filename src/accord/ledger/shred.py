"""People in the log without exposing them, and erasure by crypto-shredding.

Each person the ledger records gets a random 32-byte key of their own (table ``person_keys``).
A leaf about them carries, instead of their id, a *subject tag*:
``HMAC-SHA256(key, "accord/ledger/subject/v1\\n" || decimal leaf index)``. Tags differ from
leaf to leaf, so leaves cannot be linked to each other either. To find a person's leaves without
scanning, the ledger also writes ``(lookup pseudonym, leaf index)`` rows to
``ledger_person_index`` (in parts: an entry about many people has its own, see :func:`index_many`);
the lookup pseudonym, the first 16 bytes of
``HMAC-SHA256(key, "accord/ledger/lookup/v1")``, is computed once when the key is made and kept
beside it.

Erasing a person deletes their key and their index rows. Their leaves stay, byte for byte, so the
tree still verifies; without the key nobody can recompute the tags, and nothing links the leaves to
the person any more.

A ledger's writer keeps the keys of the people of entries about many (:class:`KeptKeys`): a bulk
release names much the same people each time. Before using them it checks, under the append lock,
that no erasure was appended since, by any process.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from itertools import islice
from operator import itemgetter

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    delete,
    insert,
    literal,
    select,
    union_all,
    update,
)

from accord.errors import LedgerError
from accord.ledger.tables import index_parts_table as _parts_table
from accord.ledger.tables import map_leaves_table as _map
from accord.ledger.tables import person_index_table as _index
from accord.ledger.tables import person_keys_table as _keys

SUBJECT_CONTEXT = b"accord/ledger/subject/v1\n"
LOOKUP_CONTEXT = b"accord/ledger/lookup/v1"
KEY_SIZE = 32
LOOKUP_SIZE = 16
"""Bytes of the lookup pseudonym: HMAC-SHA256 truncated to half its length (RFC 2104, section 5,
allows down to half). 128 bits keep people apart; each index row is a third smaller, and a
release about many people writes one row per person."""


PersonKey = tuple[bytes, bytes]
"""A person's key and the lookup pseudonym made from it. A plain pair, not a named tuple: a
release about a million people makes a million of them."""


def new_key() -> PersonKey:
    """A new random key and its lookup pseudonym."""
    key = secrets.token_bytes(KEY_SIZE)
    return key, lookup_pseudonym(key)


def subject_tag(key: bytes, index: int) -> str:
    """The pseudonym (hex) a person has in leaf ``index``."""
    return hmac.digest(key, SUBJECT_CONTEXT + str(index).encode("ascii"), "sha256").hex()


def subject_tags(keys: Sequence[bytes], index: int) -> list[str]:
    """The pseudonyms of the people with these keys in leaf ``index`` (a release may name
    hundreds of thousands: one message, and OpenSSL's one-shot HMAC for each key)."""
    message = SUBJECT_CONTEXT + str(index).encode("ascii")
    return [hmac.digest(key, message, "sha256").hex() for key in keys]


def subject_digests(keys: Sequence[bytes], index: int) -> list[bytes]:
    """:func:`subject_tags` as raw bytes, for an entry that commits to its tags by a tree."""
    message = SUBJECT_CONTEXT + str(index).encode("ascii")
    return [hmac.digest(key, message, "sha256") for key in keys]


def lookup_pseudonym(key: bytes) -> bytes:
    """The pseudonym under which a person's leaves are indexed."""
    return hmac.digest(key, LOOKUP_CONTEXT, "sha256")[:LOOKUP_SIZE]


Suppressed = Callable[[Connection, list[str]], Collection[str]]
"""Which of some people (as the ledger names them) were erased: no new key is made for them."""


def keys_for(
    conn: Connection,
    person_ids: Iterable[str],
    *,
    create: bool,
    suppressed: Suppressed | None = None,
) -> dict[str, PersonKey]:
    """The keys of these people; with ``create``, a new random key for each who has none.

    Call it inside the ledger's append lock when creating, so two writers never race on a key.
    A person ``suppressed`` names (someone erased) never gets a key again: the entry naming them
    is refused with :class:`~accord.errors.LedgerError`, and the message does not say who.
    """
    found, _ = _keys_of(conn, person_ids, create=create, suppressed=suppressed)
    return found


def _keys_of(
    conn: Connection,
    person_ids: Iterable[str],
    *,
    create: bool,
    suppressed: Suppressed | None = None,
) -> tuple[dict[str, PersonKey], int]:
    """:func:`keys_for`, and how many of the keys it made (the last ones the dict holds)."""
    # In id order: the database then walks the key table's pages in order, each once.
    wanted = sorted(set(person_ids))
    found: dict[str, PersonKey] = {}
    if not wanted:
        return found, 0
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    # One statement, through the driver's cursor, whatever the number of people: a release may
    # name hundreds of thousands, and SQLAlchemy's per-row handling (or thousands of bound
    # parameters a statement) would cost more than the lookup.
    cursor = conn.connection.cursor()
    made = 0
    try:
        if len(wanted) == 1:
            # One person (an exchange's release): no list to build for the database to unpack.
            postgres = conn.dialect.name == "postgresql"
            cursor.execute(_KEY_OF.format(mark=mark), (wanted[0],))
        else:
            postgres, ids = _one_value(conn, wanted)
            cursor.execute(_KEYS_OF_ARRAY if postgres else _KEYS_OF_JSON, (ids,))
        found = {person: (key, look) for person, key, look in cursor.fetchall()}
        if create and len(found) < len(wanted):
            missing = [person_id for person_id in wanted if person_id not in found]
            if suppressed is not None and suppressed(conn, missing):
                raise LedgerError(
                    "an entry names a person who was erased: it is refused, so that no new key "
                    "ties them to the log again"
                )
            # The column's own conversion: timestamptz on PostgreSQL, fixed text on SQLite.
            convert = _keys.c.created_at.type.bind_processor(conn.dialect)
            now: object = datetime.now(UTC)
            now = convert(now) if convert is not None else now
            new = {person_id: new_key() for person_id in missing}
            if postgres:
                # One statement of three arrays: a statement a row costs PostgreSQL a round of
                # work each, and a bulk import makes keys for a million people.
                cursor.execute(
                    _NEW_KEYS_OF_ARRAYS,
                    (now, list(new), [k for k, _ in new.values()], [v for _, v in new.values()]),
                )
            else:
                cursor.executemany(
                    f"INSERT INTO {_keys.name} (person_id, key, lookup, created_at) "  # noqa: S608
                    f"VALUES ({mark}, {mark}, {mark}, {mark})",
                    [(p, key, look, now) for p, (key, look) in new.items()],
                )
            found.update(new)
            made = len(new)
    finally:
        cursor.close()
    return found, made


KEPT_LIMIT = 500_000
"""At most this many people's keys are kept between appends: about 270 bytes each (id, key and
lookup pseudonym), some 135 MB at the limit."""

KEPT_SCAN = 100_000
"""Kept keys are checked against at most this many leaves appended since; past that they are
read again."""


class KeptKeys:
    """The keys of the people named by entries about many people, kept between appends.

    A bulk release names much the same people each time (a partner's feed of everyone who
    consented), and looking up a few hundred thousand keys costs about as much as the rest of
    writing the entry. A key never changes; it is only made (under the append lock) or deleted,
    and only an erasure deletes one (:func:`forget`), in the same transaction as it appends its
    :class:`~accord.ledger.entries.ErasureEntry`. So keys read at a tree of size ``n`` are still
    every one of them there at a later size if no erasure leaf was appended in between, by this
    process or any other: that is checked under the lock before any kept key is used, and if
    one was (or the leaves to look at are too many, or the tree is smaller than it was) every
    kept key is forgotten and read again. Only keys read are kept, never keys made by the append
    at hand: its transaction may yet be rolled back.

    Used by one ledger's writer, holding its writer lock: not thread-safe by itself.
    """

    def __init__(self, limit: int = KEPT_LIMIT, scan: int = KEPT_SCAN) -> None:
        self.limit = limit
        self.scan = scan
        self._keys: dict[str, PersonKey] = {}
        self._size = 0
        """The tree size as of which every kept key was still in ``person_keys``."""

    def __len__(self) -> int:
        return len(self._keys)

    def clear(self) -> None:
        self._keys = {}

    def keys_for(
        self,
        conn: Connection,
        size: int,
        person_ids: AbstractSet[str],
        *,
        suppressed: Suppressed | None = None,
    ) -> Mapping[str, PersonKey]:
        """:func:`keys_for` with ``create``, inside the append lock, for a tree of ``size``
        leaves: the keys kept since, if still valid, and the others read or made. The mapping
        may hold other people's keys too."""
        if self._keys and not self._unchanged(conn, size):
            self._keys = {}
        self._size = size
        kept = self._keys
        if not kept:
            missing = person_ids
        elif isinstance(person_ids, set | frozenset):
            # Given the dict itself, the smaller side is walked: not every key kept for each
            # person of an entry about one, as ``- kept.keys()`` would.
            missing = person_ids.difference(kept)
        else:
            missing = person_ids - kept.keys()
        if not missing:
            return kept
        read, made = _keys_of(conn, missing, create=True, suppressed=suppressed)
        found = read
        if len(missing) < len(person_ids):
            found = {person: kept[person] for person in person_ids - missing}
            found.update(read)
        existing = len(read) - made
        if len(kept) + existing > self.limit:
            kept = self._keys = {}
        if existing <= self.limit:
            # The keys made come last, and are not kept: this append may yet be rolled back.
            kept.update(islice(read.items(), existing))
        return found

    def grown(self, before: int, after: int) -> None:
        """The tree grew from ``before`` leaves to ``after`` by a transaction of this writer that
        is committed and appended no erasure: keys kept as of ``before`` are all still there."""
        if self._size == before:
            self._size = after

    def _unchanged(self, conn: Connection, size: int) -> bool:
        """Whether no key was deleted between the tree of ``self._size`` leaves and ``size``."""
        if size == self._size:
            return True
        if size < self._size or size - self._size > self.scan:
            return False
        postgres = conn.dialect.name == "postgresql"
        cursor = conn.connection.cursor()
        try:
            cursor.execute(
                _ERASED_SINCE_ARRAY if postgres else _ERASED_SINCE_JSON,
                (self._size, size, ERASURE_MARK),
            )
            return cursor.fetchone() is None
        finally:
            cursor.close()


ERASURE_MARK = b'"kind":"erasure"'
"""Bytes in every erasure leaf (canonical JSON, RFC 8785: no space after the colon). Text in
another leaf holds them only escaped (with backslashes, so not these bytes); a leaf holding them
otherwise would only make the kept keys be read again."""


MANY = 1_000
"""An entry about at least this many people has a part of the person index of its own
(:func:`index_many`); rows about fewer go to part 0 with the batch's other rows."""


def index_many(
    conn: Connection, index: int, person_ids: Collection[str], keys: Sequence[PersonKey]
) -> None:
    """Write the index rows of leaf ``index`` about ``person_ids``, whose keys are ``keys`` (one
    each, in any order), as a part of the person index of its own, numbered ``index + 1`` (part 0
    is the shared one), listed in ``ledger_index_parts``.

    The part's rows sort after every earlier row, so they are appended, page after page, rather
    than inserted all over an index of millions. They are one statement, which the driver runs
    without the interpreter lock: the ledger runs it beside the Python work of the same append
    (see :meth:`accord.ledger.log.Ledger._write_locked`). On PostgreSQL the database pairs each
    id with its lookup pseudonym; on SQLite the pseudonyms at hand go as one value, cut and
    sorted by the database, so no Python work of the append's other thread (sorting the ids,
    writing them as JSON) waits for the lock, and no id is looked up a second time.
    """
    part = own_part(index)
    postgres = conn.dialect.name == "postgresql"
    cursor = conn.connection.cursor()
    try:
        cursor.execute(_NEW_PART.format(mark="%s" if postgres else "?"), (part,))
        if postgres:
            # In id order: the key table's pages in order, each read once.
            cursor.execute(_INDEX_FROM_ARRAY, (part, index, sorted(person_ids)))
            return
        lookups = b"".join(map(itemgetter(1), keys))
        if len(keys) != len(person_ids) or len(lookups) != LOOKUP_SIZE * len(keys):
            raise LedgerError("the index rows of an entry need one 16-byte pseudonym a person")
        cursor.execute(_INDEX_FROM_BYTES, (len(lookups), part, lookups, index))
    finally:
        cursor.close()


def _one_value(conn: Connection, ids: list[str]) -> tuple[bool, list[str] | str]:
    """Whether ``conn`` is PostgreSQL, and ``ids`` as one parameter of its statements: an array
    there, a JSON array for SQLite's json_each (entries hold no id with a NUL, which json_each
    would cut short)."""
    if conn.dialect.name == "postgresql":
        return True, ids
    return False, json.dumps(ids)


def own_part(index: int) -> int:
    """The part of the person index holding the rows of leaf ``index``, an entry about many
    people (part 0 is the one shared by entries about few)."""
    return index + 1


def merge_parts(conn: Connection) -> tuple[int, int]:
    """Fold every listed part of the person index into one new part; returns how many parts were
    folded and how many rows they held (nothing is done for fewer than two).

    Each entry about many people adds a part, and a lookup searches each: folding them keeps
    lookups at a few searches. The new part's rows are written in pseudonym order under a part
    number no row has yet (below every other: merged parts are numbered -1, -2, ...), so they are
    appended rather than scattered, and the old parts' rows are deleted range by range. Call it
    inside the ledger's append lock.
    """
    listed = [int(part) for (part,) in conn.execute(select(_parts_table.c.part))]
    if len(listed) < 2:
        return 0, 0
    merged = min(*listed, 0) - 1
    folded = _index.c.part.in_(listed)
    conn.execute(
        insert(_index).from_select(
            ["part", "pseudonym", "leaf_idx"],
            select(literal(merged, BigInteger()), _index.c.pseudonym, _index.c.leaf_idx)
            .where(folded)
            .order_by(_index.c.pseudonym, _index.c.leaf_idx),
        )
    )
    # The rows deleted from the old parts are the rows written to the new one.
    moved = conn.execute(delete(_index).where(folded)).rowcount
    conn.execute(delete(_parts_table).where(_parts_table.c.part.in_(listed)))
    conn.execute(insert(_parts_table).values(part=merged))
    return len(listed), moved


def _parts() -> ColumnElement[bool]:
    """The index's parts: 0 and those ``ledger_index_parts`` lists (one search in each)."""
    listed = select(_parts_table.c.part)
    return _index.c.part.in_(union_all(select(literal(0, BigInteger())), listed))


# The keys of the people in one value: constant statements over this module's own table.
_KEYS_OF_ARRAY = "SELECT person_id, key, lookup FROM person_keys WHERE person_id = ANY(%s::text[])"
_NEW_KEYS_OF_ARRAYS = (
    "INSERT INTO person_keys (person_id, key, lookup, created_at) "
    "SELECT person_id, key, lookup, %s FROM unnest(%s::text[], %s::bytea[], %s::bytea[]) "
    "AS new (person_id, key, lookup)"
)
_ERASED_SINCE_ARRAY = (
    "SELECT 1 FROM ledger_leaves WHERE idx >= %s AND idx < %s "
    "AND position(%s::bytea IN data) > 0 LIMIT 1"
)
_ERASED_SINCE_JSON = (
    "SELECT 1 FROM ledger_leaves WHERE idx >= ? AND idx < ? AND instr(data, ?) > 0 LIMIT 1"
)
_KEY_OF = "SELECT person_id, key, lookup FROM person_keys WHERE person_id = {mark}"
_KEYS_OF_JSON = (
    "SELECT k.person_id, k.key, k.lookup FROM json_each(?) AS j "
    "JOIN person_keys AS k ON k.person_id = j.value"
)


def leaves_of(conn: Connection, person_id: str) -> tuple[bytes, list[int]] | None:
    """A person's key and the indexes of the leaves about them; ``None`` if they have no key."""
    row = conn.execute(
        select(_keys.c.key, _keys.c.lookup).where(_keys.c.person_id == person_id)
    ).first()
    if row is None:
        return None
    key, lookup = bytes(row[0]), bytes(row[1])
    rows = conn.execute(
        select(_index.c.leaf_idx)
        .where(_parts(), _index.c.pseudonym == lookup)
        .order_by(_index.c.leaf_idx)
    )
    return key, [int(idx) for (idx,) in rows]


def forget(conn: Connection, person_id: str) -> int:
    """Delete a person's key and index rows; returns how many leaves they were linked to."""
    pseudonym = conn.execute(select(_keys.c.lookup).where(_keys.c.person_id == person_id)).scalar()
    if pseudonym is None:
        return 0
    deleted = conn.execute(delete(_index).where(_parts(), _index.c.pseudonym == pseudonym))
    conn.execute(delete(_keys).where(_keys.c.person_id == person_id))
    # Their leaf in the people map: taken out at the next checkpoint, unlinked from them now.
    conn.execute(update(_map).where(_map.c.lookup == pseudonym).values(lookup=None, removed=True))
    return deleted.rowcount


# A part's rows in pseudonym order: appended at the end of the index, page after page.
_NEW_PART = "INSERT INTO ledger_index_parts (part) VALUES ({mark})"
_INDEX_FROM_ARRAY = (
    "INSERT INTO ledger_person_index (part, pseudonym, leaf_idx) "
    "SELECT %s, lookup, %s FROM person_keys WHERE person_id = ANY(%s::text[]) ORDER BY lookup"
)
_INDEX_FROM_BYTES = (
    # The pseudonyms (LOOKUP_SIZE, 16 bytes each) one after the other in one blob: the part's rows
    # cut from it, in pseudonym order.
    "WITH RECURSIVE n(at) AS (SELECT 1 UNION ALL SELECT at + 16 FROM n WHERE at + 16 <= ?) "
    "INSERT INTO ledger_person_index (part, pseudonym, leaf_idx) "
    "SELECT ?, substr(?, at, 16), ? FROM n ORDER BY 2"
)
