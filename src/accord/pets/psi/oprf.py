"""Private set intersection from a lightweight oblivious PRF (Chase and Miao, CRYPTO 2020).

Secure against parties that follow the protocol (semi-honest). The client (receiver, set ``X``
of ``n1`` items) learns which of its items the server (sender, set ``Y`` of ``n2``) also has;
the server learns ``n1``. With the parameters of :mod:`~accord.pets.psi.params` (``w`` columns
of ``m`` bits, outputs of ``l2`` bits) and ``v(x) = F_k(H1(x)) ∈ [m]^w``::

    client (receiver)                                server (sender)
    HELLO: protocol oprf, |X|               ──▶    decide; open a session
                                            ◀──    WELCOME: |Y|
    OT_SEND: A (base-OT sender's point)     ──▶    s ← {0,1}^w; base OTs with choices s
                                            ◀──    OT_REPLY: B_1 … B_w
    D: 1s, and D_i[v_i(x)] = 0 for x ∈ X
    MATRIX: u_i = G(k_i^0) ⊕ G(k_i^1) ⊕ D_i  ──▶    C_i = G(k_i^{s_i}) ⊕ s_i·u_i
      (a block of columns a message)        ◀──    ACK
    PRF_KEY: k                              ──▶
                                            ◀──    ACK
    FETCH_SET                               ──▶
                                            ◀──    SET: H2(C_1[v_1(y)] ‖ … ‖ C_w[v_w(y)]), y ∈ Y
                                                   shuffled, chunk by chunk
    x ∈ Y  ⇔  H2(A_1[v_1(x)] ‖ … ‖ A_w[v_w(x)]) is among them,  A_i = G(k_i^0)

For ``x ∈ X``, ``D_i[v_i(x)] = 0`` in every column, so ``C_i[v_i(x)] = A_i[v_i(x)]`` whatever
``s`` is. For ``y ∉ X``, at least kappa columns have ``D_i[v_i(y)] = 1`` (but with probability
``2^-sigma``), where ``C_i[v_i(y)] = A_i[v_i(y)] ⊕ s_i`` hides a bit of ``s`` that the client never
sees: the value the server sends is then pseudorandom to the client (``H2`` a random oracle).
The server sees only the ``u_i``, each masked by ``G(k_i^{1 - s_i})``, a seed it did not choose.

The functions, all on NumPy arrays of whole chunks:

- ``H1(x)``: BLAKE2b of the encoded identifier, 16 bytes, personalised ``ACCORD-PSI-H1``.
- ``F_k``: AES-128 under ``k`` as a PRF: block ``j`` is ``AES_k(H1(x) ⊕ ⟨j⟩)``, ``⟨j⟩`` the
  128-bit big-endian encoding of ``j``; block ``j`` gives columns ``4j … 4j+3``, each index the
  little-endian 32-bit word masked to ``log2 m`` bits (:func:`indices`).
- ``G``: AES-128-CTR keystream (:func:`accord.pets.psi.ot.prg`).
- ``H2``: BLAKE2b of the ``w`` gathered bits (packed little-endian, column 0 first), ``l2``
  bytes, personalised ``ACCORD-PSI-H2``.

The server keeps ``C`` (``w·m`` bits); the client keeps ``H1`` of its items, then their ``w``
gathered bits, then their ``l2``-byte outputs. Work on items is in chunks of
:data:`ITEM_CHUNK`, spread over threads (NumPy and AES release the interpreter lock for most of
it).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from accord.pets.psi.ot import (
    OtSender,
    extend_receive,
    extend_send,
    ot_receive,
    prg_rows,
    random_bits,
)
from accord.pets.psi.params import Params, params
from accord.pets.psi.wire import Frame, ProtocolError, Type

KEY = 16
ITEM_CHUNK = 8_192
"""Items handled together: their indices are ``ITEM_CHUNK × w`` words (about 20 MB)."""
SET_CHUNK = 32_768
"""The server's values per SET message."""
_H1 = b"ACCORD-PSI-H1"
_H2 = b"ACCORD-PSI-H2"
_T = TypeVar("_T")


# -- the functions of the protocol ---------------------------------------------------------------


def h1(items: Sequence[bytes]) -> np.ndarray:
    """``H1`` of each item: an ``n × 16`` byte matrix."""
    out = b"".join(hashlib.blake2b(x, digest_size=16, person=_H1).digest() for x in items)
    return np.frombuffer(out, dtype=np.uint8).reshape(len(items), 16)


