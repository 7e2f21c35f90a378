"""What an ad request is judged on is what the store holds at that request: an opt-out, its
withdrawal, a profile or an audience written by another process counts at the very next request
of a server that has already served the person (nothing the store holds is kept between groups;
only what is built from it, and only while it is the same)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from accord.ads.model import (
    Advertiser,
    Audience,
    Bid,
    BidStrategy,
    Campaign,
    Creative,
    Schedule,
    Targeting,
)
from accord.ads.serving import AdServer
from accord.ads.store import AdsStore
from accord.consent import Person
from accord.errors import NotFound
from accord.service import Accord

pytestmark = pytest.mark.integration

AT = datetime(2026, 3, 2, 12, tzinfo=UTC)
PEOPLE = ["c0", "c1", "c2"]
SEEN = "reelix-viewers"
Store = tuple[str, Path]
"""A store's URL and its data folder."""


def _world(accord: Accord) -> None:
    """Chirp's people; Reelix's audience of them (partner data) with a campaign bidding high on
    it; Chirp's own campaign, bidding low, for everyone; interests targeted by a third."""
    accord.add_party("chirp", "Chirp")
    accord.add_party("reelix", "Reelix")
    accord.add_people([Person(p, "chirp", "US-CA") for p in PEOPLE])
    store = AdsStore(accord.engine, "chirp")
    store.set_profiles((p, "25-34", frozenset({"film"})) for p in PEOPLE)
    store.add_advertiser(Advertiser("reelix", "Reelix", "chirp", party="reelix"))
    store.add_advertiser(Advertiser("northwind", "Northwind", "chirp"))
    store.add_audience(
        Audience(SEEN, "reelix", "Reelix viewers", provider="reelix"),
        [(p, "m" + p[1:]) for p in PEOPLE],
    )
    for name, advertiser, bid, targeting in (
        ("partner", "reelix", 90_000, Targeting(audiences=frozenset({SEEN}))),
        ("film", "northwind", 50_000, Targeting(interests=frozenset({"film"}))),
        ("own", "northwind", 10_000, Targeting()),
    ):
        store.add_campaign(
            Campaign(
                id=0,
                advertiser=advertiser,
                name=name,
                daily_budget=10**10,
                schedule=Schedule(AT - timedelta(days=1)),
                bid=Bid(BidStrategy.CPM, bid * 1_000),
                creatives=(Creative(name, name, "", "https://example.com/"),),
                targeting=targeting,
                frequency_cap=1_000,
            )
        )


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[Store, AdServer]]:
    """A server of the world on each backend in turn (SQLite, PostgreSQL), and where its store
    is, for other processes to open."""
    where = (db_url, tmp_path / "accord")
    with Accord.open(*where) as accord:
        _world(accord)
        server = AdServer(AdsStore(accord.engine, "chirp"))
        server.market.pacer.rate[:] = 1.0  # no throttling: every campaign in every auction
        yield where, server


def _names(server: AdServer, person: str, at: datetime) -> list[str]:
    """The campaigns of a three-slot request's ads, in slot order."""
    return [p.campaign.name for p in server.serve(person, 3, at=at)]


