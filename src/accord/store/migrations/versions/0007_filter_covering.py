"""Covering indexes for the consent filter's scan of a party's consents and people.

The filter (:mod:`accord.store.filter_sql`) reads every consent a controller holds for a recipient,
then the country of each consenting person. Without these indexes each consent and each person is
a search in an index and then a read of the table's row (consents carry their notice's text, so
their rows are wide); with them, the filter reads the indexes alone.

Revision ID: 0007_filter_covering
Revises: 0006_registry_revision
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007_filter_covering"
down_revision: str | None = "0006_registry_revision"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONSENTS_COLUMNS = [
    "controller",
    "recipient",
    "scope",
    "operations",
    "person",
    "id",
    "given_at",
    "expires_at",
    "withdrawn_at",
    "distinct_and_separate",
]
PEOPLE_COLUMNS = ["party", "person_id", "country", "jurisdiction"]


def upgrade() -> None:
    op.create_index("ix_consents_filter", "consents", CONSENTS_COLUMNS)
    op.create_index("ix_people_filter", "people", PEOPLE_COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_people_filter", table_name="people")
    op.drop_index("ix_consents_filter", table_name="consents")
