"""The exchanges endpoint checks as any FastAPI route would: malformed JSON first, then the token,
then the path and the body, then the exchange (its handler runs them in one worker thread)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from api.world import World, app_token

pytestmark = pytest.mark.integration

LINK = "/v1/agreements/chirp-reelix/clauses/account-link/exchanges"
LONG = "/v1/agreements/" + "a" * 201 + "/clauses/account-link/exchanges"
GOOD = {
    "collection": "linked_accounts",
    "purpose": "essential.service.authentication",
    "categories": ["user.account.linked"],
    "subjects": {"kind": "people", "people": ["r0000001"]},
}
JSON = "application/json"


@pytest.mark.parametrize(
    ("path", "token", "content_type", "body", "status", "where"),
    [
        # A valid token and body: decided, read and ledgered.
        (LINK, "live", JSON, json.dumps(GOOD), 200, None),
        # Any JSON media type is read as JSON (RFC 6838 +json suffix), parameters ignored.
        (LINK, "live", "application/merge-patch+json", json.dumps(GOOD), 200, None),
        (LINK, "live", "Application/JSON; charset=utf-8", json.dumps(GOOD), 200, None),
        # No token, or one this server did not issue: 401, even when the body is wrong too.
        (LINK, None, JSON, json.dumps(GOOD), 401, None),
        (LINK, "unknown", JSON, json.dumps({"x": 1}), 401, None),
        (LONG, "unknown", JSON, json.dumps(GOOD), 401, None),
        # Malformed JSON is refused before the token is looked at, as FastAPI does.
        (LINK, "unknown", JSON, '{"x": ', 422, "body.6"),
        (LINK, "live", JSON, '{"x": ', 422, "body.6"),
        # No body, or one that is not JSON by its type: the body is missing or not an object.
        (LINK, "live", JSON, "", 422, "body"),
        (LINK, "live", "text/plain", json.dumps(GOOD), 422, "body"),
        (LINK, "live", JSON, "[1, 2]", 422, "body"),
        # The path and the body are validated against the endpoint's own types, path first.
        (LONG, "live", JSON, json.dumps(GOOD), 422, "path.agreement"),
        (LONG, "live", JSON, json.dumps({**GOOD, "categories": []}), 422, "path.agreement"),
        (LINK, "live", JSON, json.dumps({**GOOD, "extra": 1}), 422, "body.extra"),
        (LINK, "live", JSON, json.dumps({**GOOD, "categories": []}), 422, "body.categories"),
        # Bytes that are not UTF-8 cannot be parsed at all.
        (LINK, "live", JSON, b"\xff\xfe{", 400, None),
    ],
)
def test_each_check_in_its_order(
    world: World,
    client: httpx.Client,
    path: str,
    token: str | None,
    content_type: str,
    body: str | bytes,
    status: int,
    where: str | None,
) -> None:
    headers = {"content-type": content_type}
    if token == "live":
        headers["authorization"] = f"Bearer {app_token(client, world.chirp, world.chirp_secret)}"
    elif token == "unknown":
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
