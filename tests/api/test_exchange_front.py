"""The exchanges' way in (accord.api.front) answers as the app's middleware and routing would:
the same status, headers and body, whether a request is taken past the stack or through it;
and the exchange's answer is written as its pydantic models write it."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from starlette.routing import Match

from accord.agreements import Granularity
from accord.api.front import PartnerAPI
from accord.api.routes import (
    ExchangeRoute,
    _answer_through_models,
    answer_json,
    exchange,
)
from accord.gateway import Release
from accord.ledger.results import Receipt
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
FOREIGN = {**GOOD, "purpose": "marketing.advertising.third_party.targeted"}
JSON = "application/json"
# What differs from one request to the next whichever way it is served.
UNSTABLE_HEADERS = {"date", "server", "x-request-id", "content-length"}


def _chunks(size: int) -> Iterator[bytes]:
    for _ in range(size // 65536):
        yield b" " * 65536


@pytest.fixture
def both(world: World) -> Iterator[PartnerAPI]:
    app = cast(PartnerAPI, world.app)
    front = app.exchanges
    assert front is not None
    yield app
    app.exchanges = front


def _answer(client: httpx.Client, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    r = client.request(method, path, **kwargs)
    body: Any = r.content
    if r.headers.get("content-type", "").endswith("json") and r.content:
        body = r.json()
        # Ledger indexes move on with every request.
        if isinstance(body, dict):
            body.pop("receipt", None)
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
    elif who == "stranger":
        headers["authorization"] = "Bearer not-a-token-this-server-issued"
    answers = []
    for front in (both.exchanges, None):
        both.exchanges = front
        content: Any = _chunks(1_179_648) if body == "chunks" else body
        try:
            answers.append(_answer(client, "POST", path, content=content, headers=headers))
        except httpx.HTTPError:  # the server closed the connection on a body it refused
            answers.append({"closed": True})
    assert answers[0] == answers[1]


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
    answers = []
    svc.gateway = Failing()
    try:
        for front in (both.exchanges, None):
            both.exchanges = front
            # A connection of its own: the server closes it once it has answered (uvicorn does
            # after an exception reaches it).
            with httpx.Client(base_url=str(client.base_url), timeout=30) as fresh:
                answers.append(_answer(fresh, "POST", LINK, json=GOOD, headers=_bearer(token)))
    finally:
        svc.gateway = door
    assert answers[0] == answers[1]
    assert answers[0]["status"] == 500
    assert answers[0]["body"]["detail"] == "the server failed unexpectedly; nothing was released"


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_the_front_takes_only_what_it_answers_as_the_stack(both: PartnerAPI) -> None:
    front = both.exchanges
    assert front is not None

    def scope(**changed: Any) -> dict[str, Any]:
        return {"type": "http", "method": "POST", "path": LINK, "root_path": "", **changed}

    assert front.takes(scope())
    assert not front.takes(scope(method="GET"))
    assert not front.takes(scope(path=LINK + "/more"))
    assert not front.takes(scope(root_path="/api"))
    assert not front.takes(scope(type="websocket"))
    # Middleware added after the app was built: through the stack, where it runs.
    both.user_middleware.append(both.user_middleware[0])
    try:
        assert not front.takes(scope())
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
