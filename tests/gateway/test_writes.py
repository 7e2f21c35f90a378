"""Writes through the one door: rows posted on a person's behalf land only with their consent."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from accord.consent import Operation
from accord.errors import InvalidInput
from accord.gateway import (
    NOT_A_MEMBER,
    RELEASE_FAILED_RULE,
    UNKNOWN_PERSON,
    Exchange,
    Refused,
    ReleaseFailed,
    undone_release,
)
from accord.service import person_ref
from gateway.helpers import last_entries
from gateway.world import AT, WATCHED, World, request

pytestmark = pytest.mark.integration


def send(on_behalf_of: str) -> Any:
    """A recommendation Reelix sends as a Chirp message on ``on_behalf_of``'s behalf."""
    return request("send-recommendation", operation=Operation.WRITE, on_behalf_of=on_behalf_of)


def messages_in(w: World, thread: str) -> list[str]:
    with w.chirp.connect() as conn:
        return list(
            conn.execute(
                text("SELECT body FROM messages WHERE thread_id = :t ORDER BY message_id"),
                {"t": thread},
            ).scalars()
        )


def test_a_message_sent_with_send_consent_lands(w: World) -> None:
    before = messages_in(w, "t-ok")
    row = {
        "thread_id": "t-ok",
        "body": "Watch t1 with me",
        "sender_id": "c1",
        "sent_at": AT,
        "sent_via": "reelix",
    }
    release = w.gateway.exchange(Exchange(send("c1"), w.tokens["reelix"], "messages", rows=[row]))
    assert release.written == 1
    assert release.people == 1
    assert release.rows == []
    assert messages_in(w, "t-ok") == [*before, "Watch t1 with me"]
    decided, released = last_entries(w.accord.ledger, 2)
    assert decided["allowed"] is True
    assert released["kind"] == "release"
    assert released["provider"] == "reelix"
    assert released["recipient"] == "chirp"
    assert released["fields"] == [
        "messages.body",
        "messages.sender_id",
        "messages.sent_at",
        "messages.sent_via",
        "messages.thread_id",
    ]
    assert w.accord.ledger.entries_about(person_ref("chirp", "c1"))


def test_a_message_without_send_consent_does_not_land(w: World) -> None:
    before = messages_in(w, "t-no")
    row = {"thread_id": "t-no", "body": "sent without asking"}
    release = w.gateway.exchange(Exchange(send("c4"), w.tokens["reelix"], "messages", rows=[row]))
    assert release.written == 0
    assert release.people == 0
    assert "law:sca.send-consent" in release.withheld
    assert messages_in(w, "t-no") == before
    released = last_entries(w.accord.ledger, 1)[0]
    assert released["people"] == 0
    assert "1 of 1 rows withheld" in released["reason"]


def test_a_message_into_a_thread_the_sender_is_not_in_does_not_land(w: World) -> None:
    before = messages_in(w, "t-solo")  # c2's thread alone
    rows = [{"thread_id": "t-solo", "body": "hi c2"}, {"thread_id": "t-ok", "body": "hi"}]
    release = w.gateway.exchange(Exchange(send("c1"), w.tokens["reelix"], "messages", rows=rows))
    assert release.written == 1
    assert release.withheld == {NOT_A_MEMBER: 1}
    assert messages_in(w, "t-solo") == before


def test_watch_activity_is_written_only_for_members_with_vppa_consent(w: World) -> None:
    r = request(
        "watch-posts",
        agreement="insights",
        operation=Operation.WRITE,
        categories=frozenset({WATCHED}),
    )
    rows = [
        {"member_id": "m1", "title_id": "t1", "watched_at": AT},  # VPPA-grade consent
        {"member_id": "m2", "title_id": "t1", "watched_at": AT},  # no consent
        {"member_id": "m4", "title_id": "t2", "watched_at": AT},  # consent not VPPA-grade
        {"member_id": "m1", "title_id": "t2", "watched_at": AT},
        {"member_id": "m404", "title_id": "t2", "watched_at": AT},  # unknown to Accord
    ]
    release = w.gateway.exchange(Exchange(r, w.tokens["reelix"], "watch_events", rows=rows))
    assert release.written == 2
    assert release.people == 1
    assert release.withheld["law:vppa.consent"] == 2  # m2 and m4
    assert release.withheld[UNKNOWN_PERSON] == 1
    with w.chirp.connect() as conn:
        written = conn.execute(text("SELECT member_id, title_id FROM watch_events")).all()
    assert sorted(tuple(row) for row in written) == [("m1", "t1"), ("m1", "t2")]


def test_a_message_cannot_be_posted_under_another_persons_name(w: World) -> None:
    before = messages_in(w, "t-ok")
    forged = {"thread_id": "t-ok", "body": "I never wrote this", "sender_id": "c2"}
    with pytest.raises(InvalidInput, match="writes only as the person it acts for"):
        w.gateway.exchange(Exchange(send("c1"), w.tokens["reelix"], "messages", rows=[forged]))
    assert messages_in(w, "t-ok") == before


def test_a_write_may_carry_only_the_fields_the_decision_allows(w: World) -> None:
    row = {"thread_id": "t-ok", "body": "hi", "message_id": 1}
    with pytest.raises(InvalidInput, match="message_id"):
        w.gateway.exchange(Exchange(send("c1"), w.tokens["reelix"], "messages", rows=[row]))


def test_a_write_that_fails_after_its_ledger_entry_is_logged_as_failed(w: World) -> None:
    with w.chirp.begin() as conn:
        conn.execute(text("DROP TABLE messages"))
    row = {"thread_id": "t-ok", "body": "into the void"}
    with pytest.raises(ReleaseFailed, match="nothing was written"):
        w.gateway.exchange(Exchange(send("c1"), w.tokens["reelix"], "messages", rows=[row]))
    decided, released, failed = last_entries(w.accord.ledger, 3)
    assert decided["allowed"] is True
    assert released["kind"] == "release"
    assert failed["allowed"] is False
    assert failed["rules"] == [RELEASE_FAILED_RULE]
    # It names the release, and is about its person, who reads it beside the release.
    size = w.accord.ledger.head().size
    assert undone_release(failed) == size - 2
    assert w.accord.ledger.entries_about("chirp/c1")[-2:] == [size - 2, size - 1]


def test_only_the_sending_party_may_write(w: World) -> None:
    r = request(
        "send-recommendation", requester="chirp", operation=Operation.WRITE, on_behalf_of="c1"
    )
    row = {"thread_id": "t-ok", "body": "hi"}
    with pytest.raises(Refused, match="only reelix may write"):
        w.gateway.exchange(Exchange(r, w.tokens["chirp"], "messages", rows=[row]))
