"""ASGI middleware: a cap on request bodies, and one structured access-log line per request."""

from __future__ import annotations

import logging
import time
from json.encoder import encode_basestring_ascii as _quote
from os import urandom

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accord.api.problems import problem

access_log = logging.getLogger("accord.api.access")

CSP = "content-security-policy"


def content_security_policy(script_nonce: str | None = None) -> str:
    """The Content-Security-Policy of every response: scripts, styles, fonts and fetches from
    this server only, no inline script (but the one carrying ``script_nonce``, where a page
    needs one), no plugins, and no framing (the consent screens are a clickjacking target)."""
    scripts = f"'self' 'nonce-{script_nonce}'" if script_nonce else "'self'"
    return (
        f"default-src 'self'; script-src {scripts}; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )


# No page may be framed, and no response is sniffed into another type. A response that sets its
# own Content-Security-Policy (built with content_security_policy) keeps it.
_HARDENING = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
_DEFAULT_CSP = (CSP.encode(), content_security_policy().encode())


class LimitBody:
    """Refuse bodies over ``limit`` bytes with 413: by Content-Length, or while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if declared_too_large(scope, self.limit):
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = over = False

        async def counted() -> Message:
            # Past the cap, answer 413 at once and tell the app the client went away; whatever
            # the app then tries to send is dropped.
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit and not over:
                    over = True
                    if not started:
                        await self._refuse(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if over:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted, tracked)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await too_large(self.limit, scope)(scope, receive, send)


def too_large(limit: int, scope: Scope) -> Response:
    """The 413 answer to a request whose body is over ``limit`` bytes."""
    return problem(
        413,
        "Body too large",
        f"the request body is over {limit} bytes (or its Content-Length is not a number)",
        instance=scope.get("path"),
        slug="too-large",
        headers={"Connection": "close"},
    )


def declared_too_large(scope: Scope, limit: int) -> bool:
    """Whether the request's Content-Length is over ``limit`` or not a number."""
    declared = dict(scope["headers"]).get(b"content-length")
    return declared is not None and (not declared.isdigit() or int(declared) > limit)


def hardened(message: Message, request_id: str) -> Message:
    """A response's start ``message`` with the id of its request and the hardening headers
    (the default Content-Security-Policy where the response set none)."""
    headers = list(message.get("headers", []))
    csp = _DEFAULT_CSP[0]
    own = False
    for name, _ in headers:
        if name.lower() == csp:
            own = True
            break
    headers.append((b"x-request-id", request_id.encode()))
    headers.extend(_HARDENING)
    if not own:
        headers.append(_DEFAULT_CSP)
    return {**message, "headers": headers}


def log_access(
    request_id: str, scope: Scope, status: int, started: float, client_id: str | None
) -> None:
    """The request's access-log line, if the access log is on."""
    if access_log.isEnabledFor(logging.INFO):
        line = access_line(
            request_id,
            method=scope.get("method"),
            path=scope.get("path"),
            status=status,
            ms=round((time.perf_counter() - started) * 1000, 2),
            client_id=client_id,
            peer=(scope.get("client") or ("", 0))[0],
        )
        # Handed to the handlers as info() would, without finding the calling source line (a
        # walk up the stack at every request, for a field no one reads here).
        access_log.handle(
            access_log.makeRecord(access_log.name, logging.INFO, __file__, 0, line, (), None)
        )


class AccessLog:
    """One JSON line per request: id, method, path (no query: it may hold codes), status, time,
    and the partner app, on the ``accord.api.access`` logger. The id is echoed as X-Request-ID,
    beside headers that keep pages out of frames, responses from being sniffed, and scripts and
    styles to this server's own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # 128 random bits as 32 hex digits, as a version-4 UUID's hex reads, at a fifth of its
        # cost: the id names a request in the log, nothing parses it as a UUID.
        request_id = urandom(16).hex()
        status = 500
        scope.setdefault("state", {})

        async def tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = hardened(message, request_id)
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            log_access(request_id, scope, status, started, scope["state"].get("client_id"))


def _text(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def access_line(
    request_id: str,
    *,
    method: str | None,
    path: str | None,
    status: int,
    ms: float,
    client_id: str | None,
    peer: str | None,
) -> str:
    """The access log's JSON line: the text ``json.dumps`` writes for the object of these fields
    in this order (ASCII, its separators), written directly, at a third of its cost."""
    return (
        f'{{"request_id": {_text(request_id)}, "method": {_text(method)}, '
        f'"path": {_text(path)}, "status": {int(status)}, "ms": {float(ms)!r}, '
        f'"client_id": {_text(client_id)}, "peer": {_text(peer)}}}'
    )
