"""uvicorn's HTTP/1.1 protocol with Nagle's algorithm off on every connection.

With several workers, uvicorn binds the listening socket itself without naming the TCP protocol,
so asyncio does not set ``TCP_NODELAY`` on the connections it accepts; a response written as
headers then body then waits for the client's delayed ACK (about 40 ms a request on Linux, RFC
1122 section 4.2.3.2 and RFC 896). This protocol sets it on each connection.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol

PROTOCOL = "accord.api.serving:NoDelayH11Protocol"
"""The import path uvicorn takes as its ``http`` option."""


class NoDelayH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with ``TCP_NODELAY`` on each TCP connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Turn Nagle's algorithm off, then carry on as uvicorn does."""
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in {socket.AF_INET, socket.AF_INET6}:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)  # type: ignore[arg-type]
