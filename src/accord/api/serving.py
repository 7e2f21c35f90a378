"""uvicorn's HTTP/1.1 protocols with Nagle's algorithm off on every connection.

With several workers, uvicorn binds the listening socket itself without naming the TCP protocol,
so asyncio does not set ``TCP_NODELAY`` on the connections it accepts; a response written as
headers then body then waits for the client's delayed ACK (about 40 ms a request on Linux, RFC
1122 section 4.2.3.2 and RFC 896). These protocols set it on each connection.

The API is served with httptools' parser (:class:`NoDelayHttpToolsProtocol`, :data:`PROTOCOL`):
it parses a request in C, where h11 spends about a tenth of a worker's time on a small read.

The workers share one listening socket, and asyncio's event loop accepts every connection
waiting on it each time it is ready (up to the backlog): a client that opens its connections at
once (a pool, a load generator) has them all taken by the first worker to wake, and the other
workers sit idle for as long as they stay open. The workers' loop (:data:`LOOP`,
:class:`FairAcceptLoop`) accepts one connection each time the socket is ready, so a worker busy
with its requests takes fewer and the connections spread over the workers.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROTOCOL = "accord.api.serving:NoDelayHttpToolsProtocol"
"""The import path uvicorn takes as its ``http`` option."""
LOOP = "accord.api.serving:FairAcceptLoop"
"""The import path uvicorn takes as its ``loop`` option (a loop factory, uvicorn 0.36 on)."""


class FairAcceptLoop(asyncio.SelectorEventLoop):
    """asyncio's event loop, accepting one connection each time a listening socket is ready.

    Each worker of a shared socket is woken when a connection waits; the first to run its
    accept takes it, and the others find none. Taking one at a time, a worker whose loop is busy
    comes back for the next one later than an idle worker does, so the idle one takes more:
    the connections of a burst spread over the workers instead of all going to one."""

    def _accept_connection(
        self,
        protocol_factory: Any,
        sock: socket.socket,
        sslcontext: Any = None,
        server: Any = None,
        backlog: int = 100,  # noqa: ARG002 - at most this many at once: one here
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super()._accept_connection(  # type: ignore[misc]
            protocol_factory, sock, sslcontext, server, 1, *args, **kwargs
        )


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on ``transport``'s socket, if it is a TCP one."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in {socket.AF_INET, socket.AF_INET6}:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with ``TCP_NODELAY`` on each TCP connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Turn Nagle's algorithm off, then carry on as uvicorn does."""
        no_delay(transport)
        super().connection_made(transport)  # type: ignore[arg-type]


class NoDelayH11Protocol(H11Protocol):
    """uvicorn's h11 protocol (pure Python), with ``TCP_NODELAY`` on each TCP connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Turn Nagle's algorithm off, then carry on as uvicorn does."""
        no_delay(transport)
        super().connection_made(transport)  # type: ignore[arg-type]
