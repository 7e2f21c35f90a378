"""OWASP API Security Top 10 (2023), API6 unrestricted access to sensitive business flows (the
abuses the 2024 filings describe: bulk inbox reads, friends' data without the friends' consent,
watch history without VPPA consent, an agreement nobody reviewed) and API7 server side request
forgery (every place a URL comes from a client: redirect URIs, sign-in targets, the issuer)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from accord.consent import Consent
from accord.scenario.population import CHIRP, REELIX
from api.world import REDIRECT, World, app_token, bearer, delegated_token, pkce
from attacks.helpers import (
    PRIVATE,
    SOCIAL,
    entries_since,
    exchanges,
    inbox,
    refused,
    refused_and_logged,
    watch,
)

pytestmark = pytest.mark.integration


def covers(c: Consent, category: str, recipient: str) -> bool:
    """Whether ``c`` could let ``category`` go to ``recipient`` at all (a superset of what
    the law and the consent's details allow: enough for a released ⊆ consenting check)."""
    return (
        c.recipient == recipient
        and c.withdrawn_at is None
        and any(category == k or category.startswith(f"{k}.") for k in c.categories)
    )


def who_consented(world: World, party: str, people: set[str], category: str) -> set[str]:
    """Who of ``party``'s ``people`` gave the other party any consent covering ``category``."""
    other = CHIRP if party == REELIX else REELIX
    return {
        p
        for p in people
        if any(covers(c, category, other) for c in world.accord.consents(party, p))
    }


class TestAPI6SensitiveBusinessFlows:
    """The partnership's flows pushed past what the people involved agreed to."""

    def test_a_bulk_read_of_every_inbox_is_refused(
        self, world: World, client: httpx.Client
    ) -> None:
        token = app_token(client, world.reelix, world.reelix_secret)
        size = world.accord.ledger.head().size
        body = inbox({"kind": "all"})
        r = client.post(exchanges("message-sync"), json=body, headers=bearer(token))
        assert "law:sca.no-bulk-read" in refused(r, 403)["rules"]
        refused_and_logged(world, size)

    @pytest.mark.parametrize("collection", ["threads", "thread_participants"])
    def test_the_shape_of_an_inbox_is_no_way_around(
        self, world: World, client: httpx.Client, collection: str
    ) -> None:
        # Who talks to whom is as private as what they say: not outside the clause's fields.
        token = delegated_token(client, world.reelix, world.reelix_secret, "c0000351", [PRIVATE])
        body = {
            "collection": collection,
            "purpose": "functional.service",
            "categories": ["user.content.private"],
            "subjects": {"kind": "threads_of", "anchor": "c0000351"},
        }
        size = world.accord.ledger.head().size
        r = client.post(exchanges("message-sync"), json=body, headers=bearer(token))
        assert r.status_code in {403, 422}, r.text
        refused(r, r.status_code)
        assert world.accord.ledger.head().size == size or refused_and_logged(world, size)

    def test_a_persons_inbox_sync_holds_only_what_reelix_sent(
        self, world: World, client: httpx.Client
    ) -> None:
        ((person,),) = world.sql(
            CHIRP,
            "SELECT p.person_id FROM thread_participants p JOIN messages m USING (thread_id) "
            "GROUP BY 1 HAVING sum(m.sent_via IS NULL) > 0 AND sum(m.sent_via = 'reelix') > 0 "
            "ORDER BY 1 LIMIT 1",
        )
        token = delegated_token(client, world.reelix, world.reelix_secret, person, [PRIVATE])
        body = inbox({"kind": "threads_of", "anchor": person})
        r = client.post(exchanges("message-sync"), json=body, headers=bearer(token))
        assert r.status_code in {200, 403}, r.text
        if r.status_code == 200:
            out = r.json()
            ids = [row[out["columns"].index("message_id")] for row in out["rows"]]
            private = {
                m
                for (m,) in world.sql(
                    CHIRP, "SELECT message_id FROM messages WHERE sent_via IS NOT 'reelix'"
                )
            }
            assert not set(ids) & private
            assert "sender_id" not in out["columns"]

    def test_friends_who_did_not_consent_are_never_shown(
        self, world: World, client: httpx.Client
    ) -> None:
        (person, count) = world.sql(
            CHIRP,
            "SELECT person_id, count(*) FROM friendships GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
        )[0]
        assert count > 3
        friends = {
            str(f)
            for (f,) in world.sql(
                CHIRP, "SELECT friend_id FROM friendships WHERE person_id = ?", person
            )
        }
        consenting = who_consented(world, CHIRP, friends, "user.social")
        assert friends - consenting, "the oracle needs a friend who did not consent"
        token = delegated_token(client, world.reelix, world.reelix_secret, person, [SOCIAL])
        body = {
            "collection": "friendships",
            "purpose": "functional.service",
            "categories": ["user.social"],
            "subjects": {"kind": "friends_of", "anchor": person},
            "where": {"person_id": person},
        }
        r = client.post(exchanges("friend-picker"), json=body, headers=bearer(token))
        assert r.status_code == 200, r.text
        shown = {row[0] for row in r.json()["rows"]}
        assert shown <= consenting
        # The asker's own consent is not the friends': asking for them reveals no one else.
        assert not shown & (friends - consenting)

    def test_watch_history_without_vppa_consent_is_never_released(
        self, world: World, client: httpx.Client
    ) -> None:
        members = {
            str(m)
            for (m,) in world.sql(
                REELIX,
                "SELECT DISTINCT member_id FROM watch_events WHERE member_id IN "
                "(SELECT member_id FROM members WHERE jurisdiction LIKE 'US-%')",
            )
        }
        without = sorted(
            members - who_consented(world, REELIX, members, "user.behavior.media_consumption")
        )[:5]
        assert without
        token = app_token(client, world.chirp, world.chirp_secret)
        size = world.accord.ledger.head().size
        body = watch(subjects={"kind": "people", "people": without})
        r = client.post(exchanges("watch-activity"), json=body, headers=bearer(token))
        assert r.status_code in {200, 403}, r.text
        if r.status_code == 200:
            assert r.json()["rows"] == []
            assert r.json()["people"] == 0
        written = entries_since(world, size)
        assert written
        assert all(e["people"] == 0 for e in written)

    def test_an_agreement_nobody_reviewed_moves_nothing(
        self, world: World, client: httpx.Client
    ) -> None:
        # The "Titan API": every friend of every linked person, under a draft no one reviewed.
        app, secret = world.apps.register(
            "Reelix titan", party=REELIX, agreement="chirp-reelix-titan", redirect_uris=[REDIRECT]
        )
        assert secret
        size = world.accord.ledger.head().size
        r = client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(app.client_id, secret),
        )
        if r.status_code == 200:
            token = r.json()["access_token"]
            body = {
                "collection": "friendships",
                "purpose": "marketing.advertising",
                "categories": ["user.social"],
            }
            r = client.post(
                exchanges("all-friends", "chirp-reelix-titan"), json=body, headers=bearer(token)
            )
            refused(r, 403)
            refused_and_logged(world, size)
        else:
            assert r.status_code in {400, 401}, r.text
            assert "access_token" not in r.json()

    def test_a_recommendation_into_someone_elses_thread_is_refused(
        self, world: World, client: httpx.Client
    ) -> None:
        ((thread,),) = world.sql(
            CHIRP,
            "SELECT thread_id FROM threads WHERE thread_id NOT IN (SELECT thread_id FROM "
            "thread_participants WHERE person_id = 'c0000352') ORDER BY 1 LIMIT 1",
        )
        token = delegated_token(client, world.reelix, world.reelix_secret, "c0000352", [PRIVATE])
        before = world.sql(CHIRP, "SELECT count(*) FROM messages WHERE thread_id = ?", thread)
        size = world.accord.ledger.head().size
        row = {"thread_id": thread, "body": "watch this", "sent_via": "reelix"}
        body = inbox({"kind": "all"}, operation="write", rows=[row])
        r = client.post(exchanges("send-recommendation"), json=body, headers=bearer(token))
        assert r.status_code in {403, 422}, r.text
        assert world.sql(CHIRP, "SELECT count(*) FROM messages WHERE thread_id = ?", thread) == (
            before
        )
        assert world.accord.ledger.head().size == size or refused_and_logged(world, size)


