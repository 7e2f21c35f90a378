"""Private set intersection: which identifiers two parties share, without showing the rest.

The protocol is elliptic-curve Diffie–Hellman matching (C. Meadows, "A more efficient
cryptographic matchmaking protocol", IEEE S&P 1986; B. Huberman, M. Franklin, T. Hogg,
"Enhancing privacy and trust in electronic communities", ACM EC 1999), secure against parties
that follow it (semi-honest), with ``H`` a hash onto Curve25519 and ``a``, ``b`` the two sides'
secret keys (:mod:`accord.pets.psi.curve`)::

    client (learns the result)                     server
    HELLO: mode, |X|, the Accord request   ──▶   decide; open a session; key b
                                           ◀──   WELCOME: |Y|
    BLINDED: H(x)^a, chunk by chunk        ──▶
                                           ◀──   DOUBLE: H(x)^ab (in order; or, size-only,
                                                 all shuffled together and fetched afterwards)
    FETCH_SET                              ──▶
                                           ◀──   SET: H(y)^b, shuffled, chunk by chunk
    (H(y)^b)^a = H(x)^ab  ⇔  x = y

The client learns which of its identifiers are in the server's set (``intersection``), or, when
the server shuffles the doubly-blinded values so they can no longer be told apart, only how many
are (``size``). The server learns only how many identifiers the client has. Neither sees an
identifier, or a hash of one: every value that crosses is blinded by a key the receiver lacks.

Work is streamed in chunks (:data:`CHUNK` identifiers per message), each spread over every core
by :class:`~accord.pets.psi.curve.Engine`; the client keeps one 32-byte value per identifier of
its own, the server one per identifier of the client's in size-only mode.

Messages are the frames of :mod:`accord.pets.psi.wire`; :class:`Server` answers one frame with
one frame, whether the frame came over HTTP (:mod:`accord.pets.psi.http`) or from this process
(:class:`LocalTransport`). Whom each side feeds in is decided by Accord
(:mod:`accord.pets.psi.consented`).
"""

from __future__ import annotations

import os
import random
import secrets
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from accord.errors import AccordError, InvalidInput
from accord.pets.psi import curve, oprf
from accord.pets.psi.choices import OPRF_MAX, Kind, Mode, Protocol, choose
from accord.pets.psi.ids import encode, normalise
from accord.pets.psi.params import params
from accord.pets.psi.wire import (
    Frame,
    MatchError,
    ProtocolError,
    Type,
    decode,
    error_frame,
    json_frame,
    raise_error,
)

CHUNK = 32_768
"""Identifiers per message by default (1 MiB of points)."""
MAX_CHUNK = 1 << 20
MAX_ITEMS = 100_000_000
_SUB = 2_048  # identifiers per task handed to one worker
_OPRF_LIMITS = (
    f"the OPRF protocol matches at most {OPRF_MAX:,} identifiers of the client's and shows the "
    "client which of them matched; for the size alone, or more identifiers, use ECDH"
)


@dataclass(frozen=True, slots=True)
class Result:
    """What a match told the client: the size, and (in ``intersection`` mode) which identifiers.

    ``matched`` holds the client's own encoded identifiers (``kind:value``) that the server also
    has; it is empty in ``size`` mode.
    """

    mode: Mode
    size: int
    ours: int
    theirs: int
    matched: frozenset[bytes] = frozenset()
    sent: int = 0
    received: int = 0

    @property
    def exchanged(self) -> int:
        """Bytes of protocol messages, both ways."""
        return self.sent + self.received


def identifiers(values: Iterable[str], kind: Kind, *, region: str | None = None) -> list[bytes]:
    """``values`` normalised and encoded for matching, duplicates dropped, first order kept."""
    return list(dict.fromkeys(encode(kind, normalise(kind, v, region=region)) for v in values))


# -- the work on points, spread over the cores -------------------------------------------------


