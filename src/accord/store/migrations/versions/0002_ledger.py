"""The ledger: leaves, stored Merkle nodes, the tree state, signed checkpoints, person keys.

Revision ID: 0002_ledger
Revises: 0001_core
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_ledger"
down_revision: str | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types in accord.ledger.tables, so this migration never changes.
# On SQLite only INTEGER PRIMARY KEY is the rowid; BIGINT would add an index to every insert.
INDEX = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# accord.store.types.UTCDateTime: timestamptz on PostgreSQL, fixed-width UTC text on SQLite.
INSTANT = sa.DateTime(timezone=True).with_variant(sa.String(27), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ledger_leaves",
        sa.Column("idx", INDEX, autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("idx"),
    )
    op.create_table(
        "ledger_nodes",
        sa.Column("pos", INDEX, autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("pos"),
    )
    op.create_table(
        "ledger_state",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("size"),
    )
    op.create_table(
        "person_keys",
        sa.Column("person_id", sa.String(length=255), nullable=False),
        sa.Column("key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("person_id"),
    )
    op.create_table(
        "ledger_person_index",
        sa.Column("pseudonym", sa.LargeBinary(length=32), nullable=False),
        sa.Column("leaf_idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("pseudonym", "leaf_idx"),
    )


def downgrade() -> None:
    op.drop_table("ledger_person_index")
    op.drop_table("person_keys")
    op.drop_table("ledger_checkpoints")
    op.drop_table("ledger_state")
    op.drop_table("ledger_nodes")
    op.drop_table("ledger_leaves")
