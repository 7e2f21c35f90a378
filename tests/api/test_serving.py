"""Connections to a multi-worker server get TCP_NODELAY (else ~40 ms of delayed ACK each)."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
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


PID_APP = """
import os


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    pid = str(os.getpid()).encode()
    length = [(b"content-length", str(len(pid)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": length})
    await send({"type": "http.response.body", "body": pid})
"""

SERVE = """
import sys
from accord.api.serving import run
if __name__ == "__main__":
    sys.path.insert(0, sys.argv[1])
    run("pid_app:app", host="127.0.0.1", port=0, workers=2, log_level="info")
"""


def test_connections_opened_at_once_reach_every_worker(tmp_path: Path) -> None:
    """Sixteen connections opened at once, kept open: with one socket shared by the workers the
    first worker awake took them all; with a socket each, the kernel spreads them."""
    (tmp_path / "pid_app.py").write_text(PID_APP)
    server = subprocess.Popen(  # noqa: S603 - this interpreter and a fixed script
        [sys.executable, "-c", SERVE, str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        port, started = 0, 0
        for line in server.stderr:  # uvicorn's log: the port port 0 became, then each worker
            if "running on" in line:
                port = int(re.findall(r":(\d+)", line)[0])
            started += "Application startup complete" in line
            if started == 2:
                break
        assert port
        time.sleep(1)  # each listens just after its startup
        answered = _pids_answering(port, 16)
        # By a hash of each connection's ports: two or more each but for 1 time in 2,000.
        assert len(answered) == 2, answered
        assert min(answered.values()) >= 2, answered
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stderr.close()


def _pids_answering(port: int, connections: int) -> Counter[str]:
    """How many of ``connections`` connections, all opened before any request is sent, each
    worker answered, by process id."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(connections)]
    try:
        for sock in socks:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        pids: Counter[str] = Counter()
        for sock in socks:
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            pids[answer.rpartition(b"\r\n\r\n")[2].decode()] += 1
        return pids
    finally:
        for sock in socks:
            sock.close()