def _task_size(engine: curve.Engine, n: int) -> int:
    """Items per task: at most ``_SUB``, and small enough that every worker gets several."""
    return max(64, min(_SUB, -(-n // (4 * engine.workers))))


def shuffled(items: Sequence[bytes]) -> list[bytes]:
    """``items`` in a uniformly random order: sorted by 64-bit keys from the system's CSPRNG
    (two keys tie with probability below n²/2^65, which leaves the order still random)."""
    keys = np.frombuffer(os.urandom(8 * len(items)), dtype=np.uint64)
    return [items[i] for i in np.argsort(keys, kind="stable").tolist()]


def _hash_all(engine: curve.Engine, items: Sequence[bytes]) -> bytes:
    step = _task_size(engine, len(items))
    return b"".join(engine.hash(items[i : i + step] for i in range(0, len(items), step)))


def _blind_all(engine: curve.Engine, key: bytes, points: bytes) -> bytes:
    step = _task_size(engine, len(points) // curve.POINT) * curve.POINT
    return b"".join(engine.blind(key, (points[i : i + step] for i in range(0, len(points), step))))


def _chunks(items: Sequence[bytes], size: int) -> Iterator[Sequence[bytes]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- the server ----------------------------------------------------------------------------------


Admit = Callable[[Mapping[str, Any], "Mode"], Sequence[bytes]]
"""Given the HELLO's ``request`` (what the match is for) and mode, the server's identifiers.

Raises :class:`~accord.pets.psi.wire.MatchRefused` (or any Accord error) to release nothing.
"""


@dataclass
class _Session:
    key: bytes
    mode: Mode
    items: list[bytes]
    expected: int
    chunk: int
    received: int = 0
    doubles: list[bytes] = field(default_factory=list)
    shuffled: bool = False


class Server:
    """The server side: answers each frame with one frame; sessions live in memory.

    ``admit`` decides, per HELLO, which identifiers this side feeds in (see :data:`Admit`).
    """

    def __init__(self, admit: Admit, engine: curve.Engine, *, max_sessions: int = 16) -> None:
        self.admit = admit
        self.engine = engine
        self.max_sessions = max_sessions
        self._sessions: dict[bytes, _Session | oprf.SenderSession] = {}

    def handle(self, data: bytes) -> bytes:
        """One message in, one message out; failures come back as an ERROR frame."""
        try:
            return self._handle(decode(data)).encode()
        except Exception as exc:  # noqa: BLE001 - every failure is answered, none escapes
            return error_frame(exc).encode()

    def _handle(self, frame: Frame) -> Frame:
        if frame.type is Type.HELLO:
            return self._hello(frame)
        session = self._sessions.get(frame.session)
        if session is None:
            raise ProtocolError("no such session (it ended, or was never opened)")
        if frame.type is Type.BYE:
            del self._sessions[frame.session]
            return Frame(Type.ACK, frame.session)
        if isinstance(session, oprf.SenderSession):
            return session.answer(frame)
        if frame.type is Type.BLINDED:
            return self._blinded(frame, session)
        if frame.type is Type.FETCH_DOUBLE:
            return self._fetch_double(frame, session)
        if frame.type is Type.FETCH_SET:
            return self._fetch_set(frame, session)
        raise ProtocolError(f"a server does not take {frame.type.name} messages")

    def _hello(self, frame: Frame) -> Frame:
        body = frame.json()
        try:
            mode = Mode(str(body["mode"]))
            count, chunk = int(body["count"]), int(body.get("chunk", CHUNK))
            protocol = Protocol(str(body.get("protocol", Protocol.ECDH.value)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"HELLO needs mode, count and chunk: {exc}") from exc
        if protocol is Protocol.OPRF and (mode is not Mode.INTERSECTION or count > OPRF_MAX):
            raise ProtocolError(_OPRF_LIMITS)
        if not 0 <= count <= MAX_ITEMS or not 1 <= chunk <= MAX_CHUNK:
            raise ProtocolError(f"HELLO's count ({count}) or chunk ({chunk}) is out of range")
        request = body.get("request") or {}
        if not isinstance(request, dict):
            raise ProtocolError("HELLO's request must be a JSON object")
        items = shuffled(list(dict.fromkeys(self.admit(request, mode))))
        while len(self._sessions) >= self.max_sessions:
            del self._sessions[next(iter(self._sessions))]  # the oldest
        session_id = secrets.token_bytes(16)
        if protocol is Protocol.OPRF:
            self._sessions[session_id] = oprf.open_session(count, items, self.engine.workers)
        else:
            self._sessions[session_id] = _Session(curve.new_key(), mode, items, count, chunk)
        welcome = {"count": len(items), "chunk": chunk, "protocol": protocol.value}
        return json_frame(Type.WELCOME, welcome, session_id)

    def _blinded(self, frame: Frame, s: _Session) -> Frame:
        n = len(frame.payload) // curve.POINT
        if len(frame.payload) % curve.POINT or n > s.chunk or s.received + n > s.expected:
            raise ProtocolError(
                f"chunk {frame.seq} holds {len(frame.payload)} bytes: more than announced, "
                "or not whole points"
            )
        if frame.seq * s.chunk != s.received:
            raise ProtocolError(f"chunk {frame.seq} arrived out of order")
        doubled = _blind_all(self.engine, s.key, frame.payload)
        s.received += n
        if s.mode is Mode.INTERSECTION:
            return Frame(Type.DOUBLE, frame.session, frame.seq, doubled)
        s.doubles.extend(curve.split(doubled))
        return Frame(Type.ACK, frame.session, frame.seq)

    def _fetch_double(self, frame: Frame, s: _Session) -> Frame:
        if s.mode is not Mode.SIZE:
            raise ProtocolError("doubly-blinded values are fetched only in size mode")
        if s.received != s.expected:
            raise ProtocolError(f"{s.received} of {s.expected} values received; send them all")
        if not s.shuffled:
            # One shuffle over all of them: the client cannot tell which of its values came back.
            random.SystemRandom().shuffle(s.doubles)
            s.shuffled = True
        start = frame.seq * s.chunk
        return Frame(
            Type.DOUBLE, frame.session, frame.seq, b"".join(s.doubles[start : start + s.chunk])
        )

    def _fetch_set(self, frame: Frame, s: _Session) -> Frame:
        start = frame.seq * s.chunk
        part = s.items[start : start + s.chunk]
        blinded = _blind_all(self.engine, s.key, _hash_all(self.engine, part)) if part else b""
        return Frame(Type.SET, frame.session, frame.seq, blinded)


# -- transports ----------------------------------------------------------------------------------


class Transport(typing.Protocol):
    """Carries one request frame to the server and returns its answer."""

    def call(self, data: bytes) -> bytes:
        """Send ``data``; the server's reply."""
        ...  # pragma: no cover - a protocol


class LocalTransport:
    """A server in this process."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def call(self, data: bytes) -> bytes:
        """Hand the frame to the server."""
        return self.server.handle(data)


# -- the client ----------------------------------------------------------------------------------


class _Counted:
    """Counts the bytes each way, and decodes the reply (raising the error an ERROR reports)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.sent = 0
        self.received = 0

    def call(self, frame: Frame, expect: Type) -> Frame:
        data = frame.encode()
        self.sent += len(data)
        reply = self.transport.call(data)
        self.received += len(reply)
        answer = decode(reply)
        if answer.type is Type.ERROR:
            raise_error(answer)
        if answer.type is not expect:
            raise ProtocolError(f"expected {expect.name}, the server sent {answer.type.name}")
        return answer


def match(
    transport: Transport,
    ours: Sequence[bytes],
    engine: curve.Engine,
    *,
    mode: Mode = Mode.INTERSECTION,
    request: Mapping[str, Any] | None = None,
    chunk: int = CHUNK,
    protocol: Protocol | None = None,
) -> Result:
    """Run the protocol as the client over ``transport``; ``ours`` are encoded identifiers.

    ``request`` says what the match is for (the server's Accord decides it); ``protocol`` how it
    is computed (by default, :func:`~accord.pets.psi.choices.choose`). Raises
    :class:`~accord.pets.psi.wire.MatchError` on failure; nothing is learned then.
    """
    items = list(dict.fromkeys(ours))
    chosen = protocol or choose(mode, len(items))
    if chosen is Protocol.OPRF and (mode is not Mode.INTERSECTION or len(items) > OPRF_MAX):
        raise InvalidInput(_OPRF_LIMITS, where="--protocol oprf")
    link = _Counted(transport)
    hello = {
        "mode": mode.value,
        "count": len(items),
        "chunk": chunk,
        "protocol": chosen.value,
        "request": request or {},
    }
    welcome = link.call(json_frame(Type.HELLO, dict(hello)), Type.WELCOME)
    try:
        theirs = _count(welcome.json()["count"])
        if chosen is Protocol.OPRF:
            found = _oprf_client(link, welcome.session, items, theirs, engine.workers)
        else:
            client = _Client(link, welcome.session, engine, mode, chunk)
            found = client.read_theirs(client.send_ours(items))
        link.call(Frame(Type.BYE, welcome.session), Type.ACK)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"the server's answer is malformed: {exc}") from exc
    except AccordError:
        raise
    except Exception as exc:
        raise MatchError(f"the match failed: {type(exc).__name__}: {exc}") from exc
    matched = frozenset(items[i] for i in found) if mode is Mode.INTERSECTION else frozenset()
    return Result(mode, len(found), len(items), theirs, matched, link.sent, link.received)


def _count(value: object) -> int:
    """The server's count of people, which a hostile server could send as anything."""
    if type(value) is not int or value < 0:
        raise ProtocolError(f"the server's count is not a number of people: {value!r}"[:200])
    return value


def _oprf_client(
    link: _Counted, session: bytes, items: Sequence[bytes], theirs: int, workers: int
) -> list[int]:
    """The OPRF protocol's client (:mod:`accord.pets.psi.oprf`): positions of ours matched."""
    answers = {Type.OT_SEND: Type.OT_REPLY, Type.MATRIX: Type.ACK, Type.PRF_KEY: Type.ACK}

    def send(frame: Frame) -> Frame:
        return link.call(Frame(frame.type, session, frame.seq, frame.payload), answers[frame.type])

    ours = oprf.client_values(params(len(items), theirs), items, send, workers)

    def sets() -> Iterator[bytes]:
        seq = 0
        while True:
            reply = link.call(Frame(Type.FETCH_SET, session, seq), Type.SET)
            if not reply.payload:
                return
            yield reply.payload
            seq += 1

    return oprf.find(ours, sets(), params(len(items), theirs).out_bytes)


@dataclass
class _Client:
    link: _Counted
    session: bytes
    engine: curve.Engine
    mode: Mode
    chunk: int
    key: bytes = field(default_factory=curve.new_key)

    def send_ours(self, items: Sequence[bytes]) -> dict[bytes, int] | set[bytes]:
        """Send H(x)^a chunk by chunk; the doubly-blinded values by position (or as a set)."""
        by_position: dict[bytes, int] = {}
        intersection = self.mode is Mode.INTERSECTION
        for seq, part in enumerate(_chunks(items, self.chunk)):
            blinded = _blind_all(self.engine, self.key, _hash_all(self.engine, part))
            reply = self.link.call(
                Frame(Type.BLINDED, self.session, seq, blinded),
                Type.DOUBLE if intersection else Type.ACK,
            )
            if intersection:
                points = curve.split(reply.payload)
                if len(points) != len(part):
                    raise ProtocolError(f"chunk {seq} came back with {len(points)} values")
                start = seq * self.chunk
                by_position.update((p, start + i) for i, p in enumerate(points))
        if intersection:
            return by_position
        shuffled: set[bytes] = set()
        for seq in range(-(-len(items) // self.chunk)):
            reply = self.link.call(Frame(Type.FETCH_DOUBLE, self.session, seq), Type.DOUBLE)
            shuffled.update(curve.split(reply.payload))
        return shuffled

    def read_theirs(self, doubles: dict[bytes, int] | set[bytes]) -> list[int]:
        """Fetch H(y)^b chunk by chunk, raise each to ``a``; the positions (or marks) matched."""
        found: list[int] = []
        seq = 0
        while True:
            reply = self.link.call(Frame(Type.FETCH_SET, self.session, seq), Type.SET)
            if not reply.payload:
                return found
            for value in curve.split(_blind_all(self.engine, self.key, reply.payload)):
                if isinstance(doubles, dict):
                    position = doubles.get(value)
                    if position is not None:
                        found.append(position)
                elif value in doubles:
                    found.append(len(found))
            seq += 1


def intersect(
    ours: Sequence[bytes],
    theirs: Sequence[bytes],
    *,
    mode: Mode = Mode.INTERSECTION,
    engine: curve.Engine | None = None,
    chunk: int = CHUNK,
    protocol: Protocol | None = None,
) -> Result:
    """Both sides in this process (the same messages as over HTTP): ours as client."""
    own = engine or curve.Engine(1)
    try:
        server = Server(lambda _request, _mode: theirs, own)
        return match(LocalTransport(server), ours, own, mode=mode, chunk=chunk, protocol=protocol)
    finally:
        if engine is None:
            own.close()
