"""Consent-aware matching: only people Accord lets through enter the protocol; all is logged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.errors import InvalidInput
from accord.gateway import Refused
from accord.pets.psi import LocalTransport, Server, curve
from accord.pets.psi.choices import Kind, Mode, Protocol
from accord.pets.psi.consented import (
    FAILED_RULE,
    NOT_MATCH_ONLY_RULE,
    admit_through_accord,
    ask_for,
    feed,
    match_through_accord,
)
from accord.pets.psi.wire import Frame, MatchRefused, Type, decode
from accord.service import Accord, person_ref
from pets.psi_world import ADS, AUDIENCE, records, request, store

pytestmark = pytest.mark.integration


@pytest.fixture
def accord(tmp_path: Path) -> Iterator[Accord]:
    with store(tmp_path) as opened:
        yield opened


class NeverCalled:
    """A transport for matches that must not reach the other side."""

    def call(self, _data: bytes) -> bytes:
        raise AssertionError("a message was sent")


def reelix_server(accord: Accord) -> Server:
    """Reelix's side, answering Chirp: Reelix's Accord decides what it feeds in."""
    admit = admit_through_accord(accord, lambda: records("reelix"), "chirp", kind=Kind.EMAIL)
    return Server(admit, curve.Engine(1))


def last(accord: Accord, n: int) -> list[dict[str, object]]:
    return [leaf.entry() for leaf in sorted(accord.ledger.recent(n), key=lambda x: x.index)]


@pytest.mark.parametrize(
    ("party", "fed"),
    [
        ("chirp", {"c1", "c5", "c6"}),  # c2 GPC, c3 GDPR short, c4 no consent, x9 unknown
        ("reelix", {"m1", "m5", "m6"}),  # the same rules at Reelix
    ],
)
def test_only_allowed_people_are_fed_in_and_the_release_is_logged(
    accord: Accord, party: str, fed: set[str]
) -> None:
    chosen = feed(accord, request(party), records(party), kind=Kind.EMAIL, mode=Mode.INTERSECTION)
    owners = set().union(*chosen.owners.values())
    assert owners == fed
    assert chosen.people == len(fed)
    decided, released = last(accord, 2)
    assert decided["kind"] == "decision"
    assert decided["allowed"] is True
    assert released["kind"] == "release"
    assert released["granularity"] == "match-only"
    assert released["people"] == len(fed)
    assert released["fields"] == ["identifiers.email"]
    prefix = party[0] if party == "chirp" else "m"
    for i in range(1, 7):
        about = accord.ledger.entries_about(person_ref(party, f"{prefix}{i}"))
        releases = [n for n in about if accord.ledger.leaf(n).entry()["kind"] == "release"]
        assert bool(releases) == (f"{prefix}{i}" in fed)


@pytest.mark.parametrize("protocol", [Protocol.ECDH, Protocol.OPRF])
def test_match_through_accord_matches_only_people_allowed_on_both_sides(
    accord: Accord, protocol: Protocol
) -> None:
    server = reelix_server(accord)
    matched = match_through_accord(
        accord,
        request("chirp"),
        records("chirp"),
        LocalTransport(server),
        ask=ask_for(request("reelix")),
        kind=Kind.EMAIL,
        engine=curve.Engine(1),
        protocol=protocol,
    )
    # Alice (c1/m1) and Erin (c5/m5, the same Gmail mailbox) are fed in on both sides. Bob is
    # fed in at Reelix only (c2 opted out), Frank at Chirp only (m4 never consented), Carol on
    # neither side; a plain intersection of the two lists would also have matched them.
    assert matched.people == {"c1", "c5"}
    assert matched.result.size == 2
    assert matched.result.ours == 3
    assert matched.result.theirs == 3  # Alice, Erin and Bob (m6) at Reelix


def test_size_only_through_accord_says_how_many_and_not_who(accord: Accord) -> None:
    matched = match_through_accord(
        accord,
        request("chirp"),
        records("chirp"),
        LocalTransport(reelix_server(accord)),
        ask=ask_for(request("reelix")),
        kind=Kind.EMAIL,
        mode=Mode.SIZE,
        engine=curve.Engine(1),
    )
    assert matched.result.size == 2
    assert matched.people == frozenset()
    assert "how many" in str(last(accord, 1)[0]["reason"])


def test_a_refused_request_releases_nothing_and_is_logged(accord: Accord) -> None:
    # Under a purpose the clause does not cover: the policy refuses before anything is read.
    refused = request("chirp", purpose="marketing.advertising.first_party.targeted")
    with pytest.raises(Refused) as caught:
        match_through_accord(
            accord,
            refused,
            records("chirp"),
            NeverCalled(),
            ask=ask_for(request("reelix")),
            kind=Kind.EMAIL,
        )
    (entry,) = last(accord, 1)
    assert entry["allowed"] is False
    assert entry["people"] == 0
    assert entry["kind"] == "decision"
    assert caught.value.receipt.index == accord.ledger.head().size - 1


def test_a_clause_that_is_not_match_only_is_refused(accord: Accord) -> None:
    with pytest.raises(InvalidInput, match="only under a match-only clause"):
        match_through_accord(
            accord,
            request("chirp", clause="chirp-records"),
            records("chirp"),
            NeverCalled(),
            ask=ask_for(request("reelix")),
            kind=Kind.EMAIL,
        )
    (entry,) = last(accord, 1)
    assert entry["rules"] == [NOT_MATCH_ONLY_RULE]
    assert entry["allowed"] is False


def test_when_the_other_side_refuses_the_client_learns_nothing_and_both_log_it(
    accord: Accord,
) -> None:
    server = reelix_server(accord)
    wrong = ask_for(request("reelix", purpose="analytics.reporting"))
    with pytest.raises(MatchRefused, match=r"analytics\.reporting"):
        match_through_accord(
            accord,
            request("chirp"),
            records("chirp"),
            LocalTransport(server),
            ask=wrong,
            kind=Kind.EMAIL,
            engine=curve.Engine(1),
        )
    entries = last(accord, 4)
    # Chirp's decision and release, Reelix's refusal, Chirp's failure note.
    assert [e["kind"] for e in entries] == ["decision", "release", "decision", "decision"]
    assert entries[2]["allowed"] is False
    assert entries[2]["purpose"] == "analytics.reporting"
    assert entries[3]["rules"] == [FAILED_RULE]
    assert "the other side refused" in str(entries[3]["reason"])


def test_the_server_decides_for_the_party_that_asked(accord: Accord) -> None:
    # A third party cannot use Chirp's clause: Reelix's Accord decides for "acme", and refuses.
    admit = admit_through_accord(accord, lambda: records("reelix"), "acme", kind=Kind.EMAIL)
    with pytest.raises(MatchRefused):
        admit(ask_for(request("reelix")), Mode.INTERSECTION)
    assert last(accord, 1)[0]["recipient"] == "acme"
    assert last(accord, 1)[0]["agreement"] == AUDIENCE
    assert last(accord, 1)[0]["purpose"] == ADS


@pytest.mark.postgres
def test_matching_with_the_store_on_postgres(tmp_path: Path, pg_url: str) -> None:
    with store(tmp_path, pg_url) as on_postgres:
        matched = match_through_accord(
            on_postgres,
            request("chirp"),
            records("chirp"),
            LocalTransport(reelix_server(on_postgres)),
            ask=ask_for(request("reelix")),
            kind=Kind.EMAIL,
            engine=curve.Engine(1),
        )
        assert matched.people == {"c1", "c5"}
        assert matched.feed.people == 3
        assert last(on_postgres, 1)[0]["kind"] == "release"  # Reelix's side, logged last


class Recording:
    """Keeps every frame that crosses, both ways."""

    def __init__(self, server: Server) -> None:
        self.inner = LocalTransport(server)
        self.frames: list[Frame] = []

    def call(self, data: bytes) -> bytes:
        reply = self.inner.call(data)
        self.frames += [decode(data), decode(reply)]
        return reply


def test_people_kept_out_never_reach_the_wire(accord: Accord) -> None:
    recording = Recording(reelix_server(accord))
    match_through_accord(
        accord,
        request("chirp"),
        records("chirp"),
        recording,
        ask=ask_for(request("reelix")),
        kind=Kind.EMAIL,
        engine=curve.Engine(1),
    )

    def points(kind: Type) -> int:
        return sum(len(f.payload) for f in recording.frames if f.type is kind) // curve.POINT

    # Seven records at Chirp, six at Reelix: three people on each side may take part, and only
    # their three addresses are hashed and sent, by either side.
    assert recording.frames[0].json()["count"] == 3
    assert points(Type.BLINDED) == 3
    assert points(Type.SET) == 3
