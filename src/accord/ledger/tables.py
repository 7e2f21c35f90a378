"""The ledger's tables in the Accord store (created by migration ``0002_ledger``).

* ``ledger_leaves``: one row per leaf, by index: its canonical JSON and its leaf hash.
* ``ledger_nodes``: the hash of every complete perfect subtree of ``2**4`` leaves or more, keyed by
  its in-order position (:func:`accord.ledger.merkle.node_position`). Lower nodes are recomputed
  from at most 16 leaf hashes, which keeps the table an eighth the size of the log while any proof
  still takes one indexed read.
* ``ledger_state``: the single row every append locks: tree size, root and frontier.
* ``ledger_checkpoints``: signed tree heads, one per tree size.
* ``person_keys``: each person's random key and lookup pseudonym, by their id; deleting it is the
  erasure.
* ``ledger_person_index``: which leaves concern which person, by the person's lookup pseudonym,
  in parts (see :class:`LedgerPersonIndex`); ``ledger_index_parts`` lists the parts after 0.
* ``ledger_map_leaves``, ``ledger_map_nodes``, ``ledger_map_state``: the people map each
  checkpoint commits to (:mod:`accord.ledger.peoplemap`, migration ``0015_erasure_notices``).
* ``ledger_subjects``: the sorted subject tags of each entry whose leaf commits to them by a root
  (:mod:`accord.ledger.subjects`), in chunks (migration ``0016_ledger_leaf_index``, which also
  indexes the person index by leaf).
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Engine,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from accord.errors import StoreError, translate
from accord.store.engine import Base
from accord.store.types import UTCDateTime

# On SQLite only a column declared exactly INTEGER PRIMARY KEY is the rowid; BIGINT would add a
# second index and slow every insert. SQLite integers are 64-bit either way.
_Index = BigInteger().with_variant(Integer(), "sqlite")

STATE_ROW_ID = 1

STORED_MIN_LEVEL = 4
"""Nodes at this level and above are stored; lower ones are recomputed from their leaf hashes."""


class LedgerLeaf(Base):
    """One leaf of the log."""

    __tablename__ = "ledger_leaves"

    idx: Mapped[int] = mapped_column(_Index, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)


class LedgerNode(Base):
    """The hash of a complete perfect subtree, by in-order position."""

    __tablename__ = "ledger_nodes"

    pos: Mapped[int] = mapped_column(_Index, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)


class LedgerState(Base):
    """The tree head every append locks and moves forward."""

    __tablename__ = "ledger_state"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    frontier: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    """Concatenated hashes of the tree's maximal perfect subtrees, largest first."""


class LedgerCheckpoint(Base):
    """A signed tree head (C2SP tlog-checkpoint in a signed note)."""

    __tablename__ = "ledger_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    root: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class PersonKey(Base):
    """A person's random 32-byte key; their pseudonyms are HMACs under it."""

    __tablename__ = "person_keys"
    # One b-tree by person id on SQLite: a release about many people looks up each one's key.
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012 - SQLAlchemy's declaration

    person_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    lookup: Mapped[bytes] = mapped_column(LargeBinary(16), nullable=False)
    """The person's lookup pseudonym (the first 16 bytes of ``HMAC-SHA256(key,
    "accord/ledger/lookup/v1")``), made with the key: the index rows of every entry about them
    carry it."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class LedgerPersonIndex(Base):
    """Leaf ``leaf_idx`` concerns the person whose lookup pseudonym is ``pseudonym``.

    Rows are keyed by ``part`` first (migration ``0008_ledger_index_parts``): part 0 holds the rows
    of entries about fewer than :data:`accord.ledger.shred.MANY` people; an entry about more has a
    part of its own, numbered by its leaf index plus one, so its rows are appended after every
    other row
    rather than scattered among them (which rewrote most of the index's pages at every such
    release). A lookup searches part 0 and each part listed in ``ledger_index_parts``.
    """

    __tablename__ = "ledger_person_index"
    # One b-tree on SQLite (``sqlite_with_rowid``): a release about many people inserts a row
    # for each.

    part: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    pseudonym: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    leaf_idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)

    # By leaf too: a checkpoint reads the rows of the leaves appended since the last one, and
    # the auditor the rows of the releases it replays, without scanning every part.
    __table_args__ = (
        Index("ix_ledger_person_index_leaf", "leaf_idx"),
        {"sqlite_with_rowid": False},
    )


class LedgerSubjects(Base):
    """A chunk of the sorted subject tags of the entry at ``leaf_idx``, whose leaf holds only
    their root (:mod:`accord.ledger.subjects`): kept beside the leaf, outside its hash."""

    __tablename__ = "ledger_subjects"

    leaf_idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    first: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    """The chunk's first tag: a person's chunk is found among the firsts."""
    root: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    """The Merkle tree hash of the chunk's tags."""
    # Last in the row: the firsts and roots of every chunk are read without the tags' pages.
    tags: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    """The chunk's tags, 32 bytes each, sorted."""


