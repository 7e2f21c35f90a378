"""OAuth 2.0 against a uvicorn server on a loopback port: Authlib's own client runs the
authorization code flow with PKCE; introspection, revocation, metadata, codes, storage."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from sqlalchemy import select

from accord.api import GRANT_DAYS
from accord.api import tables as t
from accord.api.scopes import Scope
from accord.consent import Method
from accord.scenario.population import CHIRP
from api.world import REDIRECT, World, app_token, bearer, browse, consent, delegated_token, pkce

pytestmark = pytest.mark.integration

SOCIAL = "user.social:functional.service"
PRIVATE = "user.content.private:functional.service"


def test_authlibs_client_runs_the_code_flow_with_pkce_end_to_end(
    world: World, base_url: str
) -> None:
    oauth = OAuth2Session(
        client_id=world.public.client_id,
        token_endpoint_auth_method="none",  # noqa: S106 - a public client's method, no secret
        scope=f"{SOCIAL} {PRIVATE}",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    verifier = generate_token(64)
    url, state = oauth.create_authorization_url(
        f"{base_url}/oauth/authorize", code_verifier=verifier
    )
    assert "code_challenge=" in url
    with httpx.Client(base_url=base_url) as browser:
        redirected = browse(browser, url, "c0000010", allow=[SOCIAL])
    token = oauth.fetch_token(
        f"{base_url}/oauth/token",
        authorization_response=redirected,
        code_verifier=verifier,
        state=state,
    )
    # The person ticked one of the two permissions: the token holds that one only.
    assert token["scope"] == SOCIAL
    assert 0 < token["expires_in"] <= 3600
    assert "refresh_token" not in token
    response = oauth.get(f"{base_url}/v1/app")
    assert response.status_code == 200
    assert response.json()["person"] == "c0000010"
    assert response.json()["token_scopes"] == [SOCIAL]
    oauth.close()


def test_server_metadata(client: httpx.Client) -> None:
    meta = client.get("/.well-known/oauth-authorization-server").json()
    base = str(client.base_url).rstrip("/")
    assert meta["issuer"] == base
    assert meta["token_endpoint"] == f"{base}/oauth/token"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert SOCIAL in meta["scopes_supported"]
    assert "user.content.private:functional.service:write" in meta["scopes_supported"]


def test_introspection_and_revocation(world: World, client: httpx.Client) -> None:
    auth = (world.chirp.client_id, world.chirp_secret)
    token = app_token(client, world.chirp, world.chirp_secret)
    seen = client.post("/oauth/introspect", data={"token": token}, auth=auth).json()
    assert seen["active"] is True
    assert seen["client_id"] == world.chirp.client_id
    assert seen["exp"] - seen["iat"] <= 3600
    # Another app may not look into it.
    other = (world.reelix.client_id, world.reelix_secret)
    assert client.post("/oauth/introspect", data={"token": token}, auth=other).json() == {
        "active": False
    }
    assert client.post("/oauth/revoke", data={"token": token}, auth=auth).status_code == 200
    assert client.post("/oauth/introspect", data={"token": token}, auth=auth).json() == {
        "active": False
    }
    assert client.get("/v1/app", headers=bearer(token)).status_code == 401


def test_a_code_works_once_and_only_with_its_verifier(world: World, client: httpx.Client) -> None:
    got = consent(client, world.reelix, "c0000011", [SOCIAL])
    data = {"grant_type": "authorization_code", "code": got["code"][0], "redirect_uri": REDIRECT}
    auth = (world.reelix.client_id, world.reelix_secret)
    wrong = client.post("/oauth/token", data={**data, "code_verifier": pkce()[0]}, auth=auth)
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    missing = client.post("/oauth/token", data=data, auth=auth)
    assert missing.status_code == 400
    right = client.post(
        "/oauth/token", data={**data, "code_verifier": got["verifier"][0]}, auth=auth
    )
    assert right.status_code == 200
    again = client.post(
        "/oauth/token", data={**data, "code_verifier": got["verifier"][0]}, auth=auth
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_an_authorization_request_without_pkce_is_refused(
    world: World, client: httpx.Client
) -> None:
    r = client.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": world.reelix.client_id,
            "redirect_uri": REDIRECT,
            "scope": SOCIAL,
        },
    )
    assert r.status_code == 302
    assert parse_qs(urlsplit(r.headers["location"]).query)["error"] == ["invalid_request"]


def test_a_scope_outside_the_agreement_is_refused(world: World, client: httpx.Client) -> None:
    r = client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "user.contact.email:marketing.advertising",
        },
        auth=(world.chirp.client_id, world.chirp_secret),
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_scope"


def test_only_hashes_of_tokens_and_codes_are_stored(world: World, client: httpx.Client) -> None:
    token = app_token(client, world.chirp, world.chirp_secret)
    with world.accord.session() as s:
        hashes = set(s.execute(select(t.tokens_table.c.token_hash)).scalars())
        secrets_ = set(s.execute(select(t.apps_table.c.secret_hash)).scalars())
    assert hashlib.sha256(token.encode()).digest() in hashes
    assert all(token.encode() not in h for h in hashes)
    assert hashlib.sha256(world.chirp_secret.encode()).digest() in secrets_


def test_consent_given_on_the_screen_is_recorded_and_ledgered(
    world: World, client: httpx.Client
) -> None:
    before = world.accord.ledger.head().size
    delegated_token(
        client, world.reelix, world.reelix_secret, "c0000012", [SOCIAL, PRIVATE], allow=[PRIVATE]
    )
    mine = [c for c in world.accord.consents(CHIRP, "c0000012") if c.id.startswith("oauth-")]
    assert [sorted(c.categories) for c in mine] == [["user.content.private"]]
    (given,) = mine
    assert given.method is Method.OAUTH_CONSENT_SCREEN
    assert given.distinct_and_separate
    assert given.recipient == "reelix"
    assert given.expires_at == given.given_at + timedelta(days=GRANT_DAYS)
    assert world.accord.ledger.head().size > before
    (grant,) = world.apps.grants(world.reelix.client_id, "c0000012")
    assert grant.expires_at - grant.granted_at == timedelta(days=GRANT_DAYS)


def test_the_consent_screen_lists_each_permission_unticked(
    world: World, client: httpx.Client
) -> None:
    _, challenge = pkce()
    params: dict[str, Any] = {
        "response_type": "code",
        "client_id": world.reelix.client_id,
        "redirect_uri": REDIRECT,
        "scope": f"{SOCIAL} {PRIVATE}",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    r = client.get("/oauth/authorize", params=params)
    nxt = parse_qs(urlsplit(r.headers["location"]).query)["next"][0]
    r = client.get(
        client.post("/login", data={"person": "c0000013", "next": nxt}).headers["location"]
    )
    assert r.text.count('type="checkbox"') == 2
    assert "checked" not in r.text
    assert f'value="{SOCIAL}"' in r.text
    assert f'value="{PRIVATE}"' in r.text


def test_signing_in_as_an_unknown_person_fails(world: World, client: httpx.Client) -> None:
    _, challenge = pkce()
    nxt = (
        f"/oauth/authorize?response_type=code&client_id={world.reelix.client_id}"
        f"&scope={SOCIAL}&code_challenge={challenge}&code_challenge_method=S256"
    )
    r = client.post("/login", data={"person": "nobody", "next": nxt})
    assert r.status_code == 401
    assert "has no person" in r.text
    away = client.post("/login", data={"person": "c0000001", "next": "https://evil.example/"})
    assert away.status_code == 400  # no open redirect


def test_two_exchanges_of_one_code_at_once_leave_no_live_token(
    world: World, client: httpx.Client
) -> None:
    # Both exchanges found the code unused; the one that stores its token first marks it used,
    # and the other, finding it used, is a second use (RFC 6749 section 4.1.2): it stores
    # nothing and revokes the first one's token.
    got = consent(client, world.reelix, "c0000311", ["user.social:functional.service"])
    code = world.apps.find_code(got["code"][0], world.reelix.client_id)
    assert code is not None
    assert code.used_at is None
    scopes = frozenset(Scope.parse(s) for s in ["user.social:functional.service"])
    first, second = generate_token(43), generate_token(43)
    kw: dict[str, Any] = {
        "client_id": world.reelix.client_id,
        "person": "c0000311",
        "scopes": scopes,
        "expires_in": 600,
        "code": code,
    }
    assert world.apps.save_token(first, **kw) is True
    assert world.apps.save_token(second, **kw) is False
    assert world.apps.token(second) is None  # nothing stored for the second
    assert world.apps.replayed_code(code) == 1
    revoked = world.apps.token(first)
    assert revoked is not None
    assert revoked.revoked_at is not None
    assert world.apps.find_code(got["code"][0], world.reelix.client_id) is None  # forgotten
