"""The store's standing revision moves with every write to a table a verdict on a person reads,
on each backend, whoever writes; and with no other write.

The oracle is the list of what a verdict reads, written from the rules (a consent and its
excluded titles and uses, an opt-out, where a person lives, an erasure), not from the migration's
list of tables.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, delete, insert, update
from sqlalchemy.orm import sessionmaker

from accord.store import tables as t
from accord.store.maintained import fingerprint

pytestmark = pytest.mark.integration

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

CONSENT = {
    "id": "k1",
    "person": "p1",
    "controller": "reelix",
    "recipient": "chirp",
    "jurisdiction": "US-CA",
    "given_at": AT,
    "expires_at": None,
    "withdrawn_at": None,
    "method": "in_app_dialog",
    "notice": "n",
    "distinct_and_separate": True,
    "withdrawal_method": None,
    "scope": "all",
    "disclosure": None,
    "operations": "read",
}

Write = Callable[[Connection], Any]

# What a verdict on a person reads, and a write of each kind to it.
STANDING: dict[str, Write] = {
    "a person added": lambda c: c.execute(
        insert(t.people).values(party="reelix", person_id="p2", jurisdiction="BR", country="BR")
    ),
    "a person moves": lambda c: c.execute(
        update(t.people).where(t.people.c.person_id == "p1").values(jurisdiction="US-NY")
    ),
    "a consent given": lambda c: c.execute(insert(t.consents).values({**CONSENT, "id": "k2"})),
    "a consent withdrawn": lambda c: c.execute(
        update(t.consents).where(t.consents.c.id == "k1").values(withdrawn_at=AT)
    ),
    "a title excluded": lambda c: c.execute(
        insert(t.consent_excluded_titles).values(consent_id="k1", title="t9")
    ),
    "a one-time consent spent": lambda c: c.execute(
        insert(t.consent_uses).values(consent_id="k1", used_at=AT, request_id="r1")
    ),
    "an opt-out made": lambda c: c.execute(
        insert(t.opt_outs).values(
            person="p1", controller="reelix", kind="sale_sharing", source="gpc", at=AT
        )
    ),
    "an opt-out ended": lambda c: c.execute(update(t.opt_outs).values(revoked_at=AT)),
    "a person erased": lambda c: c.execute(
        insert(t.erased_people).values(party="reelix", person_id="p1")
    ),
    "a consent deleted": lambda c: c.execute(delete(t.consents).where(t.consents.c.id == "k1")),
}


def _seed(engine: Engine) -> None:
    with engine.begin() as c:
        c.execute(
            insert(t.people).values(
                party="reelix", person_id="p1", jurisdiction="US-CA", country="US"
            )
        )
        c.execute(insert(t.consents).values(CONSENT))
        c.execute(
            insert(t.opt_outs).values(
                person="p1", controller="reelix", kind="sale_sharing", source="gpc", at=AT
            )
        )


@pytest.mark.parametrize("what", sorted(STANDING))
def test_every_change_of_standing_moves_the_revision(
    store: tuple[Engine, sessionmaker[Any]], what: str
) -> None:
    engine, _ = store
    _seed(engine)
    with engine.connect() as c:
        before = fingerprint(c)
    with engine.begin() as c:
        STANDING[what](c)
    with engine.connect() as c:
        assert fingerprint(c) > before, what


def test_other_writes_leave_the_revision_alone(store: tuple[Engine, sessionmaker[Any]]) -> None:
    engine, _ = store
    _seed(engine)
    with engine.connect() as c:
        before = fingerprint(c)
    with engine.begin() as c:
        c.execute(update(t.registry_revision).values(revision=t.registry_revision.c.revision + 1))
        c.execute(insert(t.parties).values(id="someone", name="Someone"))
    with engine.connect() as c:
        assert fingerprint(c) == before


def test_a_write_rolled_back_leaves_the_revision_alone(
    store: tuple[Engine, sessionmaker[Any]],
) -> None:
    engine, _ = store
    _seed(engine)
    with engine.connect() as c:
        before = fingerprint(c)
        with c.begin() as tx:
            STANDING["a consent withdrawn"](c)
            tx.rollback()
    with engine.connect() as c:
        assert fingerprint(c) == before


def _consents(first: int, count: int) -> list[dict[str, Any]]:
    return [{**CONSENT, "id": f"k{n}"} for n in range(first, first + count)]


def test_each_transaction_that_writes_standing_moves_the_revision_on_from_the_last(
    store: tuple[Engine, sessionmaker[Any]],
) -> None:
    engine, _ = store
    _seed(engine)
    seen = []
    for first in (10, 20, 30):
        with engine.begin() as c:
            for row in _consents(first, 3):  # three statements in one transaction
                c.execute(insert(t.consents).values(row))
        with engine.connect() as c:
            seen.append(fingerprint(c))
    assert seen == sorted(set(seen)), seen


def test_a_transaction_of_many_statements_counts_once_on_postgres_and_a_row_on_sqlite(
    store: tuple[Engine, sessionmaker[Any]],
) -> None:
    """PostgreSQL counts once a transaction: a bulk load sent a statement a row does not update
    the revision's row once a row (each update in one transaction walks every earlier version of
    the row). SQLite, with row triggers only, counts each row written."""
    engine, _ = store
    _seed(engine)
    with engine.connect() as c:
        before = fingerprint(c)
    with engine.begin() as c:
        c.execute(insert(t.consents), _consents(100, 500))  # executemany: 500 statements
        c.execute(update(t.consents).values(withdrawn_at=AT))
    counted = 1 if engine.dialect.name == "postgresql" else 500 + 501
    with engine.connect() as c:
        assert fingerprint(c) == before + counted


def test_a_savepoint_rolled_back_does_not_hide_the_writes_after_it(
    store: tuple[Engine, sessionmaker[Any]],
) -> None:
    engine, _ = store
    _seed(engine)
    with engine.connect() as c:
        before = fingerprint(c)
    with engine.begin() as c:
        savepoint = c.begin_nested()
        STANDING["a consent withdrawn"](c)
        savepoint.rollback()
    with engine.connect() as c:
        assert fingerprint(c) == before  # what was rolled back counts for nothing
    with engine.begin() as c:
        savepoint = c.begin_nested()
        STANDING["a title excluded"](c)
        savepoint.rollback()
        STANDING["a consent withdrawn"](c)  # counted, though a count was rolled back before it
    with engine.connect() as c:
        assert fingerprint(c) > before
