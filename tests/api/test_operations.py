"""Operating the API: per-app rate limits, structured access logs, health, problem documents."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from accord.api import ApiSettings, create_app
from api.world import World, app_token, bearer, serving

pytestmark = pytest.mark.integration


def test_each_app_has_its_own_rate_limit(world: World) -> None:
    limited = create_app(world.accord, world.sources, ApiSettings(rate_limit="3/minute"))
    with serving(limited) as url, httpx.Client(base_url=url) as http:
        chirp = app_token(http, world.chirp, world.chirp_secret)
        reelix = app_token(http, world.reelix, world.reelix_secret)
        assert [http.get("/v1/app", headers=bearer(chirp)).status_code for _ in range(3)] == [
            200
        ] * 3
        over = http.get("/v1/app", headers=bearer(chirp))
        assert over.status_code == 429
        assert over.headers["content-type"] == "application/problem+json"
        assert int(over.headers["retry-after"]) >= 1
        # Another partner's app is counted apart.
        assert http.get("/v1/app", headers=bearer(reelix)).status_code == 200


def test_one_json_access_line_per_request_without_the_query(
    world: World, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    token = app_token(client, world.chirp, world.chirp_secret)
    with caplog.at_level(logging.INFO, logger="accord.api.access"):
        r = client.get("/v1/app?code=secret-looking", headers=bearer(token))
    lines = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name.endswith("access")]
    (line,) = [x for x in lines if x["path"] == "/v1/app"]
    assert line["status"] == 200
    assert line["client_id"] == world.chirp.client_id
    assert line["request_id"] == r.headers["x-request-id"]
    assert "secret-looking" not in json.dumps(line)
    assert line["ms"] >= 0


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok"}


def test_the_openapi_document_describes_problems(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    post = doc["paths"]["/v1/agreements/{agreement}/clauses/{clause}/exchanges"]["post"]
    for status in ("401", "403", "413", "422", "429"):
        assert "application/problem+json" in post["responses"][status]["content"]
    assert client.get("/docs").status_code == 200
