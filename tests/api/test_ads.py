"""``POST /v1/ads/request``: the platform's own service gets ads with prices; nobody else does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from accord.ads import tables as ads_t
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
from accord.ads.store import AdsStore
from accord.scenario.population import CHIRP, REELIX
from api.world import World, app_token, bearer, chirp_people

pytestmark = pytest.mark.integration

AT = datetime(2026, 6, 1, 12, tzinfo=UTC)
FANS = "reelix-viewers"


@pytest.fixture(scope="module")
def people(world: World) -> list[str]:
    """Chirp's people with an ad profile; Reelix runs two campaigns, one with partner data."""
    found = chirp_people(world.accord, 50)
    store = AdsStore(world.accord.engine, CHIRP)
    store.set_profiles((p, "25-34", frozenset({"music"})) for p in found)
    store.add_advertiser(Advertiser("reelix", "Reelix", CHIRP, party=REELIX))
    # An audience built from Reelix's data (its members by Reelix's own id too).
    store.add_audience(
        Audience(FANS, "reelix", "Viewers", provider=REELIX), [(p, "r" + p[1:]) for p in found]
    )
    ad = (Creative("ad", "Watch free for a month", "", "https://reelix.example/"),)
    common = {
        "advertiser": "reelix",
        "daily_budget": 50_000_000,
        "schedule": Schedule(AT - timedelta(days=1)),
        "creatives": ad,
    }
    store.add_campaign(
        Campaign(
            id=0,
            name="fans",
            bid=Bid(BidStrategy.CPM, 9_000_000),
            targeting=Targeting(audiences=frozenset({FANS})),
            **common,
        )  # type: ignore[arg-type]
    )
    store.add_campaign(
        Campaign(id=0, name="everyone", bid=Bid(BidStrategy.CPM, 5_000_000), **common)
    )  # type: ignore[arg-type]
    return found


def ask(client: httpx.Client, token: str, person: str, **context: object) -> httpx.Response:
    body = {
        "person": person,
        "party": CHIRP,
        "slots": 2,
        "context": {"at": AT.isoformat(), **context},
    }
    return client.post("/v1/ads/request", json=body, headers=bearer(token))


def test_chirps_own_service_gets_the_winning_ads_with_prices_and_they_are_recorded(
    world: World, client: httpx.Client, people: list[str]
) -> None:
    token = app_token(client, world.chirp, world.chirp_secret)
    with world.accord.engine.connect() as c:
        before = c.execute(select(func.count()).select_from(ads_t.spend)).scalar_one()
    served = 0
    for person in people[:20]:
        r = ask(client, token, person)
        assert r.status_code == 200, r.text
        ads = r.json()["ads"]
        served += len(ads)
        for ad in ads:
            assert ad["billing"] == "cpm"
            # A CPM price is per impression: between the reserve and the bid of its campaign.
            bid = 9_000 if ad["campaign"] == 1 else 5_000
            assert 100 <= ad["price_micros"] <= bid
            assert ad["creative"]["url"] == "https://reelix.example/"
        assert [a["slot"] for a in ads] == list(range(len(ads)))
    assert served > 0
    with world.accord.engine.connect() as c:
        charged = c.execute(select(func.count()).select_from(ads_t.spend)).scalar_one() - before
    assert charged == served  # every CPM impression is charged, and recorded


def test_an_opted_out_person_never_gets_the_partner_data_campaign(
    world: World, client: httpx.Client, people: list[str]
) -> None:
    token = app_token(client, world.chirp, world.chirp_secret)
    partner = {c.id for c in AdsStore(world.accord.engine, CHIRP).campaigns() if c.partner_data}
    assert partner
    got = set()
    for person in people[20:40]:
        r = ask(client, token, person, gpc=True)
        assert r.status_code == 200, r.text
        got |= {a["campaign"] for a in r.json()["ads"]}
    assert got
    assert not got & partner
    # The header on the call counts as much as the context's flag.
    r = client.post(
        "/v1/ads/request",
        json={"person": people[40], "party": CHIRP, "context": {"at": AT.isoformat()}},
        headers={**bearer(token), "Sec-GPC": "1"},
    )
    assert r.status_code == 200, r.text
    assert not {a["campaign"] for a in r.json()["ads"]} & partner


