"""Private set intersection agrees with plain set intersection, and shows nothing else."""

from __future__ import annotations

import hashlib
import string

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.pets.psi import LocalTransport, Mode, Server, curve, identifiers, intersect, match
from accord.pets.psi.ids import Kind, encode, normalise
from accord.pets.psi.wire import HEADER_BYTES, Frame, ProtocolError, Type, decode, json_frame

pytestmark = pytest.mark.unit

DOMAINS = ("gmail.com", "googlemail.com", "example.org", "outlook.com", "münchen.de", "例え.jp")
LOCAL = st.text(string.ascii_lowercase + "éßüø中", min_size=1, max_size=6)


@st.composite
def emails(draw: st.DrawFn) -> str:
    """An address, written with random case, and dots and +tags where Gmail ignores them."""
    local, domain = draw(LOCAL), draw(st.sampled_from(DOMAINS))
    if domain in {"gmail.com", "googlemail.com"}:
        cut = draw(st.integers(0, len(local)))
        local = local[:cut] + "." + local[cut:] if 0 < cut < len(local) else local
        local += draw(st.sampled_from(("", "+news", "+a.b")))
    flips = draw(st.lists(st.booleans(), min_size=len(local), max_size=len(local)))
    local = "".join(c.upper() if f else c for c, f in zip(local, flips, strict=True))
    return f"{local}@{domain.upper() if draw(st.booleans()) else domain}"


REGIONS = ("US", "GB", "DE", "FR", "BR", "JP")
FORMATS = (
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.NATIONAL,
    phonenumbers.PhoneNumberFormat.RFC3966,
)


@st.composite
def phones(draw: st.DrawFn) -> tuple[str, str]:
    """A valid number of a region (its example, last digits varied), in one of several formats."""
    region = draw(st.sampled_from(REGIONS))
    example = phonenumbers.example_number(region)
    assert example is not None
    digits = str(example.national_number)
    tail = draw(st.integers(0, 99))
    number = phonenumbers.parse(f"+{example.country_code}{digits[:-2]}{tail:02d}")
    if not phonenumbers.is_valid_number(number):
        number = example
    return phonenumbers.format_number(number, draw(st.sampled_from(FORMATS))), region


def reference(ours: list[bytes], theirs: list[bytes]) -> set[bytes]:
    return set(ours) & set(theirs)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(emails(), max_size=12),
    st.lists(emails(), max_size=12),
    st.lists(emails(), max_size=6),
    st.sampled_from(Mode),
    st.integers(1, 5),
)
def test_email_match_is_the_plain_intersection(
    ours_only: list[str], theirs_only: list[str], both: list[str], mode: Mode, chunk: int
) -> None:
    # Duplicates on purpose: every shared address appears on both sides, and twice on ours.
    ours = identifiers([*ours_only, *both, *both], Kind.EMAIL)
    theirs = identifiers([*both, *theirs_only], Kind.EMAIL)
    result = intersect(ours, theirs, mode=mode, chunk=chunk)
    expected = reference(ours, theirs)
    assert result.size == len(expected)
    assert result.ours == len(set(ours))
    assert result.theirs == len(set(theirs))
    if mode is Mode.INTERSECTION:
        assert result.matched == expected
    else:
        assert result.matched == frozenset()


@settings(max_examples=25, deadline=None)
@given(
    st.lists(phones(), max_size=8), st.lists(phones(), max_size=8), st.lists(phones(), max_size=4)
)
def test_phone_match_in_several_formats_is_the_plain_intersection(
    ours_only: list[tuple[str, str]],
    theirs_only: list[tuple[str, str]],
    both: list[tuple[str, str]],
) -> None:
    def ids(written: list[tuple[str, str]]) -> list[bytes]:
        return list(
            dict.fromkeys(
                encode(Kind.PHONE, normalise(Kind.PHONE, v, region=r)) for v, r in written
            )
        )

    # The shared numbers are written differently on each side: E.164 on theirs.
    theirs_both = [
        (
            phonenumbers.format_number(
                phonenumbers.parse(v, r), phonenumbers.PhoneNumberFormat.E164
            ),
            r,
        )
        for v, r in both
    ]
    ours, theirs = ids([*ours_only, *both]), ids([*theirs_only, *theirs_both])
    result = intersect(ours, theirs, chunk=3)
    assert result.matched == reference(ours, theirs)
    assert set(ids(both)) <= result.matched


