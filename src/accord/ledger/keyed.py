"""HMAC-SHA256 (RFC 2104) as the ledger computes it for every leaf about a person.

Pure: standard library only. ``hmac.digest(key, message, "sha256")`` gives the same bytes; for a
key of at most one block (every key the ledger holds is 32 bytes) this computes them as the two
SHA-256 of the definition, in about half the time: the one-shot HMAC of OpenSSL 3 sets up a MAC
context for each call, and each leaf about people takes one for each of them (its subject tags,
its rows' seal).
"""

from __future__ import annotations

import hashlib
import hmac

BLOCK = 64
"""SHA-256's block size in bytes: HMAC pads its key to it."""

_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))
_sha256 = hashlib.sha256


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """``HMAC-SHA256(key, message)``: ``SHA-256((K ^ opad) || SHA-256((K ^ ipad) || message))``
    with ``K`` the key padded with zeros to a block (a longer key is hashed first, which
    :func:`hmac.digest` does)."""
    if len(key) > BLOCK:
        return hmac.digest(key, message, "sha256")
    padded = key.ljust(BLOCK, b"\x00")
    inner = _sha256(padded.translate(_INNER_PAD) + message).digest()
    return _sha256(padded.translate(_OUTER_PAD) + inner).digest()