def indices(key: bytes, hashed: np.ndarray, first: int, last: int, height_log: int) -> np.ndarray:
    """``v_i(x)`` for columns ``first ≤ i < last`` (``first`` a multiple of 4): ``n × cols``."""
    j0, j1 = first // 4, -(-last // 4)
    counters = np.zeros((j1 - j0, 16), dtype=np.uint8)
    counters[:, 12:] = np.arange(j0, j1, dtype=">u4").view(np.uint8).reshape(j1 - j0, 4)
    blocks = hashed[:, None, :] ^ counters[None, :, :]
    out = np.empty(blocks.nbytes + 15, dtype=np.uint8)
    # AES on distinct blocks as a PRF (each block enciphered once), not as encryption.
    cipher = Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305
    cipher.encryptor().update_into(memoryview(blocks.data), memoryview(out.data))
    words = out[: blocks.nbytes].view("<u4").reshape(len(hashed), 4 * (j1 - j0))
    at: np.ndarray = np.bitwise_and(words[:, : last - first], np.uint32((1 << height_log) - 1))
    return at


def gather(matrix: np.ndarray, at: np.ndarray, first: int = 0) -> np.ndarray:
    """Bit ``at[x, c]`` of row ``first + c`` of the packed ``matrix``, for each item ``x``, the
    bits of an item packed little-endian: an ``n × ⌈cols/8⌉`` byte matrix."""
    cols = at.shape[1]
    shift = np.bitwise_and(at, 7, dtype=np.uint8, casting="unsafe")
    where = np.right_shift(at, 3, dtype=np.intp)
    where += np.arange(first, first + cols, dtype=np.intp) * matrix.shape[1]
    bits = np.take(matrix.reshape(-1), where)
    bits >>= shift
    bits &= 1
    return np.packbits(bits, axis=1, bitorder="little")


def h2(rows: np.ndarray, out_bytes: int) -> np.ndarray:
    """``H2`` of each packed row: an array of ``out_bytes``-byte strings (NumPy ``S``)."""
    data = memoryview(np.ascontiguousarray(rows).data).cast("B")
    step = rows.shape[1]
    digest = b"".join(
        hashlib.blake2b(data[i : i + step], digest_size=out_bytes, person=_H2).digest()
        for i in range(0, len(data), step)
    )
    return np.frombuffer(digest, dtype=f"S{out_bytes}")


def _spans(n: int) -> list[tuple[int, int]]:
    return [(i, min(n, i + ITEM_CHUNK)) for i in range(0, n, ITEM_CHUNK)]


def _each(workers: int, fn: Callable[[tuple[int, int]], _T], n: int) -> list[_T]:
    spans = _spans(n)
    if workers <= 1 or len(spans) <= 1:
        return [fn(span) for span in spans]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, spans))


# -- the server: the sender ----------------------------------------------------------------------


@dataclass
class SenderSession:
    """One match on the server's side; answers the client's frames after the HELLO."""

    p: Params
    items: list[bytes]
    workers: int = 1
    choices: list[int] = field(default_factory=list)
    seeds: list[bytes] = field(default_factory=list)
    matrix: np.ndarray | None = None
    blocks: int = 0
    key: bytes | None = None

    def answer(self, frame: Frame) -> Frame:
        """The answer to one frame of this session."""
        if frame.type is Type.OT_SEND:
            return self._ot(frame)
        if frame.type is Type.MATRIX:
            return self._matrix(frame)
        if frame.type is Type.PRF_KEY:
            if self.key is not None or len(frame.payload) != KEY:
                raise ProtocolError(f"PRF_KEY carries one {KEY}-byte key, once")
            self.key = frame.payload
            return Frame(Type.ACK, frame.session)
        if frame.type is Type.FETCH_SET:
            return Frame(Type.SET, frame.session, frame.seq, self._values(frame.seq))
        raise ProtocolError(f"an OPRF match does not take {frame.type.name} messages")

    def _ot(self, frame: Frame) -> Frame:
        if self.seeds:
            raise ProtocolError("the base oblivious transfers are done once")
        self.choices = random_bits(self.p.width)
        replies, self.seeds = ot_receive(frame.payload, self.choices)
        self.matrix = np.empty((self.p.width, self.p.column_bytes), dtype=np.uint8)
        return Frame(Type.OT_REPLY, frame.session, 0, replies)

    def _matrix(self, frame: Frame) -> Frame:
        p, block = self.p, self.blocks
        first = block * p.block_columns
        last = min(p.width, first + p.block_columns)
        if self.matrix is None or frame.seq != block or first >= p.width:
            raise ProtocolError(f"MATRIX {frame.seq} arrived out of order or after the last")
        if len(frame.payload) != (last - first) * p.column_bytes:
            raise ProtocolError(f"MATRIX {frame.seq} holds {len(frame.payload)} bytes")
        u = np.frombuffer(frame.payload, dtype=np.uint8).reshape(last - first, p.column_bytes)
        self.matrix[first:last] = extend_receive(
            self.seeds[first:last], self.choices[first:last], u
        )
        self.blocks += 1
        return Frame(Type.ACK, frame.session, frame.seq)

    def _values(self, seq: int) -> bytes:
        if (
            self.key is None
            or self.matrix is None
            or self.blocks * self.p.block_columns < self.p.width
        ):
            raise ProtocolError("the server's values are fetched after the matrix and the key")
        part = self.items[seq * SET_CHUNK : (seq + 1) * SET_CHUNK]
        if not part:
            return b""
        key, matrix, p = self.key, self.matrix, self.p

        def values(span: tuple[int, int]) -> bytes:
            hashed = h1(part[span[0] : span[1]])
            rows = gather(matrix, indices(key, hashed, 0, p.width, p.height_log))
            return h2(rows, p.out_bytes).tobytes()

        return b"".join(_each(self.workers, values, len(part)))


