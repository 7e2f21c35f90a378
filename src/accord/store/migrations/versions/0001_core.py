"""The core store: parties, people, agreements with reviews and history, consents, opt-outs.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_core"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# How accord.store.types.UTCDateTime stores an instant, frozen here so this migration never
# changes: timestamptz on PostgreSQL, fixed-width UTC text on SQLite.
INSTANT = sa.DateTime(timezone=True).with_variant(sa.String(27), "sqlite")


def upgrade() -> None:
    op.create_table(
        "parties",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "agreements",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.ForeignKeyConstraint(["provider"], ["parties.id"], name="fk_agreements_provider"),
        sa.ForeignKeyConstraint(["recipient"], ["parties.id"], name="fk_agreements_recipient"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_agreements_status", "agreements", ["status"], unique=False)
    op.create_table(
        "consents",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("person", sa.String(), nullable=False),
        sa.Column("controller", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("jurisdiction", sa.String(), nullable=False),
        sa.Column("given_at", INSTANT, nullable=False),
        sa.Column("expires_at", INSTANT, nullable=True),
        sa.Column("withdrawn_at", INSTANT, nullable=True),
        sa.Column("method", sa.String(), nullable=False),
        sa.Column("notice", sa.Text(), nullable=False),
        sa.Column("distinct_and_separate", sa.Boolean(), nullable=False),
        sa.Column("withdrawal_method", sa.String(), nullable=True),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("disclosure", sa.String(), nullable=True),
        sa.Column("operations", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["controller"], ["parties.id"], name="fk_consents_controller"),
        sa.ForeignKeyConstraint(["recipient"], ["parties.id"], name="fk_consents_recipient"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_consents_controller_person_recipient",
        "consents",
        ["controller", "person", "recipient"],
        unique=False,
    )
    op.create_table(
        "opt_outs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person", sa.String(), nullable=False),
        sa.Column("controller", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("at", INSTANT, nullable=False),
        sa.Column("revoked_at", INSTANT, nullable=True),
        sa.ForeignKeyConstraint(["controller"], ["parties.id"], name="fk_opt_outs_controller"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_opt_outs_controller_person_kind",
        "opt_outs",
        ["controller", "person", "kind"],
        unique=False,
    )
    op.create_table(
        "people",
        sa.Column("party", sa.String(), nullable=False),
        sa.Column("person_id", sa.String(), nullable=False),
        sa.Column("jurisdiction", sa.String(), nullable=False),
        sa.Column("country", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["party"], ["parties.id"], name="fk_people_party"),
        sa.PrimaryKeyConstraint("party", "person_id"),
    )
    op.create_index("ix_people_party_country", "people", ["party", "country"], unique=False)
    op.create_index(
        "ix_people_party_jurisdiction", "people", ["party", "jurisdiction"], unique=False
    )
    op.create_table(
        "agreement_reviews",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("agreement_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(), nullable=False),
        sa.Column("reviewed_on", sa.Date(), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agreement_id"],
            ["agreements.id"],
            name="fk_agreement_reviews_agreement",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_agreement_reviews_agreement", "agreement_reviews", ["agreement_id", "id"], unique=False
    )
    op.create_table(
        "agreement_transitions",
        sa.Column("agreement_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("to_status", sa.String(), nullable=False),
        sa.Column("at", INSTANT, nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agreement_id"],
            ["agreements.id"],
            name="fk_agreement_transitions_agreement",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agreement_id", "seq"),
    )
    op.create_table(
        "consent_categories",
        sa.Column("consent_id", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"],
            ["consents.id"],
            name="fk_consent_categories_consent",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("consent_id", "category"),
    )
    op.create_table(
        "consent_excluded_titles",
        sa.Column("consent_id", sa.String(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"],
            ["consents.id"],
            name="fk_consent_excluded_titles_consent",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("consent_id", "title"),
    )
    op.create_table(
        "consent_purposes",
        sa.Column("consent_id", sa.String(), nullable=False),
        sa.Column("purpose", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consents.id"], name="fk_consent_purposes_consent", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("consent_id", "purpose"),
    )


def downgrade() -> None:
    op.drop_table("consent_purposes")
    op.drop_table("consent_excluded_titles")
    op.drop_table("consent_categories")
    op.drop_table("agreement_transitions")
    op.drop_index("ix_agreement_reviews_agreement", table_name="agreement_reviews")
    op.drop_table("agreement_reviews")
    op.drop_index("ix_people_party_jurisdiction", table_name="people")
    op.drop_index("ix_people_party_country", table_name="people")
    op.drop_table("people")
    op.drop_index("ix_opt_outs_controller_person_kind", table_name="opt_outs")
    op.drop_table("opt_outs")
    op.drop_index("ix_consents_controller_person_recipient", table_name="consents")
    op.drop_table("consents")
    op.drop_index("ix_agreements_status", table_name="agreements")
    op.drop_table("agreements")
    op.drop_table("parties")
