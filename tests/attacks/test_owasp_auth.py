"""OWASP API Security Top 10 (2023), API2 broken authentication and API4 unrestricted resource
consumption: every token or credential that is not a live one this server issued is refused and
the refusal logged; every request past a limit is refused before it costs the server or a party's
database more than the limit allows."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from accord.api import ApiSettings, create_app
from accord.api.access import INVALID_TOKEN
from accord.api.refusals import TOO_MANY_REFUSED
from api.world import (
    REDIRECT,
    World,
    app_token,
    bearer,
    consent,
    delegated_token,
    pkce,
    serving,
)
from attacks.helpers import SOCIAL, entries_since, exchanges, refused, watch

pytestmark = pytest.mark.integration


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A JSON Web Token (RFC 7519) signed with HMAC-SHA256 under ``key``, or unsigned."""
    signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = b"" if key is None else hmac.new(key, signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64(signature)}"


CLAIMS = {"sub": "c0000001", "client_id": "any", "scope": "user:functional.service", "exp": 2**40}
FORGED = {
    # alg "none" (RFC 7519 section 6): no signature at all
    "alg none": jwt({"alg": "none", "typ": "JWT"}, CLAIMS, None),
    "alg None": jwt({"alg": "None"}, CLAIMS, None),
    # HS256 under an empty key, and under a guessable one
    "empty key": jwt({"alg": "HS256"}, CLAIMS, b""),
    "secret key": jwt({"alg": "HS256"}, CLAIMS, b"secret"),
    # algorithm confusion: HS256 "signed" with what would be a public key
    "alg confusion": jwt({"alg": "HS256", "kid": "../../dev/null"}, CLAIMS, b"-----BEGIN"),
    # a key id pointing to a URL the server might fetch
    "jku": jwt({"alg": "RS256", "jku": "http://127.0.0.1:1/jwks"}, CLAIMS, b"k"),
}


def code_exchange(got: dict[str, list[str]]) -> dict[str, str]:
    """The token request for an authorization code (RFC 6749 4.1.3, RFC 7636 4.5)."""
    return {
        "grant_type": "authorization_code",
        "code": got["code"][0],
        "redirect_uri": REDIRECT,
        "code_verifier": got["verifier"][0],
    }


def refused_token_logged(world: World, size: int) -> None:
    written = entries_since(world, size)
    assert [e["rules"] for e in written] == [[INVALID_TOKEN]]
    assert written[0]["allowed"] is False
    assert written[0]["people"] == 0


