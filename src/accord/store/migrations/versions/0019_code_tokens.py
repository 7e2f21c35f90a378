"""Each token names the authorization code it was issued from, and a used code is kept.

RFC 6749 section 4.1.2: a code used more than once is refused, and the tokens already issued from
it should be revoked (the first exchange may have been an attacker's). ``api_tokens`` gains
``code_hash``, the SHA-256 of the code a token was issued from (null for an app's own token),
indexed to find them; ``api_codes`` gains ``used_at``: a code is marked used by the exchange that
issues its token instead of being deleted, so that a second use is known as one.

Revision ID: 0019_code_tokens
Revises: 0018_standing_per_transaction
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_code_tokens"
down_revision: str | None = "0018_standing_per_transaction"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of accord.store.types.UTCDateTime: timestamptz on PostgreSQL, UTC text on SQLite.
INSTANT = sa.DateTime(timezone=True).with_variant(sa.String(27), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("code_hash", sa.LargeBinary(length=32), nullable=True))
        batch.create_index("ix_api_tokens_code", ["code_hash"])
    with op.batch_alter_table("api_codes") as batch:
        batch.add_column(sa.Column("used_at", INSTANT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_codes") as batch:
        batch.drop_column("used_at")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_index("ix_api_tokens_code")
        batch.drop_column("code_hash")
