"""Serving ad requests in groups: what arrives while a group is served is served next, together,
and gets exactly what serving the requests one by one in the same order gives."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sqlalchemy import func, select

from accord.ads import serving
from accord.ads import tables as ads_t
from accord.ads.market import Placement
from accord.ads.model import Advertiser, Bid, BidStrategy, Campaign, Creative, Schedule
from accord.ads.serving import AdServer
from accord.ads.store import AdsStore
from accord.consent import Person
from accord.errors import NotFound
from accord.service import Accord

pytestmark = pytest.mark.integration

AT = datetime(2026, 3, 2, 12, tzinfo=UTC)
PEOPLE = [f"c{i:07d}" for i in range(6)]


def platform(accord: Accord) -> AdsStore:
    """Chirp's people and campaigns with a frequency cap of one and a budget of a few
    impressions: caps are reached and a budget spent out within one group."""
    accord.add_party("chirp", "Chirp")
    accord.add_people([Person(p, "chirp", "US-CA") for p in PEOPLE])
    store = AdsStore(accord.engine, "chirp")
    store.add_advertiser(Advertiser("northwind", "Northwind", "chirp"))
    store.set_profiles((p, "25-34", frozenset({"fitness"})) for p in PEOPLE)
    for n, (bid, daily) in enumerate([(9_000, 20_000), (8_000, 10**9), (7_000, 10**9)]):
        store.add_campaign(
            Campaign(
                id=0,
                advertiser="northwind",
                name=f"campaign {n}",
                daily_budget=daily,
                schedule=Schedule(AT - timedelta(days=1)),
                bid=Bid(BidStrategy.CPM, bid * 1_000),
                creatives=(Creative("ad", "An ad", "", "https://example.com/"),),
                frequency_cap=1,
            )
        )
    return store


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[AdsStore, AdsStore]]:
    with ExitStack() as stack:
        grouped = stack.enter_context(Accord.open(None, tmp_path / "grouped"))
        alone = stack.enter_context(Accord.open(None, tmp_path / "alone"))
        yield platform(grouped), platform(alone)


def shown(placements: list[Placement]) -> list[tuple[object, ...]]:
    return [(p.slot, p.campaign.id, p.creative.id, p.price, p.request_id[-16:]) for p in placements]


def test_requests_that_wait_are_served_together_as_one_by_one(
    stores: tuple[AdsStore, AdsStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The spend is read from the records once, at the first request, on both servers alike.
    monkeypatch.setattr(serving, "SYNC_SECONDS", 1e9)
    grouped_store, alone_store = stores
    server, alone = AdServer(grouped_store), AdServer(alone_store)
    for each in (server, alone):
        each.market.pacer.rate[:] = 1.0  # no throttling: every campaign in every auction
    # Each person twice (one slot, then two): the second finds the cap of the first reached.
    asks = [(p, slots) for slots in (1, 2) for p in PEOPLE] + [("c9999999", 2)]
    groups: list[list[tuple[str, int]]] = []
    serve_group = server._serve

    def watched(group: list[serving._Ask]) -> None:
        groups.append([(a.person, a.slots) for a in group])
        if len(groups) == 1:
            # Hold the first request until every other one waits behind it.
            deadline = time.monotonic() + 30
            while len(server._waiting) < len(asks) - 1:
                assert time.monotonic() < deadline, "the requests did not arrive"
                time.sleep(0.005)
        serve_group(group)

    server._serve = watched  # type: ignore[method-assign]
    answers: dict[tuple[str, int], list[Placement] | Exception] = {}

    def ask(person: str, slots: int) -> None:
        try:
            answers[(person, slots)] = server.serve(person, slots, at=AT)
        except NotFound as exc:
            answers[(person, slots)] = exc

    first = threading.Thread(target=ask, args=asks[0])
    first.start()
    while not groups:
        time.sleep(0.001)
    rest = [threading.Thread(target=ask, args=a) for a in asks[1:]]
    for thread in rest:
        thread.start()
    for thread in [first, *rest]:
        thread.join(timeout=60)
    # One request alone, then all the others together.
    assert [len(g) for g in groups] == [1, len(asks) - 1]
    unknown = answers.pop(("c9999999", 2))
    assert isinstance(unknown, NotFound)  # refused alone; the rest of its group was served
    order = [a for g in groups for a in g if a[0] != "c9999999"]
    for person, slots in order:
        expected = alone.serve(person, slots, at=AT)
        got = answers[(person, slots)]
        assert not isinstance(got, Exception)
        assert shown(got) == shown(expected), (person, slots)
    placed = sum(len(a) for a in answers.values() if not isinstance(a, Exception))
    # Caps were reached, and a budget spent out, within the group: some asked for two got one.
    assert 0 < placed < sum(slots for (_p, slots) in answers)
    for store in (grouped_store, alone_store):
        with store.engine.connect() as c:
            assert c.execute(select(func.count()).select_from(ads_t.impressions)).scalar() == placed
            spent = c.execute(select(func.sum(ads_t.spend.c.amount_micros))).scalar()
        assert spent == sum(
            p.price for a in answers.values() if not isinstance(a, Exception) for p in a
        )


def test_a_request_whose_caller_went_away_leaves_the_rest_of_its_group_answered() -> None:
    from accord.api.ads import AdRequestIn, AdServers, _Asked
    from accord.api.errors import InvalidToken

    served: list[list[str]] = []
    started = threading.Event()
    release = threading.Event()

    class Server:
        def serve_many(self, asks: list[tuple[str, int, object, bool]]) -> list[object]:
            served.append([person for person, _slots, _at, _gpc in asks])
            started.set()
            release.wait(10)
            return [[] if person != "unknown" else NotFound("no person") for person, *_ in asks]

    class Access:
        """Chirp's own ad service for the token "ads"; any other token is refused."""

        def caller(self, authorization: str | None) -> object:
            if authorization != "Bearer ads":
                raise InvalidToken("the access token is not one this server issued")
            return SimpleNamespace(person=None, app=SimpleNamespace(party="chirp", client_id="a"))

    servers = AdServers(None)  # type: ignore[arg-type]
    server = Server()
    servers.get = lambda _platform: server  # type: ignore[assignment,method-assign,return-value]

    def ask(person: str, credential: str = "ads") -> asyncio.Task[list[Placement]]:
        body = AdRequestIn(person=person, party="chirp", slots=2)
        asked = _Asked(f"Bearer {credential}", body, gpc=False)
        return asyncio.create_task(servers.ask(Access(), asked))  # type: ignore[arg-type]

    async def scenario() -> list[object]:
        first = ask("a")
        await asyncio.to_thread(started.wait, 10)
        # Four more arrive while the first is served: the next group. One caller goes away;
        # one came with a token the server never issued.
        waiting = [ask("b"), ask("gone"), ask("unknown"), ask("c", credential="forged")]
        await asyncio.sleep(0)
        waiting[1].cancel()
        release.set()
        # Every request still there is answered (a wait, not a hang, if one is not).
        return await asyncio.wait_for(
            asyncio.gather(first, *waiting, return_exceptions=True), timeout=30
        )

    first, b, gone, unknown, forged = asyncio.run(scenario())
    # The forged token's request is refused before anything is served for it.
    assert served == [["a"], ["b", "gone", "unknown"]]
    assert first == []
    assert b == []
    assert isinstance(gone, asyncio.CancelledError)
    assert isinstance(unknown, NotFound)
    assert isinstance(forged, InvalidToken)


def test_a_server_ranks_by_the_predictor_it_is_given(tmp_path: Path) -> None:
    # CPM campaigns rank by bid alone; the quality floor (AuctionRules.min_ctr) keeps out a
    # campaign whose predicted click-through rate is below it: the predictor decides who runs.
    with Accord.open(None, tmp_path / "data") as accord:
        store = platform(accord)

        def only_the_last(_person: object, _eligible: object) -> np.ndarray:
            return np.array([0.0, 0.0, 0.05])

        server = AdServer(store, predictor=only_the_last)
        server.market.pacer.rate[:] = 1.0
        placed = server.serve(PEOPLE[0], 2, at=AT)
        assert [p.campaign.name for p in placed] == ["campaign 2"]
        assert placed[0].predicted_ctr == pytest.approx(0.05)
        # Without one, the smoothed rate of each campaign lets all in, ranked by their bids.
        default = AdServer(store)
        default.market.pacer.rate[:] = 1.0
        others = default.serve(PEOPLE[1], 2, at=AT)
        assert [p.campaign.name for p in others] == ["campaign 0", "campaign 1"]