class TestAPI2BrokenAuthentication:
    """Forged, tampered, expired, revoked and replayed credentials; stolen and replayed codes."""

    @pytest.mark.parametrize("case", sorted(FORGED))
    def test_a_forged_token_is_refused_and_logged(
        self, world: World, client: httpx.Client, case: str
    ) -> None:
        size = world.accord.ledger.head().size
        r = client.post(exchanges("account-link"), json={}, headers=bearer(FORGED[case]))
        refused(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")
        refused_token_logged(world, size)

    def test_an_expired_token_is_refused_and_logged(
        self, world: World, client: httpx.Client
    ) -> None:
        token = app_token(client, world.chirp, world.chirp_secret)
        digest = hashlib.sha256(token.encode()).digest()
        past = datetime.now(UTC) - timedelta(seconds=1)
        with world.accord.engine.begin() as conn:
            changed = conn.execute(
                text("UPDATE api_tokens SET expires_at = :at WHERE token_hash = :h"),
                {"at": past.replace(tzinfo=None), "h": digest},
            ).rowcount
        assert changed == 1
        size = world.accord.ledger.head().size
        body = refused(client.get("/v1/app", headers=bearer(token)), 401)
        assert "expired" in body["detail"]
        refused_token_logged(world, size)

    def test_a_token_of_a_revoked_app_is_refused_and_logged(
        self, world: World, client: httpx.Client
    ) -> None:
        app, secret = world.apps.register(
            "Reelix old", party="reelix", agreement="chirp-reelix", redirect_uris=[REDIRECT]
        )
        assert secret
        token = app_token(client, app, secret)
        world.apps.revoke_app(app.client_id)
        size = world.accord.ledger.head().size
        body = refused(client.get("/v1/app", headers=bearer(token)), 401)
        assert "revoked" in body["detail"]
        refused_token_logged(world, size)
        entry = entries_since(world, size)[0]
        assert entry["client"] == app.client_id
        assert token not in json.dumps(entry)

    @pytest.mark.parametrize(
        "where",
        [
            "query",  # RFC 6750 2.3: a token in the URI ends up in logs; not accepted here
            "form",  # RFC 6750 2.2: not accepted on a JSON API
            "cookie",
        ],
    )
    def test_a_live_token_sent_elsewhere_than_the_header_is_not_taken(
        self, world: World, client: httpx.Client, where: str
    ) -> None:
        token = app_token(client, world.chirp, world.chirp_secret)
        if where == "query":
            r = client.get("/v1/app", params={"access_token": token})
        elif where == "form":
            r = client.request("GET", "/v1/app", data={"access_token": token})
        else:
            r = client.get("/v1/app", headers={"Cookie": f"access_token={token}"})
        refused(r, 401)

    def test_an_authorization_code_used_twice_gives_no_second_token_and_revokes_the_first(
        self, world: World, client: httpx.Client
    ) -> None:
        # RFC 6749 section 4.1.2: "If an authorization code is used more than once, the
        # authorization server MUST deny the request and SHOULD revoke (when possible) all tokens
        # previously issued based on that authorization code." The first use may have been an
        # attacker's, who read the code on its way back.
        got = consent(client, world.reelix, "c0000301", [SOCIAL])
        data = code_exchange(got)
        auth = (world.reelix.client_id, world.reelix_secret)
        first = client.post("/oauth/token", data=data, auth=auth)
        assert first.status_code == 200, first.text
        # No refresh token is issued (only the code and client credentials grants are offered),
        # so the access token is all there is to revoke.
        assert "refresh_token" not in first.json()
        token = first.json()["access_token"]
        assert client.get("/v1/me/permissions", headers=bearer(token)).status_code == 200
        size = world.accord.ledger.head().size
        again = client.post("/oauth/token", data=data, auth=auth)
        assert again.status_code == 400
        assert again.json()["error"] == "invalid_grant"
        assert "access_token" not in again.json()
        body = refused(client.get("/v1/me/permissions", headers=bearer(token)), 401)
        assert "revoked" in body["detail"]
        introspected = client.post("/oauth/introspect", data={"token": token}, auth=auth).json()
        assert introspected == {"active": False}
        (revocation, refusal) = entries_since(world, size)
        assert revocation["kind"] == "app"
        assert revocation["event"] == "tokens_revoked"
        assert revocation["client"] == world.reelix.client_id
        assert "used a second time" in revocation["reason"]
        assert "1 access token issued from it revoked" in revocation["reason"]
        assert revocation["people"] == 1  # the person, by pseudonym only
        assert "c0000301" not in json.dumps(revocation)
        assert refusal["rules"] == [INVALID_TOKEN]
        # A third use is refused as well, and finds nothing more to revoke.
        assert client.post("/oauth/token", data=data, auth=auth).json()["error"] == (
            "invalid_grant"
        )

    @pytest.mark.parametrize(
        "change",
        [
            "verifier",  # PKCE: a verifier that is not the challenge's (RFC 7636 4.6)
            "no verifier",  # PKCE: none at all
            "redirect",  # a redirect_uri other than the authorization request's (RFC 6749 4.1.3)
            "other client",  # a code issued to one client, redeemed by another
            "wrong secret",  # the right client with a wrong secret
        ],
    )
    def test_a_stolen_or_altered_code_gives_no_token(
        self, world: World, client: httpx.Client, change: str
    ) -> None:
        got = consent(client, world.reelix, f"c00003{10 + len(change):02d}", [SOCIAL])
        data = code_exchange(got)
        auth = (world.reelix.client_id, world.reelix_secret)
        if change == "verifier":
            data["code_verifier"] = pkce()[0]
        elif change == "no verifier":
            del data["code_verifier"]
        elif change == "redirect":
            data["redirect_uri"] = "http://localhost/elsewhere"
        elif change == "other client":
            auth = (world.chirp.client_id, world.chirp_secret)
        else:
            auth = (world.reelix.client_id, secrets.token_urlsafe(32))
        r = client.post("/oauth/token", data=data, auth=auth)
        assert r.status_code in {400, 401}, r.text
        assert r.json()["error"] in {"invalid_grant", "invalid_client", "invalid_request"}
        assert "access_token" not in r.json()

    @pytest.mark.parametrize("method", ["plain", "", "s256", "S512"])
    def test_an_authorization_request_without_s256_pkce_is_refused(
        self, world: World, client: httpx.Client, method: str
    ) -> None:
        client.post("/login", data={"person": "c0000320", "next": "/me/apps?party=chirp"})
        verifier, challenge = pkce()
        params = {
            "response_type": "code",
            "client_id": world.reelix.client_id,
            "redirect_uri": REDIRECT,
            "scope": SOCIAL,
            "state": "s",
            "code_challenge": verifier if method == "plain" else challenge,
        }
        if method:
            params["code_challenge_method"] = method
        r = client.get("/oauth/authorize", params=params)
        assert r.status_code in {302, 400}, r.text
        if r.status_code == 302:
            location = r.headers["location"]
            assert "error=invalid_request" in location
            assert "code=" not in location
        else:
            assert 'name="pending"' not in r.text

    def test_a_public_client_gets_no_token_of_its_own(
        self, world: World, client: httpx.Client
    ) -> None:
        # A public client has no secret to prove it is itself: no client credentials grant.
        r = client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": world.public.client_id},
        )
        assert r.status_code in {400, 401}, r.text
        assert "access_token" not in r.json()

    def test_introspection_tells_another_client_nothing(
        self, world: World, client: httpx.Client
    ) -> None:
        token = delegated_token(client, world.reelix, world.reelix_secret, "c0000321", [SOCIAL])
        r = client.post(
            "/oauth/introspect",
            data={"token": token},
            auth=(world.chirp.client_id, world.chirp_secret),
        )
        assert r.status_code == 200
        assert r.json() == {"active": False}


