"""The hot routes' way in: their requests taken from the server straight to their handlers.

Every request through FastAPI passes about ten ASGI layers before its route's handler (Starlette's
error and exception middleware, FastAPI's body limit, telemetry and exit stacks, this API's access
log, body cap and deadline, the router trying each route in turn), each wrapping ``send`` and
``receive`` again; on the API's hot routes (a partner's exchanges, the platform's ad requests)
that costs more CPU than the token check and the answer together. :class:`PartnerAPI` takes a
``POST`` to one of those routes past them, to :class:`Front`, which does in one layer what those
do for that route, in the same order and with the same outcome: the access log's line and
headers, the cap on the body (413), the deadline (503; the exchanges keep their own, which the
app's :class:`~accord.api.deadline.Deadline` passes by), the exception handlers the app
installed (problem documents), and the server error handler (500, the exception then raised to
the server).

Any request this cannot answer exactly as the stack would goes through the stack: another path
or method, a root path, the app's middleware changed after it was built, FastAPI's own body
limit or debug pages on, or telemetry configured (FastAPI's spans and metrics).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from os import urandom
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from accord.api.deadline import Deadline
from accord.api.middleware import declared_too_large, hardened, log_access, too_large
from accord.api.routes import parse_body


class _Call:
    """One request under way: what the access log records, and what was sent."""

    __slots__ = ("answered", "over", "request_id", "routed_started", "send", "started", "status")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = time.perf_counter()
        # As the access log's (accord.api.middleware.AccessLog).
        self.request_id = urandom(16).hex()
        self.status = 500
        self.answered = False
        """A response started, as the server error handler sees it."""
        self.routed_started = False
        """A response started, as the exception handlers see it."""
        self.over = False
        """The body went over the limit: answered 413, nothing else sent."""

    async def logged(self, message: Message) -> None:
        """``send`` as the access log wraps it: the status noted, its headers added."""
        if message["type"] == "http.response.start":
            self.answered = True
            self.status = message["status"]
            message = hardened(message, self.request_id)
        await self.send(message)

    async def routed(self, message: Message) -> None:
        """``send`` as the route sees it: nothing once the body went over the limit."""
        if message["type"] == "http.response.start":
            self.routed_started = True
        if not self.over:
            await self.logged(message)

    def noting(self, send: Send) -> Send:
        """``send`` (a deadline's, which may drop what is sent), the response's start noted as
        the exception handlers see it."""

        async def noted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.routed_started = True
            await send(message)

        return noted


def _never(_: str) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class FrontRoute:
    """A route :class:`Front` serves: ``run`` answers a request whose body it is given read
    and parsed, as the route's own handler does after reading it; ``deadline_seconds`` is the
    app's deadline for the route (:class:`~accord.api.deadline.Deadline`), or ``None`` for a
    route that keeps its own."""

    route: APIRoute
    run: Callable[[Request, Any], Awaitable[Response]]
    deadline_seconds: float | None = None


class PartnerAPI(FastAPI):
    """FastAPI, with the hot routes' requests handled by :attr:`front` where it takes them."""

    front: Front | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A request to one of the front's routes to :attr:`front`; any other through FastAPI."""
        front = self.front
        if front is not None:
            taken = front.taken(scope)
            if taken is not None:
                await front.serve(taken, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


class _Taken:
    """A front route and what serves it: its pattern, and its deadline if the app keeps one."""

    __slots__ = ("deadline", "match", "route")

    def __init__(self, route: FrontRoute) -> None:
        self.route = route
        self.match = route.route.path_regex.match
        self.deadline = (
            None
            if route.deadline_seconds is None
            else Deadline(_no_app, route.deadline_seconds, passed_by=_never)
        )


async def _no_app(*_: Any) -> None:
    raise RuntimeError("a front route's deadline serves the route it is given")


class Front:
    """The front ``routes`` of ``app`` served as its middleware and handlers would serve them:
    the access log, bodies capped at ``limit`` bytes, the deadline, the app's exception
    handlers.

    Built once the app's middleware is added: a change to it afterwards sends these routes'
    requests back through the stack.
    """

    def __init__(self, app: FastAPI, routes: list[FrontRoute], limit: int) -> None:
        self.app = app
        self.routes = [_Taken(route) for route in routes]
        self.limit = limit
        self._middleware = list(app.user_middleware)
        telemetry = getattr(app, "_native_telemetry", None)
        self._telemetry = None if telemetry is None else telemetry.enabled

    def taken(self, scope: Scope) -> _Taken | None:
        """The route that answers the request ``scope`` exactly as the app's stack would, or
        ``None``: then the stack answers it."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        path = scope["path"]
        taken = next((t for t in self.routes if t.match(path) is not None), None)
        app = self.app
        if (
            taken is None
            or scope.get("root_path")
            or app.root_path
            or "fastapi.telemetry" in scope
            or app.user_middleware != self._middleware
            or getattr(app, "max_body_size", None) is not None
            or app.debug
            or (self._telemetry is not None and self._telemetry())
        ):
            return None
        return taken

    def takes(self, scope: Scope) -> bool:
        """Whether this answers the request ``scope`` exactly as the app's stack would."""
        return self.taken(scope) is not None

    async def serve(self, taken: _Taken, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer ``scope`` by the front route ``taken`` (see :meth:`taken`)."""
        app = self.app
        scope["app"] = app
        scope.setdefault("router", app.router)
        if app.middleware_stack is None:  # as Starlette: no middleware added once serving
            app.middleware_stack = app.build_middleware_stack()
        call = _Call(send)
        state = scope.setdefault("state", {})
        try:
            try:
                await self._route(taken, Request(scope, receive, call.routed), call)
            finally:
                log_access(
                    call.request_id, scope, call.status, call.started, state.get("client_id")
                )
        except Exception as exc:
            # As ServerErrorMiddleware: the app's 500 handler, then the exception to the server.
            await self._server_error(scope, receive, send, exc, call.answered)
            raise

    async def _route(self, taken: _Taken, request: Request, call: _Call) -> None:
        """As the body cap, then the deadline if the app keeps one for the route."""
        scope, receive = request.scope, request.receive
        if declared_too_large(scope, self.limit):
            await too_large(self.limit, scope)(scope, receive, call.logged)
            return
        if taken.deadline is None:
            await self._answer(taken, request, call, call.routed)
            return
        await taken.deadline.within(
            partial(self._answer_within, taken, call), scope, receive, call.routed
        )

    async def _answer_within(
        self, taken: _Taken, call: _Call, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """:meth:`_answer` inside the deadline, whose ``send`` drops what comes past it."""
        send = call.noting(send)
        await self._answer(taken, Request(scope, receive, send), call, send)

    async def _answer(self, taken: _Taken, request: Request, call: _Call, send: Send) -> None:
        """As the exception handlers and the route itself."""
        scope, receive = request.scope, request.receive
        try:
            raw = await self._body(receive)
            if raw is None:
                call.over = True
                await too_large(self.limit, scope)(scope, receive, call.logged)
                return
            route = taken.route.route
            scope["endpoint"] = route.endpoint
            found = taken.match(scope["path"])
            params = dict(scope.get("path_params", {}))
            for name, value in found.groupdict().items() if found else ():
                params[name] = route.param_convertors[name].convert(value)
            scope["path_params"] = params
            request._body = raw  # read here, and kept as Request.body keeps it
            body = parse_body(raw, request.headers.get("content-type", ""))
            response = await taken.route.run(request, body)
            await response(scope, receive, send)
        except Exception as exc:  # noqa: BLE001 - to the app's handlers, as Starlette's
            await self._handled(request, exc, call.routed_started, send)

    async def _body(self, receive: Receive) -> bytes | None:
        """The request's body as :meth:`Request.body` reads it; None past the limit."""
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                seen += len(chunk)
                if seen > self.limit:
                    return None
                if chunk:
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            elif message["type"] == "http.disconnect":
                # As the route would: the body could not be read.
                raise HTTPException(400, "There was an error parsing the body") from (
                    ClientDisconnect()
                )

    async def _handled(self, request: Request, exc: Exception, started: bool, send: Send) -> None:
        """``exc`` answered by the app's handler for it, as Starlette's exception middleware
        does; raised again where there is none (or the response had started)."""
        # As FastAPI hands them to that middleware: all but the server error handler's, and
        # Starlette's own for HTTPException where the app has none.
        handlers: dict[Any, Any] = {HTTPException: ExceptionMiddleware(self.app).http_exception}
        statuses: dict[int, Any] = {}
        for key, value in self.app.exception_handlers.items():
            if key in (500, Exception):
                continue
            if isinstance(key, int):
                statuses[key] = value
            else:
                handlers[key] = value
        handler = None
        if isinstance(exc, HTTPException):
            handler = statuses.get(exc.status_code)
        if handler is None:
            handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers), None)
        if handler is None:
            raise exc
        if started:
            raise RuntimeError("Caught handled exception, but response already started.") from exc
        if is_async_callable(handler):
            response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
        if response is not None:
            await response(request.scope, request.receive, send)
        exc.__traceback__ = None

    async def _server_error(
        self, scope: Scope, receive: Receive, send: Send, exc: Exception, answered: bool
    ) -> None:
        handler: Any = None
        for key, value in self.app.exception_handlers.items():
            if key in (500, Exception):
                handler = value
        request = Request(scope)
        if handler is None:
            response = ServerErrorMiddleware(self.app).error_response(request, exc)
        elif is_async_callable(handler):
            response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
        if not answered:
            await response(scope, receive, send)
