"""The one door with the Accord store (consents, policy, ledger) on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.consent import Operation
from accord.gateway import NOT_A_MEMBER, Exchange, Refused
from accord.ledger.audit import verify_ledger
from accord.requests import Subjects, SubjectsKind
from gateway.helpers import last_entries, reference_allowed
from gateway.world import MESSAGES, request, world

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_reads_writes_and_refusals_with_the_store_on_postgres(tmp_path: Path, pg_url: str) -> None:
    with world(tmp_path, store_url=pg_url) as w:
        r = request(
            "message-sync",
            on_behalf_of="c2",
            subjects=Subjects(SubjectsKind.THREADS_OF, anchor="c2"),
        )
        release = w.gateway.exchange(Exchange(r, w.tokens["reelix"], "messages"))
        decision = w.accord.policy().decide(r)
        assert decision.filter is not None
        assert reference_allowed(decision.filter) == {"c1", "c2"}
        # c2's threads are t-ok (with c1) and t-solo; both have only consenting participants.
        expected = sorted(
            m["body"]
            for m in MESSAGES
            if m["thread_id"] in {"t-ok", "t-solo"} and m["sent_via"] == "reelix"
        )
        assert sorted(row[2] for row in release.rows) == expected
        assert release.people == 2
        with pytest.raises(Refused):
            w.gateway.exchange(Exchange(request("message-sync"), w.tokens["reelix"], "messages"))
        assert last_entries(w.accord.ledger, 1)[0]["allowed"] is False
        rows = [{"thread_id": "t-ok", "body": "from c2"}, {"thread_id": "t-no", "body": "no"}]
        send = request("send-recommendation", operation=Operation.WRITE, on_behalf_of="c2")
        posted = w.gateway.exchange(Exchange(send, w.tokens["reelix"], "messages", rows=rows))
        assert posted.written == 1  # c2 is not in t-no
        assert posted.withheld == {NOT_A_MEMBER: 1}
        assert verify_ledger(w.accord.ledger).ok