def rows(n: int) -> list[dict[str, str]]:
    return [{"thread_id": f"t{i}", "body": "x"} for i in range(n)]


TOO_MUCH = {
    # more people than one request may name
    "people": {"subjects": {"kind": "people", "people": [f"c{i:07d}" for i in range(1001)]}},
    # more categories, fields, conditions, dimensions or measures than any clause has
    "categories": {"categories": ["user.social"] * 21},
    "fields": {"fields": [f"f{i}" for i in range(101)]},
    "where": {"where": {f"f{i}": 1 for i in range(21)}},
    "group_by": {"group_by": [f"g{i}" for i in range(9)]},
    "measures": {"measures": {f"m{i}": "count" for i in range(17)}},
    # more rows than one write may carry
    "rows": {"rows": rows(1001), "operation": "write"},
    # a key longer than any id
    "long key": {"collection": "x" * 201},
}


class TestAPI4UnrestrictedResourceConsumption:
    """Bodies, lists, pages and request rates past their limits are refused up front."""

    @pytest.mark.parametrize("case", sorted(TOO_MUCH))
    def test_a_body_past_a_limit_is_refused_before_the_door(
        self, world: World, client: httpx.Client, case: str
    ) -> None:
        token = app_token(client, world.chirp, world.chirp_secret)
        body = watch(**TOO_MUCH[case])
        size = world.accord.ledger.head().size
        r = client.post(exchanges("watch-activity"), json=body, headers=bearer(token))
        problem = refused(r, 422)
        assert "at most" in problem["detail"] or "most" in problem["detail"], problem
        assert world.accord.ledger.head().size == size  # nothing decided, nothing read

    @pytest.mark.parametrize(
        "params",
        [
            {"old": 0, "new": 2**62},  # a tree size the log never had
            {"old": 5, "new": 1},  # backwards
            {"old": -1, "new": 1},
            {"old": "1e9", "new": 1},
        ],
    )
    def test_a_proof_of_a_size_the_log_never_had_is_refused_cheaply(
        self, client: httpx.Client, params: dict[str, Any]
    ) -> None:
        r = client.get("/v1/ledger/consistency", params=params)
        refused(r, r.status_code)
        assert r.status_code in {400, 404, 422}, r.text

    def test_a_partner_over_its_rate_is_refused_logged_and_told_when_to_retry(
        self, world: World
    ) -> None:
        limited = create_app(
            world.accord,
            world.sources,
            ApiSettings(rate_limit="3/minute"),
            key=secrets.token_bytes(32),
        )
        with serving(limited) as url, httpx.Client(base_url=url) as http:
            token = app_token(http, world.reelix, world.reelix_secret)
            answers = [http.get("/v1/app", headers=bearer(token)) for _ in range(6)]
        statuses = [r.status_code for r in answers]
        assert statuses[:3] == [200, 200, 200]
        assert set(statuses[3:]) == {429}
        for r in answers[3:]:
            refused(r, 429)
            assert int(r.headers["retry-after"]) >= 1

    def test_a_limit_shared_by_all_of_a_partners_apps(self, world: World) -> None:
        # Two apps of one partner do not get twice the partner's rate.
        limited = create_app(
            world.accord,
            world.sources,
            ApiSettings(rate_limit="2/minute"),
            key=secrets.token_bytes(32),
        )
        other, secret = world.apps.register(
            "Reelix tv", party="reelix", agreement="chirp-reelix", redirect_uris=[REDIRECT]
        )
        assert secret
        with serving(limited) as url, httpx.Client(base_url=url) as http:
            first = app_token(http, world.reelix, world.reelix_secret)
            second = app_token(http, other, secret)
            statuses = [
                http.get("/v1/app", headers=bearer(t)).status_code
                for t in (first, second, first, second)
            ]
        assert statuses == [200, 200, 429, 429]

    def test_refused_tokens_cannot_flood_the_ledger(self, world: World) -> None:
        # Every refused token is logged; with no limit before authentication, anyone could
        # append to the ledger as fast as they send requests. 1,000 bad tokens from one address:
        # the first ones are logged one by one, the rest answered 429 and logged as one count.
        limited = create_app(
            world.accord,
            world.sources,
            ApiSettings(refusal_limit="20/minute", refusal_log_seconds=3600),
            key=secrets.token_bytes(32),
        )
        with serving(limited) as url:
            # Two clients from two addresses (all of 127.0.0.0/8 is this host's).
            attacker = httpx.Client(
                base_url=url, transport=httpx.HTTPTransport(local_address="127.0.0.7")
            )
            partner = httpx.Client(
                base_url=url, transport=httpx.HTTPTransport(local_address="127.0.0.20")
            )
            with attacker, partner:
                token = app_token(partner, world.reelix, world.reelix_secret)
                size = world.accord.ledger.head().size
                answers = [
                    attacker.get("/v1/app", headers=bearer(f"forged-{n}")) for n in range(1000)
                ]
                logged = entries_since(world, size)
                # The same address's live token is not even looked up; another's is served.
                assert attacker.get("/v1/app", headers=bearer(token)).status_code == 429
                assert partner.get("/v1/app", headers=bearer(token)).status_code == 200
        # What was counted is logged every ACCORD_API_REFUSAL_LOG_SECONDS (and at the end).
        limited.state.services.access.refusals.flush()
        assert [r.status_code for r in answers[:20]] == [401] * 20
        for r in answers[20:]:
            refused(r, 429)
            assert 1 <= int(r.headers["retry-after"]) <= 60
        assert len(logged) == 20
        assert all(e["rules"] == [INVALID_TOKEN] and e["allowed"] is False for e in logged)
        counted = entries_since(world, size)[20:]
        assert len(counted) == 1
        (tally,) = counted
        assert tally["rules"] == [TOO_MANY_REFUSED]
        assert tally["allowed"] is False
        assert tally["people"] == 0
        assert "981 requests from 1 address " in tally["reason"]
        assert "127.0.0.7" not in json.dumps(counted)  # an address is personal data
