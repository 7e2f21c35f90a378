"""uvicorn's HTTP/1.1 protocols with Nagle's algorithm off on every connection.

With several workers, uvicorn binds the listening socket itself without naming the TCP protocol,
so asyncio does not set ``TCP_NODELAY`` on the connections it accepts; a response written as
headers then body then waits for the client's delayed ACK (about 40 ms a request on Linux, RFC
1122 section 4.2.3.2 and RFC 896). These protocols set it on each connection.

The API is served with httptools' parser (:class:`NoDelayHttpToolsProtocol`, :data:`PROTOCOL`):
it parses a request in C, where h11 spends about a tenth of a worker's time on a small read.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROTOCOL = "accord.api.serving:NoDelayHttpToolsProtocol"
"""The import path uvicorn takes as its ``http`` option."""


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
