"""Small signed, expiring values (HMAC-SHA256, RFC 2104) for cookies and hidden form fields."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs JSON values with a key, for ``max_age`` seconds; a tampered value does not verify."""

    def __init__(self, key: bytes, purpose: str) -> None:
        self._key = hmac.new(key, purpose.encode(), hashlib.sha256).digest()

    def sign(self, value: dict[str, Any], max_age: int) -> str:
        """``value`` with an expiry, encoded and signed."""
        body = _b64(json.dumps({"v": value, "exp": int(time.time()) + max_age}).encode())
        mac = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        return f"{body}.{mac}"

    def unsign(self, signed: str | None) -> dict[str, Any] | None:
        """The value, if ``signed`` verifies and has not expired; else None."""
        if not signed or signed.count(".") != 1:
            return None
        body, mac = signed.split(".")
        expected = _b64(
            hmac.new(self._key, body.encode(errors="surrogatepass"), hashlib.sha256).digest()
        )
        # As bytes: compare_digest refuses text outside ASCII, and a form may hold any.
        if not hmac.compare_digest(mac.encode(errors="surrogatepass"), expected.encode()):
            return None
        try:
            data = json.loads(_unb64(body))
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("exp", 0) < time.time():
            return None
        value = data.get("v")
        return value if isinstance(value, dict) else None
