"""Oblivious transfer: base OTs on edwards25519, stretched to long strings by a PRG.

**Base OTs** are Chou and Orlandi's "simplest OT" (LATINCRYPT 2015), secure against parties
that follow the protocol, on edwards25519 (the curve of :mod:`~accord.pets.psi.curve`, through
libsodium), batched under one sender key. The OT sender has no choice and learns two seeds per
transfer; the receiver, with choice bit ``c``, learns the seed it chose and nothing of the other::

    sender                                   receiver (bits c_1 … c_w)
    a random; A = aG             ──▶
                                 ◀──         b_i random; B_i = b_iG + c_i·A
    k_i^0 = H(i, A, B_i, aB_i)                k_i^{c_i} = H(i, A, B_i, b_iA)
    k_i^1 = H(i, A, B_i, a(B_i - A))

``b_iA = ab_iG`` is ``aB_i`` when ``c_i = 0`` and ``a(B_i - A)`` when ``c_i = 1``; the other seed
needs ``a·b_iG ± a²G``, a computational Diffie–Hellman problem. ``B_i`` is uniform whatever
``c_i``, so the sender learns nothing of the choices. ``H`` is SHA-256 under a domain tag, cut to
kappa = 128 bits.

**Extension** to ``m``-bit strings (the step of Chase and Miao's protocol, after Ishai, Kilian,
Nissim and Petrank, CRYPTO 2003): the OT sender, who holds ``D_i``, sends
``u_i = G(k_i^0) ⊕ G(k_i^1) ⊕ D_i``; the receiver takes ``C_i = G(k_i^{c_i}) ⊕ c_i·u_i``, which
is ``A_i = G(k_i^0)`` when ``c_i = 0`` and ``A_i ⊕ D_i`` when ``c_i = 1``. ``G`` is AES-128 in
counter mode keyed by the seed, from a zero counter (:func:`prg`).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from nacl import bindings as sodium

from accord.errors import InvalidInput

POINT = 32
SEED = 16
_TAG = b"ACCORD-PSI-OT-V01"
_ZERO_IV = bytes(16)


def _scalar() -> bytes:
    """A uniform scalar modulo the group order (64 random bytes reduced)."""
    return sodium.crypto_core_ed25519_scalar_reduce(secrets.token_bytes(64))


def seed_of(index: int, a_point: bytes, b_point: bytes, shared: bytes) -> bytes:
    """``H(i, A, B_i, shared)``: a transfer's seed (SHA-256 under a tag, 16 bytes)."""
    data = _TAG + index.to_bytes(4, "big") + a_point + b_point + shared
    return hashlib.sha256(data).digest()[:SEED]


def _point(data: bytes, what: str) -> bytes:
    if len(data) != POINT or not sodium.crypto_core_ed25519_is_valid_point(data):
        raise InvalidInput(f"{what} is not a point of edwards25519's prime-order subgroup")
    return data


class OtSender:
    """The base-OT sender: one key ``a``; two seeds per transfer."""

    def __init__(self) -> None:
        self._a = _scalar()
        self.point = sodium.crypto_scalarmult_ed25519_base_noclamp(self._a)

    def seeds(self, replies: bytes) -> tuple[list[bytes], list[bytes]]:
        """``(k^0, k^1)`` for each ``B_i`` of the receiver's reply (32 bytes each)."""
        if len(replies) % POINT:
            raise InvalidInput("the base-OT reply is not a whole number of points")
        zeros: list[bytes] = []
        ones: list[bytes] = []
        for i in range(len(replies) // POINT):
            b_point = _point(replies[i * POINT : (i + 1) * POINT], f"base-OT reply {i}")
            zeros.append(seed_of(i, self.point, b_point, self._times(b_point)))
            minus = sodium.crypto_core_ed25519_sub(b_point, self.point)
            ones.append(seed_of(i, self.point, b_point, self._times(minus)))
        return zeros, ones

    def _times(self, point: bytes) -> bytes:
        return sodium.crypto_scalarmult_ed25519_noclamp(self._a, point)


def ot_receive(a_point: bytes, choices: Sequence[int]) -> tuple[bytes, list[bytes]]:
    """The base-OT receiver: the reply ``B_1 … B_w`` and the chosen seeds ``k_i^{c_i}``."""
    a_point = _point(a_point, "the base-OT sender's point")
    replies: list[bytes] = []
    seeds: list[bytes] = []
    for i, choice in enumerate(choices):
        b = _scalar()
        b_point = sodium.crypto_scalarmult_ed25519_base_noclamp(b)
        if choice:
            b_point = sodium.crypto_core_ed25519_add(b_point, a_point)
        replies.append(b_point)
        shared = sodium.crypto_scalarmult_ed25519_noclamp(b, a_point)
        seeds.append(seed_of(i, a_point, b_point, shared))
    return b"".join(replies), seeds


def prg(seed: bytes, size: int) -> bytes:
    """``G(seed)``: ``size`` bytes of AES-128-CTR keystream under ``seed`` from counter 0."""
    encryptor = Cipher(algorithms.AES(seed), modes.CTR(_ZERO_IV)).encryptor()
    return encryptor.update(bytes(size))


def prg_rows(seeds: Sequence[bytes], size: int) -> np.ndarray:
    """``G(seed)`` for each seed, as the rows of a ``len(seeds) × size`` byte matrix."""
    out = np.empty((len(seeds), size), dtype=np.uint8)
    for row, seed in enumerate(seeds):
        out[row] = np.frombuffer(prg(seed, size), dtype=np.uint8)
    return out


def extend_send(a: np.ndarray, ones: Sequence[bytes], columns: np.ndarray) -> np.ndarray:
    """The OT sender's extension: ``u_i = A_i ⊕ G(k_i^1) ⊕ D_i``, where ``A_i = G(k_i^0)``
    (:func:`prg_rows` of the seeds ``k_i^0``); ``a``, ``columns`` (the ``D_i``) and the result
    are rows of packed bytes."""
    u: np.ndarray = np.bitwise_xor(a, prg_rows(ones, columns.shape[1]))
    u ^= columns
    return u


def extend_receive(seeds: Sequence[bytes], choices: Sequence[int], u: np.ndarray) -> np.ndarray:
    """The OT receiver's extension: ``C_i = G(k_i^{c_i}) ⊕ c_i·u_i`` (rows of packed bytes)."""
    mask = np.array(choices, dtype=np.uint8)[:, None] * np.uint8(0xFF)
    c: np.ndarray = np.bitwise_xor(prg_rows(seeds, u.shape[1]), u & mask)
    return c


def random_bits(count: int) -> list[int]:
    """``count`` uniform bits from the operating system's generator."""
    return [secrets.randbits(1) for _ in range(count)]