@pytest.mark.parametrize(
    ("ours", "theirs", "size"),
    [
        ([], [], 0),  # both empty
        (["a@x.org"], [], 0),  # theirs empty
        ([], ["a@x.org"], 0),  # ours empty
        (["a@x.org", "b@x.org"], ["c@x.org", "d@x.org"], 0),  # disjoint
        (["a@x.org", "b@x.org"], ["B@X.org", "a@x.org"], 2),  # equal, up to case
        (["a@x.org", "A@x.org", "a@X.ORG"], ["a@x.org"], 1),  # duplicates count once
    ],
)
def test_edge_cases(ours: list[str], theirs: list[str], size: int) -> None:
    for mode in Mode:
        result = intersect(
            identifiers(ours, Kind.EMAIL), identifiers(theirs, Kind.EMAIL), mode=mode
        )
        assert result.size == size


def test_chunks_over_every_core_give_the_same_answer() -> None:
    ours = identifiers([f"user{i}@example.org" for i in range(300)], Kind.EMAIL)
    theirs = identifiers([f"user{i}@example.org" for i in range(150, 400)], Kind.EMAIL)
    with curve.Engine(2) as engine:
        result = intersect(ours, theirs, engine=engine, chunk=64)
    assert result.matched == set(ours[150:])


# -- what crosses -------------------------------------------------------------------------------


class Recording:
    """A transport that keeps every message, both ways."""

    def __init__(self, server: Server) -> None:
        self.inner = LocalTransport(server)
        self.frames: list[bytes] = []

    def call(self, data: bytes) -> bytes:
        reply = self.inner.call(data)
        self.frames += [data, reply]
        return reply


RAW_EMAILS = [f"Person.{i}+promo@GMail.com" for i in range(40)] + [
    f"customer-{i}@Example.org" for i in range(40)
]
RAW_PHONES = [f"+1 415-555-{2600 + i:04d}" for i in range(40)]


def forms_of(raw: str, kind: Kind) -> list[bytes]:
    """Every plain form an identifier could leak in: raw, normalised, encoded, their hashes."""
    norm = normalise(kind, raw)
    plain = [raw.encode(), norm.encode(), encode(kind, norm)]
    forms = list(plain)
    for value in plain:
        for algorithm in ("md5", "sha1", "sha256", "sha512"):
            digest = hashlib.new(algorithm, value).digest()
            forms += [digest, digest.hex().encode(), digest.hex().upper().encode()]
    # Hashed onto the curve but not blinded is a plain hash too: anyone can compute it.
    point = curve.hash_to_edwards(encode(kind, norm))
    forms += [point, curve.to_montgomery([point])]
    return forms


@pytest.mark.parametrize("mode", list(Mode))
def test_no_message_holds_an_identifier_or_a_plain_hash_of_one(mode: Mode) -> None:
    ours = identifiers(RAW_EMAILS[:60], Kind.EMAIL) + identifiers(RAW_PHONES[:20], Kind.PHONE)
    theirs = identifiers(RAW_EMAILS[30:], Kind.EMAIL) + identifiers(RAW_PHONES[10:], Kind.PHONE)
    engine = curve.Engine(1)
    recording = Recording(Server(lambda _r, _m: theirs, engine))
    result = match(recording, ours, engine, mode=mode, chunk=16)
    assert result.size == 40  # 30 e-mails and 10 phones are shared
    assert result.exchanged == sum(map(len, recording.frames))
    wire = b"\n".join(recording.frames)
    leaks = [
        raw
        for kind, values in ((Kind.EMAIL, RAW_EMAILS), (Kind.PHONE, RAW_PHONES))
        for raw in values
        for form in forms_of(raw, kind)
        if form in wire
    ]
    assert leaks == []


