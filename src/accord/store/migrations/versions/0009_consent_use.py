"""Consents for one disclosure are spent once a release relied on them.

18 U.S.C. 2710(b)(2)(B)(ii)(I): a consent "given at the time the disclosure is sought" covers that
disclosure, not the next one. ``consent_uses`` records, for each such consent a release relied on,
when and by which request; the per-person filter counts only consents without a row here.

Revision ID: 0009_consent_use
Revises: 0008_ledger_index_parts
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_consent_use"
down_revision: str | None = "0008_ledger_index_parts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# How accord.store.types.UTCDateTime stores an instant (as in 0001_core), frozen here.
INSTANT = sa.DateTime(timezone=True).with_variant(sa.String(27), "sqlite")


def upgrade() -> None:
    op.create_table(
        "consent_uses",
        sa.Column("consent_id", sa.String(), nullable=False),
        sa.Column("used_at", INSTANT, nullable=False),
        sa.Column("request_id", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"],
            ["consents.id"],
            name="fk_consent_uses_consent",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("consent_id"),
    )


def downgrade() -> None:
    op.drop_table("consent_uses")
