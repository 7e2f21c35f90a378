"""Private matching over HTTP between two Accord instances.

One route, ``POST {prefix}/messages``: the body is one frame of :mod:`accord.pets.psi.wire`
(``Content-Type: application/x-accord-psi``), the answer one frame. The calling party names
itself in ``Accord-Party`` and proves it with ``Authorization: Bearer <token>`` (its token in the
server's :class:`~accord.gateway.Keyring`). Each party's sessions are its own: a session id
opened by one party means nothing to another.

The HTTP status mirrors the answer: 200 for a protocol answer, 400 for a malformed message, 401
for bad credentials, 403 when the server's Accord refused the match, 500 for a failure on the
server; the body is an ERROR frame in each failing case, saying why.

:func:`psi_router` gives the route for an application to include; :func:`psi_app` a whole
application (what ``accord psi serve`` runs); :class:`HttpTransport` is the client's side.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated

import httpx
from fastapi import APIRouter, FastAPI, Header, Request, Response
from starlette.concurrency import run_in_threadpool

from accord.gateway.keyring import Keyring
from accord.pets.psi import curve
from accord.pets.psi.choices import Kind
from accord.pets.psi.consented import Records, admit_through_accord
from accord.pets.psi.ecdh import Server
from accord.pets.psi.wire import (
    MatchError,
    MatchUnauthenticated,
    ProtocolError,
    Type,
    decode,
    error_frame,
)
from accord.service import Accord

MEDIA_TYPE = "application/x-accord-psi"
PREFIX = "/psi/v1"
MAX_BODY = 64 * 1024 * 1024
_STATUS = {"invalid": 400, "unauthenticated": 401, "refused": 403, "error": 500}


class _Parties:
    """One :class:`Server` per calling party, made on first use, used one message at a time."""

    def __init__(self, make: Callable[[str], Server]) -> None:
        self.make = make
        self._servers: dict[str, tuple[Server, threading.Lock]] = {}
        self._lock = threading.Lock()

    def handle(self, party: str, data: bytes) -> bytes:
        with self._lock:
            if party not in self._servers:
                self._servers[party] = (self.make(party), threading.Lock())
            server, lock = self._servers[party]
        with lock:
            return server.handle(data)


def _answer(data: bytes) -> Response:
    frame = decode(data)
    status = 200
    if frame.type is Type.ERROR:
        status = _STATUS.get(str(frame.json().get("kind")), 500)
    return Response(content=data, status_code=status, media_type=MEDIA_TYPE)


def psi_router(
    keyring: Keyring, server_for: Callable[[str], Server], *, prefix: str = PREFIX
) -> APIRouter:
    """The route; ``server_for(party)`` makes the server that answers ``party``'s matches."""
    parties = _Parties(server_for)
    router = APIRouter(prefix=prefix, tags=["private matching"])

    @router.post("/messages", response_class=Response)
    async def messages(
        request: Request,
        accord_party: Annotated[str, Header()] = "",
        authorization: Annotated[str, Header()] = "",
    ) -> Response:
        """One protocol message in, one out (see :mod:`accord.pets.psi.wire`)."""
        token = authorization.removeprefix("Bearer ").strip()
        if not accord_party or not keyring.authenticate(accord_party, token):
            refused = MatchUnauthenticated("the credentials are not valid for the calling party")
            body = error_frame(refused)
            return Response(content=body.encode(), status_code=401, media_type=MEDIA_TYPE)
        data = await request.body()
        if len(data) > MAX_BODY:
            too_big = ProtocolError(f"a message may be at most {MAX_BODY} bytes")
            return _answer(error_frame(too_big).encode())
        return _answer(await run_in_threadpool(parties.handle, accord_party, data))

    return router


def accord_servers(
    accord: Accord,
    records: Callable[[], Records],
    *,
    kind: Kind,
    engine: curve.Engine,
    region: str | None = None,
) -> Callable[[str], Server]:
    """Servers whose Accord decides, for the calling party, whom this side feeds in."""

    def server_for(party: str) -> Server:
        admit = admit_through_accord(accord, records, party, kind=kind, region=region)
        return Server(admit, engine)

    return server_for


def psi_app(
    accord: Accord,
    keyring: Keyring,
    records: Callable[[], Records],
    *,
    kind: Kind,
    engine: curve.Engine,
    region: str | None = None,
) -> FastAPI:
    """An application answering private matches with this side's records, through ``accord``."""
    app = FastAPI(title="Accord private matching", docs_url=None, redoc_url=None)
    servers = accord_servers(accord, records, kind=kind, engine=engine, region=region)
    app.include_router(psi_router(keyring, servers))
    return app


TIMEOUT = 120.0
"""Seconds to wait for the other side to connect, and to send each part of an answer: a side
that stalls ends the match with an error after this long, not never. Answering a message of
:data:`~accord.pets.psi.CHUNK` identifiers takes a few seconds."""


class HttpTransport:
    """The client's side: each frame is POSTed to ``{url}{prefix}/messages`` as ``party``;
    a side that does not answer within ``timeout`` seconds, or hangs up, ends the match with a
    :class:`MatchError` saying which."""

    def __init__(
        self,
        url: str,
        party: str,
        token: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.endpoint = url.rstrip("/") + PREFIX + "/messages"
        self.headers = {
            "Accord-Party": party,
            "Authorization": f"Bearer {token}",
            "Content-Type": MEDIA_TYPE,
        }
        self.timeout = timeout
        self.client = client or httpx.Client(timeout=timeout)

    def call(self, data: bytes) -> bytes:
        """POST one frame; the answer frame (an ERROR frame when the server reports one)."""
        try:
            response = self.client.post(self.endpoint, content=data, headers=self.headers)
        except httpx.TimeoutException as exc:
            raise MatchError(
                f"the other side at {self.endpoint} did not answer within {self.timeout:g} s; "
                "the match was abandoned"
            ) from exc
        except httpx.RemoteProtocolError as exc:
            raise MatchError(
                f"the other side at {self.endpoint} hung up without answering; "
                "the match was abandoned"
            ) from exc
        except httpx.HTTPError as exc:
            raise MatchError(
                f"the other side could not be reached at {self.endpoint}: {exc}"
            ) from exc
        if response.headers.get("content-type", "").split(";")[0] != MEDIA_TYPE:
            raise MatchError(
                f"{self.endpoint} answered {response.status_code} without a protocol message; "
                "is it an Accord that serves private matching?"
            )
        return response.content

    def close(self) -> None:
        """Close the HTTP connections."""
        self.client.close()
