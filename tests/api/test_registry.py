"""The public registry: published agreements, the permissions they grant, and every app."""

from __future__ import annotations

import httpx
import pytest

from api.world import World

pytestmark = pytest.mark.integration


def test_the_registry_publishes_agreements_permissions_and_apps(
    world: World, client: httpx.Client
) -> None:
    listed = client.get("/v1/agreements")  # no token needed
    assert listed.status_code == 200
    by_id = {a["id"]: a for a in listed.json()}
    # The draft Titan agreement is not published; the active one is, with its review.
    assert set(by_id) == {"chirp-reelix"}
    main = by_id["chirp-reelix"]
    assert main["status"] == "active"
    assert main["review"]["reviewer"] == "Dana"
    clauses = {c["id"]: c for c in main["clauses"]}
    assert clauses["friend-picker"]["scopes"] == {"reelix": ["user.social:functional.service"]}
    assert clauses["send-recommendation"]["scopes"] == {
        "reelix": ["user.content.private:functional.service:write"]
    }
    assert clauses["recommendation-report"]["granularity"] == "aggregate"
    apps = {a["client_id"]: a for a in main["apps"]}
    assert "user.social:functional.service" in apps[world.reelix.client_id]["approved"]
    # An app with no review is listed too, with nothing approved: no secret whitelists.
    assert apps[world.unreviewed.client_id]["approved"] == []
