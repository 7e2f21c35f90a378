"""``POST /v1/ads/click``: a click is counted once and a CPC advertiser charged once for it.

The oracle is what an advertiser is owed by the terms of a cost-per-click buy: one charge, at the
auction's price, for the first click on an ad that was shown; nothing for a repeat (a double tap,
a retry, a script clicking again), nothing for a CPM ad, nothing for an ad never shown; never
more in a day than the campaign's daily budget.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from accord.ads import tables as ads_t
from accord.ads.model import Advertiser, Bid, BidStrategy, Campaign, Creative, Schedule
from accord.ads.store import AdsStore
from accord.scenario.population import CHIRP, REELIX
from api.world import World, app_token, bearer, chirp_people

pytestmark = pytest.mark.integration

AT = datetime(2026, 6, 1, 12, tzinfo=UTC)
CPC_BID = 2_000_000  # 2.00 a click
CPM_BID = 15_000_000  # 15.00 a thousand impressions: 15,000 micros an impression
DAILY = 9_000_000  # 9.00 a day: room for four clicks at most


@pytest.fixture(scope="module")
def people(world: World) -> list[str]:
    """Chirp's people with an ad profile; Reelix runs a CPC campaign and a cheaper CPM one."""
    found = chirp_people(world.accord, 300)
    store = AdsStore(world.accord.engine, CHIRP)
    store.set_profiles((p, "25-34", frozenset({"film"})) for p in found)
    store.add_advertiser(Advertiser("reelix", "Reelix", CHIRP, party=REELIX))
    ad = (Creative("ad", "Watch free for a month", "", "https://reelix.example/"),)
    common = {"advertiser": "reelix", "schedule": Schedule(AT - timedelta(days=1)), "creatives": ad}
    store.add_campaign(
        Campaign(
            id=0, name="per click", bid=Bid(BidStrategy.CPC, CPC_BID), daily_budget=DAILY, **common
        )  # type: ignore[arg-type]
    )
    store.add_campaign(
        Campaign(
            id=0,
            name="per mille",
            bid=Bid(BidStrategy.CPM, CPM_BID),
            daily_budget=DAILY,
            **common,
        )  # type: ignore[arg-type]
    )
    return found


@pytest.fixture
def token(world: World, client: httpx.Client) -> str:
    return app_token(client, world.chirp, world.chirp_secret)


def shown(
    client: httpx.Client, token: str, people: list[str], billing: str
) -> tuple[str, int, int]:
    """Ask for ads for one person after another (campaigns are paced: each takes part in a
    share of the auctions) until one shows a ``billing`` ad: its request id, slot and price."""
    while people:
        person = people.pop()
        body = {"person": person, "party": CHIRP, "slots": 2, "context": {"at": AT.isoformat()}}
        r = client.post("/v1/ads/request", json=body, headers=bearer(token))
        assert r.status_code == 200, r.text
        for ad in r.json()["ads"]:
            if ad["billing"] == billing:
                return r.json()["request_id"], ad["slot"], ad["price_micros"]
    raise AssertionError(f"no {billing} ad was shown to anyone")


def click(
    client: httpx.Client, token: str, request_id: object, slot: object, at: datetime = AT
) -> httpx.Response:
    body = {"party": CHIRP, "request_id": request_id, "slot": slot, "at": at.isoformat()}
    return client.post("/v1/ads/click", json=body, headers=bearer(token))


def charges(world: World) -> list[tuple[str, int]]:
    """Every click charge recorded: (request id, micros)."""
    s = ads_t.spend.c
    with world.accord.engine.connect() as c:
        return [
            (r[0], int(r[1]))
            for r in c.execute(select(s.request_id, s.amount_micros).where(s.event == "click"))
        ]


