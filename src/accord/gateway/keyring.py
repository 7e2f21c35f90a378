"""Party credentials: a secret token per party, kept only as its SHA-256 and compared in constant
time. (OAuth clients come later; the gateway asks only whether a token is the requester's.)"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping


def hash_token(token: str) -> bytes:
    """The SHA-256 of a party's secret token (what the keyring keeps instead of the token)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


_NOBODY = hash_token(secrets.token_urlsafe(32))


class Keyring:
    """Each party's credential: the SHA-256 of its secret token, never the token itself."""

    def __init__(self, hashes: Mapping[str, bytes] | None = None) -> None:
        self._hashes: dict[str, bytes] = dict(hashes or {})

    def issue(self, party: str) -> str:
        """A new secret token for ``party`` (replacing any earlier one); shown once, kept hashed."""
        token = secrets.token_urlsafe(32)
        self._hashes[party] = hash_token(token)
        return token

    def revoke(self, party: str) -> None:
        """Forget ``party``'s credential."""
        self._hashes.pop(party, None)

    def authenticate(self, party: str, token: str) -> bool:
        """Whether ``token`` is ``party``'s, compared in constant time whether or not it exists."""
        expected = self._hashes.get(party, _NOBODY)
        return hmac.compare_digest(expected, hash_token(token)) and party in self._hashes
