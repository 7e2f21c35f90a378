"""Connections to a multi-worker server get TCP_NODELAY (else ~40 ms of delayed ACK each)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from accord.api.serving import PROTOCOL, NoDelayH11Protocol, NoDelayHttpToolsProtocol

pytestmark = pytest.mark.integration


async def _app(scope: Any, receive: Any, send: Any) -> None:
    """Nothing is served; only connections are made."""


def nodelay_of(protocol: type[H11Protocol | HttpToolsProtocol]) -> list[int]:
    """TCP_NODELAY on a connection accepted through ``protocol``, on a socket bound as uvicorn's
    workers bind it (without naming the protocol)."""
    seen: list[int] = []

    class Probe(protocol):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    async def main() -> None:
        config = uvicorn.Config(_app, http=PROTOCOL, lifespan="off")
        config.load()
        state = ServerState()
        with socket.socket(family=socket.AF_INET) as sock:
            sock.bind(("127.0.0.1", 0))
            loop = asyncio.get_running_loop()
            server = await loop.create_server(
                lambda: Probe(config=config, server_state=state, app_state={}), sock=sock
            )
            _, writer = await asyncio.open_connection(*sock.getsockname())
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.01)
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()

    asyncio.run(main())
    return seen


@pytest.mark.parametrize(
    "protocol",
    [
        NoDelayHttpToolsProtocol,  # the one the API is served with (PROTOCOL)
        NoDelayH11Protocol,  # the pure-Python parser, for where httptools is not wanted
    ],
)
def test_our_protocols_turn_nagle_off_on_worker_sockets(
    protocol: type[H11Protocol | HttpToolsProtocol],
) -> None:
    assert nodelay_of(protocol) == [1]


def test_the_api_is_served_with_httptools() -> None:
    assert PROTOCOL.rpartition(":")[2] == NoDelayHttpToolsProtocol.__name__
