"""Erasure requests followed to the end, and the people map the ledger's checkpoints commit to.

* ``erasure_requests``: one row per erasure, by an unguessable id the person keeps; it names the
  provider, not the person.
* ``erasure_notices`` gains the request it belongs to, when the recipient was last told, its
  deadline (GDPR Art. 12(3)), how many times it was told and why it was told again, and when it
  acknowledged; the person's id is cleared on acknowledgement instead of the row being deleted,
  so the request's state per recipient stays visible.
* ``ledger_map_leaves``, ``ledger_map_nodes``, ``ledger_map_state``: the people map
  (:mod:`accord.ledger.peoplemap`).

Revision ID: 0015_erasure_notices
Revises: 0012_ads
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_erasure_notices"
down_revision: str | None = "0012_ads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of accord.store.types.UTCDateTime: timestamptz on PostgreSQL, UTC text on SQLite.
INSTANT = sa.DateTime(timezone=True).with_variant(sa.String(27), "sqlite")


def upgrade() -> None:
    op.create_table(
        "erasure_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("requested_at", INSTANT, nullable=False),
        sa.ForeignKeyConstraint(["provider"], ["parties.id"], name="fk_erasure_requests_provider"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("erasure_notices") as batch:
        batch.add_column(sa.Column("request", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("told_at", INSTANT, nullable=True))
        batch.add_column(sa.Column("due_at", INSTANT, nullable=True))
        batch.add_column(sa.Column("acknowledged_at", INSTANT, nullable=True))
        batch.add_column(
            sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch.add_column(sa.Column("problem", sa.Text(), nullable=True))
        batch.alter_column("person", existing_type=sa.String(), nullable=True)
        batch.create_index("ix_erasure_notices_request", ["request"])
    op.create_table(
        "ledger_map_leaves",
        sa.Column("key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("lookup", sa.LargeBinary(length=16), nullable=True),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("head", sa.LargeBinary(length=32), nullable=False),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_ledger_map_leaves_lookup", "ledger_map_leaves", ["lookup"], unique=True)
    op.create_index("ix_ledger_map_leaves_bucket", "ledger_map_leaves", ["bucket"])
    op.create_table(
        "ledger_map_nodes",
        sa.Column("pos", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("pos"),
    )
    op.create_table(
        "ledger_map_state",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("ledger_map_state")
    op.drop_table("ledger_map_nodes")
    op.drop_index("ix_ledger_map_leaves_bucket", table_name="ledger_map_leaves")
    op.drop_index("ix_ledger_map_leaves_lookup", table_name="ledger_map_leaves")
    op.drop_table("ledger_map_leaves")
    with op.batch_alter_table("erasure_notices") as batch:
        batch.drop_index("ix_erasure_notices_request")
        batch.alter_column("person", existing_type=sa.String(), nullable=False)
        for column in ("problem", "attempts", "acknowledged_at", "due_at", "told_at", "request"):
            batch.drop_column(column)
    op.drop_table("erasure_requests")
