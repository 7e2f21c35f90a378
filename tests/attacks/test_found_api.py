"""What attacks from outside found in the partner API, each kept fixed: no 500 from a quoted scope,
no form of one page accepted by another, client errors answered as client errors (not a 503 that
blames the server) with no raw exception text in the ledger, and every refused token logged."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from accord.ledger.browse import newest_first
from api.world import REDIRECT, World, app_token, bearer, pkce

pytestmark = pytest.mark.integration

LINK = "/v1/agreements/chirp-reelix/clauses/account-link/exchanges"
READ: dict[str, Any] = {
    "collection": "linked_accounts",
    "purpose": "essential.service.authentication",
    "categories": ["user.account.linked"],
    "subjects": {"kind": "people", "people": ["r0000001"]},
}


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert "Traceback" not in r.text
    body: dict[str, Any] = r.json()
    return body


def newest(world: World, count: int = 5) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if count <= 0:
        return out
    for leaf in newest_first(world.accord.ledger):
        out.append(leaf.entry())
        if len(out) == count:
            break
    return out


@pytest.mark.parametrize("quote", ["'", '"', "\\", "'\"\\"])
def test_a_scope_holding_a_quote_is_an_invalid_scope_on_the_token_endpoint(
    world: World, client: httpx.Client, quote: str
) -> None:
    r = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": f"user.social{quote}:x"},
        auth=(world.chirp.client_id, world.chirp_secret),
    )
    body = problem(r, 400)
    assert body["error"] == "invalid_scope"


@pytest.mark.parametrize("quote", ["'", '"', "\\"])
def test_a_scope_holding_a_quote_is_an_invalid_scope_on_the_authorize_page(
    world: World, client: httpx.Client, quote: str
) -> None:
    assert (
        client.post(
            "/login", data={"person": "r0000003", "next": "/me/apps?party=reelix"}
        ).status_code
        == 303
    )
    _, challenge = pkce()
    r = client.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": world.chirp.client_id,
            "redirect_uri": REDIRECT,
            "scope": f"user.social{quote}:functional.service",
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert r.status_code in {302, 400}, r.text
    if r.status_code == 302:  # the error goes back to the app, as RFC 6749 4.1.2.1 says
        assert "error=invalid_scope" in r.headers["location"]


def test_the_my_apps_form_is_not_accepted_by_the_consent_screen(
    world: World, client: httpx.Client
) -> None:
    assert (
        client.post(
            "/login", data={"person": "c0000004", "next": "/me/apps?party=chirp"}
        ).status_code
        == 303
    )
    page = client.get("/me/apps", params={"party": "chirp"})
    assert page.status_code == 200
    marker = 'name="form" value="'
    start = page.text.index(marker) + len(marker)
    form = page.text[start : page.text.index('"', start)]
    r = client.post("/oauth/authorize/consent", data={"pending": form, "action": "allow"})
    assert r.status_code == 400, r.text
    assert "Traceback" not in r.text


@pytest.mark.parametrize(
    "where",
    [
        {"person_id": 2**63},  # beyond a 64-bit integer
        {"person_id": -(2**63) - 1},
        {"person_id": "\ud800"},  # a lone surrogate: no UTF-8 for it
    ],
)
def test_a_where_value_the_database_cannot_hold_is_a_client_error(
    world: World, client: httpx.Client, where: dict[str, Any]
) -> None:
    token = app_token(client, world.chirp, world.chirp_secret)
    body = {**READ, "where": where}
    # A lone surrogate cannot be sent as JSON text by httpx; send the escaped form.
    import json

    raw = json.dumps(body)
    r = client.post(
        LINK, content=raw, headers={**bearer(token), "content-type": "application/json"}
    )
    assert r.status_code in {400, 422}, r.text
    assert "Traceback" not in r.text
    for entry in newest(world):
        reason = str(entry.get("reason", ""))
        assert "OverflowError" not in reason
        assert "UnicodeEncodeError" not in reason
        assert "sqlite3" not in reason.lower()


def test_a_refused_token_is_logged(world: World, client: httpx.Client) -> None:
    size = world.accord.ledger.head().size
    r = client.post(LINK, json=READ, headers=bearer("not-a-token-this-server-issued"))
    problem(r, 401)
    token = app_token(client, world.chirp, world.chirp_secret)
    auth = (world.chirp.client_id, world.chirp_secret)
    assert client.post("/oauth/revoke", data={"token": token}, auth=auth).status_code == 200
    problem(client.post(LINK, json=READ, headers=bearer(token)), 401)
    logged = [
        e
        for e in newest(world, world.accord.ledger.head().size - size)
        if e["kind"] == "decision" and not e["allowed"]
    ]
    assert len(logged) >= 2
    assert all(e["people"] == 0 and e["rules"] == ["api:invalid-token"] for e in logged)
    # A token is a secret: the ledger never holds one, refused or not.
    assert all(token not in str(e) for e in logged)
