"""OWASP API Security Top 10 (2023), the surface: API8 security misconfiguration (headers, CORS,
error detail, debug), API9 improper inventory management (every route documented in the OpenAPI
document or deliberately a page), and API10 unsafe consumption of APIs (a matching peer whose
answers are malformed or hostile: refused as such, logged, nothing learned from them)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from accord.errors import AccordError
from accord.pets.psi import curve
from accord.pets.psi.choices import Kind
from accord.pets.psi.consented import FAILED_RULE, ask_for, match_through_accord
from accord.pets.psi.http import MEDIA_TYPE, HttpTransport, accord_servers
from accord.pets.psi.wire import Frame, Type, decode, json_frame
from accord.service import Accord
from api.world import World, app_token, bearer
from attacks.helpers import exchanges, refused, watch
from pets.psi_world import records, request, store

HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


class TestAPI8SecurityMisconfiguration:
    """Hardening headers on every kind of response, no CORS for strangers, no internals in
    errors, no debug."""

    @pytest.mark.integration
    @pytest.mark.parametrize(
        "path", ["/v1/agreements", "/", "/login", "/v1/nowhere", "/me", "/docs", "/healthz"]
    )
    def test_every_response_is_hardened(self, client: httpx.Client, path: str) -> None:
        r = client.get(path)
        for name, value in HEADERS.items():
            assert r.headers.get(name) == value, (path, name)
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]

    @pytest.mark.integration
    @pytest.mark.parametrize("method", ["OPTIONS", "GET"])
    def test_no_cross_origin_access_for_another_site(
        self, world: World, client: httpx.Client, method: str
    ) -> None:
        token = app_token(client, world.chirp, world.chirp_secret)
        r = client.request(
            method,
            "/v1/app",
            headers={
                **bearer(token),
                "Origin": "https://evil.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert "access-control-allow-origin" not in r.headers
        assert "access-control-allow-credentials" not in r.headers

    @pytest.mark.integration
    @pytest.mark.parametrize("method", ["TRACE", "TRACK", "CONNECT"])
    def test_no_request_is_echoed_back(self, client: httpx.Client, method: str) -> None:
        r = client.request(method, "/v1/app", headers={"X-Secret": "s3cr3t"})
        assert r.status_code in {400, 404, 405}
        assert "s3cr3t" not in r.text

    @pytest.mark.integration
    def test_a_token_response_is_never_cached(self, world: World, client: httpx.Client) -> None:
        r = client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(world.chirp.client_id, world.chirp_secret),
        )
        assert r.status_code == 200
        # RFC 6749 section 5.1: "Cache-Control: no-store" on every response holding a token.
        assert "no-store" in r.headers["cache-control"]

    @pytest.mark.integration
    def test_the_sign_in_cookie_is_out_of_scripts_reach(self, client: httpx.Client) -> None:
        r = client.post("/login", data={"person": "c0000370", "next": "/me?party=chirp"})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=lax" in cookie or "samesite=strict" in cookie

    @pytest.mark.integration
    @pytest.mark.parametrize(
        ("agreement", "clause"),
        [
            ("no-such-agreement", "x"),
            ("chirp-reelix", "no-such-clause"),
            ("'; DROP TABLE agreements; --", "x"),
            ("chirp-reelix", "%00"),
        ],
    )
    def test_an_error_names_no_internals(
        self, world: World, client: httpx.Client, agreement: str, clause: str
    ) -> None:
        token = app_token(client, world.chirp, world.chirp_secret)
        r = client.post(exchanges(clause, agreement), json=watch(), headers=bearer(token))
        problem = refused(r, r.status_code)
        assert 400 <= r.status_code < 500
        for internal in ("sqlalchemy", "sqlite", "Traceback", 'File "', "cedar", ".py"):
            assert internal not in json.dumps(problem)

    @pytest.mark.integration
    def test_no_debug_and_no_server_addresses_in_the_document(self, world: World) -> None:
        assert world.app.debug is False
        document = world.app.openapi()
        assert "servers" not in document or all(
            "127.0.0.1" not in s["url"] and "localhost" not in s["url"] for s in document["servers"]
        )


def routes(app: FastAPI) -> Iterator[tuple[str, str, APIRoute]]:
    """Every (method, path, route) the app answers, through included routers."""

    def walk(items: list[Any], prefix: str) -> Iterator[APIRoute | tuple[str, Any]]:
        for item in items:
            original = getattr(item, "original_router", None)
            if original is not None:
                yield from walk(original.routes, prefix + item.include_context.prefix)
            elif isinstance(item, APIRoute):
                yield item

    for route in walk(list(app.routes), ""):
        assert isinstance(route, APIRoute)
        for method in sorted(route.methods - {"HEAD"}):
            yield method, route.path, route


# Routes deliberately left out of the OpenAPI document: pages a person's browser shows, and the
# OAuth endpoints, which RFC 8414 metadata at /.well-known/oauth-authorization-server documents.
OAUTH = {"/oauth/token", "/oauth/introspect", "/oauth/revoke", "/oauth/authorize"}
PAGES = ("/", "/login", "/me", "/oauth/authorize/", "/audit", "/partner", "/docs", "/.well-known/")


def deliberately_hidden(path: str) -> bool:
    return path in OAUTH or any(
        path == page.rstrip("/") or path.startswith(page if page.endswith("/") else f"{page}/")
        for page in PAGES
    )


class TestAPI9ImproperInventoryManagement:
    """Every route is in the OpenAPI document or deliberately a page; nothing answers that is
    neither; no old version of the API lingers."""

    @pytest.mark.integration
    def test_every_route_is_documented_or_deliberately_hidden(self, world: World) -> None:
        documented = {
            (method.upper(), path)
            for path, item in world.app.openapi()["paths"].items()
            for method in item
        }
        found = list(routes(world.app))
        assert len(found) > 40
        for method, path, route in found:
            if (method, path) in documented:
                assert route.include_in_schema
            else:
                assert deliberately_hidden(path), (
                    f"{method} {path} is neither documented nor a page"
                )
                assert not path.startswith("/v1/"), f"{method} {path}: an API route, undocumented"

    @pytest.mark.integration
    def test_every_documented_route_answers(self, world: World, client: httpx.Client) -> None:
        for path, item in world.app.openapi()["paths"].items():
            concrete = path.replace("{", "x-").replace("}", "")
            for method in item:
                r = client.request(method.upper(), concrete)
                assert r.status_code != 405, f"{method} {path}"
                # A 404 of the route itself, not of a thing it looked for ("no checkpoint yet").
                assert r.status_code != 404 or r.json()["detail"] != "Not Found", path

    @pytest.mark.integration
    def test_the_oauth_endpoints_hidden_from_the_document_are_in_the_metadata(
        self, client: httpx.Client
    ) -> None:
        metadata = client.get("/.well-known/oauth-authorization-server").json()
        named = {
            httpx.URL(str(v)).path for k, v in metadata.items() if str(k).endswith("_endpoint")
        }
        assert named >= OAUTH

    @pytest.mark.integration
    @pytest.mark.parametrize(
        "path", ["/v0/app", "/v2/app", "/api/v1/app", "/v1/admin", "/v1/debug", "/openapi.yaml"]
    )
    def test_no_other_version_or_hidden_admin_answers(
        self, world: World, client: httpx.Client, path: str
    ) -> None:
        token = app_token(client, world.chirp, world.chirp_secret)
        refused(client.get(path, headers=bearer(token)), 404)


# -- API10: a hostile matching peer ------------------------------------------------------------


class Tampering:
    """A peer that runs the real protocol but changes its answer to one kind of frame."""

    def __init__(
        self, handle: Callable[[bytes], bytes], kind: Type, change: Callable[[Frame], bytes]
    ):
        self.handle = handle
        self.kind = kind
        self.change = change

    def call(self, data: bytes) -> bytes:
        answer = self.handle(data)
        frame = decode(answer)
        return self.change(frame) if frame.type is self.kind else answer


def fewer(frame: Frame) -> bytes:
    return Frame(frame.type, frame.session, frame.seq, frame.payload[: -curve.POINT]).encode()


def small_order(frame: Frame) -> bytes:
    # u = 0 is a point of order 4 on Curve25519 (RFC 7748 section 7): no hash yields it.
    return Frame(frame.type, frame.session, frame.seq, bytes(len(frame.payload))).encode()


def welcome(count: Any) -> Callable[[Frame], bytes]:
    return lambda f: json_frame(Type.WELCOME, {"count": count}, f.session).encode()


def hostile_error(message: str) -> Callable[[Frame], bytes]:
    return lambda _f: json_frame(Type.ERROR, {"kind": "refused", "message": message}).encode()


TAMPERED: dict[str, tuple[Type, Callable[[Frame], bytes]]] = {
    "a chunk one value short": (Type.DOUBLE, fewer),
    "its own set of points of small order": (Type.SET, small_order),
    "a count that is not a number": (Type.WELCOME, welcome("lots")),
    "a negative count": (Type.WELCOME, welcome(-5)),
    "no count": (Type.WELCOME, lambda f: json_frame(Type.WELCOME, {}, f.session).encode()),
    "a frame of the wrong type": (Type.DOUBLE, lambda f: Frame(Type.ACK, f.session).encode()),
    "a frame cut short": (Type.WELCOME, lambda f: f.encode()[:-3]),
    "bad magic": (Type.WELCOME, lambda f: b"XXXX" + f.encode()[4:]),
    "a refusal full of terminal codes": (
        Type.WELCOME,
        hostile_error("\x1b[2J\x1b[1;1Hall clear\x07\u202e"),
    ),
    "a refusal of a megabyte": (Type.WELCOME, hostile_error("x" * 1_000_000)),
}


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Accord, Accord]]:
    with (
        store(tmp_path_factory.mktemp("chirp")) as chirp,
        store(tmp_path_factory.mktemp("reelix")) as reelix,
    ):
        yield chirp, reelix


def last_entry(accord: Accord) -> dict[str, Any]:
    (leaf,) = accord.ledger.recent(1)
    return leaf.entry()


def run_against(chirp: Accord, transport: Any) -> None:
    match_through_accord(
        chirp,
        request("chirp"),
        records("chirp"),
        transport,
        ask=ask_for(request("reelix")),
        kind=Kind.EMAIL,
        engine=curve.Engine(1),
    )


class TestAPI10UnsafeConsumptionOfAPIs:
    """What a matching peer answers is checked like any input: a malformed or hostile answer
    ends the match with a clear error, logged, and nothing learned from it."""

    @pytest.mark.integration
    @pytest.mark.parametrize("case", sorted(TAMPERED))
    def test_a_tampered_answer_ends_the_match(
        self, peers: tuple[Accord, Accord], case: str
    ) -> None:
        chirp, reelix = peers
        kind, change = TAMPERED[case]
        server = accord_servers(
            reelix, lambda: records("reelix"), kind=Kind.EMAIL, engine=curve.Engine(1)
        )("chirp")
        with pytest.raises(AccordError) as raised:
            run_against(chirp, Tampering(server.handle, kind, change))
        message = raised.value.message
        assert message
        assert "\x1b" not in message
        assert len(message) < 2_000
        logged = last_entry(chirp)
        assert logged["kind"] == "decision"
        assert logged["allowed"] is False
        assert logged["rules"] == [FAILED_RULE]
        assert "\x1b" not in logged["reason"]
        assert len(logged["reason"]) < 2_000

    @pytest.mark.integration
    @pytest.mark.parametrize(
        "answer",
        [
            httpx.Response(200, text="<html>not a peer</html>"),  # a web page
            httpx.Response(302, headers={"location": "http://169.254.169.254/"}),  # a redirect
            httpx.Response(200, content=b"", headers={"content-type": MEDIA_TYPE}),  # nothing
            httpx.Response(200, content=b"\x00" * 64, headers={"content-type": MEDIA_TYPE}),
        ],
        ids=["web page", "redirect inward", "empty", "zeros"],
    )
    def test_a_peer_that_is_not_an_accord_is_refused(
        self, peers: tuple[Accord, Accord], answer: httpx.Response
    ) -> None:
        chirp, _ = peers
        seen: list[str] = []

        def peer(request: httpx.Request) -> httpx.Response:
            seen.append(str(request.url))
            return answer

        transport = HttpTransport(
            "https://reelix.example",
            "chirp",
            "token",
            client=httpx.Client(transport=httpx.MockTransport(peer)),
        )
        with pytest.raises(AccordError):
            run_against(chirp, transport)
        # A redirect is not followed: only the peer's own address was asked.
        assert {httpx.URL(u).host for u in seen} == {"reelix.example"}
        assert last_entry(chirp)["rules"] == [FAILED_RULE]
