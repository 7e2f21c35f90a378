"""Erasure: the suppression list, recipients' erasure notices, sealed proofs of past consent.

* ``erased_people``: who each party erased; every read of the store's people joins against it,
  and no load brings a listed person back.
* ``erasure_notices``: what each recipient must be told (GDPR Art. 19), until it acknowledges.
* ``sealed_consent_proofs``: an erased person's consent records, encrypted under a key derived
  from their ledger key, which erasure shreds.

Revision ID: 0010_erasure
Revises: 0008_ledger_index_parts
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_erasure"
down_revision: str | None = "0008_ledger_index_parts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of accord.store.types.UTCDateTime: timestamptz on PostgreSQL, UTC text on SQLite.
INSTANT = sa.DateTime(timezone=True).with_variant(sa.String(27), "sqlite")


def upgrade() -> None:
    op.create_table(
        "erased_people",
        sa.Column("party", sa.String(), nullable=False),
        sa.Column("person_id", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["party"], ["parties.id"], name="fk_erased_people_party"),
        sa.PrimaryKeyConstraint("party", "person_id"),
    )
    op.create_table(
        "erasure_notices",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("person", sa.String(), nullable=False),
        sa.Column("erased_at", INSTANT, nullable=False),
        sa.ForeignKeyConstraint(["recipient"], ["parties.id"], name="fk_erasure_notices_recipient"),
        sa.ForeignKeyConstraint(["provider"], ["parties.id"], name="fk_erasure_notices_provider"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_erasure_notices_recipient", "erasure_notices", ["recipient"])
    op.create_table(
        "sealed_consent_proofs",
        sa.Column("lookup", sa.LargeBinary(length=16), nullable=False),
        sa.Column("nonce", sa.LargeBinary(length=12), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("lookup"),
    )


def downgrade() -> None:
    op.drop_table("sealed_consent_proofs")
    op.drop_index("ix_erasure_notices_recipient", table_name="erasure_notices")
    op.drop_table("erasure_notices")
    op.drop_table("erased_people")
