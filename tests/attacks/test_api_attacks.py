"""Attacks on the partner API, each refused with a problem document and, where a request was
understood, a refusal in the ledger; nothing is released and no stack trace leaks."""

from __future__ import annotations

import secrets
import socket
import string
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.law.friends import RELATIONS_RULE_ID
from accord.scenario.population import REELIX
from api.world import World, app_token, bearer, delegated_token
from attacks.helpers import logged_refusal, refused

pytestmark = pytest.mark.integration

SOCIAL = "user.social:functional.service"
EXCHANGES = "/v1/agreements/{agreement}/clauses/{clause}/exchanges"


def friends(person: str, anchor: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "collection": "friendships",
        "purpose": "functional.service",
        "categories": ["user.social"],
        "subjects": {"kind": "friends_of", "anchor": anchor or person},
        "where": {"person_id": anchor or person},
        **extra,
    }


def test_a_scope_the_app_was_not_reviewed_for(world: World, client: httpx.Client) -> None:
    token = app_token(client, world.unreviewed, world.unreviewed_secret)
    # The app's own token reads nobody's friends; a person it tests with is fine only delegated.
    r = client.post(
        EXCHANGES.format(agreement="chirp-reelix", clause="message-sync"),
        json={
            "collection": "messages",
            "purpose": "functional.service",
            "categories": ["user.content.private"],
            "subjects": {"kind": "people", "people": ["c0000002"]},
        },
        headers=bearer(token),
    )
    body = refused(r, 403, "api:not-reviewed")
    logged_refusal(world, body["receipt"], "api:not-reviewed")


def test_partner_as_token_on_partner_bs_agreement(world: World, client: httpx.Client) -> None:
    token = delegated_token(client, world.reelix, world.reelix_secret, "c0000040", [SOCIAL])
    r = client.post(
        EXCHANGES.format(agreement="chirp-reelix-titan", clause="all-friends"),
        json=friends("c0000040"),
        headers=bearer(token),
    )
    body = refused(r, 403, "api:other-agreement")
    logged_refusal(world, body["receipt"], "api:other-agreement")


def test_a_person_id_the_token_is_not_for(world: World, client: httpx.Client) -> None:
    token = delegated_token(client, world.reelix, world.reelix_secret, "c0000041", [SOCIAL])
    path = EXCHANGES.format(agreement="chirp-reelix", clause="friend-picker")
    for body in (
        friends("c0000041", anchor="c0000042"),  # someone else's friends
        friends("c0000041", on_behalf_of="c0000042"),  # acting for someone else
        {**friends("c0000041"), "subjects": {"kind": "all"}},  # everyone
    ):
        refused(client.post(path, json=body, headers=bearer(token)), 403, "api:not-this-person")


def test_an_apps_own_token_cannot_act_for_a_person(world: World, client: httpx.Client) -> None:
    token = app_token(client, world.reelix, world.reelix_secret)
    r = client.post(
        EXCHANGES.format(agreement="chirp-reelix", clause="friend-picker"),
        json=friends("c0000043"),
        headers=bearer(token),
    )
    refused(r, 403, "api:no-delegation")


@pytest.mark.parametrize(
    "where",
    [
        {"person_id": "c0000002"},  # one person's friend list, pinned by a condition only
        {"friendships.person_id": "c0000002"},  # the same, the field named in full
        None,  # every friend list at once: the social graph
        {"friend_id": "c0000002"},  # every friend list that names one person
    ],
)
def test_an_apps_own_token_reads_no_ones_friends_by_a_condition(
    world: World, client: httpx.Client, where: dict[str, str] | None
) -> None:
    token = app_token(client, world.reelix, world.reelix_secret)
    r = client.post(
        EXCHANGES.format(agreement="chirp-reelix", clause="friend-picker"),
        json={
            "collection": "friendships",
            "purpose": "functional.service",
            "categories": ["user.social"],
            "where": where,
        },
        headers=bearer(token),
    )
    body = refused(r, 403, RELATIONS_RULE_ID)
    assert "rows" not in body
    logged_refusal(world, body["receipt"], RELATIONS_RULE_ID)
    assert "c0000002" not in world.accord.ledger.leaf(body["receipt"]).entry()["reason"]


def test_a_persons_token_reads_no_one_elses_friends_by_a_condition(
    world: World, client: httpx.Client
) -> None:
    token = delegated_token(client, world.reelix, world.reelix_secret, "c0000047", [SOCIAL])
    path = EXCHANGES.format(agreement="chirp-reelix", clause="friend-picker")
    mine = {
        "collection": "friendships",
        "purpose": "functional.service",
        "categories": ["user.social"],
        "subjects": {"kind": "people", "people": ["c0000047"]},
    }
    theirs = {**mine, "where": {"person_id": "c0000048"}}
    body = refused(client.post(path, json=theirs, headers=bearer(token)), 403, RELATIONS_RULE_ID)
    logged_refusal(world, body["receipt"], RELATIONS_RULE_ID)
    # Their own friend list, asked the ordinary way, still comes back.
    own = client.post(path, json=friends("c0000047"), headers=bearer(token))
    assert own.status_code == 200, own.text


