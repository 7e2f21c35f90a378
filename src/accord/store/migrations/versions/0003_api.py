"""The partner API: OAuth clients, grants, tokens and app reviews.

Revision ID: 0003_api
Revises: 0002_ledger
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_api"
down_revision: str | None = "0002_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of accord.store.types.UTCDateTime: timestamptz on PostgreSQL, UTC text on SQLite.
INSTANT = sa.DateTime(timezone=True).with_variant(sa.String(27), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_apps",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("party", sa.String(length=255), nullable=False),
        sa.Column("agreement", sa.String(length=255), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("redirect_uris", sa.Text(), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("revoked_at", INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("client_id"),
    )
    op.create_table(
        "api_reviews",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=255), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("reviewer", sa.String(length=255), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("at", INSTANT, nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["api_apps.client_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_api_reviews_client", "api_reviews", ["client_id"])
    op.create_table(
        "api_test_people",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("person", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["api_apps.client_id"]),
        sa.PrimaryKeyConstraint("client_id", "person"),
    )
    op.create_table(
        "api_grants",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("person", sa.String(length=255), nullable=False),
        sa.Column("controller", sa.String(length=255), nullable=False),
        sa.Column("scope", sa.String(length=255), nullable=False),
        sa.Column("consent_id", sa.String(length=255), nullable=False),
        sa.Column("granted_at", INSTANT, nullable=False),
        sa.Column("expires_at", INSTANT, nullable=False),
        sa.Column("revoked_at", INSTANT, nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["api_apps.client_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_api_grants_app_person", "api_grants", ["client_id", "person"])
    op.create_table(
        "api_codes",
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("person", sa.String(length=255), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("code_challenge_method", sa.String(length=16), nullable=False),
        sa.Column("expires_at", INSTANT, nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["api_apps.client_id"]),
        sa.PrimaryKeyConstraint("code_hash"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("person", sa.String(length=255), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("issued_at", INSTANT, nullable=False),
        sa.Column("expires_at", INSTANT, nullable=False),
        sa.Column("revoked_at", INSTANT, nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["api_apps.client_id"]),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_api_tokens_client", "api_tokens", ["client_id"])


def downgrade() -> None:
    op.drop_index("ix_api_tokens_client", table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("api_codes")
    op.drop_index("ix_api_grants_app_person", table_name="api_grants")
    op.drop_table("api_grants")
    op.drop_table("api_test_people")
    op.drop_index("ix_api_reviews_client", table_name="api_reviews")
    op.drop_table("api_reviews")
    op.drop_table("api_apps")
