"""The ad platforms' campaigns revision: per platform, a count of the writes to its campaigns.

Every campaign write (added, paused, resumed) moves its platform's row in the same transaction,
so that an ad server sees at once, with one small read, that the campaigns it serves changed.

Revision ID: 0020_campaign_revisions
Revises: 0019_code_tokens
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_campaign_revisions"
down_revision: str | None = "0019_code_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ads_campaign_revisions",
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("platform"),
    )


def downgrade() -> None:
    op.drop_table("ads_campaign_revisions")