def test_a_bulk_inbox_read_is_refused_by_the_policy(world: World, client: httpx.Client) -> None:
    # The app's own token holds the scope, but reading everyone's messages is what the
    # Stored Communications Act forbids: the gateway refuses it and logs the refusal.
    token = app_token(client, world.reelix, world.reelix_secret)
    r = client.post(
        EXCHANGES.format(agreement="chirp-reelix", clause="message-sync"),
        json={
            "collection": "messages",
            "purpose": "functional.service",
            "categories": ["user.content.private"],
        },
        headers=bearer(token),
    )
    body = refused(r, 403)
    assert "law:sca.no-bulk-read" in body["rules"]
    assert world.accord.ledger.leaf(body["receipt"]).entry()["allowed"] is False


def test_a_revoked_grant(world: World, client: httpx.Client) -> None:
    person = "c0000045"
    token = delegated_token(client, world.reelix, world.reelix_secret, person, [SOCIAL])
    world.apps.revoke(world.reelix.client_id, person)
    r = client.post(
        EXCHANGES.format(agreement="chirp-reelix", clause="friend-picker"),
        json=friends(person),
        headers=bearer(token),
    )
    refused(r, 403, "api:scope-not-granted")


def test_a_token_replayed_after_revocation(world: World, client: httpx.Client) -> None:
    person = "c0000046"
    token = delegated_token(client, world.reelix, world.reelix_secret, person, [SOCIAL])
    path = EXCHANGES.format(agreement="chirp-reelix", clause="friend-picker")
    assert client.post(path, json=friends(person), headers=bearer(token)).status_code == 200
    auth = (world.reelix.client_id, world.reelix_secret)
    assert client.post("/oauth/revoke", data={"token": token}, auth=auth).status_code == 200
    for _ in range(2):
        refused(client.post(path, json=friends(person), headers=bearer(token)), 401)


def test_tampered_and_forged_tokens(world: World, client: httpx.Client) -> None:
    token = app_token(client, world.chirp, world.chirp_secret)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (
        flipped,
        token + "x",
        token[:-4],
        secrets.token_urlsafe(32),
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJjMDAwMDAwMSJ9.",  # an unsigned JWT
    ):
        body = refused(client.get("/v1/app", headers=bearer(bad)), 401)
        assert "token" in body["detail"]
    for header in ({"Authorization": f"Basic {token}"}, {"Authorization": token}, {}):
        refused(client.get("/v1/app", headers=header), 401)


def test_a_tampered_consent_form_or_sign_in_cookie(world: World, client: httpx.Client) -> None:
    r = client.post("/oauth/authorize/consent", data={"pending": "e30.AAAA", "action": "allow"})
    assert r.status_code == 400
    assert "expired" in r.text
    client.cookies.set("accord_person", "eyJ2Ijp7InBhcnR5IjoiY2hpcnAifX0.forged")
    r = client.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": world.reelix.client_id,
            "scope": SOCIAL,
            "code_challenge": "x" * 43,
            "code_challenge_method": "S256",
        },
    )
    assert r.status_code == 303  # not signed in: sent to sign in
    assert r.headers["location"].startswith("/login")


def test_oversized_bodies(world: World, client: httpx.Client) -> None:
    token = app_token(client, world.chirp, world.chirp_secret)
    path = EXCHANGES.format(agreement="chirp-reelix", clause="watch-activity")
    big = b'{"collection": "' + b"x" * 2_000_000 + b'"}'
    headers = {**bearer(token), "Content-Type": "application/json"}
    refused(client.post(path, content=big, headers=headers), 413)

    def chunks() -> Any:
        for _ in range(40):
            yield b" " * 65_536

    refused(client.post(path, content=chunks(), headers=headers), 413)
    # A Content-Length that is not a number never reaches the app (the server or the cap
    # refuses it); sent raw, as a client library would not.
    host, port = str(client.base_url.host), int(client.base_url.port or 80)
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: -1\r\n"
            "Content-Type: application/json\r\n\r\n{}".encode()
        )
        status_line = raw.recv(4096).split(b"\r\n", 1)[0]
    assert status_line.split()[1] in {b"400", b"413"}


