"""The store's standing revision: one row counting every change to anyone's standing.

Triggers on the tables a verdict on a person reads (consents, their excluded titles and uses,
opt-outs, people and erasures) add one to it in the writing transaction, whoever writes: Accord,
another worker, a bulk load or a hand-made SQL statement. A process that keeps the people a clause
lets through (:mod:`accord.store.maintained`) reads this one row to learn whether anything changed,
where it counted the rows of six tables before. A consent's purposes and categories are written
and erased only with the consent itself, so the consent's own trigger covers them.

PostgreSQL counts once per statement (a bulk ``COPY`` of a million consents is one change);
SQLite, which has only row triggers, once per row.

Revision ID: 0017_standing_revision
Revises: 0016_ledger_leaf_index
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_standing_revision"
down_revision: str | None = "0016_ledger_leaf_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of accord.store.maintained.STANDING_TABLES.
TABLES = (
    "consents",
    "consent_excluded_titles",
    "consent_uses",
    "opt_outs",
    "people",
    "erased_people",
)
OPERATIONS = ("insert", "update", "delete")
COUNT = "UPDATE standing_revision SET revision = revision + 1 WHERE id = 1"


def upgrade() -> None:
    table = op.create_table(
        "standing_revision",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(table, [{"id": 1, "revision": 0}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION accord_count_standing() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {COUNT}; RETURN NULL; END $$"
        )
        for name in TABLES:
            op.execute(
                f"CREATE TRIGGER standing_{name} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {name} FOR EACH STATEMENT EXECUTE FUNCTION accord_count_standing()"
            )
        return
    for name in TABLES:
        for operation in OPERATIONS:
            op.execute(
                f"CREATE TRIGGER standing_{name}_{operation} AFTER {operation.upper()} ON {name} "
                f"BEGIN {COUNT}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in TABLES:
            op.execute(f"DROP TRIGGER standing_{name} ON {name}")
        op.execute("DROP FUNCTION accord_count_standing()")
    else:
        for name in TABLES:
            for operation in OPERATIONS:
                op.execute(f"DROP TRIGGER standing_{name}_{operation}")
    op.drop_table("standing_revision")
