"""The private-matching protocol's messages: length-prefixed binary frames.

Every message, in process or over HTTP, is one frame::

    magic    4 bytes   b"APSI"
    version  1 byte    1
    type     1 byte    a :class:`Type`
    session  16 bytes  the session the server opened (zeros in HELLO)
    seq      4 bytes   big-endian: the chunk's number, from 0
    length   4 bytes   big-endian: bytes of payload that follow
    payload  length bytes: UTF-8 JSON (HELLO, WELCOME, ERROR), or binary: 32-byte points
                       back to back, or the OPRF protocol's columns, keys and values

Errors of private matching, under Accord's one root::

    AccordError
    └── MatchError              the match failed; the client learned nothing from it
        ├── MatchRefused        the other side's Accord refused the match (its reason is given)
        ├── MatchUnauthenticated  the other side does not accept our credentials
        └── ProtocolError       a malformed or out-of-order message
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from accord.errors import AccordError, InvalidInput, visible

MAGIC = b"APSI"
VERSION = 1
_HEADER = struct.Struct(">4sBB16sII")
HEADER_BYTES = _HEADER.size
NO_SESSION = bytes(16)


class MatchError(AccordError):
    """The private match failed; the client learned nothing from it."""


class MatchRefused(MatchError):
    """The other side's Accord refused the match; the message is its reason."""

    exit_code = 3


class MatchUnauthenticated(MatchError):
    """The other side does not accept the credentials we presented."""

    exit_code = 3


class ProtocolError(MatchError, InvalidInput):
    """A malformed or out-of-order message."""


class Type(IntEnum):
    """What a frame carries."""

    HELLO = 1
    """client → server, JSON: mode, count, chunk, and the Accord request the match is made under."""
    WELCOME = 2
    """server → client, JSON: session opened; the server's count."""
    BLINDED = 3
    """client → server, points: a chunk of the client's identifiers, hashed and blinded by it."""
    DOUBLE = 4
    """server → client, points: a chunk blinded again by the server (in order, or shuffled)."""
    ACK = 5
    """server → client, empty: received."""
    FETCH_DOUBLE = 6
    """client → server, empty: send chunk ``seq`` of the shuffled doubly-blinded values."""
    FETCH_SET = 7
    """client → server, empty: send chunk ``seq`` of the server's own blinded identifiers."""
    SET = 8
    """server → client, points: a chunk of the server's identifiers, hashed and blinded by it."""
    BYE = 9
    """client → server, empty: the session may be forgotten."""
    ERROR = 10
    """server → client, JSON: ``kind`` (refused, unauthenticated, invalid, error), ``message``."""
    OT_SEND = 11
    """client → server, a point: the base-OT sender's ``A`` (the OPRF protocol)."""
    OT_REPLY = 12
    """server → client, points: the base-OT receiver's ``B_1 … B_w``."""
    MATRIX = 13
    """client → server, bytes: block ``seq`` of the columns ``u_i`` of the OT extension."""
    PRF_KEY = 14
    """client → server, 16 bytes: the key of the PRF that places items in the matrix."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded message."""

    type: Type
    session: bytes = NO_SESSION
    seq: int = 0
    payload: bytes = b""

    def encode(self) -> bytes:
        """The frame's bytes."""
        head = _HEADER.pack(MAGIC, VERSION, self.type, self.session, self.seq, len(self.payload))
        return head + self.payload

    def json(self) -> dict[str, Any]:
        """The payload as a JSON object."""
        try:
            value = json.loads(self.payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ProtocolError(f"a {self.type.name} message is not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise ProtocolError(f"a {self.type.name} message is not a JSON object")
        return value


def json_frame(kind: Type, body: dict[str, Any], session: bytes = NO_SESSION) -> Frame:
    """A frame holding ``body`` as JSON."""
    return Frame(kind, session, 0, json.dumps(body, sort_keys=True).encode())


def decode(data: bytes) -> Frame:
    """Parse one frame; refuses anything that is not exactly one well-formed frame."""
    if len(data) < HEADER_BYTES:
        raise ProtocolError(f"a message of {len(data)} bytes is shorter than a frame header")
    magic, version, kind, session, seq, length = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ProtocolError("not a private-matching message (bad magic)")
    if version != VERSION:
        raise ProtocolError(f"protocol version {version} is not supported (this is {VERSION})")
    if len(data) != HEADER_BYTES + length:
        raise ProtocolError(
            f"the frame says {length} bytes of payload but carries {len(data) - HEADER_BYTES}"
        )
    try:
        frame_type = Type(kind)
    except ValueError as exc:
        raise ProtocolError(f"unknown message type {kind}") from exc
    return Frame(frame_type, session, seq, data[HEADER_BYTES:])


def error_frame(exc: Exception) -> Frame:
    """The ERROR frame telling the client why its message failed (never a stack trace)."""
    if isinstance(exc, MatchRefused):
        kind = "refused"
    elif isinstance(exc, MatchUnauthenticated):
        kind = "unauthenticated"
    elif isinstance(exc, InvalidInput):
        kind = "invalid"
    else:
        kind = "error"
    message = exc.message if isinstance(exc, AccordError) else "the server failed to answer"
    return json_frame(Type.ERROR, {"kind": kind, "message": message})


MAX_MESSAGE = 500
"""Characters of the other side's error message kept (it goes into the ledger and on screens)."""


def peer_text(value: object) -> str:
    """Text the other side sent, as it may be kept and shown: every control character (terminal
    escape codes, line breaks, bidirectional overrides) written as its code, ``\\x1b``, and at
    most :data:`MAX_MESSAGE` characters."""
    text = visible(value)
    if len(text) > MAX_MESSAGE:
        text = f"{text[:MAX_MESSAGE]}… ({len(text) - MAX_MESSAGE:,} more characters)"
    return text


def raise_error(frame: Frame) -> None:
    """Raise the error an ERROR frame reports (its message made safe by :func:`peer_text`)."""
    body = frame.json()
    message = peer_text(body.get("message", "no reason given"))
    if body.get("kind") == "refused":
        raise MatchRefused(message)
    if body.get("kind") == "unauthenticated":
        raise MatchUnauthenticated(message)
    if body.get("kind") == "invalid":
        raise ProtocolError(message)
    raise MatchError(message)
