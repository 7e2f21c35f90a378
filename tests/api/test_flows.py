"""Every flow of the example agreement over HTTP, with :mod:`accord.client`, against uvicorn.

Each result is compared with the same exchange run straight through the gateway (the API adds
nothing and drops nothing), and with the parties' own databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from accord.client import AccordClient, ApiProblem
from accord.consent import Operation
from accord.gateway import Exchange, Gateway, Keyring
from accord.pets.budget import PrivacyBudgets
from accord.requests import Request, Subjects, SubjectsKind
from accord.scenario.population import CHIRP, REELIX
from api.world import World, app_token, delegated_token

pytestmark = pytest.mark.integration

SOCIAL = "user.social:functional.service"
PRIVATE = "user.content.private:functional.service"
SEND = "user.content.private:functional.service:write"
WATCHED = "user.behavior.media_consumption:functional.service"


def direct(world: World, party: str, clause: str, collection: str, **kw: Any) -> Any:
    """The same exchange straight through a gateway of its own over the same store."""
    keyring = Keyring()
    token = keyring.issue(party)
    fields = {k: kw.pop(k) for k in ("where", "group_by", "measures") if k in kw}
    request = Request(
        requester=party,
        agreement="chirp-reelix",
        clause=clause,
        operation=Operation.READ,
        at=datetime.now(UTC),
        **kw,
    )
    gateway = Gateway(world.accord, world.sources, keyring)
    return gateway.exchange(Exchange(request, token, collection, **fields))


def _spent(world: World) -> dict[str, tuple[str, str]]:
    """The consents for one disclosure spent so far: (person, title) by consent id."""
    with world.accord.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.id, c.person, c.disclosure FROM consent_uses u "
                "JOIN consents c ON c.id = u.consent_id"
            )
        ).all()
    return {str(i): (str(person), str(title)) for i, person, title in rows}


def friendliest(world: World) -> str:
    ((person,),) = world.sql(
        CHIRP,
        "SELECT person_id FROM friendships GROUP BY person_id ORDER BY count(*) DESC, 1 LIMIT 1",
    )
    return str(person)


def test_friend_picker_lists_the_friends_who_agreed(world: World, base_url: str) -> None:
    with httpx.Client(base_url=base_url) as http:
        person = friendliest(world)
        token = delegated_token(http, world.reelix, world.reelix_secret, person, [SOCIAL])
        with AccordClient(base_url, token) as api:
            shown = api.friends(person)
    expected = direct(
        world,
        REELIX,
        "friend-picker",
        "friendships",
        purpose="functional.service",
        categories=frozenset({"user.social"}),
        subjects=Subjects(SubjectsKind.FRIENDS_OF, anchor=person),
        on_behalf_of=person,
        where={"person_id": person},
    )
    friends = {
        str(f)
        for (f,) in world.sql(CHIRP, "SELECT friend_id FROM friendships WHERE person_id=?", person)
    }
    assert shown
    assert sorted(shown) == sorted(str(r[0]) for r in expected.rows)
    assert set(shown) < friends  # some friends did not agree, and are not shown


def test_message_sync_reads_only_the_persons_threads(world: World, base_url: str) -> None:
    person = "c0000004"
    with httpx.Client(base_url=base_url) as http:
        token = delegated_token(http, world.reelix, world.reelix_secret, person, [PRIVATE])
    with AccordClient(base_url, token) as api:
        release = api.messages(person)
    theirs = {
        t
        for (t,) in world.sql(
            CHIRP, "SELECT thread_id FROM thread_participants WHERE person_id=?", person
        )
    }
    assert release["columns"] == ["message_id", "thread_id", "body", "sent_at"]
    assert {row[1] for row in release["rows"]} <= theirs
    assert release["decision"]["allowed"] is True
    assert len(release["receipts"]) == 2  # the decision and the release, both in the ledger


def test_a_recommendation_is_sent_on_the_persons_behalf(world: World, base_url: str) -> None:
    person = "c0000007"
    ((thread,),) = world.sql(
        CHIRP, "SELECT thread_id FROM thread_participants WHERE person_id=? LIMIT 1", person
    )
    with httpx.Client(base_url=base_url) as http:
        token = delegated_token(http, world.reelix, world.reelix_secret, person, [SEND])
    with AccordClient(base_url, token) as api:
        sent = api.send_recommendation(person, thread, "Watch title-0001", "2026-11-29T12:00:00Z")
        # The token sends only: reading the person's messages is not among its permissions.
        with pytest.raises(ApiProblem) as refused:
            api.messages(person)
    assert sent["written"] == 1
    assert world.sql(
        CHIRP, "SELECT sender_id, sent_via FROM messages WHERE body=?", "Watch title-0001"
    ) == [(person, "reelix")]
    assert refused.value.status == 403
    assert refused.value.rules == ["api:scope-not-granted"]


def test_watch_activity_reaches_chirp_only_for_members_who_consented(
    world: World, base_url: str
) -> None:
    with AccordClient.for_app(base_url, world.chirp.client_id, world.chirp_secret) as api:
        release = api.watch_activity()
    expected = direct(
        world,
        CHIRP,
        "watch-activity",
        "watch_events",
        purpose="functional.service",
        categories=frozenset({"user.behavior.media_consumption"}),
    )
    everything = world.sql(REELIX, "SELECT count(*) FROM watch_events")[0][0]
    assert release["rows"]
    assert sorted(map(tuple, release["rows"])) == sorted(expected.rows)
    assert len(release["rows"]) < everything


def test_a_member_shares_their_watch_activity_after_the_vppa_screen(
    world: World, base_url: str
) -> None:
    us = [
        str(p)
        for (p,) in world.sql(
            REELIX,
            "SELECT member_id FROM members WHERE jurisdiction LIKE 'US-%' AND member_id IN "
            "(SELECT member_id FROM watch_events) ORDER BY member_id",
        )
    ]
    member = us[0]
    with httpx.Client(base_url=base_url) as http:
        token = delegated_token(http, world.chirp, world.chirp_secret, member, [WATCHED], months=6)
    with AccordClient(base_url, token) as api:
        release = api.watch_activity(person=member)
    watched = world.sql(
        REELIX, "SELECT title_id, watched_at FROM watch_events WHERE member_id=?", member
    )
    assert sorted(map(tuple, release["rows"])) == sorted(watched)
    consents = [c for c in world.accord.consents(REELIX, member) if c.id.startswith("oauth-")]
    (vppa,) = [c for c in consents if "user.behavior.media_consumption" in c.categories]
    assert vppa.distinct_and_separate
    assert vppa.expires_at is not None
    assert 180 <= (vppa.expires_at - vppa.given_at).days <= 184


def test_the_report_is_noised_and_spends_what_it_says(world: World, base_url: str) -> None:
    """The report's clause has a privacy budget of 1: the answer is differentially private,
    and spends a tenth of it (unless asked otherwise) of every sender it reads."""
    with AccordClient.for_app(base_url, world.chirp.client_id, world.chirp_secret) as api:
        report = api.recommendation_report(group_by=["interface"])
        asked = api.recommendation_report(group_by=["interface"], epsilon=0.25)
    assert report["granularity"] == "aggregate"
    assert report["columns"] == ["interface", "sends", "clicks"]
    assert report["noise"]["epsilon"] == pytest.approx(0.1)
    assert asked["noise"]["epsilon"] == 0.25
    assert report["noise"]["threshold"] >= 50
    assert "noised with differential privacy" in report["noise"]["description"]
    interfaces = {i for (i,) in world.sql(REELIX, "SELECT DISTINCT interface FROM recommendations")}
    for interface, sends, clicks in report["rows"] + asked["rows"]:
        assert interface in interfaces
        assert isinstance(sends, int)
        assert isinstance(clicks, int)
        assert min(sends, clicks) >= 0
    assert "suppressed" not in report  # nothing is said of the groups held back
    assert report["people"] == (50 if report["rows"] else 0)
    # Spent before the release: the spend's receipt comes before the release's.
    spend = report["noise"]["spend"]["index"]
    assert spend < min(r["index"] for r in report["receipts"])
    budgets = PrivacyBudgets(world.accord.engine, world.accord.ledger)
    spent = budgets.clause_spent(REELIX, "chirp-reelix", "recommendation-report")
    assert spent == pytest.approx(0.35)


def test_segments_and_the_account_link(world: World, base_url: str) -> None:
    ((member, chirp_id),) = world.sql(
        REELIX, "SELECT member_id, chirp_person_id FROM linked_accounts ORDER BY 1 LIMIT 1"
    )
    before = _spent(world)
    with AccordClient.for_app(base_url, world.chirp.client_id, world.chirp_secret) as api:
        segments = api.interest_segments()
        link = api.linked_account(str(member))
    # A consent for one disclosure the API's release relied on is spent: the direct exchange after
    # it may not use it again, and its title's rows are the one difference between the two.
    once = set(_spent(world).items()) - set(before.items())
    spent_rows = [
        (title,)
        for m, title in world.sql(REELIX, "SELECT member_id, title_id FROM watch_events")
        if (str(m), title) in {pair for _, pair in once}
    ]
    expected = direct(
        world,
        CHIRP,
        "interest-segments",
        "watch_events",
        purpose="marketing.advertising.third_party.targeted",
        categories=frozenset({"user.behavior.media_consumption"}),
    )
    assert segments["columns"] == ["title_id"]
    assert sorted(map(tuple, segments["rows"])) == sorted([*expected.rows, *spent_rows])
    assert link["rows"][0][0] == chirp_id
    assert link["people"] == 1


def test_an_app_token_holds_only_the_scopes_asked(world: World, client: httpx.Client) -> None:
    token = app_token(
        client,
        world.chirp,
        world.chirp_secret,
        scope="user.behavior:analytics.reporting.content_performance",
    )
    with AccordClient(str(client.base_url), token) as api:
        assert api.app()["token_scopes"] == [
            "user.behavior:analytics.reporting.content_performance"
        ]
        with pytest.raises(ApiProblem) as refused:
            api.interest_segments()
    assert refused.value.rules == ["api:scope-not-granted"]