def test_size_mode_returns_the_doubly_blinded_values_shuffled_and_nothing_per_item() -> None:
    ours = identifiers([f"u{i}@x.org" for i in range(64)], Kind.EMAIL)
    theirs = identifiers([f"u{i}@x.org" for i in range(0, 64, 2)], Kind.EMAIL)
    engine = curve.Engine(1)
    recording = Recording(Server(lambda _r, _m: theirs, engine))
    result = match(recording, ours, engine, mode=Mode.SIZE, chunk=16)
    assert (result.size, result.matched) == (32, frozenset())
    frames = [decode(f) for f in recording.frames]
    # Nothing is answered per chunk: BLINDED gets an ACK, never a DOUBLE.
    answers = [frames[i + 1].type for i, f in enumerate(frames) if f.type is Type.BLINDED]
    assert len(answers) == 4
    assert set(answers) == {Type.ACK}
    sent = b"".join(f.payload for f in frames if f.type is Type.BLINDED)
    back = b"".join(f.payload for f in frames if f.type is Type.DOUBLE)
    assert len(back) == len(sent)
    assert len(set(curve.split(back))) == 64  # every value came back, in one shuffled batch


def test_size_mode_returns_the_values_in_an_order_unrelated_to_ours() -> None:
    ours = identifiers([f"u{i}@x.org" for i in range(64)], Kind.EMAIL)
    server = Server(lambda _r, _m: [], curve.Engine(1))
    blinded = curve.blind_chunk(curve.new_key(), curve.hash_chunk(ours))
    hello = json_frame(Type.HELLO, {"mode": "size", "count": 64, "chunk": 64})
    session = decode(server.handle(hello.encode())).session
    ack = decode(server.handle(Frame(Type.BLINDED, session, 0, blinded).encode()))
    assert ack.type is Type.ACK
    double = decode(server.handle(Frame(Type.FETCH_DOUBLE, session, 0).encode()))
    # What the values would be in our order (the test reads the server's key to know).
    in_order = curve.split(curve.blind_chunk(server._sessions[session].key, blinded))
    returned = curve.split(double.payload)
    assert sorted(returned) == sorted(in_order)
    assert returned != in_order  # 1 chance in 64! of failing by luck


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"short", "shorter than a frame header"),
        (b"XXXX" + bytes(HEADER_BYTES - 4), "bad magic"),
        (Frame(Type.BLINDED, bytes(16), 0, bytes(32)).encode(), "no such session"),
        (Frame(Type.HELLO, payload=b"[1]").encode(), "not a JSON object"),
        (Frame(Type.HELLO, payload=b'{"mode": "all"}').encode(), "needs mode, count and chunk"),
        (Frame(Type.SET).encode(), "no such session"),
        (Frame(Type.HELLO, payload=b"{}").encode()[:-1], "says 2 bytes of payload but carries 1"),
    ],
)
def test_malformed_messages_are_answered_with_a_reason(frame: bytes, message: str) -> None:
    server = Server(lambda _r, _m: [], curve.Engine(1))
    reply = decode(server.handle(frame))
    assert reply.type is Type.ERROR
    assert message in reply.json()["message"]
    assert reply.json()["kind"] == "invalid"


def test_a_chunk_out_of_order_or_too_long_is_refused() -> None:
    server = Server(lambda _r, _m: [], curve.Engine(1))
    welcome = decode(
        server.handle(
            json_frame(Type.HELLO, {"mode": "intersection", "count": 2, "chunk": 1}).encode()
        )
    )
    point = curve.hash_chunk([b"email:a@x.org"])
    late = decode(server.handle(Frame(Type.BLINDED, welcome.session, 1, point).encode()))
    assert "out of order" in late.json()["message"]
    long = decode(server.handle(Frame(Type.BLINDED, welcome.session, 0, point * 2).encode()))
    assert "more than announced" in long.json()["message"]


def test_a_server_error_reaches_the_client_as_a_match_error() -> None:
    def refuse(_request: object, _mode: Mode) -> list[bytes]:
        raise ProtocolError("the request is missing its clause")

    engine = curve.Engine(1)
    with pytest.raises(ProtocolError, match="missing its clause"):
        match(LocalTransport(Server(refuse, engine)), [b"email:a@x.org"], engine)
