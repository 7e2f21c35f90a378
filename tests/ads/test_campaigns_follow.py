"""A server's campaigns follow the store: a campaign paused or resumed by another process counts
at the server's very next group of requests, one added is served from then on, the budgets hold
across the market's rebuild, and finding out costs no statement of its own (the campaigns
revision is read by the statement that reads the group's signals)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from accord.ads import tables as t
from accord.ads.model import (
    Advertiser,
    Bid,
    BidStrategy,
    Campaign,
    CampaignStatus,
    Creative,
    Schedule,
    Targeting,
)
from accord.ads.pacing import day_cap
from accord.ads.serving import AdServer
from accord.ads.store import AdsStore
from accord.consent import Person
from accord.errors import NotFound
from accord.service import Accord

pytestmark = pytest.mark.integration

AT = datetime(2026, 3, 2, 12, tzinfo=UTC)
PEOPLE = ["c0", "c1", "c2"]
Store = tuple[str, Path]
"""A store's URL and its data folder."""
DAILY = 2_000_000
"""The daily budget of the high bidder: a few hundred impressions at the second price (just above
the low bidder's bid; its cap is 1.75 times it)."""


def _campaign(name: str, advertiser: str, bid: int, **more: Any) -> Campaign:
    return Campaign(
        id=0,
        advertiser=advertiser,
        name=name,
        daily_budget=more.pop("daily_budget", 10**10),
        schedule=Schedule(AT - timedelta(days=1)),
        bid=Bid(BidStrategy.CPM, bid * 1_000),
        creatives=(Creative(name, name, "", "https://example.com/"),),
        targeting=Targeting(),
        frequency_cap=1_000,
        **more,
    )


def _world(accord: Accord) -> AdsStore:
    """Chirp's people and two campaigns for everyone: ``high`` bidding high on a small daily
    budget, ``low`` bidding low."""
    accord.add_party("chirp", "Chirp")
    accord.add_people([Person(p, "chirp", "US-CA") for p in PEOPLE])
    store = AdsStore(accord.engine, "chirp")
    store.set_profiles((p, "25-34", frozenset({"film"})) for p in PEOPLE)
    store.add_advertiser(Advertiser("northwind", "Northwind", "chirp"))
    store.add_campaign(_campaign("high", "northwind", 90_000, daily_budget=DAILY))
    store.add_campaign(_campaign("low", "northwind", 10_000))
    return store


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[Store, AdServer]]:
    """A server of the world on each backend in turn (SQLite, PostgreSQL), and where its store
    is, for other processes to open."""
    where = (db_url, tmp_path / "accord")
    with Accord.open(*where) as accord:
        store = _world(accord)
        server = AdServer(store)
        server.market.pacer.rate[:] = 1.0  # no throttling: every campaign in every auction
        yield where, server


def _names(server: AdServer, person: str, at: datetime) -> list[str]:
    """The campaigns of a three-slot request's ads, in slot order."""
    return [p.campaign.name for p in server.serve(person, 3, at=at)]


