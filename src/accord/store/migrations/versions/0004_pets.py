"""Privacy-enhancing computation: per-person privacy budgets and their spends.

Revision ID: 0004_pets
Revises: 0003_api
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_pets"
down_revision: str | None = "0003_api"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# accord.store.types.UTCDateTime: timestamptz on PostgreSQL, fixed-width UTC text on SQLite.
INSTANT = sa.DateTime(timezone=True).with_variant(sa.String(27), "sqlite")


def upgrade() -> None:
    op.create_table(
        "privacy_budgets",
        sa.Column("party", sa.String(), nullable=False),
        sa.Column("person_id", sa.String(), nullable=False),
        sa.Column("epsilon_total", sa.BigInteger(), nullable=False),
        sa.Column("epsilon_spent", sa.BigInteger(), nullable=False),
        sa.Column("delta_total", sa.BigInteger(), nullable=False),
        sa.Column("delta_spent", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.CheckConstraint(
            "epsilon_spent >= 0 AND epsilon_spent <= epsilon_total", name="ck_budget_epsilon"
        ),
        sa.CheckConstraint(
            "delta_spent >= 0 AND delta_spent <= delta_total", name="ck_budget_delta"
        ),
        sa.PrimaryKeyConstraint("party", "person_id"),
    )
    op.create_table(
        "privacy_spends",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("query_id", sa.String(), nullable=False),
        sa.Column("party", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("agreement", sa.String(), nullable=True),
        sa.Column("clause", sa.String(), nullable=True),
        sa.Column("mechanism", sa.String(), nullable=False),
        sa.Column("epsilon", sa.BigInteger(), nullable=False),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.Column("people", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.Column("at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("query_id"),
    )


def downgrade() -> None:
    op.drop_table("privacy_spends")
    op.drop_table("privacy_budgets")
