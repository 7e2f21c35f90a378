"""Connections to a multi-worker server get TCP_NODELAY (else ~40 ms of delayed ACK each), and
spread over the workers (each accepts one at a time)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from accord.api.serving import (
    LOOP,
    PROTOCOL,
    FairAcceptLoop,
    NoDelayH11Protocol,
    NoDelayHttpToolsProtocol,
)

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


def accepted_at_one_wake(loop_class: type[asyncio.SelectorEventLoop], waiting: int) -> int:
    """How many of ``waiting`` connections queued on a listening socket a loop of
    ``loop_class`` takes when the socket is ready once."""

    class Counted(asyncio.Protocol):
        made: int = 0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            Counted.made += 1
            transport.close()

    loop = loop_class()
    try:
        with socket.create_server(("127.0.0.1", 0)) as listening:
            listening.setblocking(False)
            clients = [socket.create_connection(listening.getsockname()) for _ in range(waiting)]
            try:
                # What the loop runs each time the listening socket is ready.
                loop._accept_connection(Counted, listening, backlog=100)  # type: ignore[attr-defined]
                loop.run_until_complete(asyncio.sleep(0.05))
            finally:
                for c in clients:
                    c.close()
    finally:
        loop.close()
    return Counted.made


def test_the_workers_loop_takes_one_waiting_connection_at_a_time() -> None:
    """asyncio's own loop takes every waiting connection when the socket is ready, so with
    workers sharing the socket the first to wake takes a whole pool of connections; the
    workers' loop takes one, and the next goes to whichever worker comes for it first."""
    assert accepted_at_one_wake(asyncio.SelectorEventLoop, 5) == 5
    assert accepted_at_one_wake(FairAcceptLoop, 5) == 1


def test_the_api_is_served_by_the_fair_loop() -> None:
    config = uvicorn.Config(_app, loop=LOOP)
    assert config.get_loop_factory() is FairAcceptLoop
