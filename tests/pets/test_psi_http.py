"""Private matching between two Accord instances over HTTP, on real sockets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from accord.gateway import Keyring
from accord.pets.psi import curve
from accord.pets.psi.choices import Kind, Mode, Protocol
from accord.pets.psi.consented import ask_for, match_through_accord
from accord.pets.psi.http import MEDIA_TYPE, PREFIX, HttpTransport, psi_app
from accord.pets.psi.wire import (
    Frame,
    MatchError,
    MatchRefused,
    MatchUnauthenticated,
    Type,
    decode,
)
from accord.service import Accord
from pets.psi_world import records, request, serving, store

pytestmark = pytest.mark.integration


@dataclass
class Party:
    name: str
    accord: Accord
    url: str
    token_for_other: str  # what the other party presents to this one


@contextmanager
def party(name: str, folder: Path, other: str) -> Iterator[Party]:
    """One party's Accord (its own store) serving private matches to ``other``."""
    with store(folder) as accord:
        keyring = Keyring()
        token = keyring.issue(other)
        app = psi_app(
            accord, keyring, lambda: records(name), kind=Kind.EMAIL, engine=curve.Engine(1)
        )
        with serving(app) as url:
            yield Party(name, accord, url, token)


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Party, Party]]:
    with (
        party("chirp", tmp_path_factory.mktemp("chirp"), "reelix") as chirp,
        party("reelix", tmp_path_factory.mktemp("reelix"), "chirp") as reelix,
    ):
        yield chirp, reelix


def run(  # type: ignore[no-untyped-def]
    me: Party,
    them: Party,
    mode: Mode = Mode.INTERSECTION,
    token: str | None = None,
    protocol: Protocol | None = None,
):
    transport = HttpTransport(them.url, me.name, token or them.token_for_other)
    try:
        return match_through_accord(
            me.accord,
            request(me.name),
            records(me.name),
            transport,
            ask=ask_for(request(them.name)),
            kind=Kind.EMAIL,
            mode=mode,
            engine=curve.Engine(1),
            protocol=protocol,
        )
    finally:
        transport.close()


def test_each_side_matches_against_the_other_over_http(two: tuple[Party, Party]) -> None:
    chirp, reelix = two
    assert run(chirp, reelix).people == {"c1", "c5"}  # Alice and Erin
    assert run(reelix, chirp).people == {"m1", "m5"}  # the same two, by Reelix's ids
    assert run(chirp, reelix, Mode.SIZE).result.size == 2


def test_the_oprf_protocol_over_http_matches_the_same_people(two: tuple[Party, Party]) -> None:
    chirp, reelix = two
    assert run(chirp, reelix, protocol=Protocol.OPRF).people == {"c1", "c5"}
    assert run(reelix, chirp, protocol=Protocol.OPRF).people == {"m1", "m5"}


def test_the_server_logs_its_own_release_in_its_own_ledger(two: tuple[Party, Party]) -> None:
    chirp, reelix = two
    before = reelix.accord.ledger.head().size
    matched = run(chirp, reelix)
    entries = [reelix.accord.ledger.leaf(i).entry() for i in range(before, before + 2)]
    assert [e["kind"] for e in entries] == ["decision", "release"]
    assert entries[1]["granularity"] == "match-only"
    assert entries[1]["provider"] == "reelix"
    assert entries[1]["recipient"] == "chirp"
    assert entries[1]["people"] == matched.result.theirs == 3
    assert matched.result.exchanged > 0


def test_bad_credentials_are_refused_with_401(two: tuple[Party, Party]) -> None:
    chirp, reelix = two
    with pytest.raises(MatchUnauthenticated, match="credentials"):
        run(chirp, reelix, token=reelix.token_for_other[::-1])
    response = httpx.post(f"{reelix.url}{PREFIX}/messages", content=Frame(Type.HELLO).encode())
    assert response.status_code == 401
    assert response.headers["content-type"] == MEDIA_TYPE
    assert decode(response.content).type is Type.ERROR


def test_a_refused_match_is_403_with_the_reason(two: tuple[Party, Party]) -> None:
    chirp, reelix = two
    transport = HttpTransport(reelix.url, "chirp", reelix.token_for_other)
    try:
        with pytest.raises(MatchRefused):
            match_through_accord(
                chirp.accord,
                request("chirp"),
                records("chirp"),
                transport,
                ask=ask_for(request("reelix", clause="no-such-clause")),
                kind=Kind.EMAIL,
                engine=curve.Engine(1),
            )
    finally:
        transport.close()
    headers = {"Accord-Party": "chirp", "Authorization": f"Bearer {reelix.token_for_other}"}

    def post(ask: dict[str, object]) -> httpx.Response:
        body = {"mode": "size", "count": 1, "chunk": 1, "request": ask}
        hello = Frame(Type.HELLO, payload=json.dumps(body).encode())
        return httpx.post(f"{reelix.url}{PREFIX}/messages", content=hello.encode(), headers=headers)

    refused = post(ask_for(request("reelix", clause="no-such-clause")))
    assert refused.status_code == 403
    assert decode(refused.content).json()["kind"] == "refused"
    malformed = post({})
    assert malformed.status_code == 400
    assert "categories" in decode(malformed.content).json()["message"]


def test_a_url_that_is_not_an_accord_is_a_clear_error(two: tuple[Party, Party]) -> None:
    reelix = two[1]
    transport = HttpTransport(reelix.url + "/nothing-here", "chirp", reelix.token_for_other)
    with pytest.raises(MatchError, match="without a protocol message"):
        transport.call(Frame(Type.HELLO).encode())
    transport.close()
