"""The ad endpoint's answer, encoded straight from the placements, is byte for byte what FastAPI
makes of the answer's model; money shown to the cent is what Decimal's rounding gives."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from fastapi.encoders import jsonable_encoder
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.ads.market import Placement
from accord.ads.model import (
    MAX_MONEY,
    MICROS,
    Bid,
    BidStrategy,
    Campaign,
    Creative,
    Schedule,
    show_money,
)
from accord.api.ads import AdResponseOut, _answer

text = st.text(max_size=40)


def _decimal_cents(micros: int) -> str:
    amount = Decimal(micros) / MICROS
    return f"{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN):,}"


@settings(deadline=None)
@given(st.integers(0, MAX_MONEY) | st.integers(0, 10**8) | st.sampled_from([5_000, 15_000, 25_000]))
def test_money_to_the_cent_is_decimals_half_to_even(micros: int) -> None:
    assert show_money(micros) == _decimal_cents(micros)


def test_money_to_the_cent_on_the_edges() -> None:
    for micros in (0, 1, 4_999, 5_000, 5_001, 15_000, 25_000, 995_000, 1_005_000, 10**12 + 5_000):
        assert show_money(micros) == _decimal_cents(micros)
    assert show_money(-15_000) == _decimal_cents(-15_000)  # not a price, still shown alike


def _campaign(cid: int, advertiser: str, cpc: bool, creative: Creative) -> Campaign:
    return Campaign(
        id=cid,
        advertiser=advertiser,
        name="c",
        daily_budget=10**9,
        schedule=Schedule(datetime(2026, 1, 1, tzinfo=UTC)),
        bid=Bid(BidStrategy.CPC, 100_000) if cpc else Bid(BidStrategy.CPM, 100_000),
        creatives=(creative,),
    )


@settings(deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 10**6),
            st.sampled_from(["northwind", "reelix", "ad.two"]),
            st.booleans(),
            text.filter(str.strip),
            text,
            text.map("https://example.com/".__add__),
            st.integers(0, MAX_MONEY),
        ),
        max_size=4,
    ),
    st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
)
def test_the_answer_is_what_fastapi_encodes(
    ads: list[tuple[int, str, bool, str, str, str, int]], request_id: str
) -> None:
    placed = []
    for slot, (cid, advertiser, cpc, headline, body, url, price) in enumerate(ads):
        creative = Creative(f"ad-{cid}", headline, body, url)
        campaign = _campaign(cid, advertiser, cpc, creative)
        placed.append(Placement(request_id, slot, campaign, creative, price, 0.01, 1.0, slot))
    # Twice: encoded afresh, then from what the first answer kept of each ad.
    for _ in range(2):
        model = AdResponseOut.model_validate(
            {
                "request_id": request_id if placed else None,
                "ads": [
                    {
                        "slot": p.slot,
                        "campaign": p.campaign.id,
                        "advertiser": p.campaign.advertiser,
                        "creative": {
                            "id": p.creative.id,
                            "headline": p.creative.headline,
                            "body": p.creative.body,
                            "url": p.creative.url,
                        },
                        "billing": p.billing.value,
                        "price_micros": p.price,
                        "price": _decimal_cents(p.price),
                    }
                    for p in placed
                ],
            }
        )
        # FastAPI's JSONResponse: compact, UTF-8, not ASCII-escaped.
        expected = json.dumps(
            jsonable_encoder(model),
            ensure_ascii=False,
            allow_nan=False,
            indent=None,
            separators=(",", ":"),
        ).encode()
        assert _answer(placed) == expected
