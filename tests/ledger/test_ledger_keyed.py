"""The ledger's HMAC-SHA256 gives the standard library's bytes, whatever the key and message."""

from __future__ import annotations

import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.ledger.keyed import BLOCK, hmac_sha256

pytestmark = pytest.mark.unit


@given(key=st.binary(max_size=2 * BLOCK + 3), message=st.binary(max_size=300))
def test_hmac_sha256_is_the_standard_library_s(key: bytes, message: bytes) -> None:
    assert hmac_sha256(key, message) == hmac.digest(key, message, "sha256")


@pytest.mark.parametrize(
    "key",
    [
        b"",  # padded entirely
        b"k" * 32,  # a person's key, the size of every key the ledger makes
        b"k" * BLOCK,  # exactly one block: used as it is
        b"k" * (BLOCK + 1),  # longer than a block: hashed first
    ],
)
def test_hmac_sha256_at_the_block_s_edges(key: bytes) -> None:
    assert hmac_sha256(key, b"accord") == hmac.digest(key, b"accord", "sha256")
