"""One writer for several processes on a store: each commit groups every process's writes.

Every process on a store can write by itself: the ledger's appends (:meth:`accord.ledger.log.
Ledger.append`) take the database's write lock, read the tree's state, write and commit, and the
ads store's impressions take the same lock. On one SQLite file the processes then commit in
turn, each its own group, and under load a write waits for the other processes' commits as much
as for its own; each group's writer also shares its interpreter with that process's request
threads, so it holds the database's lock several times longer than its own work takes. A server
of several worker processes (``accord serve --workers N`` with ``ACCORD_SHARED_WRITER=1``) runs
one :class:`SharedWriter` instead, in its supervising process: the workers hand it their writes
(:class:`WriterClient`), and it commits them in groups as a single process does (one
transaction, one fsync or PostgreSQL commit, for every write of a kind that arrived meanwhile,
whichever worker sent it), on a thread that no request competes with. It is not the default:
on two cores with a local disk its messages cost more CPU than the commits it saves
(docs/performance.md, "One writer for the workers"); it pays where commits are slow beside the
CPU.

What the writer does with each kind of write is a *job* it is given: a function of every payload
of that kind waiting (in the order they arrived) returning each one's result, or an error for
one of them, once all are durable; if it raises, every caller of the group gets the error and
none a result. The ledger's appends (:meth:`accord.ledger.log.Ledger.commit_appends`) and the
ads store's impressions (:func:`accord.ads.store.record_many`) are the jobs ``accord serve``
gives it.

A worker that cannot reach the writer (not started, stopped) writes by itself, as it would
alone: the writer and such workers take the same database locks, and the ledger reads the
tree's state under its lock, so the tree never forks. A write sent whose answer never comes (the
writer died holding it) is an error for its caller, never retried: it may or may not be in the
store, as with a process that dies during its own commit, and it was not acknowledged.

The workers reach the writer over a Unix socket in a directory only the server's user may enter,
with :mod:`multiprocessing.connection` (an HMAC challenge on a random key at each connection,
then pickled messages): each worker thread keeps a connection of its own. The writer is one
thread: it reads every message waiting, runs each kind's job once on all of them, answers each,
and looks again (a thread a connection, each waking the others, cost more than the writes' own
work). Only processes the server started know the key; the messages are the server's own
objects, never a partner's bytes.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import selectors
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from types import TracebackType
from typing import Any

from accord.errors import AccordError, ConfigError, InvalidInput, LedgerError, StoreError

__all__ = ["ADDRESS_ENV", "Job", "SharedWriter", "WriterAddress", "WriterClient"]

Job = Callable[[list[Any]], list[Any]]
"""What the writer does with the payloads of one kind waiting: each one's result (or an
:class:`~accord.errors.AccordError` for that one alone), in order, once all are durable."""

logger = logging.getLogger("accord.store.writer")

ADDRESS_ENV = "ACCORD_SHARED_WRITER_ADDRESS"
"""The environment variable a server leaves its workers: where its writer listens, and its key."""

RETRY_SECONDS = 1.0
"""How long a client appends by itself after failing to reach the writer, before trying again."""


@dataclass(frozen=True)
class WriterAddress:
    """Where a writer listens (a Unix socket's path) and the key a client proves it holds."""

    path: str
    key: bytes

    def to_env(self) -> str:
        """The address as the text of :data:`ADDRESS_ENV`."""
        return json.dumps({"path": self.path, "key": self.key.hex()})

    @classmethod
    def from_env(cls, value: str) -> WriterAddress:
        """The address in the text of :data:`ADDRESS_ENV`; a clear error if it is not one."""
        try:
            document = json.loads(value)
            return cls(str(document["path"]), bytes.fromhex(document["key"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(
                f"{ADDRESS_ENV} is not a shared writer's address ({type(exc).__name__}: {exc})"
            ) from None


class SharedWriter:
    """Runs other processes' writes through ``jobs`` (by kind), until closed.

    One thread does everything: it waits for any connection to have a message, reads every
    message waiting on every connection, runs each kind's job once on all of that kind's, then
    answers each. While it commits, the next messages wait in their sockets and make the next
    group, so a slow commit makes bigger groups rather than a queue. Nothing else in the
    writer's process competes with it for the interpreter.

    Use as a context manager, or :meth:`start` and :meth:`close`; :attr:`address` is where
    clients reach it.
    """

    def __init__(self, jobs: dict[str, Job]) -> None:
        self.jobs = dict(jobs)
        self.answered: dict[str, int] = dict.fromkeys(self.jobs, 0)
        """Writes answered so far, results or errors, by kind."""
        self.groups: dict[str, int] = dict.fromkeys(self.jobs, 0)
        """Times each kind's job ran (its groups) so far."""
        self._folder = ""
        self._address: WriterAddress | None = None
        self._listener: Listener | None = None
        self._threads: list[threading.Thread] = []
        self._accepted: list[Connection] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._closing = False
        self._closed = False
        self._accept_stopped = False

    @property
    def address(self) -> WriterAddress:
        """Where the writer listens; only once started."""
        if self._address is None:
            raise StoreError("the shared writer has not been started")
        return self._address

    def start(self) -> WriterAddress:
        """Listen on a new socket in a private folder; returns its address."""
        self._folder = tempfile.mkdtemp(prefix="accord-writer-")
        address = WriterAddress(str(Path(self._folder) / "socket"), secrets.token_bytes(32))
        self._listener = Listener(address.path, family="AF_UNIX", authkey=address.key)
        self._address = address
        self._threads = [
            threading.Thread(target=self._run, name="accord-writer", daemon=True),
            threading.Thread(target=self._accept, name="accord-writer-accept", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return address

    def close(self) -> None:
        """Stop once the group being committed is answered: every connection closed (a client
        waiting on one gets an error), the socket removed."""
        if self._listener is None or self._closed:
            return
        self._closed = True
        self._closing = True
        with suppress(OSError):
            self._wake_w.send(b"x")
        self._threads[0].join(timeout=30)
        self._stop_accepting()
        for conn in self._accepted:
            conn.close()
        self._wake_r.close()
        self._wake_w.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> SharedWriter:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _stop_accepting(self) -> None:
        """Stop the accepting thread and remove the socket (once)."""
        with self._lock:
            if self._accept_stopped:
                return
            self._accept_stopped = True
        self._closing = True
        # accept() does not return when its socket is closed under it: a last connection of our
        # own wakes it, and it sees the writer closing. A bare socket, not a Client: a Client
        # waits for the listener's challenge, forever if the accepting thread already saw the
        # writer closing and left (its connection would only sit in the backlog).
        with suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as waking:
            waking.settimeout(5)
            waking.connect(self.address.path)
        self._threads[1].join(timeout=30)
        if self._listener is not None:
            self._listener.close()  # and the socket removed

    def _accept(self) -> None:
        """Take new connections (on a thread of their own: each begins with the challenge) and
        hand them to the writer's thread."""
        listener = self._listener
        while listener is not None and not self._closing:
            try:
                conn = listener.accept()
            except (AuthenticationError, OSError, EOFError, ValueError):
                continue  # a client that failed the challenge, or went away during it
            with self._lock:
                self._accepted.append(conn)
            with suppress(OSError):
                self._wake_w.send(b"+")

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException:
            # Whatever stopped the writer, the server goes on (its workers write by themselves):
            # said once in its log.
            logger.exception("the shared writer stopped; each worker now writes by itself")

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ, None)
            try:
                while not self._closing:
                    waiting: list[tuple[Connection, object]] = []
                    for key, _ in selector.select():
                        if key.data is None:
                            self._wake_r.recv(4096)
                            with self._lock:
                                accepted, self._accepted = self._accepted, []
                            for conn in accepted:
                                selector.register(conn, selectors.EVENT_READ, conn)
                            continue
                        conn = key.data
                        try:
                            waiting.append((conn, conn.recv()))
                        except Exception:  # noqa: BLE001 - gone, or a message cut short: dropped
                            selector.unregister(conn)
                            conn.close()
                    if waiting:
                        self._commit(waiting)
            finally:
                # Stopped, asked to or not: no client may wait on the writer any more. Those
                # connected get an error (an answer never sent: not acknowledged), and the
                # socket is removed, so the next write of any worker is made by the worker.
                self._stop_accepting()
                for key in list(selector.get_map().values()):
                    if isinstance(key.data, Connection):
                        key.data.close()

    def _commit(self, waiting: list[tuple[Connection, object]]) -> None:
        """Run each kind's job on the messages of that kind read, and answer each."""
        replies: list[tuple[Connection, tuple[Any, ...]]] = []
        kinds: dict[str, list[tuple[Connection, Any]]] = {}
        for conn, message in waiting:
            if not isinstance(message, tuple) or len(message) != 2 or message[0] not in self.jobs:
                refused = InvalidInput("the shared writer was sent something it has no job for")
                replies.append((conn, _error(refused)))
                continue
            kinds.setdefault(message[0], []).append((conn, message[1]))
        for kind, group in kinds.items():
            replies += self._run_job(kind, group)
        for conn, reply in replies:
            # A client gone away is dropped at the writer's next read of its connection.
            with suppress(OSError):
                conn.send(reply)

    def _run_job(
        self, kind: str, group: list[tuple[Connection, Any]]
    ) -> list[tuple[Connection, tuple[Any, ...]]]:
        self.groups[kind] += 1
        self.answered[kind] += len(group)
        try:
            results = self.jobs[kind]([payload for _, payload in group])
        except AccordError as exc:
            return [(conn, _error(exc)) for conn, _ in group]
        except Exception as exc:  # noqa: BLE001 - every caller gets it as an error, none a result
            failed = StoreError(f"the shared writer failed: {type(exc).__name__}: {exc}")
            return [(conn, _error(failed)) for conn, _ in group]
        if len(results) != len(group):
            failed = StoreError(f"the {kind} job answered {len(results)} of {len(group)} writes")
            return [(conn, _error(failed)) for conn, _ in group]
        return [
            (conn, _error(result) if isinstance(result, AccordError) else ("ok", result))
            for (conn, _), result in zip(group, results, strict=True)
        ]


class WriterClient:
    """A process's way to a :class:`SharedWriter`: a connection for each thread that writes
    through it, made at its first write."""

    def __init__(self, address: WriterAddress) -> None:
        self.address = address
        self._local = threading.local()
        self._connections: dict[int, Connection] = {}
        self._lock = threading.Lock()
        self._unreachable_until = 0.0

    def call(self, kind: str, payload: object) -> tuple[bool, Any]:
        """Have the writer run its ``kind`` job on ``payload``: ``(True, result)`` once it is
        durable, or ``(False, None)`` if the writer could not be reached and nothing was sent
        (write it here instead). Raises the writer's error for it, or
        :class:`~accord.errors.StoreError` if the writer went away holding it."""
        conn = self._connection()
        if conn is None:
            return False, None
        try:
            conn.send((kind, payload))
        except OSError:
            # The connection broke before the whole message was written: the writer reads
            # nothing it can act on from a message cut short.
            self._drop(conn)
            return False, None
        try:
            reply = conn.recv()
        except (EOFError, OSError):
            self._drop(conn)
            raise StoreError(
                "the shared writer stopped before acknowledging this write: it was not "
                "acknowledged, and may or may not be in the store"
            ) from None
        if reply[0] == "ok":
            return True, reply[1]
        raise _rebuilt(*reply[1:])

    def close(self) -> None:
        """Shut every thread's connection down: a thread waiting on one gets an error, and each
        closes its own at its next append, which is made here."""
        with self._lock:
            connections = list(self._connections.values())
            self._connections.clear()
        for conn in connections:
            _shut(conn)

    def _connection(self) -> Connection | None:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            return conn
        if time.monotonic() < self._unreachable_until:
            return None
        try:
            conn = Client(self.address.path, family="AF_UNIX", authkey=self.address.key)
        except AuthenticationError:
            raise ConfigError(
                f"the shared writer at {self.address.path} refused this process's key: "
                f"{ADDRESS_ENV} is not the one its server set"
            ) from None
        except (OSError, EOFError):
            self._unreachable_until = time.monotonic() + RETRY_SECONDS
            return None
        self._local.conn = conn
        with self._lock:
            self._connections[id(conn)] = conn
        return conn

    def _drop(self, conn: Connection) -> None:
        self._local.conn = None
        with self._lock:
            self._connections.pop(id(conn), None)
        conn.close()


def _error(exc: AccordError) -> tuple[str, str, str, str | None]:
    return ("error", type(exc).__name__, exc.message, exc.where)


def _rebuilt(kind: str, message: str, where: str | None) -> AccordError:
    """The writer's error, as the class it raised where that class takes a message (a store or
    ledger error, bad input), or else as a store error saying the same."""
    for cls in (StoreError, LedgerError, InvalidInput):
        if kind == cls.__name__:
            return cls(message, where=where)
    return StoreError(f"{kind}: {message}", where=where)


def _shut(conn: Connection) -> None:
    """Shut a connection down, so that a thread waiting on it wakes (closing it from another
    thread would not); the thread using it closes it."""
    try:
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError):
        pass
