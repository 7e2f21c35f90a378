"""The OPRF protocol (Chase and Miao, CRYPTO 2020): correct intersections, its parts against
their definitions, and the client's messages looking random to the server."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import InvalidInput
from accord.pets.psi import Server, curve, intersect, match
from accord.pets.psi.choices import OPRF_FROM, Mode, Protocol, choose
from accord.pets.psi.oprf import client_values, gather, h1, indices
from accord.pets.psi.ot import OtSender, extend_receive, extend_send, ot_receive, prg_rows
from accord.pets.psi.params import params, width
from accord.pets.psi.wire import Frame, Type, decode, json_frame

pytestmark = pytest.mark.unit

OPRF = Protocol.OPRF


def aes_block(key: bytes, block: bytes) -> bytes:
    """One AES-128 block, alone (the oracle the vectorised code is checked against)."""
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - one block
    return encryptor.update(block)


def keystream(seed: bytes, size: int) -> bytes:
    """AES-128-CTR from counter 0, written out: AES_seed(0) ‖ AES_seed(1) ‖ …"""
    blocks = (aes_block(seed, j.to_bytes(16, "big")) for j in range(-(-size // 16)))
    return b"".join(blocks)[:size]


def bit(column: bytes, row: int) -> int:
    """Bit ``row`` of a packed column (little-endian within a byte)."""
    return (column[row // 8] >> (row % 8)) & 1


# -- intersections -------------------------------------------------------------------------------

ITEMS = st.lists(st.binary(min_size=0, max_size=6), max_size=40)


@settings(max_examples=25, deadline=None)
@given(ours=ITEMS, theirs=ITEMS)
def test_the_intersection_is_the_plain_set_intersection(ours: list[bytes], theirs: list[bytes]):
    result = intersect(ours, theirs, protocol=OPRF)
    expected = set(ours) & set(theirs)
    assert result.matched == expected
    assert result.size == len(expected)
    assert (result.ours, result.theirs) == (len(set(ours)), len(set(theirs)))


@settings(max_examples=10, deadline=None)
@given(shared=ITEMS, extra=ITEMS)
def test_items_shared_are_found_whatever_else_each_side_has(
    shared: list[bytes], extra: list[bytes]
):
    ours = shared + [b"ours:" + x for x in extra]
    theirs = [b"theirs:" + x for x in extra] + shared
    assert intersect(ours, theirs, protocol=OPRF).matched == set(shared)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ([], []),  # both empty
        ([], [b"a", b"b"]),  # ours empty
        ([b"a", b"b"], []),  # theirs empty
        ([b"a"], [b"a"]),  # one element, shared
        ([b"a"], [b"b"]),  # one element each, disjoint
        ([b"a"] * 50, [b"a"] * 7),  # all equal, with duplicates on both sides
        ([b"x%d" % i for i in range(300)], [b"y%d" % i for i in range(300)]),  # disjoint
        ([b"x%d" % i for i in range(300)], [b"x%d" % i for i in range(300)][::-1]),  # equal sets
        ([b"", b"\x00", b"\x00\x00"], [b"\x00", b""]),  # empty and zero-byte identifiers
    ],
)
def test_adversarial_sets(ours: list[bytes], theirs: list[bytes]):
    assert intersect(ours, theirs, protocol=OPRF).matched == set(ours) & set(theirs)


def test_a_larger_match_over_several_chunks_and_blocks_with_two_threads():
    ours = [b"email:p%d@example.org" % i for i in range(20_000)]
    theirs = [b"email:p%d@example.org" % i for i in range(15_000, 50_000)]
    with curve.Engine(2) as engine:
        result = intersect(ours, theirs, protocol=OPRF, engine=engine)
    assert result.matched == set(ours[15_000:])


# -- choosing the protocol ----------------------------------------------------------------------


def test_size_only_matching_is_refused_by_the_oprf_protocol_before_anything_is_sent():
    calls: list[bytes] = []

    class Recording:
        def call(self, data: bytes) -> bytes:
            calls.append(data)
            raise AssertionError("nothing may be sent")

    with pytest.raises(InvalidInput) as caught:
        match(Recording(), [b"a"], curve.Engine(1), mode=Mode.SIZE, protocol=OPRF)
    assert caught.value.exit_code == 2
    assert "ECDH" in caught.value.message
    assert calls == []


def test_a_server_refuses_an_oprf_hello_in_size_mode():
    server = Server(lambda _r, _m: [b"a"], curve.Engine(1))
    hello = {"mode": "size", "count": 1, "chunk": 8, "protocol": "oprf"}
    answer = decode(server.handle(json_frame(Type.HELLO, hello).encode()))
    assert answer.type is Type.ERROR


@pytest.mark.parametrize(
    ("mode", "count", "expected"),
    [
        (Mode.INTERSECTION, OPRF_FROM, Protocol.OPRF),  # from the threshold
        (Mode.INTERSECTION, OPRF_FROM - 1, Protocol.ECDH),  # below it
        (Mode.SIZE, 10 * OPRF_FROM, Protocol.ECDH),  # only ECDH hides which matched
    ],
)
def test_the_default_protocol(mode: Mode, count: int, expected: Protocol):
    assert choose(mode, count) is expected


def test_the_server_refuses_oprf_messages_out_of_order():
    server = Server(lambda _r, _m: [b"a", b"b"], curve.Engine(1))
    hello = {"mode": "intersection", "count": 2, "chunk": 8, "protocol": "oprf"}
    welcome = decode(server.handle(json_frame(Type.HELLO, hello).encode()))
    matrix = Frame(Type.MATRIX, welcome.session, 0, b"\x00" * 32)
    assert decode(server.handle(matrix.encode())).type is Type.ERROR
    fetch = Frame(Type.FETCH_SET, welcome.session, 0)
    answer = decode(server.handle(fetch.encode()))
    assert answer.type is Type.ERROR
    assert "after the matrix" in answer.json()["message"]


# -- parameters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("log_n", "w"),
    # Chase and Miao, CRYPTO 2020, Table 1: m = n, sigma = 40, kappa = 128.
    [(10, 591), (12, 597), (14, 603), (16, 609), (18, 615), (20, 621), (24, 633)],
)
def test_the_width_is_the_papers(log_n: int, w: int):
    n = 1 << log_n
    assert width(n, n, n) == w


def test_output_length_bounds_false_matches_by_two_to_the_minus_forty():
    p = params(1_000_000, 1_000_000)
    # n1 · n2 · 2^-l2 ≤ 2^-40 (the paper: l2 = sigma + log2 n1 + log2 n2).
    assert math.log2(1_000_000) * 2 - 8 * p.out_bytes <= -40
    assert p.height >= 1_000_000
    assert p.height & (p.height - 1) == 0


def test_parameters_refuse_a_set_too_large():
    with pytest.raises(ValueError, match="more than"):
        params(1 << 26, 10)


# -- known answers -------------------------------------------------------------------------------


def test_h1_is_blake2b_personalised():
    expected = hashlib.blake2b(b"email:a@b.c", digest_size=16, person=b"ACCORD-PSI-H1").digest()
    assert h1([b"email:a@b.c"]).tobytes() == expected


def test_the_prf_on_the_fips_197_vector():
    # FIPS-197 Appendix C.1: AES-128 of 00112233…ff under 000102…0f is 69c4e0d8 6a7b0430 ….
    key = bytes(range(16))
    hashed = np.frombuffer(bytes.fromhex("00112233445566778899aabbccddeeff"), np.uint8)[None, :]
    words = [0xD8E0C469, 0x30047B6A, 0x80B7CDD8, 0x5AC5B470]  # the ciphertext, little-endian
    assert indices(key, hashed, 0, 4, 32).tolist() == [words]
    assert indices(key, hashed, 0, 4, 20).tolist() == [[w & 0xFFFFF for w in words]]


def test_the_prf_against_its_definition_block_by_block():
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    items = [b"email:a@example.org", b"phone:+15551234567", b""]
    hashed = h1(items)
    first, last, height_log = 8, 27, 13
    got = indices(key, hashed, first, last, height_log)
    for row, z in enumerate(hashed):
        for column in range(first, last):
            j = column // 4
            block = bytes(a ^ b for a, b in zip(z.tobytes(), j.to_bytes(16, "big"), strict=True))
            word = aes_block(key, block)[4 * (column % 4) : 4 * (column % 4) + 4]
            expected = int.from_bytes(word, "little") & ((1 << height_log) - 1)
            assert got[row, column - first] == expected


def test_gather_reads_the_bit_each_index_names():
    rng = np.random.default_rng(5)
    matrix = rng.integers(0, 256, size=(11, 4), dtype=np.uint8)  # 11 columns of 32 bits
    at = rng.integers(0, 32, size=(3, 11), dtype=np.uint32)
    got = gather(matrix, at)
    for item in range(3):
        bits = [bit(matrix[c].tobytes(), int(at[item, c])) for c in range(11)]
        packed = sum(b << i for i, b in enumerate(bits)).to_bytes(2, "little")
        assert got[item].tobytes() == packed


def test_base_oblivious_transfers_give_the_chosen_seed_and_not_the_other():
    sender = OtSender()
    choices = [0, 1, 1, 0, 1, 0, 0, 1]
    replies, chosen = ot_receive(sender.point, choices)
    zeros, ones = sender.seeds(replies)
    for c, got, k0, k1 in zip(choices, chosen, zeros, ones, strict=True):
        assert got == (k1 if c else k0)
        assert got != (k0 if c else k1)


def test_a_base_ot_point_off_the_curve_is_refused():
    with pytest.raises(InvalidInput, match="point"):
        ot_receive(b"\x01" * 32, [0])


def test_ot_extension_on_a_hand_built_instance():
    # w = 3 columns of m = 16 rows; seeds and D chosen by hand.
    zeros = [bytes([i]) * 16 for i in (1, 2, 3)]
    ones = [bytes([i]) * 16 for i in (4, 5, 6)]
    d = np.array([[0xFF, 0xFF], [0x0F, 0xF0], [0x00, 0x01]], dtype=np.uint8)
    choices = [0, 1, 1]
    a = np.array([list(keystream(k, 2)) for k in zeros], dtype=np.uint8)
    assert (prg_rows(zeros, 2) == a).all()  # G is AES-CTR from counter 0
    u = extend_send(a, ones, d)
    for i in range(3):  # u_i = G(k0) ⊕ G(k1) ⊕ D_i, byte by byte
        expected = bytes(
            x ^ y ^ z
            for x, y, z in zip(keystream(zeros[i], 2), keystream(ones[i], 2), d[i], strict=True)
        )
        assert u[i].tobytes() == expected
    chosen = [zeros[0], ones[1], ones[2]]
    c = extend_receive(chosen, choices, u)
    # C_i = A_i when s_i = 0, A_i ⊕ D_i when s_i = 1 (Chase–Miao, Figure 3).
    assert c[0].tobytes() == a[0].tobytes()
    assert c[1].tobytes() == bytes(x ^ y for x, y in zip(a[1], d[1], strict=True))
    assert c[2].tobytes() == bytes(x ^ y for x, y in zip(a[2], d[2], strict=True))


# -- what the server sees ------------------------------------------------------------------------


def run_client(items: list[bytes], choices: list[int], theirs: int) -> list[Frame]:
    """The client's side against a server whose choice bits are fixed; the frames it sent."""
    p = params(len(items), theirs)
    sent: list[Frame] = []

    def send(frame: Frame) -> Frame:
        sent.append(frame)
        if frame.type is Type.OT_SEND:
            replies, _ = ot_receive(frame.payload, choices[: p.width])
            return Frame(Type.OT_REPLY, payload=replies)
        return Frame(Type.ACK)

    client_values(p, items, send)
    return sent


