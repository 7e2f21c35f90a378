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
