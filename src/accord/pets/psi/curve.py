"""The group private matching computes in: Curve25519 (RFC 7748), by libsodium through PyNaCl.

**Hashing onto the curve** follows the random-oracle construction of RFC 9380 (§3,
``hash_to_curve``): ``expand_message_xmd`` with SHA-512 (§5.3.1) under the domain-separation
tag :data:`DST` gives two uniform 32-byte strings; libsodium's Elligator 2 map
(``crypto_core_ed25519_from_uniform``; Bernstein, Hamburg, Krasnova, Lange 2013; it also clears
the cofactor) maps each to a point of the prime-order subgroup of edwards25519; the two points
are added (``crypto_core_ed25519_add``). The sum is carried to Curve25519 by the birational map
of RFC 7748 §4.1, ``u = (1 + y) / (1 - y)`` (the one field division done here, for a whole chunk
at once by Montgomery's trick). The field elements are 255-bit strings reduced by libsodium
rather than the suite's 48-byte reductions, so the points differ from RFC 9380's test vectors;
the construction (two independent maps and a sum) is the one that makes the hash behave as a
random oracle.

**Blinding** is X25519 (``crypto_scalarmult``): ``blind(k, u)`` is the u-coordinate of
``[clamp(k)]P``. Scalar multiplication commutes, ``blind(a, blind(b, P)) = blind(b, blind(a, P))``,
which is all Diffie–Hellman matching needs; clamping multiplies by the cofactor, so every blinded
value lies in the prime-order subgroup. Curve25519 gives about 128 bits of security.

Chunks of points travel as one ``bytes`` of 32-byte u-coordinates. :class:`Engine` spreads chunks
over a pool of processes (libsodium's calls through PyNaCl hold the interpreter lock, so threads
do not run them in parallel), keeping a bounded number in flight and the results in order.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from functools import partial
from types import TracebackType
from typing import TypeVar

from nacl import bindings as sodium

from accord.errors import InvalidInput

POINT = 32
"""Bytes in one point (a Curve25519 u-coordinate)."""

DST = b"ACCORD-PSI-V01-CS01-with-curve25519_XMD:SHA-512_ELL2_RO_"
"""The domain-separation tag of the hash onto the curve (RFC 9380 §3.1)."""

_P = 2**255 - 19
_Y_MASK = (1 << 255) - 1
_DST_PRIME = DST + bytes([len(DST)])
_XMD_HEAD = hashlib.sha512(bytes(128))  # Z_pad: one SHA-512 block of zeros
_XMD_TAIL = (64).to_bytes(2, "big") + b"\x00" + _DST_PRIME

_In = TypeVar("_In")


def expand_message_xmd(message: bytes) -> bytes:
    """64 uniform bytes from ``message`` under :data:`DST` (RFC 9380 §5.3.1, SHA-512, one block)."""
    h = _XMD_HEAD.copy()
    h.update(message)
    h.update(_XMD_TAIL)
    b0 = h.digest()
    return hashlib.sha512(b0 + b"\x01" + _DST_PRIME).digest()


def hash_to_edwards(message: bytes) -> bytes:
    """``message`` hashed onto the prime-order subgroup of edwards25519 (encoded point)."""
    uniform = expand_message_xmd(message)
    return sodium.crypto_core_ed25519_add(
        sodium.crypto_core_ed25519_from_uniform(uniform[:32]),
        sodium.crypto_core_ed25519_from_uniform(uniform[32:]),
    )


def to_montgomery(points: Sequence[bytes]) -> bytes:
    """The Curve25519 u-coordinates of edwards25519 points (RFC 7748 §4.1), as one chunk."""
    ys = [int.from_bytes(p, "little") & _Y_MASK for p in points]
    # Montgomery's trick: one inversion for the whole chunk.
    prefix = [1] * (len(ys) + 1)
    for i, y in enumerate(ys):
        prefix[i + 1] = prefix[i] * (1 - y) % _P
    inverse = pow(prefix[-1], -1, _P) if ys else 1
    out = [b""] * len(ys)
    for i in range(len(ys) - 1, -1, -1):
        y = ys[i]
        out[i] = ((1 + y) * inverse * prefix[i] % _P).to_bytes(POINT, "little")
        inverse = inverse * (1 - y) % _P
    return b"".join(out)


def hash_chunk(messages: Sequence[bytes]) -> bytes:
    """Each message hashed onto Curve25519; one chunk of u-coordinates, in order."""
    return to_montgomery([hash_to_edwards(m) for m in messages])


def new_key() -> bytes:
    """A fresh secret blinding key (32 random bytes; X25519 clamps it)."""
    return os.urandom(POINT)


def split(chunk: bytes) -> list[bytes]:
    """The points of a chunk; refuses a chunk whose length is not a whole number of points."""
    if len(chunk) % POINT:
        raise InvalidInput(f"a chunk of points is {len(chunk)} bytes, not a multiple of {POINT}")
    return [chunk[i : i + POINT] for i in range(0, len(chunk), POINT)]


def blind_chunk(key: bytes, chunk: bytes) -> bytes:
    """Every point of ``chunk`` multiplied by ``key`` (X25519), in order."""
    try:
        return b"".join(sodium.crypto_scalarmult(key, p) for p in split(chunk))
    except RuntimeError as exc:  # libsodium refuses points of small order
        raise InvalidInput("a chunk holds a point of small order, which no hash yields") from exc


class Engine:
    """Runs chunk functions on every core, results in order, a bounded number of chunks in flight.

    With one worker (or ``workers=1``) it runs inline, in this process. Workers start from a fork
    server by default, which is safe in a process that runs threads (a web server); ``fork``
    makes them this process's children (what a benchmark measuring their resources wants).
    """

    def __init__(self, workers: int | None = None, *, start_method: str = "forkserver") -> None:
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self.start_method = start_method
        self._pool: Executor | None = None

    def _executor(self) -> Executor:
        if self._pool is None:
            context = multiprocessing.get_context(self.start_method)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
        return self._pool

    def map(self, fn: Callable[[_In], bytes], items: Iterable[_In]) -> Iterator[bytes]:
        """``fn`` over ``items``, yielded in order, with at most ``2 × workers`` in flight."""
        if self.workers == 1:
            yield from map(fn, items)
            return
        pool = self._executor()
        pending: deque[Future[bytes]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= 2 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

    def hash(self, chunks: Iterable[Sequence[bytes]]) -> Iterator[bytes]:
        """Chunks of messages hashed onto the curve."""
        return self.map(hash_chunk, chunks)

    def blind(self, key: bytes, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Chunks of points blinded by ``key``."""
        return self.map(partial(blind_chunk, key), chunks)

    def close(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