def test_the_first_click_on_a_cpc_ad_is_charged_its_price_and_a_repeat_nothing(
    world: World, client: httpx.Client, token: str, people: list[str]
) -> None:
    request_id, slot, price = shown(client, token, people, "cpc")
    before = charges(world)

    first = click(client, token, request_id, slot, AT + timedelta(seconds=5))
    assert first.status_code == 200, first.text
    assert first.json()["counted"] is True
    assert first.json()["charged_micros"] == price
    assert 0 < price <= CPC_BID

    again = click(client, token, request_id, slot, AT + timedelta(seconds=6))
    assert again.status_code == 200, again.text
    assert again.json()["counted"] is False
    assert again.json()["charged_micros"] == 0
    assert charges(world) == [*before, (request_id, price)]
    im = ads_t.impressions.c
    with world.accord.engine.connect() as c:
        clicked = c.execute(
            select(im.clicked).where(im.request_id == request_id, im.slot == slot)
        ).scalar_one()
    assert clicked is True


def test_a_click_on_a_cpm_ad_is_counted_and_charges_nothing(
    world: World, client: httpx.Client, token: str, people: list[str]
) -> None:
    request_id, slot, _price = shown(client, token, people, "cpm")
    before = charges(world)
    r = click(client, token, request_id, slot)
    assert r.status_code == 200, r.text
    assert (r.json()["counted"], r.json()["charged_micros"], r.json()["billing"]) == (
        True,
        0,
        "cpm",
    )
    assert charges(world) == before


def test_clicks_at_once_on_one_ad_are_charged_once(
    world: World, client: httpx.Client, token: str, people: list[str]
) -> None:
    request_id, slot, _price = shown(client, token, people, "cpc")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: click(client, token, request_id, slot), range(8)))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    assert sum(r.json()["counted"] for r in answers) == 1
    assert len([c for c in charges(world) if c[0] == request_id]) == 1


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ({"request_id": "0" * 32}, 404, "showed no ad"),
        ({"slot": 9}, 404, "showed no ad"),
        ({"at": AT - timedelta(minutes=1)}, 422, "before its ad was shown"),
        ({"at": AT + timedelta(days=8)}, 422, "more than 7 days after"),
    ],
)
def test_a_click_on_no_ad_shown_or_out_of_time_is_refused_saying_why(  # noqa: PLR0917
    world: World,
    client: httpx.Client,
    token: str,
    people: list[str],
    change: dict[str, object],
    status: int,
    says: str,
) -> None:
    request_id, slot, _price = shown(client, token, people, "cpc")
    fields: dict[str, object] = {
        "request_id": request_id,
        "slot": slot,
        "at": AT,
        **change,
    }
    before = charges(world)
    r = click(client, token, fields["request_id"], fields["slot"], fields["at"])  # type: ignore[arg-type]
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert says in r.json()["detail"]
    assert charges(world) == before


def test_a_partner_cannot_report_clicks_on_chirps_ads_and_the_refusal_is_logged(
    world: World, client: httpx.Client, token: str, people: list[str]
) -> None:
    request_id, slot, _price = shown(client, token, people, "cpc")
    partner = app_token(client, world.reelix, world.reelix_secret)
    before = charges(world)
    r = click(client, partner, request_id, slot)
    assert r.status_code == 403
    problem = r.json()
    assert problem["rules"] == ["api:ads-first-party"]
    assert world.accord.ledger.leaf(problem["receipt"]).entry()["allowed"] is False
    assert charges(world) == before


def test_at_the_end_a_day_of_clicks_never_charges_more_than_the_daily_budget(
    world: World, client: httpx.Client, token: str, people: list[str]
) -> None:
    # Ads shown first and clicked later, more of them than the day's budget pays for: the
    # clicks that come after it was spent are cut to what was left (over-delivery, not billed).
    before = sum(micros for _id, micros in charges(world))
    ads: list[tuple[str, int, int]] = []
    while before + sum(price for _id, _slot, price in ads) <= DAILY + CPC_BID:
        ads.append(shown(client, token, people, "cpc"))
    answers = []
    for request_id, slot, _price in ads:
        r = click(client, token, request_id, slot)
        assert r.status_code == 200, r.text
        answers.append(r.json()["charged_micros"])
    spent = sum(micros for _id, micros in charges(world))
    assert DAILY - CPC_BID < spent <= DAILY
    assert answers[-1] < ads[-1][2]  # the last click was cut


def test_the_click_route_is_described_in_openapi(client: httpx.Client) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/ads/click"]["post"]
    assert "ClickIn" in str(operation["requestBody"])
    assert "ClickOut" in str(operation["responses"]["200"])