class LedgerIndexPart(Base):
    """A part of the person index after part 0: an entry about many people's (its leaf index plus
    one), or one others were folded into (below 0)."""

    __tablename__ = "ledger_index_parts"

    part: Mapped[int] = mapped_column(_Index, primary_key=True, autoincrement=False)


class PeopleMapLeaf(Base):
    """A person's leaf in the people map (:mod:`accord.ledger.peoplemap`) as of the map's size.

    Found by the person's lookup pseudonym when entries about them are added; ``lookup`` is
    cleared, and ``removed`` set, when they are erased: the leaf stays in the map until the next
    checkpoint takes it out, so proofs under the current one still hold."""

    __tablename__ = "ledger_map_leaves"

    key: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    lookup: Mapped[bytes | None] = mapped_column(LargeBinary(16), nullable=True)
    bucket: Mapped[int] = mapped_column(Integer, nullable=False)
    """The key's first 16 bits: a checkpoint reads the leaves of the buckets it changes."""
    count: Mapped[int] = mapped_column(BigInteger, nullable=False)
    head: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    removed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    __table_args__ = (
        Index("ix_ledger_map_leaves_lookup", "lookup", unique=True),
        Index("ix_ledger_map_leaves_bucket", "bucket"),
    )


class PeopleMapNode(Base):
    """A node of the people map's top tree, in heap order (the root at 1); a missing one is an
    empty subtree."""

    __tablename__ = "ledger_map_nodes"

    pos: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)


class PeopleMapState(Base):
    """How many leaves of the log the people map covers (one row, id 1)."""

    __tablename__ = "ledger_map_state"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)


leaves_table = cast(Table, LedgerLeaf.__table__)
nodes_table = cast(Table, LedgerNode.__table__)
state_table = cast(Table, LedgerState.__table__)
checkpoints_table = cast(Table, LedgerCheckpoint.__table__)
person_keys_table = cast(Table, PersonKey.__table__)
person_index_table = cast(Table, LedgerPersonIndex.__table__)
index_parts_table = cast(Table, LedgerIndexPart.__table__)
map_leaves_table = cast(Table, PeopleMapLeaf.__table__)
map_nodes_table = cast(Table, PeopleMapNode.__table__)
map_state_table = cast(Table, PeopleMapState.__table__)
subjects_table = cast(Table, LedgerSubjects.__table__)

LEDGER_TABLES: list[Table] = [
    leaves_table,
    nodes_table,
    state_table,
    checkpoints_table,
    person_keys_table,
    person_index_table,
    index_parts_table,
    map_leaves_table,
    map_nodes_table,
    map_state_table,
    subjects_table,
]


def create_ledger_tables(engine: Engine) -> None:
    """Create the ledger's tables where missing (for tests and tools; the store runs migrations)."""
    with translate(StoreError, "creating the ledger tables"):
        Base.metadata.create_all(engine, tables=LEDGER_TABLES)