UNREGISTERED = [
    "http://169.254.169.254/latest/meta-data/",  # a cloud metadata address
    "http://10.0.0.1/callback",  # a private network
    "http://localhost/callback/../../admin",  # a path that climbs out of the registered one
    "http://localhost/callback?next=http://evil.example",  # the registered one, extended
    "http://localhost@evil.example/callback",  # user information naming localhost
    "http://localhost.evil.example/callback",  # a host that begins like the registered one
    "http://localhost:8080/callback",  # another port
    "HTTP://LOCALHOST/CALLBACK",  # case games on the path
    "javascript:alert(1)//http://localhost/callback",
]


class TestAPI7ServerSideRequestForgery:
    """No URL a client sends makes the server, or a person's browser through it, go anywhere
    but where an app registered."""

    @pytest.mark.parametrize("uri", UNREGISTERED)
    def test_an_unregistered_redirect_uri_is_never_followed(
        self, world: World, client: httpx.Client, uri: str
    ) -> None:
        client.post("/login", data={"person": "c0000360", "next": "/me/apps?party=chirp"})
        _, challenge = pkce()
        r = client.get(
            "/oauth/authorize",
            params={
                "response_type": "code",
                "client_id": world.reelix.client_id,
                "redirect_uri": uri,
                "scope": SOCIAL,
                "state": "s",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        # RFC 6749 4.1.2.1: an invalid redirect URI is told to the person, never redirected to.
        assert r.status_code == 400, r.text
        assert "location" not in r.headers
        assert 'name="pending"' not in r.text

    @pytest.mark.parametrize(
        "target",
        [
            "//evil.example/me",
            "https://evil.example/me",
            "/\\evil.example/me",
            "javascript:alert(1)",
            "/me\r\nSet-Cookie: x=1",
            "/%2F%2Fevil.example/me",
            "http://127.0.0.1:6379/",  # Redis, as a sign-in target
        ],
    )
    def test_a_sign_in_target_off_this_server_is_refused(
        self, client: httpx.Client, target: str
    ) -> None:
        r = client.post("/login", data={"person": "c0000361", "next": target})
        assert r.status_code in {400, 401, 422}, r.text
        location = r.headers.get("location", "")
        assert not urlsplit(location).netloc
        assert "set-cookie: x" not in str(r.headers).lower()

    def test_the_issuer_is_not_taken_from_a_forged_host_header(self, client: httpx.Client) -> None:
        r = client.get("/.well-known/oauth-authorization-server", headers={"Host": "evil.example"})
        if r.status_code == 200:
            metadata: dict[str, Any] = r.json()
            # Without a configured issuer the request's base is used; the endpoints then stay
            # on the host the client itself asked, never on an address the server chose.
            assert all(
                urlsplit(str(v)).netloc in {"evil.example", ""}
                for k, v in metadata.items()
                if k.endswith("endpoint")
            )
        else:
            assert r.status_code in {400, 421}

    def test_a_token_request_never_fetches_a_client_supplied_url(
        self, world: World, client: httpx.Client
    ) -> None:
        # A client assertion or a request object by reference (RFC 7523, RFC 9101) would make
        # the server fetch a URL; neither is supported, so nothing is fetched.
        r = client.post(
            "/oauth/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": "x",
                "request_uri": "http://169.254.169.254/",
                "jwks_uri": "http://127.0.0.1:1/",
            },
            auth=(world.reelix.client_id, world.reelix_secret),
        )
        assert r.status_code in {400, 401}, r.text
        assert r.json()["error"] in {"unsupported_grant_type", "invalid_request"}
