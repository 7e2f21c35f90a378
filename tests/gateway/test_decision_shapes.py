"""Cedar's answer is kept by request shape within one registry revision; nothing else is.

A policy asks Cedar once for each shape of request (who asks, for what clause, purpose,
categories and fields, on whose behalf, and where the instant falls among the agreements'
validity dates). What a person's standing says — a consent withdrawn, an opt-out, a consent
expired — is the person filter's, judged by the store at every exchange; a change of the
registry builds another policy. Each test makes one exchange, changes one thing, and makes the
same exchange again (the same shape, on the same policy where the registry did not move): the
second answer must follow the change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from accord.agreements import Status
from accord.consent import Consent, Method, OptOut, OptOutKind, SignalSource
from accord.gateway import Exchange, Refused, Release
from accord.requests import Request
from gateway.world import AT, WATCH, WATCHED, World, request

pytestmark = pytest.mark.integration

TARGETED = "marketing.advertising.third_party.targeted"


def watch_history(at: datetime = AT) -> Request:
    """Chirp's read of the titles members watched, under the insights agreement."""
    return request(
        "watch-history",
        agreement="insights",
        requester="chirp",
        purpose="personalize.content",
        categories=frozenset({WATCHED}),
        at=at,
    )


def segments(at: datetime = AT) -> Request:
    """Chirp's read of watched titles for its ads (a marketing purpose: opt-outs apply)."""
    return request(
        "interest-segments",
        requester="chirp",
        purpose=TARGETED,
        categories=frozenset({WATCHED}),
        at=at,
    )


def read(w: World, r: Request) -> Release:
    return w.gateway.exchange(Exchange(r, w.tokens["chirp"], "watch_events"))


def titles_of(*members: str) -> list[tuple[str]]:
    """The rows a read of these members' watch events releases (their titles), sorted."""
    return sorted((e["title_id"],) for e in WATCH if e["member_id"] in members)


def for_ads(person: str, jurisdiction: str, **overrides: Any) -> Consent:
    """A consent (VPPA-grade) of a Reelix member to Chirp using their watch history for ads."""
    fields: dict[str, Any] = {
        "id": f"k-{person}-ads",
        "person": person,
        "controller": "reelix",
        "recipient": "chirp",
        "purposes": frozenset({TARGETED}),
        "categories": frozenset({WATCHED}),
        "jurisdiction": jurisdiction,
        "given_at": AT - timedelta(days=30),
        "method": Method.IN_APP_DIALOG,
        "notice": "notice-ads",
        "distinct_and_separate": True,
        "withdrawal_method": Method.SETTINGS_PAGE,
    }
    fields.update(overrides)
    return Consent(**fields)


def test_a_withdrawn_consent_changes_the_next_answer(w: World) -> None:
    policy = w.accord.policy()
    before = read(w, watch_history())
    assert (before.people, sorted(before.rows)) == (3, titles_of("m1", "m3", "m5"))
    w.accord.withdraw("k-m1-1", at=AT - timedelta(hours=1))
    assert w.accord.policy() is policy  # the registry did not move: the same kept answers
    after = read(w, watch_history())
    assert (after.people, sorted(after.rows)) == (2, titles_of("m3", "m5"))


def test_an_opt_out_changes_the_next_answer(w: World) -> None:
    w.accord.grant(for_ads("m1", "US-CA"))
    policy = w.accord.policy()
    before = read(w, segments())
    assert (before.people, sorted(before.rows)) == (1, titles_of("m1"))
    w.accord.opt_out(
        OptOut(
            person="m1",
            controller="reelix",
            kind=OptOutKind.SALE_SHARING,
            source=SignalSource.FORM,
            at=AT - timedelta(hours=1),
        )
    )
    assert w.accord.policy() is policy
    after = read(w, segments())
    assert (after.people, after.rows) == (0, [])


def test_an_expired_consent_changes_the_next_answer(w: World) -> None:
    w.accord.grant(for_ads("m3", "BR", expires_at=AT + timedelta(days=1)))
    policy = w.accord.policy()
    before = read(w, segments(AT))
    assert (before.people, sorted(before.rows)) == (1, titles_of("m3"))
    # The same shape two days on: the agreement is still in force, the consent is not.
    after = read(w, segments(AT + timedelta(days=2)))
    assert w.accord.policy() is policy
    assert (after.people, after.rows) == (0, [])


def test_an_agreement_that_ended_changes_the_next_answer(w: World) -> None:
    """An agreement past its validity refuses the same shape that it allowed the day before."""
    last_day = datetime(2027, 12, 31, 23, 0, tzinfo=UTC)  # the insights agreement ends 2028-01-01
    allowed = read(w, watch_history(last_day))
    assert allowed.decision.allowed
    with pytest.raises(Refused) as refused:
        read(w, watch_history(last_day + timedelta(hours=2)))
    assert not refused.value.decision.allowed
    # And the day before again: the later answer did not replace the earlier one.
    assert read(w, watch_history(last_day)).decision.allowed


def test_a_change_of_the_registry_changes_the_next_answer(w: World) -> None:
    assert read(w, watch_history()).decision.allowed
    w.accord.move("insights", Status.SUSPENDED, by="dpo", note="under investigation")
    with pytest.raises(Refused) as refused:
        read(w, watch_history())
    assert "suspended" in refused.value.decision.reason