@pytest.mark.parametrize(
    "body",
    [
        b"{",  # not JSON
        b"[]",  # not an object
        b'{"collection": 5}',  # wrong types
        b'{"collection": "watch_events", "purpose": "functional.service", "categories": []}',
        b'{"collection": "w", "purpose": "p", "categories": ["c"], "extra": 1}',  # unknown field
        b'{"collection": "w", "purpose": "nonsense", "categories": ["user.social"]}',
        '{"collection": "\u0000"}'.encode(),
        b'{"collection": "w", "purpose": "p", "categories": ["c"], "rows": [[[[[[]]]]]]}',
    ],
)
def test_malformed_bodies(world: World, client: httpx.Client, body: bytes) -> None:
    token = app_token(client, world.chirp, world.chirp_secret)
    r = client.post(
        EXCHANGES.format(agreement="chirp-reelix", clause="watch-activity"),
        content=body,
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    problem = refused(r, 422)
    assert problem["detail"]


def test_a_bad_path_or_method_is_a_problem_too(client: httpx.Client) -> None:
    refused(client.get("/v1/nowhere"), 404)
    refused(client.put("/v1/app"), 405)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    authorization=st.text(alphabet=string.ascii_letters + string.digits + "-_.~+/= ", max_size=80)
)
def test_no_made_up_authorization_header_gets_in(client: httpx.Client, authorization: str) -> None:
    r = client.get("/v1/app", headers={"Authorization": authorization.strip() or "Bearer x"})
    assert r.status_code == 401
    assert "Traceback" not in r.text


def test_a_person_cannot_be_signed_in_at_the_wrong_party(
    world: World, client: httpx.Client
) -> None:
    # A Reelix member id signing in for an app whose data holder is Chirp is unknown there.
    r = client.post(
        "/login",
        data={
            "person": "r0000001",
            "next": f"/oauth/authorize?client_id={world.reelix.client_id}",
        },
    )
    assert r.status_code == 401
    assert REELIX not in r.headers.get("set-cookie", "")


REPORT = {
    "collection": "recommendations",
    "purpose": "analytics.reporting.content_performance",
    "categories": ["user.behavior"],
    "group_by": ["day(sent_at)"],
    "measures": {"sends": "count", "clicks": "count(clicked_at)"},
}


def test_an_aggregate_pinned_to_one_sender_says_nothing_of_them(
    world: World, client: httpx.Client
) -> None:
    """Whether a member sent recommendations or not, a report pinned to them answers the same,
    and names them nowhere: not in the answer, not in the ledger."""
    ((sender,),) = world.sql(
        REELIX,
        "SELECT sender_member_id FROM recommendations GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    )
    ((silent,),) = world.sql(
        REELIX,
        "SELECT member_id FROM members WHERE member_id NOT IN "
        "(SELECT sender_member_id FROM recommendations) ORDER BY 1 LIMIT 1",
    )
    token = app_token(client, world.chirp, world.chirp_secret)
    path = EXCHANGES.format(agreement="chirp-reelix", clause="recommendation-report")
    answers = []
    for member in (sender, silent):
        body = {**REPORT, "where": {"sender_member_id": member}}
        problem = refused(client.post(path, json=body, headers=bearer(token)), 422)
        assert "about no one in particular" in problem["detail"]
        assert member not in problem["detail"]
        (leaf,) = world.accord.ledger.recent(1)
        logged = leaf.entry()
        assert logged["allowed"] is False
        assert member not in logged["reason"]
        answers.append((problem["detail"], logged["reason"], logged["people"]))
    assert answers[0] == answers[1]


def test_an_aggregate_over_a_few_senders_is_the_one_over_nobody(
    world: World, client: httpx.Client
) -> None:
    """The senders of one rare interface, day by day, against an interface nobody used: below
    the minimum of 50, the two answers are the same (no count of people, nor of the groups held
    back)."""
    ((interface, most),) = world.sql(
        REELIX,
        "SELECT interface, max(n) FROM (SELECT interface, date(sent_at) AS d, "
        "count(DISTINCT sender_member_id) AS n FROM recommendations GROUP BY 1, 2) "
        "GROUP BY 1 ORDER BY 2 LIMIT 1",
    )
    assert 0 < most < 50
    token = app_token(client, world.chirp, world.chirp_secret)
    path = EXCHANGES.format(agreement="chirp-reelix", clause="recommendation-report")
    seen = []
    for value in (interface, "no-such-interface"):
        r = client.post(path, json={**REPORT, "where": {"interface": value}}, headers=bearer(token))
        assert r.status_code == 200, r.text
        body = r.json()
        assert "suppressed" not in body
        seen.append((body["columns"], body["rows"], body["people"]))
    assert seen[0] == seen[1]
    assert seen[0][1:] == ([], 0)
