"""Ledger: the person index in parts, so an entry about many people is appended, not scattered.

The index's rows were keyed by lookup pseudonym alone. Pseudonyms are random, so a release about
200,000 people inserted 200,000 rows all over an index of millions: nearly every page of the
index was rewritten (and written to the write-ahead log, then back) by every such release, and
the more releases the index held, the more each new one cost. Rows are now keyed by part first:
part 0 holds the rows of entries about a few people, as before; an entry about many people gets
a part of its own, numbered by its leaf index plus one, whose rows land after every other row.
A lookup reads part 0 and each part ``ledger_index_parts`` lists, one search each. Existing rows
go to part 0.

Revision ID: 0008_ledger_index_parts
Revises: 0007_filter_covering
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_ledger_index_parts"
down_revision: str | None = "0007_filter_covering"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ledger_index_parts",
        sa.Column("part", _INDEX_KEY, autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("part"),
    )
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_index(["part", "pseudonym", "leaf_idx"], "0, pseudonym, leaf_idx")
        return
    op.add_column(
        "ledger_person_index",
        sa.Column("part", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.alter_column("ledger_person_index", "part", server_default=None)
    op.drop_constraint("ledger_person_index_pkey", "ledger_person_index", type_="primary")
    op.create_primary_key(
        "ledger_person_index_pkey", "ledger_person_index", ["part", "pseudonym", "leaf_idx"]
    )


def downgrade() -> None:
    """Every part's rows back in one index keyed by pseudonym."""
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_index(["pseudonym", "leaf_idx"], "pseudonym, leaf_idx")
    else:
        op.drop_constraint("ledger_person_index_pkey", "ledger_person_index", type_="primary")
        op.drop_column("ledger_person_index", "part")
        op.create_primary_key(
            "ledger_person_index_pkey", "ledger_person_index", ["pseudonym", "leaf_idx"]
        )
    op.drop_table("ledger_index_parts")


def _rebuild_index(key: list[str], selected: str) -> None:
    """SQLite cannot change a primary key: the index is copied into a new table keyed by ``key``
    (``WITHOUT ROWID``: the key is the table's one b-tree)."""
    op.create_table(
        "ledger_person_index_new",
        *(
            [sa.Column("part", sa.BigInteger(), autoincrement=False, nullable=False)]
            if "part" in key
            else []
        ),
        sa.Column("pseudonym", sa.LargeBinary(length=16), nullable=False),
        sa.Column("leaf_idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint(*key),
        sqlite_with_rowid=False,
    )
    # Only this module's constant column lists are formatted in.
    op.execute(
        f"INSERT OR IGNORE INTO ledger_person_index_new ({', '.join(key)}) "  # noqa: S608
        f"SELECT {selected} FROM ledger_person_index ORDER BY pseudonym, leaf_idx"
    )
    op.drop_table("ledger_person_index")
    op.rename_table("ledger_person_index_new", "ledger_person_index")
