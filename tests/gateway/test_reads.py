"""Reads through the one door: records, aggregates and matches, and what the ledger keeps."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

import yaml_text
from accord.agreements import Granularity
from accord.errors import InvalidInput
from accord.gateway import ERROR_RULE, Exchange, Refused
from accord.requests import Request, Subjects, SubjectsKind
from accord.service import person_ref
from gateway.helpers import C1, FRIEND_PICKER, last_entries, reference_allowed
from gateway.world import FRIENDS, INSIGHTS, PRIVATE, THREADS, WATCH, WATCHED, World, request

pytestmark = pytest.mark.integration


def insights(clause: str, purpose: str = "personalize.content", **overrides: Any) -> Request:
    """A request of Chirp under the insights agreement."""
    fields: dict[str, Any] = {
        "agreement": "insights",
        "requester": "chirp",
        "categories": frozenset({WATCHED}),
        "purpose": purpose,
    }
    fields.update(overrides)
    return request(clause, **fields)


def test_record_read_returns_only_allowed_people_and_allowed_fields(w: World) -> None:
    release = w.gateway.exchange(
        Exchange(FRIEND_PICKER, w.tokens["reelix"], "friendships", where=C1)
    )
    decision = w.accord.policy().decide(FRIEND_PICKER)
    assert decision.filter is not None
    allowed = reference_allowed(decision.filter)
    assert allowed == {"c1", "c2"}  # c3: GDPR falls short; c4: no consent; c5: withdrawn
    expected = sorted(
        (f["friend_id"],) for f in FRIENDS if f["person_id"] == "c1" and f["friend_id"] in allowed
    )
    assert release.columns == ("friend_id",)  # no email, no owner id
    assert sorted(release.rows) == expected
    assert release.people == 1  # c1's friends: only c2 is let through
    decided, released = last_entries(w.accord.ledger, 2)
    assert decided["kind"] == "decision"
    assert decided["allowed"] is True
    assert released["kind"] == "release"
    assert released["fields"] == ["friendships.friend_id"]
    assert released["people"] == 1
    assert len(released["subjects"]) == 1
    size = w.accord.ledger.head().size
    assert [r.index for r in release.receipts] == [size - 2, size - 1]  # the last two leaves


def test_record_read_drops_the_person_field_it_does_not_release(w: World) -> None:
    r = insights("watch-history")
    release = w.gateway.exchange(Exchange(r, w.tokens["chirp"], "watch_events"))
    decision = w.accord.policy().decide(r)
    assert decision.filter is not None
    allowed = reference_allowed(decision.filter)
    assert allowed == {"m1", "m3", "m5"}  # m2: no consent; m4: not VPPA-grade
    assert release.columns == ("title_id",)
    assert sorted(release.rows) == sorted(
        (e["title_id"],) for e in WATCH if e["member_id"] in allowed
    )
    assert release.people == 3
    ledger = w.accord.ledger
    assert ledger.entries_about(person_ref("reelix", "m1"))
    assert not ledger.entries_about(person_ref("reelix", "m2"))


def test_refused_request_releases_nothing_and_is_logged(w: World) -> None:
    bulk = request("message-sync")  # every inbox at once: the "Inbox API" abuse
    with pytest.raises(Refused) as refused:
        w.gateway.exchange(Exchange(bulk, w.tokens["reelix"], "messages"))
    assert "law:sca.no-bulk-read" in refused.value.decision.rules
    leaf = w.accord.ledger.leaf(refused.value.receipt.index).entry()
    assert leaf["allowed"] is False
    assert leaf["rules"] == ["law:sca.no-bulk-read"]
    assert leaf["people"] == 0
    assert not [e for e in last_entries(w.accord.ledger, 3) if e["kind"] == "release"]


def test_unreviewed_agreement_refuses_every_flow(w: World) -> None:
    w.accord.register(yaml_text.dump({**INSIGHTS, "id": "draft-only"}), source="d.yaml", by="legal")
    r = insights("watch-history", agreement="draft-only")
    with pytest.raises(Refused) as refused:
        w.gateway.exchange(Exchange(r, w.tokens["chirp"], "watch_events"))
    assert refused.value.decision.rules == ("lifecycle:draft-only",)


def test_thread_read_returns_only_threads_where_every_participant_consented(w: World) -> None:
    r = request(
        "message-sync",
        on_behalf_of="c1",
        subjects=Subjects(SubjectsKind.THREADS_OF, anchor="c1"),
    )
    release = w.gateway.exchange(Exchange(r, w.tokens["reelix"], "messages"))
    assert release.columns == ("message_id", "thread_id", "body", "sent_at")
    # t-eu and t-no have a participant who did not consent; t-solo is not c1's thread.
    assert {row[1] for row in release.rows} == {"t-ok"}
    # Only the message Reelix sent: the note its people wrote in Chirp itself stays in Chirp.
    assert [row[2] for row in release.rows] == ["hello in t-ok"]
    assert release.people == len(THREADS["t-ok"])
    assert last_entries(w.accord.ledger, 1)[0]["categories"] == [PRIVATE]


def test_message_sync_cannot_ask_for_messages_reelix_did_not_send(w: World) -> None:
    r = request(
        "message-sync",
        on_behalf_of="c1",
        subjects=Subjects(SubjectsKind.THREADS_OF, anchor="c1"),
    )
    with pytest.raises(InvalidInput, match="only rows of messages where sent_via is 'reelix'"):
        w.gateway.exchange(Exchange(r, w.tokens["reelix"], "messages", where={"sent_via": None}))


def test_a_field_of_another_collection_is_refused_and_logged(w: World) -> None:
    r = request(
        "friend-picker",
        categories=frozenset({"user.social"}),
        fields=frozenset({"friendships.friend_id"}),
        subjects=Subjects(SubjectsKind.FRIENDS_OF, anchor="c1"),
        on_behalf_of="c1",
    )
    with pytest.raises(InvalidInput, match="not in collection people"):
        w.gateway.exchange(Exchange(r, w.tokens["reelix"], "people"))
    (logged,) = last_entries(w.accord.ledger, 1)
    assert logged["rules"] == [ERROR_RULE]
    assert logged["allowed"] is False


def test_a_condition_on_an_unreleased_field_is_refused(w: World) -> None:
    exchange = Exchange(
        FRIEND_PICKER, w.tokens["reelix"], "friendships", where={"email": "c2@chirp"}
    )
    with pytest.raises(InvalidInput, match=r"condition may not name friendships\.email"):
        w.gateway.exchange(exchange)


def test_aggregate_suppresses_groups_below_the_clause_minimum(w: World) -> None:
    r = insights("watch-counts", purpose="analytics.reporting.content_performance")
    release = w.gateway.exchange(
        Exchange(
            r,
            w.tokens["chirp"],
            "watch_events",
            group_by=("title_id",),
            measures={"views": "count", "seconds": "sum(seconds)"},
        )
    )
    t1 = [e for e in WATCH if e["title_id"] == "t1"]
    assert release.granularity is Granularity.AGGREGATE
    assert release.columns == ("title_id", "views", "seconds")
    # t1 has 5 viewers; t2 (2) and t3 (1) are under the minimum of 3 and are dropped, unsaid.
    assert release.rows == [("t1", len(t1), sum(e["seconds"] for e in t1))]
    assert release.people == 3  # all the row shown says: at least the minimum, not 5
    released = last_entries(w.accord.ledger, 1)[0]
    assert released["granularity"] == "aggregate"
    assert released["subjects"] == []  # an aggregate names no one
    assert released["people"] == 3
    assert "each about at least 3 people" in released["reason"]


def test_aggregate_may_not_use_an_unreleased_field(w: World) -> None:
    r = insights("watch-counts", purpose="analytics.reporting.content_performance")
    exchange = Exchange(
        r, w.tokens["chirp"], "watch_events", group_by=("day(watched_at)",), measures={"n": "count"}
    )
    with pytest.raises(InvalidInput, match="not watched_at"):
        w.gateway.exchange(exchange)


def test_match_only_says_only_which_requested_people_are_present(w: World) -> None:
    asked = frozenset({"m1", "m2", "m3", "m9"})
    r = insights("audience-match", subjects=Subjects(SubjectsKind.PEOPLE, people=asked))
    release = w.gateway.exchange(Exchange(r, w.tokens["chirp"], "watch_events"))
    assert release.granularity is Granularity.MATCH_ONLY
    assert release.columns == ("member_id",)
    # m2 has not consented; m9 is not a member: neither is said to be present or absent.
    assert release.rows == [("m1",), ("m3",)]
    released = last_entries(w.accord.ledger, 1)[0]
    assert released["granularity"] == "match-only"
    assert released["fields"] == ["watch_events.member_id"]


def test_match_only_needs_named_people(w: World) -> None:
    with pytest.raises(InvalidInput, match="names the people"):
        w.gateway.exchange(Exchange(insights("audience-match"), w.tokens["chirp"], "watch_events"))


def test_a_read_leaves_nothing_behind_in_the_party_database(w: World) -> None:
    w.gateway.exchange(Exchange(FRIEND_PICKER, w.tokens["reelix"], "friendships", where=C1))
    with w.chirp.connect() as conn:
        names = conn.execute(text("SELECT name FROM sqlite_temp_master")).scalars().all()
    assert names == []


def test_a_relation_read_judges_only_the_people_it_is_about(w: World) -> None:
    """The friend picker judges the asker's friends, and message sync the members of the asker's
    threads, not everyone the party holds; the release is the same either way."""
    chirp = w.sources["chirp"]
    assert chirp.people_in("friendships", {"person_id": "c1"}) == {"c2", "c3", "c4", "c5"}
    assert chirp.members_of("messages", {"t-ok", "t-solo"}) == {"c1", "c2"}
    assert chirp.members_of("messages", set()) == set()
    with pytest.raises(InvalidInput, match="not about groups"):
        chirp.members_of("friendships", {"t-ok"})
    everyone = w.accord.policy().decide(
        request(
            "friend-picker",
            categories=frozenset({"user.social"}),
            on_behalf_of="c1",
            subjects=Subjects(SubjectsKind.FRIENDS_OF, anchor="c1"),
        )
    )
    assert everyone.filter is not None
    picked = w.gateway.exchange(
        Exchange(everyone.request, w.tokens["reelix"], "friendships", where={"person_id": "c1"})
    )
    judged_by_everyone = reference_allowed(everyone.filter)
    assert {row[0] for row in picked.rows} == judged_by_everyone & {"c2", "c3", "c4", "c5"}
