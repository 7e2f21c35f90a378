"""Granular permissions: review before the public, expiry, instant revocation, VPPA and GPC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select, update

from accord.api import tables as t
from accord.api.scopes import Scope
from accord.scenario.population import CHIRP, REELIX
from accord.store import tables as store_tables
from accord.store.registry import count_change
from api.world import REDIRECT, World, app_token, bearer, delegated_token, pkce

pytestmark = pytest.mark.integration

SOCIAL = "user.social:functional.service"
PRIVATE = "user.content.private:functional.service"
WATCHED = "user.behavior.media_consumption:functional.service"
TARGETED = "user.behavior.media_consumption:marketing.advertising.third_party.targeted"


def friends_body(person: str) -> dict[str, Any]:
    return {
        "collection": "friendships",
        "purpose": "functional.service",
        "categories": ["user.social"],
        "subjects": {"kind": "friends_of", "anchor": person},
        "where": {"person_id": person},
    }


FRIENDS = "/v1/agreements/chirp-reelix/clauses/friend-picker/exchanges"


def screen(
    client: httpx.Client, world: World, app_id: str, person: str, scopes: str, **h: str
) -> str:
    _, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": app_id,
        "redirect_uri": REDIRECT,
        "scope": scopes,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    r = client.get("/oauth/authorize", params=params, headers=h)
    if r.status_code == 303:
        nxt = parse_qs(urlsplit(r.headers["location"]).query)["next"][0]
        r = client.post("/login", data={"person": person, "next": nxt})
        r = client.get(r.headers["location"], headers=h)
    assert r.status_code == 200, r.text
    return r.text


# -- app review ------------------------------------------------------------------------------------


def test_an_unreviewed_permission_is_not_offered_to_the_public(
    world: World, client: httpx.Client
) -> None:
    page = screen(client, world, world.unreviewed.client_id, "c0000020", SOCIAL)
    assert "has not yet passed review" in page
    assert 'type="checkbox"' not in page


def test_an_unreviewed_permission_works_for_the_partners_test_people(
    world: World, client: httpx.Client
) -> None:
    tester = "c0000001"
    token = delegated_token(client, world.unreviewed, world.unreviewed_secret, tester, [SOCIAL])
    r = client.post(FRIENDS, json=friends_body(tester), headers=bearer(token))
    assert r.status_code == 200, r.text


def test_a_review_approving_the_permission_opens_it_to_the_public(
    world: World, client: httpx.Client
) -> None:
    app, secret = world.apps.register(
        "Reelix labs", party=REELIX, agreement="chirp-reelix", redirect_uris=[REDIRECT]
    )
    assert secret is not None
    page = screen(client, world, app.client_id, "c0000021", SOCIAL)
    assert 'type="checkbox"' not in page
    world.apps.review(
        app.client_id, Scope.parse(SOCIAL), approved=True, reviewer="Ola", findings="ok"
    )
    token = delegated_token(client, app, secret, "c0000021", [SOCIAL])
    assert (
        client.post(FRIENDS, json=friends_body("c0000021"), headers=bearer(token)).status_code
        == 200
    )
    # A later review that withdraws approval closes it again, at once.
    world.apps.review(
        app.client_id, Scope.parse(SOCIAL), approved=False, reviewer="Ola", findings="misuse"
    )
    r = client.post(FRIENDS, json=friends_body("c0000021"), headers=bearer(token))
    assert r.status_code == 403
    assert r.json()["rules"] == ["api:not-reviewed"]


# -- expiry ----------------------------------------------------------------------------------------


def test_a_grant_expires_after_90_days_unless_renewed(world: World, client: httpx.Client) -> None:
    person = "c0000022"
    token = delegated_token(client, world.reelix, world.reelix_secret, person, [SOCIAL])
    assert client.post(FRIENDS, json=friends_body(person), headers=bearer(token)).status_code == 200
    past = datetime.now(UTC) - timedelta(seconds=1)
    with world.accord.session() as s:
        s.execute(
            update(t.grants_table).where(t.grants_table.c.person == person).values(expires_at=past)
        )
    r = client.post(FRIENDS, json=friends_body(person), headers=bearer(token))
    assert r.status_code == 403
    assert r.json()["rules"] == ["api:scope-not-granted"]
    listed = client.get("/v1/me/permissions", headers=bearer(token)).json()
    assert [p["status"] for p in listed] == ["expired"]
    # Renewing (the person consents again) gives a fresh 90 days.
    renewed = delegated_token(client, world.reelix, world.reelix_secret, person, [SOCIAL])
    assert (
        client.post(FRIENDS, json=friends_body(person), headers=bearer(renewed)).status_code == 200
    )


def test_an_expired_access_token_is_refused(world: World, client: httpx.Client) -> None:
    token = app_token(client, world.chirp, world.chirp_secret)
    assert client.get("/v1/app", headers=bearer(token)).status_code == 200
    with world.accord.session() as s:
        s.execute(
            update(t.tokens_table)
            .where(t.tokens_table.c.client_id == world.chirp.client_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        # Time moved on behind the worker's back: a change written to the store directly counts
        # a change of the registry, as Accord's own revocations do, or a worker keeping the
        # app's token would not read it again.
        count_change(s)
    r = client.get("/v1/app", headers=bearer(token))
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]


# -- revocation ------------------------------------------------------------------------------------


def test_revoking_one_permission_is_instant_and_withdraws_the_consent(
    world: World, client: httpx.Client
) -> None:
    person = "c0000023"
    token = delegated_token(client, world.reelix, world.reelix_secret, person, [SOCIAL, PRIVATE])
    assert client.post(FRIENDS, json=friends_body(person), headers=bearer(token)).status_code == 200
    r = client.delete(f"/v1/me/permissions/{SOCIAL}", headers=bearer(token))
    assert r.json() == {"revoked": 1}
    refused = client.post(FRIENDS, json=friends_body(person), headers=bearer(token))
    assert refused.status_code == 403
    # The other permission still works; the consent behind the revoked one is withdrawn.
    assert client.get("/v1/app", headers=bearer(token)).json()["token_scopes"] == [PRIVATE]
    social = [
        c
        for c in world.accord.consents(CHIRP, person)
        if c.id.startswith("oauth-") and "user.social" in c.categories
    ]
    assert social
    assert all(c.withdrawn_at is not None for c in social)


def test_removing_the_app_revokes_everything(world: World, client: httpx.Client) -> None:
    person = "c0000024"
    token = delegated_token(client, world.reelix, world.reelix_secret, person, [SOCIAL, PRIVATE])
    assert client.delete("/v1/me/permissions", headers=bearer(token)).json() == {"revoked": 2}
    assert client.get("/v1/app", headers=bearer(token)).json()["token_scopes"] == []
    assert client.post(FRIENDS, json=friends_body(person), headers=bearer(token)).status_code == 403


def test_revoking_an_app_refuses_its_next_request(world: World, client: httpx.Client) -> None:
    app, secret = world.apps.register("Doomed", party=CHIRP, agreement="chirp-reelix")
    assert secret is not None
    token = app_token(client, app, secret)
    assert client.get("/v1/app", headers=bearer(token)).status_code == 200
    world.apps.revoke_app(app.client_id)
    r = client.get("/v1/app", headers=bearer(token))
    assert r.status_code == 401
    again = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(app.client_id, secret)
    )
    assert again.status_code in {400, 401}
    assert again.json()["error"] == "invalid_client"


# -- VPPA and Global Privacy Control ---------------------------------------------------------------


def test_vppa_consent_comes_on_its_own_screen_with_its_duration(
    world: World, client: httpx.Client
) -> None:
    page = screen(client, world, world.chirp.client_id, "r0000030", WATCHED)
    assert 'type="checkbox"' not in page  # not among the other terms
    assert "on its own" in page
    marker = 'name="pending" value="'
    start = page.index(marker) + len(marker)
    pending = page[start : page.index('"', start)]
    vppa = client.post("/oauth/authorize/consent", data={"pending": pending, "action": "allow"})
    assert vppa.status_code == 200
    assert "separate consent" in vppa.text
    assert "at most two years" in vppa.text
    assert '<option value="24"' in vppa.text
    assert '<option value="25"' not in vppa.text
    start = vppa.text.index(marker) + len(marker)
    pending = vppa.text[start : vppa.text.index('"', start)]
    too_long = client.post(
        "/oauth/authorize/vppa", data={"pending": pending, "action": "allow", "months": "25"}
    )
    assert too_long.status_code == 422
    declined = client.post("/oauth/authorize/vppa", data={"pending": pending, "action": "deny"})
    assert declined.status_code == 302
    assert parse_qs(urlsplit(declined.headers["location"]).query)["error"] == ["access_denied"]


def test_a_gpc_signal_is_recorded_as_an_opt_out_and_bars_ad_permissions(
    world: World, client: httpx.Client
) -> None:
    person = "r0000031"
    page = screen(
        client, world, world.chirp.client_id, person, f"{TARGETED} {WATCHED}", **{"Sec-GPC": "1"}
    )
    assert "Global Privacy Control" in page
    assert f'value="{TARGETED}"' not in page  # shown, but not offered
    assert "opted you out of the sale and sharing" in page
    with world.accord.session() as s:
        kinds = (
            s.execute(
                select(store_tables.opt_outs.c.source).where(
                    store_tables.opt_outs.c.person == person,
                    store_tables.opt_outs.c.controller == REELIX,
                )
            )
            .scalars()
            .all()
        )
    assert kinds == ["global_privacy_control"]
    # The signal again, on another page: the opt-out in force stands, not a second one.
    again = client.get("/me/apps", params={"party": REELIX}, headers={"Sec-GPC": "1"})
    assert again.status_code == 200
    with world.accord.session() as s:
        count = len(
            s.execute(
                select(store_tables.opt_outs.c.id).where(
                    store_tables.opt_outs.c.person == person,
                    store_tables.opt_outs.c.controller == REELIX,
                )
            ).all()
        )
    assert count == 1


def test_without_gpc_the_ad_permission_is_offered(world: World, client: httpx.Client) -> None:
    page = screen(client, world, world.chirp.client_id, "r0000032", TARGETED)
    assert "Global Privacy Control" not in page


def test_introspection_follows_the_persons_grants(world: World, client: httpx.Client) -> None:
    person = "c0000025"
    token = delegated_token(client, world.reelix, world.reelix_secret, person, [SOCIAL, PRIVATE])
    auth = (world.reelix.client_id, world.reelix_secret)
    seen = client.post("/oauth/introspect", data={"token": token}, auth=auth).json()
    assert seen["active"] is True
    assert seen["sub"] == person
    assert seen["scope"].split() == sorted([SOCIAL, PRIVATE])
    world.apps.revoke(world.reelix.client_id, person, [Scope.parse(SOCIAL)])
    seen = client.post("/oauth/introspect", data={"token": token}, auth=auth).json()
    assert seen["scope"] == PRIVATE
    world.apps.revoke(world.reelix.client_id, person)
    assert client.post("/oauth/introspect", data={"token": token}, auth=auth).json() == {
        "active": False
    }


def test_pages_cannot_be_framed(world: World, client: httpx.Client) -> None:
    page = client.get("/login")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