def matrix_bits(frames: list[Frame]) -> np.ndarray:
    """The bits of the columns the client sent, each byte's bits in row order."""
    payload = b"".join(f.payload for f in frames if f.type is Type.MATRIX)
    return np.unpackbits(np.frombuffer(payload, dtype=np.uint8), bitorder="little")


def test_statistical_the_clients_matrix_looks_uniform_and_independent_of_its_set():
    """A statistical check, not a proof: for a fixed choice of the server's bits, the columns
    the client sends pass frequency tests whether its set fills the matrix or is empty, and do
    not agree with the matrix D its set made more often than chance. Thresholds are six standard
    deviations: a correct implementation fails with probability below 10^-8."""
    n = 4_000
    full = [b"item%d" % i for i in range(n)]
    p = params(n, n)
    choices = [i % 2 for i in range(p.width)]  # the server's seed, fixed
    sent_full = matrix_bits(run_client(full, choices, n))
    sent_empty = matrix_bits(run_client([b"only"], choices, n))
    for bits in (sent_full, sent_empty):
        z = (int(bits.sum()) - len(bits) / 2) / math.sqrt(len(bits) / 4)
        assert abs(z) < 6, f"monobit z = {z:.1f}"
        counts = np.bincount(np.packbits(bits), minlength=256)
        expected = len(bits) / 8 / 256
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 255 + 6 * math.sqrt(2 * 255), f"byte chi-square {chi2:.0f}"
    # D for the full set, from the definitions: a 0 at v_i(x) in column i for each x.
    key = run_client(full, choices, n)  # a fresh run: its own PRF key and seeds
    prf_key = next(f.payload for f in key if f.type is Type.PRF_KEY)
    at = indices(prf_key, h1(full), 0, p.width, p.height_log)
    d = np.ones((p.width, p.height), dtype=np.uint8)
    d[np.arange(p.width)[None, :], at] = 0
    assert d.mean() < 0.7  # the set really does fill the matrix
    u = matrix_bits(key).reshape(p.width, p.height)
    agree = int((u == d).sum())
    z = (agree - d.size / 2) / math.sqrt(d.size / 4)
    assert abs(z) < 6, f"the columns agree with D: z = {z:.1f}"