def test_a_partner_cannot_ask_for_chirps_ads_and_the_refusal_is_logged(
    world: World, client: httpx.Client, people: list[str]
) -> None:
    token = app_token(client, world.reelix, world.reelix_secret)
    r = ask(client, token, people[0])
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["rules"] == ["api:ads-first-party"]
    leaf = world.accord.ledger.leaf(problem["receipt"]).entry()
    assert leaf["kind"] == "decision"
    assert leaf["allowed"] is False
    assert people[0] not in leaf["reason"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"person": "c0000001", "party": "chirp", "slots": 0}, "body.slots"),  # no slot to fill
        ({"person": "c0000001", "party": "chirp", "colour": "red"}, "body.colour"),  # unknown
        ({"party": "chirp"}, "body.person"),  # whom for?
    ],
)
def test_a_malformed_request_is_a_problem_saying_where(
    world: World, client: httpx.Client, body: dict[str, object], where: str
) -> None:
    token = app_token(client, world.chirp, world.chirp_secret)
    r = client.post("/v1/ads/request", json=body, headers=bearer(token))
    assert r.status_code == 422
    assert where in r.json()["detail"]


def test_an_unknown_person_is_not_found(
    world: World, client: httpx.Client, people: list[str]
) -> None:
    token = app_token(client, world.chirp, world.chirp_secret)
    r = ask(client, token, "c9999999")
    assert r.status_code == 404
    assert "no person" in r.json()["detail"]


def test_without_a_token_nothing_is_served(client: httpx.Client) -> None:
    r = client.post("/v1/ads/request", json={"person": "c0000001", "party": "chirp"})
    assert r.status_code == 401


def test_the_route_is_described_in_openapi(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/ads/request"]["post"]
    assert "AdRequestIn" in str(operation["requestBody"])
    assert "AdResponseOut" in str(operation["responses"]["200"])


def test_the_openapi_description_is_of_the_endpoint_that_serves(client: httpx.Client) -> None:
    """The route's handler calls the endpoint FastAPI documents: one code path, described by
    its own signature (the body, the Sec-GPC header, the bearer token) and docstring."""
    from accord.api.ads import AdRequestRoute, request_ads, router

    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/ads/request"]["post"]
    assert operation["operationId"] == "request_ads_v1_ads_request_post"
    assert operation["description"].startswith("Run the auction for ``slots`` slots")
    assert [(p["in"], p["name"]) for p in operation["parameters"]] == [("header", "Sec-GPC")]
    assert operation["security"] == [{"OAuth 2.0 bearer token": []}]
    assert operation["requestBody"]["required"] is True
    for status in ("401", "403", "404", "422", "429"):
        assert "application/problem+json" in operation["responses"][status]["content"]
    served = [r for r in router.routes if getattr(r, "path", "") == "/v1/ads/request"]
    assert [(type(r), getattr(r, "endpoint", None)) for r in served] == [
        (AdRequestRoute, request_ads)
    ]


def test_refusals_are_problem_documents(world: World, client: httpx.Client) -> None:
    """Without a token: 401 even with a malformed body; with one: the malformed body is 422;
    each a problem document (RFC 9457)."""
    for headers, body, status in (
        ({}, {"party": "chirp"}, 401),
        ({"Authorization": "Bearer forged"}, {"person": "c0000001", "party": "chirp"}, 401),
        (bearer(app_token(client, world.chirp, world.chirp_secret)), {"party": "chirp"}, 422),
    ):
        r = client.post("/v1/ads/request", json=body, headers=headers)
        assert r.status_code == status
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["status"] == status
