"""Operating the API: per-app rate limits, structured access logs, health, problem documents."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.api import ApiSettings, create_app
from accord.api.middleware import access_line
from accord.sources import Source
from accord.store.engine import make_engine
from api.world import World, app_token, bearer, serving

pytestmark = pytest.mark.integration


def test_each_partner_has_its_own_rate_limit(world: World) -> None:
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
        # Another partner's app is counted apart; the same partner's other app is not.
        assert http.get("/v1/app", headers=bearer(reelix)).status_code == 200
        other, secret = world.apps.register("Chirp two", party="chirp", agreement="chirp-reelix")
        assert secret is not None
        sibling = app_token(http, other, secret)
        assert http.get("/v1/app", headers=bearer(sibling)).status_code == 429


def test_one_json_access_line_per_request_without_the_query(
    world: World, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    token = app_token(client, world.chirp, world.chirp_secret)

    def logged() -> list[dict[str, Any]]:
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("access")]
        return [x for x in lines if x["path"] == "/v1/app"]

    with caplog.at_level(logging.INFO, logger="accord.api.access"):
        r = client.get("/v1/app?code=secret-looking", headers=bearer(token))
        # The line is written once the response has gone out, on the server's own thread.
        deadline = time.monotonic() + 5
        while not logged() and time.monotonic() < deadline:
            time.sleep(0.01)
    (line,) = logged()
    assert line["status"] == 200
    assert line["client_id"] == world.chirp.client_id
    assert line["request_id"] == r.headers["x-request-id"]
    assert "secret-looking" not in json.dumps(line)
    assert line["ms"] >= 0


@given(
    st.fixed_dictionaries(
        {
            "request_id": st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
            "method": st.none() | st.text(),
            "path": st.none() | st.text(),
            "status": st.integers(100, 599),
            "ms": st.floats(0, 1e7, allow_nan=False).map(lambda v: round(v, 2)),
            "client_id": st.none() | st.text(),
            "peer": st.none() | st.text(),
        }
    )
)
def test_the_access_line_is_the_json_of_its_fields(fields: dict[str, Any]) -> None:
    """Written directly, the line is still exactly what ``json.dumps`` writes for its fields (any
    text: quotes, controls, non-ASCII, lone surrogates), so whatever reads the log reads it."""
    line = access_line(**fields)
    order = ("request_id", "method", "path", "status", "ms", "client_id", "peer")
    assert line == json.dumps({name: fields[name] for name in order})
    assert json.loads(line) == fields


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok"}


def test_the_openapi_document_describes_problems(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    post = doc["paths"]["/v1/agreements/{agreement}/clauses/{clause}/exchanges"]["post"]
    for status in ("401", "403", "413", "422", "429"):
        assert "application/problem+json" in post["responses"][status]["content"]
    assert client.get("/docs").status_code == 200


def test_a_failing_source_releases_nothing_and_shows_no_trace(world: World, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database " * 100)
    empty = make_engine(f"sqlite:///{garbage}")
    try:
        broken = {**world.sources, "reelix": Source(empty, world.sources["reelix"].dataset)}
        app = create_app(world.accord, broken, ApiSettings())
        with serving(app) as url, httpx.Client(base_url=url) as http:
            token = app_token(http, world.chirp, world.chirp_secret)
            r = http.post(
                "/v1/agreements/chirp-reelix/clauses/account-link/exchanges",
                json={
                    "collection": "linked_accounts",
                    "purpose": "essential.service.authentication",
                    "categories": ["user.account.linked"],
                    "subjects": {"kind": "people", "people": ["r0000001"]},
                },
                headers=bearer(token),
            )
    finally:
        empty.dispose()
    assert r.status_code >= 500
    assert r.headers["content-type"] == "application/problem+json"
    assert "nothing was released" in r.json()["detail"]
    assert "Traceback" not in r.text
    assert "sqlite3" not in r.text  # the database's own message stays in the server's log
    assert "rows" not in r.json()
