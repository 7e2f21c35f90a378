"""The ledger's person index by leaf, and the subject lists kept beside leaves that commit to them
by a root.

* ``ix_ledger_person_index_leaf``: the person index by leaf index, so a checkpoint reads the rows
  of the leaves appended since the last one (and the auditor those of the releases it replays)
  without scanning every part of the index.
* ``ledger_subjects``: the sorted subject tags of each entry about many people, in chunks, whose
  leaf holds only their Merkle root and count (:mod:`accord.ledger.subjects`).

Revision ID: 0016_ledger_leaf_index
Revises: 0015_erasure_notices
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_ledger_leaf_index"
down_revision: str | None = "0015_erasure_notices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_ledger_person_index_leaf", "ledger_person_index", ["leaf_idx"])
    op.create_table(
        "ledger_subjects",
        sa.Column("leaf_idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chunk", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("first", sa.LargeBinary(length=32), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("tags", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("leaf_idx", "chunk"),
    )


def downgrade() -> None:
    op.drop_table("ledger_subjects")
    op.drop_index("ix_ledger_person_index_leaf", table_name="ledger_person_index")
