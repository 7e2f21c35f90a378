"""The group: hashing onto Curve25519 and blinding, checked against libsodium's own conversions."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl import bindings as sodium

from accord.errors import InvalidInput
from accord.pets.psi import curve

pytestmark = pytest.mark.unit

MESSAGES = st.lists(st.binary(max_size=40), min_size=1, max_size=8)


@settings(max_examples=30, deadline=None)
@given(MESSAGES)
def test_the_birational_map_agrees_with_libsodium(messages: list[bytes]) -> None:
    points = [curve.hash_to_edwards(m) for m in messages]
    expected = b"".join(sodium.crypto_sign_ed25519_pk_to_curve25519(p) for p in points)
    assert curve.to_montgomery(points) == expected


@settings(max_examples=30, deadline=None)
@given(MESSAGES)
def test_hashed_points_are_in_the_prime_order_subgroup(messages: list[bytes]) -> None:
    for point in map(curve.hash_to_edwards, messages):
        assert sodium.crypto_core_ed25519_is_valid_point(point)  # on the curve, main subgroup


@settings(max_examples=20, deadline=None)
@given(MESSAGES)
def test_blinding_commutes(messages: list[bytes]) -> None:
    a, b = curve.new_key(), curve.new_key()
    points = curve.hash_chunk(messages)
    assert curve.blind_chunk(a, curve.blind_chunk(b, points)) == curve.blind_chunk(
        b, curve.blind_chunk(a, points)
    )


def test_expand_message_follows_rfc_9380_for_one_block() -> None:
    # RFC 9380 §5.3.1 written out for SHA-512 and 64 bytes (ell = 1).
    dst_prime = curve.DST + bytes([len(curve.DST)])
    b0 = hashlib.sha512(bytes(128) + b"abc" + b"\x00\x40\x00" + dst_prime).digest()
    b1 = hashlib.sha512(b0 + b"\x01" + dst_prime).digest()
    assert curve.expand_message_xmd(b"abc") == b1


def test_hashing_is_deterministic_and_separates_messages() -> None:
    assert curve.hash_chunk([b"email:a@x.org"]) == curve.hash_chunk([b"email:a@x.org"])
    assert curve.hash_chunk([b"email:a@x.org"]) != curve.hash_chunk([b"phone:a@x.org"])


def test_a_point_of_small_order_is_refused() -> None:
    with pytest.raises(InvalidInput, match="small order"):
        curve.blind_chunk(curve.new_key(), bytes(32))  # u = 0


def test_a_chunk_of_partial_points_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not a multiple of 32"):
        curve.split(bytes(33))