def _elsewhere(where: Store, code: str) -> None:
    """``code`` run by another process on the same store (``store``: Chirp's ads store)."""
    program = (
        "import sys\n"
        "from datetime import datetime, UTC\n"
        "from pathlib import Path\n"
        "from accord.ads.market import Charge\n"
        "from accord.ads.model import CampaignStatus\n"
        "from accord.ads.store import AdsStore\n"
        "from accord.service import Accord\n"
        "with Accord.open(sys.argv[1], Path(sys.argv[2])) as accord:\n"
        "    store = AdsStore(accord.engine, 'chirp')\n"
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


def _id(server: AdServer, name: str) -> int:
    return next(c.id for c in server.store.campaigns() if c.name == name)


def test_a_campaign_paused_elsewhere_is_not_shown_at_the_next_request_and_resumed_is_again(
    served: tuple[Store, AdServer],
) -> None:
    where, server = served
    high = _id(server, "high")
    assert _names(server, "c0", AT) == ["high", "low"]
    _elsewhere(where, f"store.set_campaign_status({high}, CampaignStatus.PAUSED)")
    assert _names(server, "c0", AT + timedelta(seconds=1)) == ["low"]
    assert _names(server, "c1", AT + timedelta(seconds=2)) == ["low"]
    _elsewhere(where, f"store.set_campaign_status({high}, CampaignStatus.ACTIVE)")
    assert _names(server, "c0", AT + timedelta(seconds=3)) == ["high", "low"]
    # What c0 was shown today still counts (frequency caps are carried over the rebuilds).
    assert server.market.shown_today("c0", high) == 2


def test_a_campaign_added_elsewhere_is_served_from_the_next_group(
    served: tuple[Store, AdServer],
) -> None:
    where, server = served
    assert _names(server, "c0", AT) == ["high", "low"]
    _elsewhere(
        where,
        "from accord.ads.model import Campaign, Schedule, Bid, BidStrategy, Creative, Targeting\n"
        "store.add_campaign(Campaign(id=0, advertiser='northwind', name='new', "
        "daily_budget=10**10, schedule=Schedule(datetime(2026, 3, 1, tzinfo=UTC)), "
        "bid=Bid(BidStrategy.CPM, 200_000_000), "
        "creatives=(Creative('new', 'new', '', 'https://example.com/'),), "
        "targeting=Targeting(), frequency_cap=1_000))",
    )
    shown = [_names(server, PEOPLE[i % 3], AT + timedelta(seconds=1 + i)) for i in range(60)]
    # A new campaign starts at the pacing's first pass-through rate: in some auctions, first.
    assert any(names[0] == "new" for names in shown)
    # The others carry on as they were (their pacing rates kept: in every auction).
    assert all(names[-2:] == ["high", "low"] for names in shown)


def test_budgets_hold_across_a_rebuild(served: tuple[Store, AdServer]) -> None:
    """The high bidder spends today's cap over the rebuilds, no more; a campaign added with most
    of its lifetime budget already spent (yesterday, by another process's server) spends the
    rest, no more: the spend records are read at once when the market is built again."""
    where, server = served
    high = _id(server, "high")
    at = AT
    for i in range(200):
        at = AT + timedelta(seconds=i)
        server.serve(PEOPLE[i % 3], 3, at=at)
    impression = 100_000  # the new campaign's CPM bid per impression, in micros
    _elsewhere(
        where,
        "from accord.ads.model import Campaign, Schedule, Bid, BidStrategy, Creative, Targeting\n"
        "new = store.add_campaign(Campaign(id=0, advertiser='northwind', name='new', "
        "daily_budget=10**10, lifetime_budget=10 * 100_000, "
        "schedule=Schedule(datetime(2026, 3, 1, tzinfo=UTC)), "
        "bid=Bid(BidStrategy.CPM, 100_000_000), "
        "creatives=(Creative('new', 'new', '', 'https://example.com/'),), "
        "targeting=Targeting(), frequency_cap=1_000))\n"
        "at = datetime(2026, 3, 1, 11, tzinfo=UTC)\n"
        "store.record([], [Charge(new.id, 'northwind', at, 'impression', 100_000, f'r{n}') "
        "for n in range(7)])",
    )
    new = _id(server, "new")
    shown = 0
    for i in range(400):
        at += timedelta(seconds=1)
        names = _names(server, PEOPLE[i % 3], at)
        shown += names.count("new")
        if i % 100 == 50:
            # The market built again in the middle of the high bidder's day.
            _elsewhere(where, f"store.set_campaign_status({new}, CampaignStatus.ACTIVE)")
            _elsewhere(where, f"store.set_campaign_status({new}, CampaignStatus.PAUSED)")
            _elsewhere(where, f"store.set_campaign_status({new}, CampaignStatus.ACTIVE)")
    assert shown == 3
    s = t.spend.c
    with server.store.engine.connect() as c:
        spent = {
            campaign: int(total)
            for campaign, total in c.execute(
                select(s.campaign_id, func.sum(s.amount_micros)).group_by(s.campaign_id)
            )
        }
    # Three impressions at the second price (just above the next bid), then too little left.
    assert 7 * impression < spent[new] <= 10 * impression
    assert DAILY < spent[high] <= day_cap(DAILY)


def test_pausing_an_unknown_campaign_is_refused(served: tuple[Store, AdServer]) -> None:
    _where, server = served
    before = server.store.campaigns_revision()
    with pytest.raises(NotFound, match="chirp has no campaign 999"):
        server.store.set_campaign_status(999, CampaignStatus.PAUSED)
    # Already active: nothing written, the revision stays.
    assert not server.store.set_campaign_status(_id(server, "high"), CampaignStatus.ACTIVE)
    assert server.store.campaigns_revision() == before


def test_a_group_reads_the_campaigns_revision_in_its_signals_statement(tmp_path: Path) -> None:
    """In steady state a group runs one SELECT (the signals, with the campaigns revision); the
    group after a campaign write reads the campaigns and spend again, then back to one."""
    with Accord.open(f"sqlite:///{tmp_path / 'accord.db'}", tmp_path / "accord") as accord:
        store = _world(accord)
        statements: list[str] = []

        @event.listens_for(accord.engine, "connect")
        def trace(connection: sqlite3.Connection, _record: object) -> None:
            connection.set_trace_callback(statements.append)

        accord.engine.dispose()  # every connection from now on is traced
        server = AdServer(store)

        def selects(at: datetime) -> list[str]:
            statements.clear()
            server.serve("c0", 3, at=at)
            return [s for s in statements if s.lstrip().upper().startswith("SELECT")]

        selects(AT)  # the first group reads the spend records too
        steady = selects(AT + timedelta(seconds=1))
        assert len(steady) == 1
        assert "ads_campaign_revisions" in steady[0]
        store.set_campaign_status(_id(server, "high"), CampaignStatus.PAUSED)
        assert len(selects(AT + timedelta(seconds=2))) > 1  # campaigns, rates, spend
        assert len(selects(AT + timedelta(seconds=3))) == 1


def test_a_click_on_a_campaign_added_elsewhere_is_charged_within_its_budget(
    served: tuple[Store, AdServer],
) -> None:
    """Another process adds a CPC campaign (most of its lifetime budget spent yesterday) and
    shows it; a click on its ad reported to this server is charged what the budget has left."""
    where, server = served
    server.serve("c0", 3, at=AT)
    _elsewhere(
        where,
        "from accord.ads.model import Campaign, Schedule, Bid, BidStrategy, Creative, Targeting\n"
        "new = store.add_campaign(Campaign(id=0, advertiser='northwind', name='clicky', "
        "daily_budget=10**10, lifetime_budget=1_000_000, "
        "schedule=Schedule(datetime(2026, 3, 1, tzinfo=UTC)), "
        "bid=Bid(BidStrategy.CPC, 500_000), "
        "creatives=(Creative('clicky', 'clicky', '', 'https://example.com/'),), "
        "targeting=Targeting(), frequency_cap=1_000))\n"
        "at = datetime(2026, 3, 2, 12, 0, 1, tzinfo=UTC)\n"
        "store.record([('elsewhere-1', 'chirp', 'c1', new.id, 'northwind', 'clicky', 0, at, "
        "at.date(), 'cpc', 500_000, 0.01, None, False, None, False)], "
        "[Charge(new.id, 'northwind', datetime(2026, 3, 1, 12, tzinfo=UTC), 'click', 900_000, "
        "'elsewhere-0')])",
    )
    click = server.click("elsewhere-1", 0, AT + timedelta(seconds=2))
    assert click.counted
    assert click.charged == 100_000