def _elsewhere(where: Store, code: str) -> None:
    """``code`` run by another process on the same store (``accord`` opened on it)."""
    program = (
        "import sys\n"
        "from datetime import datetime, UTC\n"
        "from accord.ads.store import AdsStore\n"
        "from accord.consent import OptOut, OptOutKind, SignalSource\n"
        "from pathlib import Path\n"
        "from accord.service import Accord\n"
        "with Accord.open(sys.argv[1], Path(sys.argv[2])) as accord:\n"
        + "".join(f"    {line}\n" for line in code.strip().splitlines())
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", program, where[0], str(where[1])],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _opt_out(controller: str, person: str, at: datetime) -> str:
    return (
        f"accord.opt_out(OptOut({person!r}, {controller!r}, OptOutKind.SALE_SHARING, "
        f"SignalSource.GPC, datetime.fromisoformat({at.isoformat()!r})))"
    )


def test_an_opt_out_written_by_another_process_counts_at_the_next_request(
    served: tuple[Store, AdServer],
) -> None:
    where, server = served
    assert _names(server, "c0", AT) == ["partner", "film", "own"]
    assert _names(server, "c0", AT + timedelta(seconds=1)) == ["partner", "film", "own"]
    _elsewhere(where, _opt_out("chirp", "c0", AT + timedelta(seconds=2)))
    # The very next request: no ad targeted with partner data.
    assert _names(server, "c0", AT + timedelta(seconds=3)) == ["film", "own"]
    # Nobody else's requests changed.
    assert _names(server, "c1", AT + timedelta(seconds=3)) == ["partner", "film", "own"]
    # Withdrawn by another process: the partner's ad is back at the next request.
    _elsewhere(
        where,
        "accord.opt_in('chirp', 'c0', at=datetime.fromisoformat("
        f"{(AT + timedelta(seconds=4)).isoformat()!r}))",
    )
    assert _names(server, "c0", AT + timedelta(seconds=5)) == ["partner", "film", "own"]


def test_an_opt_out_at_the_audiences_provider_counts_at_the_next_request(
    served: tuple[Store, AdServer],
) -> None:
    where, server = served
    assert _names(server, "c1", AT) == ["partner", "film", "own"]
    # Reelix records the opt-out for its own id of the person (m1).
    _elsewhere(where, _opt_out("reelix", "m1", AT + timedelta(seconds=1)))
    assert _names(server, "c1", AT + timedelta(seconds=2)) == ["film", "own"]
    assert _names(server, "c2", AT + timedelta(seconds=2)) == ["partner", "film", "own"]


def test_an_opt_out_counts_from_its_instant_in_one_group(served: tuple[Store, AdServer]) -> None:
    where, server = served
    _elsewhere(where, _opt_out("chirp", "c2", AT + timedelta(seconds=10)))
    # One group: the same person before and after the opt-out's instant, and someone else.
    found = server.serve_many(
        [
            ("c2", 3, AT + timedelta(seconds=9), False),
            ("c2", 3, AT + timedelta(seconds=10), False),
            ("c1", 3, AT + timedelta(seconds=10), False),
            ("c1", 3, AT + timedelta(seconds=11), True),  # a Sec-GPC signal with the request
        ]
    )
    names = [[p.campaign.name for p in f] for f in found if not isinstance(f, Exception)]
    assert names == [
        ["partner", "film", "own"],
        ["film", "own"],
        ["partner", "film", "own"],
        ["film", "own"],
    ]


def test_a_profile_or_an_audience_changed_by_another_process_counts_at_the_next_request(
    served: tuple[Store, AdServer],
) -> None:
    where, server = served
    assert _names(server, "c0", AT) == ["partner", "film", "own"]
    # The person's profile now says they are a minor: no ad based on profiling.
    _elsewhere(
        where,
        "AdsStore(accord.engine, 'chirp').set_profiles("
        "[('c0', '13-17', frozenset({'film'})), ('c1', '25-34', frozenset()), "
        "('c2', '25-34', frozenset({'film'}))])",
    )
    assert _names(server, "c0", AT + timedelta(seconds=1)) == ["own"]
    # Without the interest: not the interest's campaign.
    assert _names(server, "c1", AT + timedelta(seconds=1)) == ["partner", "own"]
    # The audience rebuilt without c2: not the audience's campaign.
    _elsewhere(
        where,
        "from accord.ads.model import Audience\n"
        "AdsStore(accord.engine, 'chirp').replace_audience_members("
        f"Audience({SEEN!r}, 'reelix', 'Reelix viewers', provider='reelix'), "
        "[('c1', 'm1')])",
    )
    assert _names(server, "c2", AT + timedelta(seconds=2)) == ["film", "own"]
    # No profile at all (the profiles replaced without c2's): refused, as a person unknown.
    _elsewhere(
        where,
        "AdsStore(accord.engine, 'chirp').set_profiles([('c0', '25-34', frozenset())])",
    )
    with pytest.raises(NotFound, match="no ad profile"):
        server.serve("c2", 1, at=AT + timedelta(seconds=3))
