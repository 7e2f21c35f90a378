"""Erasure with the Accord store on PostgreSQL: the suppression join, the ledger's refusal of a
new key, the deletions, the sealed proof and the notices, as on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.erasure import erase, notices, open_proof
from accord.errors import LedgerError
from accord.gateway import Exchange
from accord.ledger.audit import verify_ledger
from accord.ledger.entries import DecisionEntry
from accord.service import person_ref
from gateway.test_erasure import FRIEND_PICKER, WATCH_FEED, events_of
from gateway.world import AT, CONSENTS, REELIX_PEOPLE, world

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_erasure_on_postgres(tmp_path: Path, pg_url: str) -> None:
    with world(tmp_path, store_url=pg_url) as w:
        feed = Exchange(WATCH_FEED, w.tokens["chirp"], "watch_events")
        before = set(w.gateway.exchange(feed).rows)
        assert set(events_of("m1")) <= before
        ref = person_ref("reelix", "m1")
        theirs = bytes.fromhex(w.accord.ledger.prove_person(ref, sign=True)["person"]["key"])
        done = erase(w.accord, "reelix", "m1", at=AT)
        assert done.recipients == ("chirp",)
        after = set(w.gateway.exchange(feed).rows)
        assert after == before - set(events_of("m1"))
        assert w.accord.ledger.key_of(ref) is None
        assert w.accord.consents("reelix", "m1") == []
        assert [(n.provider, n.person) for n in notices(w.accord, "chirp")] == [("reelix", "m1")]
        assert open_proof(w.accord, theirs)["consents"][0]["withdrawn_at"] is not None
        # A reload leaves them out; an entry naming them is refused; the friend picker too.
        w.accord.import_records(list(REELIX_PEOPLE), [c for c in CONSENTS if c.person == "m1"])
        assert w.accord.consents("reelix", "m1") == []
        with pytest.raises(LedgerError, match="erased"):
            w.accord.ledger.append(
                [DecisionEntry(agreement=None, reason="t", allowed=False, about=(ref,))]
            )
        erase(w.accord, "chirp", "c2", at=AT)
        picked = w.gateway.exchange(
            Exchange(FRIEND_PICKER, w.tokens["reelix"], "friendships", where={"person_id": "c1"})
        )
        assert ("c2",) not in picked.rows
        assert w.accord.ledger.key_of(person_ref("chirp", "c2")) is None
        assert verify_ledger(w.accord.ledger).ok
