"""Ledger: each person's lookup pseudonym stored beside their key, cut to 16 bytes; key and index
tables keyed by their primary key alone on SQLite.

A release about many people read every person's key and computed their lookup pseudonym
(``HMAC-SHA256(key, "accord/ledger/lookup/v1")``) again for each index row. The pseudonym is now
computed once, when the key is made, and kept in ``person_keys.lookup``; it tells nothing the key
does not, and erasing the person deletes both. It is the HMAC's first 16 bytes (RFC 2104 section
5 allows truncation to half): every index row, existing ones included, is a third smaller. On
SQLite both tables become ``WITHOUT ROWID``: a key lookup is then one b-tree search instead of an
index search and a row fetch, and an index row one b-tree insert instead of two.

Revision ID: 0005_ledger_keys
Revises: 0004_pets
Create Date: 2026-11-29
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_ledger_keys"
down_revision: str | None = "0004_pets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies, so this migration never changes with the code.
LOOKUP_CONTEXT = b"accord/ledger/lookup/v1"
LOOKUP_SIZE = 16
INSTANT = sa.DateTime(timezone=True).with_variant(sa.String(27), "sqlite")
BATCH = 10_000


def _lookup(key: bytes) -> bytes:
    return hmac.digest(key, LOOKUP_CONTEXT, "sha256")[:LOOKUP_SIZE]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _upgrade_sqlite(bind)
    else:
        _upgrade_other(bind)


def _upgrade_sqlite(bind: sa.Connection) -> None:
    op.create_table(
        "person_keys_new",
        sa.Column("person_id", sa.String(length=255), nullable=False),
        sa.Column("key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("lookup", sa.LargeBinary(length=16), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("person_id"),
        sqlite_with_rowid=False,
    )
    _copy_keys(bind, "person_keys_new")
    op.drop_table("person_keys")
    op.rename_table("person_keys_new", "person_keys")
    op.create_table(
        "ledger_person_index_new",
        sa.Column("pseudonym", sa.LargeBinary(length=16), nullable=False),
        sa.Column("leaf_idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("pseudonym", "leaf_idx"),
        sqlite_with_rowid=False,
    )
    op.execute(  # 16: LOOKUP_SIZE
        "INSERT INTO ledger_person_index_new (pseudonym, leaf_idx) "
        "SELECT substr(pseudonym, 1, 16), leaf_idx FROM ledger_person_index "
        "ORDER BY pseudonym, leaf_idx"
    )
    op.drop_table("ledger_person_index")
    op.rename_table("ledger_person_index_new", "ledger_person_index")


def _upgrade_other(bind: sa.Connection) -> None:
    op.add_column("person_keys", sa.Column("lookup", sa.LargeBinary(length=16), nullable=True))
    keys = sa.table(
        "person_keys",
        sa.column("person_id", sa.String()),
        sa.column("key", sa.LargeBinary()),
        sa.column("lookup", sa.LargeBinary()),
    )
    rows = bind.execute(sa.select(keys.c.person_id, keys.c.key)).all()
    update = (
        sa.update(keys)
        .where(keys.c.person_id == sa.bindparam("pid"))
        .values(lookup=sa.bindparam("lk"))
    )
    for start in range(0, len(rows), BATCH):
        part = rows[start : start + BATCH]
        bind.execute(update, [{"pid": p, "lk": _lookup(bytes(k))} for p, k in part])
    op.alter_column("person_keys", "lookup", nullable=False)
    op.execute(  # 16: LOOKUP_SIZE
        "UPDATE ledger_person_index SET pseudonym = substring(pseudonym from 1 for 16)"
    )


def _copy_keys(bind: sa.Connection, into: str) -> None:
    """Copy every key into ``into`` with its lookup pseudonym, a batch at a time."""
    source = bind.execute(sa.text("SELECT person_id, key, created_at FROM person_keys"))
    insert = sa.text(
        f"INSERT INTO {into} (person_id, key, lookup, created_at) "  # noqa: S608 - fixed name
        "VALUES (:person_id, :key, :lookup, :created_at)"
    )
    while part := source.fetchmany(BATCH):
        bind.execute(
            insert,
            [
                {"person_id": p, "key": k, "lookup": _lookup(bytes(k)), "created_at": at}
                for p, k, at in part
            ],
        )


def downgrade() -> None:
    """Index rows back under the full 32-byte pseudonym, and the column dropped."""
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT key FROM person_keys")).all()
    restore = sa.text("UPDATE ledger_person_index SET pseudonym = :full WHERE pseudonym = :short")
    for start in range(0, len(rows), BATCH):
        pairs = []
        for (key,) in rows[start : start + BATCH]:
            full = hmac.digest(bytes(key), LOOKUP_CONTEXT, "sha256")
            pairs.append({"full": full, "short": full[:LOOKUP_SIZE]})
        if pairs:
            bind.execute(restore, pairs)
    op.drop_column("person_keys", "lookup")