def open_session(count: int, items: list[bytes], workers: int) -> SenderSession:
    """The server's session for a client of ``count`` items; ``items`` already shuffled."""
    try:
        p = params(count, len(items))
    except ValueError as exc:
        raise ProtocolError(str(exc)) from exc
    return SenderSession(p, items, workers)


# -- the client: the receiver --------------------------------------------------------------------


class _Columns:
    """One block of the client's columns: ``A_i``, ``D_i``, and the items' bits of ``A``."""

    def __init__(
        self,
        p: Params,
        key: bytes,
        *,
        hashed: np.ndarray,
        rows: np.ndarray,
        first: int,
        seeds: Sequence[bytes],
    ) -> None:
        self.p, self.key, self.hashed, self.rows = p, key, hashed, rows
        self.first, self.last = first, first + len(seeds)
        self.a = prg_rows(seeds, p.column_bytes)
        self.d = np.ones((len(seeds), p.height), dtype=bool)
        self._offsets = np.arange(len(seeds), dtype=np.intp) * p.height

    def fill(self, span: tuple[int, int]) -> None:
        """For the items in ``span``: 0s in ``D`` where they fall, their bits of ``A`` kept."""
        start, end = span
        at = indices(self.key, self.hashed[start:end], self.first, self.last, self.p.height_log)
        self.d.reshape(-1)[at + self._offsets] = False
        self.rows[start:end, self.first // 8 : -(-self.last // 8)] = gather(self.a, at)


def client_values(
    p: Params, items: Sequence[bytes], send: Callable[[Frame], Frame], workers: int = 1
) -> np.ndarray:
    """Run the receiver's side up to its own outputs: ``H2`` values of ``items``, in order.

    ``send(frame)`` delivers OT_SEND, MATRIX and PRF_KEY frames and returns the answer frame.
    """
    ot = OtSender()
    reply: Frame = send(Frame(Type.OT_SEND, payload=ot.point))
    if len(reply.payload) != p.width * 32:
        raise ProtocolError(
            f"the server answered {len(reply.payload) // 32} base OTs, not {p.width}"
        )
    zeros, ones = ot.seeds(reply.payload)
    key = os.urandom(KEY)
    hashed = h1(items)
    n = len(items)
    rows = np.zeros((n, p.row_bytes), dtype=np.uint8)
    for block, first in enumerate(range(0, p.width, p.block_columns)):
        seeds = zeros[first : first + p.block_columns]
        columns = _Columns(p, key, hashed=hashed, rows=rows, first=first, seeds=seeds)
        _each(workers, columns.fill, n)
        d = np.packbits(columns.d, axis=1, bitorder="little")
        u = extend_send(columns.a, ones[first : columns.last], d)
        send(Frame(Type.MATRIX, seq=block, payload=u.tobytes()))
    send(Frame(Type.PRF_KEY, payload=key))
    return np.concatenate(
        [h2(rows[a:b], p.out_bytes) for a, b in _spans(n)] or [np.empty(0, f"S{p.out_bytes}")]
    )


def find(ours: np.ndarray, theirs: Iterable[bytes], out_bytes: int) -> list[int]:
    """Positions in ``ours`` of the values among the chunks ``theirs``."""
    order = np.argsort(ours, kind="stable")
    ordered = ours[order]
    found: list[np.ndarray] = []
    for chunk in theirs:
        if len(chunk) % out_bytes:
            raise ProtocolError(f"a SET chunk of {len(chunk)} bytes is not whole values")
        values = np.frombuffer(chunk, dtype=f"S{out_bytes}")
        if not len(ordered):
            continue
        at = np.minimum(np.searchsorted(ordered, values), len(ordered) - 1)
        found.append(order[at[ordered[at] == values]])
    return sorted(set(np.concatenate(found).tolist())) if found else []
