"""The hot routes' way in (accord.api.front) answers as the app's middleware and routing would:
the same status, headers and body, whether a request to the exchanges route or the ad requests
route is taken past the stack or through it, and within the same deadline; and the exchange's
answer is written as its pydantic models write it."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from starlette.routing import Match

from accord.agreements import Granularity
from accord.api.ads import AdOut
from accord.api.front import PartnerAPI
from accord.api.routes import (
    ExchangeRoute,
    _answer_through_models,
    answer_json,
    exchange,
)
from accord.api.settings import ApiSettings
from accord.gateway import Release
from accord.ledger.results import Receipt
from accord.scenario.population import CHIRP, person_id
from api.world import AD_DAY, World, ad_platform, app_token, build_world, serving
from faults.helpers import LINK, link_read

pytestmark = pytest.mark.integration

LONG = "/v1/agreements/" + "a" * 201 + "/clauses/account-link/exchanges"
GOOD = link_read("r0000001")
FOREIGN = {**GOOD, "purpose": "marketing.advertising.third_party.targeted"}
ADS = "/v1/ads/request"
PERSON = person_id(CHIRP, 0)
AD = {"person": PERSON, "party": CHIRP, "slots": 2, "context": {"at": AD_DAY.isoformat()}}
JSON = "application/json"
# What differs from one request to the next whichever way it is served.
UNSTABLE_HEADERS = {"date", "server", "x-request-id", "content-length"}


def _chunks(size: int) -> Iterator[bytes]:
    for _ in range(size // 65536):
        yield b" " * 65536


def _run_a_campaign(world: World) -> str:
    """One campaign on Chirp that any of its people may see (a cap no test reaches), and the
    first of them with an ad profile, whose ad requests it takes part in."""
    (person,) = ad_platform(world.accord, 1, frequency_cap=1_000_000)
    assert person == PERSON
    return person


@pytest.fixture(scope="module")
def campaign(world: World) -> str:
    return _run_a_campaign(world)


@pytest.fixture
def both(world: World, campaign: str) -> Iterator[PartnerAPI]:
    app = cast(PartnerAPI, world.app)
    front = app.front
    assert front is not None
    yield app
    app.front = front


def _answer(client: httpx.Client, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    r = client.request(method, path, **kwargs)
    body: Any = r.content
    if r.headers.get("content-type", "").endswith("json") and r.content:
        body = r.json()
        # Ledger indexes move on with every request.
        if isinstance(body, dict):
            body.pop("receipt", None)
            # Which ads a request shows is drawn (the campaign's pacing), and its id is new
            # each time: what is compared is that they come as the model writes them.
            if isinstance(body.get("ads"), list):
                assert all(AdOut.model_validate(ad) for ad in body["ads"])
                body["ads"] = "ads"
                body["request_id"] = "an id"
            if "receipts" in body:
                body["receipts"] = len(body["receipts"])
    headers = [(k, v) for k, v in r.headers.multi_items() if k not in UNSTABLE_HEADERS]
    return {"status": r.status_code, "headers": headers, "body": body}


@pytest.mark.parametrize(
    ("path", "who", "headers", "body"),
    [
        # Allowed, read and ledgered.
        (LINK, "app", {"content-type": JSON}, json.dumps(GOOD)),
        # No token; a token this server did not issue.
        (LINK, None, {"content-type": JSON}, json.dumps(GOOD)),
        (LINK, "stranger", {"content-type": JSON}, json.dumps(GOOD)),
        # Malformed JSON, no body, not JSON by its type, bytes that are not UTF-8.
        (LINK, "app", {"content-type": JSON}, '{"x": '),
        (LINK, "app", {"content-type": JSON}, ""),
        (LINK, "app", {"content-type": "text/plain"}, json.dumps(GOOD)),
        (LINK, "app", {"content-type": JSON}, b"\xff\xfe{"),
        # The path and the body validated.
        (LONG, "app", {"content-type": JSON}, json.dumps(GOOD)),
        (LINK, "app", {"content-type": JSON}, json.dumps({**GOOD, "extra": 1})),
        # A purpose the token does not hold: refused and logged.
        (LINK, "app", {"content-type": JSON}, json.dumps(FOREIGN)),
        # Bodies over the limit: by their length, by what streams in, by a length not a number.
        (LINK, "app", {"content-type": JSON}, b" " * 1_100_000),
        (LINK, "app", {"content-type": JSON}, "chunks"),
        (LINK, "app", {"content-type": JSON, "content-length": "x1"}, b"{}"),
        # An ad request by the platform's own service (no campaign runs: no ads), with the
        # browser's privacy signal too.
        (ADS, "app", {"content-type": JSON}, json.dumps(AD)),
        (ADS, "app", {"content-type": JSON, "sec-gpc": "1"}, json.dumps(AD)),
        # No token, a token this server did not issue, a partner's app: 401, 401, 403 (logged).
        (ADS, None, {"content-type": JSON}, json.dumps(AD)),
        (ADS, None, {"content-type": JSON}, json.dumps({"party": "chirp"})),
        (ADS, "stranger", {"content-type": JSON}, json.dumps(AD)),
        (ADS, "partner", {"content-type": JSON}, json.dumps(AD)),
        # Malformed JSON (with a token and without), no body, not JSON, not UTF-8.
        (ADS, "app", {"content-type": JSON}, '{"x": '),
        (ADS, None, {"content-type": JSON}, '{"x": '),
        (ADS, "app", {"content-type": JSON}, ""),
        (ADS, "app", {"content-type": "text/plain"}, json.dumps(AD)),
        (ADS, "app", {"content-type": JSON}, b"\xff\xfe{"),
        # The body validated.
        (ADS, "app", {"content-type": JSON}, json.dumps({**AD, "slots": 11})),
        (ADS, "app", {"content-type": JSON}, json.dumps({**AD, "extra": 1})),
        # Bodies over the limit, three ways.
        (ADS, "app", {"content-type": JSON}, b" " * 1_100_000),
        (ADS, "app", {"content-type": JSON}, "chunks"),
        (ADS, "app", {"content-type": JSON, "content-length": "x1"}, b"{}"),
    ],
)
def test_the_same_answer_past_the_stack_and_through_it(
    world: World,
    client: httpx.Client,
    both: PartnerAPI,
    *,
    path: str,
    who: str | None,
    headers: dict[str, str],
    body: str | bytes,
) -> None:
    headers = dict(headers)
    if who == "app":
        headers["authorization"] = f"Bearer {app_token(client, world.chirp, world.chirp_secret)}"
    elif who == "partner":
        headers["authorization"] = f"Bearer {app_token(client, world.reelix, world.reelix_secret)}"
    elif who == "stranger":
        headers["authorization"] = "Bearer not-a-token-this-server-issued"
    answers = []
    for front in (both.front, None):
        both.front = front
        content: Any = _chunks(1_179_648) if body == "chunks" else body
        try:
            answers.append(_answer(client, "POST", path, content=content, headers=headers))
        except httpx.HTTPError:  # the server closed the connection on a body it refused
            answers.append({"closed": True})
    assert answers[0] == answers[1]
    served = ((LINK, json.dumps(GOOD)), (ADS, json.dumps(AD)))
    if who == "app" and headers["content-type"] == JSON and (path, body) in served:
        # Served, both ways.
        assert answers[0]["status"] == 200


def test_an_unexpected_failure_is_answered_500_either_way(
    world: World, client: httpx.Client, both: PartnerAPI
) -> None:
    svc = both.state.services
    door = svc.gateway

    class Failing:
        accord = door.accord

        def exchange(self, _: Any) -> Release:
            raise RuntimeError("a failure no handler knows")

    token = app_token(client, world.chirp, world.chirp_secret)
    svc.gateway = Failing()
    try:
        answers = _both_ways_anew(both, client, LINK, GOOD, token)
    finally:
        svc.gateway = door
    assert answers[0] == answers[1]
    assert answers[0]["status"] == 500
    assert answers[0]["body"]["detail"] == "the server failed unexpectedly; nothing was released"


def test_the_access_log_names_the_caller_either_way(
    world: World, client: httpx.Client, both: PartnerAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """Each request's one access-log line, past the stack or through it: its id as answered,
    its status, and the app that called (an exchange's partner app, the platform's ad service),
    or none where the token was refused."""
    platform = app_token(client, world.chirp, world.chirp_secret)
    partner = app_token(client, world.reelix, world.reelix_secret)
    asked = [
        (LINK, GOOD, platform, 200, world.chirp.client_id),
        (ADS, AD, platform, 200, world.chirp.client_id),
        (ADS, AD, partner, 403, world.reelix.client_id),
        (ADS, AD, "forged", 401, None),
    ]

    def lines() -> dict[str, dict[str, Any]]:
        found = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("access")]
        return {line["request_id"]: line for line in found}

    with caplog.at_level(logging.INFO, logger="accord.api.access"):
        for front in (both.front, None):
            both.front = front
            for path, body, token, status, client_id in asked:
                r = client.post(path, json=body, headers=_bearer(token))
                assert r.status_code == status
                deadline = time.monotonic() + 5
                while r.headers["x-request-id"] not in lines():
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                line = lines()[r.headers["x-request-id"]]
                assert (line["path"], line["status"], line["client_id"]) == (
                    path,
                    status,
                    client_id,
                )


def test_an_ad_request_s_unexpected_failure_is_answered_500_either_way(
    world: World, client: httpx.Client, both: PartnerAPI
) -> None:
    server = both.state.ads.get(CHIRP)

    def failing(_: Any) -> Any:
        raise RuntimeError("a failure no handler knows")

    token = app_token(client, world.chirp, world.chirp_secret)
    server.serve_many = failing
    try:
        answers = _both_ways_anew(both, client, ADS, AD, token)
    finally:
        del server.serve_many
    assert answers[0] == answers[1]
    assert answers[0]["status"] == 500
    assert answers[0]["headers"] == answers[1]["headers"]


def test_an_ad_request_past_its_deadline_is_answered_503_either_way(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A store that stalls an ad request past the app's time (1 s here): answered 503 by the
    deadline at that time, past the stack or through it, and its late end logged."""
    release = threading.Event()
    with (
        build_world(tmp_path, ApiSettings(exchange_seconds=1)) as world,
        serving(world.app) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        _run_a_campaign(world)
        app = cast(PartnerAPI, world.app)
        server = app.state.ads.get(CHIRP)
        served = server.serve_many

        def stalled(asked: Any) -> Any:
            release.wait(20)
            return served(asked)

        token = app_token(client, world.chirp, world.chirp_secret)
        front = app.front
        answers, took = [], []
        server.serve_many = stalled
        caplog.set_level(logging.WARNING, logger="accord.api")
        try:
            for way in (front, None):
                app.front = way
                release.clear()
                started = time.monotonic()
                answers.append(_answer(client, "POST", ADS, json=AD, headers=_bearer(token)))
                took.append(time.monotonic() - started)
                release.set()
                # The request's late end is logged once the store answers.
                deadline = time.monotonic() + 10
                while sum("abandoned at its deadline" in m for m in caplog.messages) < len(answers):
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
        finally:
            release.set()
            app.front = front
            del server.serve_many
    assert answers[0] == answers[1]
    assert answers[0]["status"] == 503
    assert answers[0]["body"]["status"] == 503
    assert all(0.9 < t < 10 for t in took)


def _both_ways_anew(
    both: PartnerAPI, client: httpx.Client, path: str, body: dict[str, Any], token: str
) -> list[dict[str, Any]]:
    """The answers to one request past the stack, then through it, each on a connection of its
    own (the server closes one once it has answered an exception, as uvicorn does)."""
    answers = []
    for front in (both.front, None):
        both.front = front
        with httpx.Client(base_url=str(client.base_url), timeout=30) as fresh:
            answers.append(_answer(fresh, "POST", path, json=body, headers=_bearer(token)))
    return answers


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_the_front_takes_only_what_it_answers_as_the_stack(both: PartnerAPI) -> None:
    front = both.front
    assert front is not None

    def scope(**changed: Any) -> dict[str, Any]:
        return {"type": "http", "method": "POST", "path": LINK, "root_path": "", **changed}

    assert front.takes(scope())
    assert front.takes(scope(path=ADS))
    assert not front.takes(scope(path=ADS, method="GET"))
    assert not front.takes(scope(path="/v1/ads/click"))
    assert not front.takes(scope(method="GET"))
    assert not front.takes(scope(path=LINK + "/more"))
    assert not front.takes(scope(root_path="/api"))
    assert not front.takes(scope(type="websocket"))
    # Middleware added after the app was built: through the stack, where it runs.
    both.user_middleware.append(both.user_middleware[0])
    try:
        assert not front.takes(scope())
        assert not front.takes(scope(path=ADS))
    finally:
        both.user_middleware.pop()


def test_no_route_before_the_exchanges_route_takes_its_requests(world: World) -> None:
    request = {"type": "http", "method": "POST", "path": LINK, "root_path": "", "path_params": {}}

    # The router tries its routes in turn, an included router's in their turn: the first that
    # matches is the exchanges route.
    def leaves(routes: list[Any]) -> Iterator[Any]:
        for route in routes:
            if hasattr(route, "original_router"):
                yield from leaves(route.original_router.routes)
            else:
                yield route

    found = [
        (route, match, child)
        for route in leaves(world.app.router.routes)
        for match, child in [route.matches(dict(request))]
        if match is not Match.NONE
    ]
    route, match, child = found[0]
    assert isinstance(route, ExchangeRoute)
    assert match is Match.FULL
    assert child["endpoint"] is exchange
    assert child["path_params"] == {"agreement": "chirp-reelix", "clause": "account-link"}


def _release(rows: list[tuple[Any, ...]], **changed: Any) -> Release:
    decision = SimpleNamespace(
        allowed=True, reason="Allowed: “the clause” — ok\n\ttab", rules=("agreement:x", "law:y")
    )
    fields: dict[str, Any] = {
        "decision": decision,
        "columns": ("a", "b"),
        "rows": rows,
        "people": len(rows),
        "receipts": (Receipt(3, bytes(range(32)), 4), Receipt(4, b"\xff" * 32, 5)),
        "granularity": Granularity.RECORD,
        "written": 0,
        "withheld": {"consent": 2, "law:vppa": 1},
        "noise": None,
        **changed,
    }
    return cast(Release, SimpleNamespace(**fields))


@pytest.mark.parametrize(
    "rows",
    [
        # Plain values, as a read's rows hold: written directly.
        [("c0000001", "2024-05-01T10:00:00+00:00")],
        [("é ✓ 𝄞", 'quote " backslash \\ \x01 \x7f /'), (None, True)],
        [(0.1, 1e16), (-0.0, 2**70), (math.inf, math.nan), (1.5e-7, -3)],
        [],
    ],
)
def test_the_answer_is_the_json_its_models_write(rows: list[tuple[Any, ...]]) -> None:
    release = _release(rows)
    assert answer_json(release) == _answer_through_models(release)


def test_other_values_in_rows_are_encoded_as_fastapi_encodes_them() -> None:
    rows = [
        (datetime(2024, 5, 1, 10, tzinfo=UTC), date(2024, 5, 1)),
        (Decimal("1.10"), b"x"),
        (Granularity.AGGREGATE, {"k": 1}),
    ]
    assert json.loads(answer_json(_release(rows)))["rows"] == [
        ["2024-05-01T10:00:00+00:00", "2024-05-01"],
        [1.1, "x"],
        ["aggregate", {"k": 1}],
    ]
