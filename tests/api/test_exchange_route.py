"""The exchanges endpoint checks as any FastAPI route would: malformed JSON first, then the token,
then the path and the body, then the exchange (its handler runs them in one worker thread)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from accord.api import ApiSettings, create_app
from accord.api.scopes import Scope
from accord.service import Accord
from api.world import World, app_token, bearer, serving
from faults.helpers import LINK, link_read

pytestmark = pytest.mark.integration

LONG = "/v1/agreements/" + "a" * 201 + "/clauses/account-link/exchanges"
GOOD = link_read("r0000001")
JSON = "application/json"


@pytest.mark.parametrize(
    ("path", "who", "content_type", "body", "status", "where"),
    [
        # A valid token and body: decided, read and ledgered.
        (LINK, "app", JSON, json.dumps(GOOD), 200, None),
        # Any JSON media type is read as JSON (RFC 6838 +json suffix), parameters ignored.
        (LINK, "app", "application/merge-patch+json", json.dumps(GOOD), 200, None),
        (LINK, "app", "Application/JSON; charset=utf-8", json.dumps(GOOD), 200, None),
        # No token, or one this server did not issue: 401, even when the body is wrong too.
        (LINK, None, JSON, json.dumps(GOOD), 401, None),
        (LINK, "stranger", JSON, json.dumps({"x": 1}), 401, None),
        (LONG, "stranger", JSON, json.dumps(GOOD), 401, None),
        # Malformed JSON is refused before the token is looked at, as FastAPI does.
        (LINK, "stranger", JSON, '{"x": ', 422, "body.6"),
        (LINK, "app", JSON, '{"x": ', 422, "body.6"),
        # No body, or one that is not JSON by its type: the body is missing or not an object.
        (LINK, "app", JSON, "", 422, "body"),
        (LINK, "app", "text/plain", json.dumps(GOOD), 422, "body"),
        (LINK, "app", JSON, "[1, 2]", 422, "body"),
        # The path and the body are validated against the endpoint's own types, path first.
        (LONG, "app", JSON, json.dumps(GOOD), 422, "path.agreement"),
        (LONG, "app", JSON, json.dumps({**GOOD, "categories": []}), 422, "path.agreement"),
        (LINK, "app", JSON, json.dumps({**GOOD, "extra": 1}), 422, "body.extra"),
        (LINK, "app", JSON, json.dumps({**GOOD, "categories": []}), 422, "body.categories"),
        # Bytes that are not UTF-8 cannot be parsed at all.
        (LINK, "app", JSON, b"\xff\xfe{", 400, None),
    ],
)
def test_each_check_in_its_order(
    world: World,
    client: httpx.Client,
    *,
    path: str,
    who: str | None,
    content_type: str,
    body: str | bytes,
    status: int,
    where: str | None,
) -> None:
    headers = {"content-type": content_type}
    if who == "app":
        headers["authorization"] = f"Bearer {app_token(client, world.chirp, world.chirp_secret)}"
    elif who == "stranger":
        headers["authorization"] = "Bearer not-a-token-this-server-issued"
    r = client.post(path, content=body, headers=headers)
    assert r.status_code == status, r.text
    doc: dict[str, Any] = r.json()
    if status == 200:
        assert doc["decision"]["allowed"] is True
        assert len(doc["receipts"]) == 2
        return
    assert r.headers["content-type"] == "application/problem+json"
    if status == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")
    if where is not None:
        assert doc["errors"][0]["where"] == where


def test_a_revocation_refuses_the_next_exchange_in_every_worker(world: World) -> None:
    # A second worker: its own store handle and app over the same store, as `accord serve
    # --workers 2` runs them. Nothing a worker keeps may outlive a revocation made in another.
    url = world.accord.engine.url
    assert url.database is not None
    with Accord.open(str(url), Path(url.database).parent) as other:
        second = create_app(other, world.sources, ApiSettings())
        app, secret = world.apps.register("Chirp two", party="chirp", agreement="chirp-reelix")
        assert secret is not None
        for scope in world.apps.offered(app):
            world.apps.review(app.client_id, scope, approved=True, reviewer="Ola", findings="ok")
        with (
            serving(world.app) as one_url,
            serving(second) as two_url,
            httpx.Client(base_url=one_url) as one,
            httpx.Client(base_url=two_url) as two,
        ):
            first, kept = app_token(one, app, secret), app_token(one, app, secret)
            # Both tokens served by both workers first: each worker now keeps them.
            for http in (one, two, one, two):
                assert http.post(LINK, json=GOOD, headers=bearer(first)).status_code == 200
                assert http.post(LINK, json=GOOD, headers=bearer(kept)).status_code == 200
            # The token revoked through one worker (RFC 7009): refused by both.
            revoked = one.post("/oauth/revoke", data={"token": first}, auth=(app.client_id, secret))
            assert revoked.status_code == 200
            for http in (two, one):
                assert http.post(LINK, json=GOOD, headers=bearer(first)).status_code == 401
            # A review withdrawing a permission, recorded in the store: refused by both.
            scope = Scope.parse("user.account.linked:essential.service.authentication")
            world.apps.review(app.client_id, scope, approved=False, reviewer="Ola", findings="no")
            for http in (two, one):
                r = http.post(LINK, json=GOOD, headers=bearer(kept))
                assert r.status_code == 403
                assert r.json()["rules"] == ["api:not-reviewed"]
            # The app revoked: its other token is refused by both.
            world.apps.revoke_app(app.client_id)
            for http in (two, one):
                assert http.post(LINK, json=GOOD, headers=bearer(kept)).status_code == 401
