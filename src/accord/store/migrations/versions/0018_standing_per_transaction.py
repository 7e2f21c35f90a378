"""The standing revision counted once per transaction on PostgreSQL, not once per statement.

Migration ``0017_standing_revision`` counts every statement that writes a table a verdict reads.
Every count is an ``UPDATE`` of the same row, and PostgreSQL keeps each version of a row a
transaction updates until the transaction ends: a transaction of many statements (a bulk load
sent with ``executemany``, one statement a row) makes each count walk a longer chain of versions
than the one before, so loading people or consents grew with the square of their number (20,000
people took minutes). Counting once per transaction is all a reader needs (it compares the
revision with the one it last knew; any change makes them differ), and the count is then one
``UPDATE`` a transaction.

The trigger function remembers, in a setting local to the transaction, the transaction that last
counted (``set_config(…, true)`` is undone at the transaction's end, and at a rolled-back
savepoint with the count it made). SQLite keeps counting rows: it has no versions to walk.

Revision ID: 0018_standing_per_transaction
Revises: 0017_standing_revision
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0018_standing_per_transaction"
down_revision: str | None = "0017_standing_revision"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNT = "UPDATE standing_revision SET revision = revision + 1 WHERE id = 1"
ONCE = (
    "IF current_setting('accord.standing_counted', true) IS DISTINCT FROM "
    "txid_current()::text THEN "
    f"{COUNT}; "
    "PERFORM set_config('accord.standing_counted', txid_current()::text, true); "
    "END IF;"
)


def _define(body: str) -> None:
    op.execute(
        "CREATE OR REPLACE FUNCTION accord_count_standing() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN {body} RETURN NULL; END $$"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _define(ONCE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _define(f"{COUNT};")
