"""uvicorn's HTTP/1.1 protocols with Nagle's algorithm off on every connection.

With several workers, uvicorn binds the listening socket itself without naming the TCP protocol,
so asyncio does not set ``TCP_NODELAY`` on the connections it accepts; a response written as
headers then body then waits for the client's delayed ACK (about 40 ms a request on Linux, RFC
1122 section 4.2.3.2 and RFC 896). These protocols set it on each connection.

The API is served with httptools' parser (:class:`NoDelayHttpToolsProtocol`, :data:`PROTOCOL`):
it parses a request in C, where h11 spends about a tenth of a worker's time on a small read.

Several workers each listen on a socket of their own (:func:`run`, ``SO_REUSEPORT``), so the
kernel spreads connections over them rather than the first worker awake taking them all.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
import socket
import sys
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

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


def run(app: str, *, host: str, port: int, workers: int, **options: Any) -> None:
    """``uvicorn.run(app, ...)``, but with several workers each listening on its own socket.

    uvicorn binds one listening socket and hands it to every worker; asyncio accepts up to its
    backlog (uvicorn's is 2,048) connections in a row each time that socket is ready, so the
    first worker awake takes every connection waiting and keeps them (HTTP/1.1 keep-alive):
    sixteen connections opened at once went to one of two workers, which served them on one core
    while the other idled. Here each worker binds a socket of its own to the same address with
    ``SO_REUSEPORT`` (Linux 3.9 and later, the BSDs), and the kernel hands each new connection to
    one of them by a hash of its addresses and ports, whichever worker is awake. uvicorn's
    supervisor still starts, watches and restarts the workers; the supervisor holds a socket
    bound to the address (never listening) so the port stays the server's between restarts, and
    port 0 is resolved once for all workers. Connections waiting in a worker's own queue when it
    dies are reset, as with any listening socket closed.

    With one worker, or where ``SO_REUSEPORT`` is missing, this is ``uvicorn.run``.
    """
    if workers < 2 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(app, host=host, port=port, workers=workers, **options)
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reserved = _reuse_port_socket(family, host, port)
    try:
        port = reserved.getsockname()[1]
        config = uvicorn.Config(app, host=host, port=port, workers=workers, **options)
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        scheme = "https" if config.is_ssl else "http"
        uvicorn.config.logger.info(
            "Uvicorn running on %s://%s:%d, a socket per worker (Press CTRL+C to quit)",
            scheme,
            shown,
            port,
        )
        listener = cast(socket.socket, OwnListener(family, host, port))
        Multiprocess(config, sockets=[listener]).run()
    finally:
        reserved.close()


class OwnListener:
    """What uvicorn's supervisor hands each worker as its listening socket: unpickled in the
    worker (uvicorn spawns them), a new socket of that worker's own, bound to ``host`` and
    ``port`` with ``SO_REUSEPORT``; uvicorn's server then listens on it."""

    def __init__(self, family: socket.AddressFamily, host: str, port: int) -> None:
        self.family, self.host, self.port = family, host, port

    def __reduce__(self) -> tuple[Any, tuple[socket.AddressFamily, str, int]]:
        return _reuse_port_socket, (self.family, self.host, self.port)


def _reuse_port_socket(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host`` and ``port`` with ``SO_REUSEPORT``, not yet listening."""
    sock = socket.socket(family=family, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


PR_SET_PDEATHSIG = 1
"""prctl(2)'s option: the signal a process gets when the thread that started it ends."""


def stop_with_parent() -> None:
    """In a worker the server started: be sent SIGTERM (uvicorn's graceful stop) when the server
    dies, killed or not, rather than serve on alone from its own socket (Linux; elsewhere
    nothing). A server that is the process itself (one worker) is left alone: its parent is
    whatever started it, a shell that may well exit first."""
    parent = multiprocessing.parent_process()
    if parent is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent.pid:  # the server died before that was set
        os.kill(os.getpid(), signal.SIGTERM)
