"""The auction against a brute-force reference written apart from it.

The reference ranks with Python's ``sorted`` and finds each winner's price by searching the bids:
the least whole bid (not below the reserve) at which the winner still takes the same slot, every
other bid unchanged. The vectorised auction must agree with it exactly, and every price must lie
between the reserve and the winner's own bid.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.ads.auction import AuctionRules, PriceRule, rank, rank_and_price
from accord.errors import InvalidInput

pytestmark = pytest.mark.unit

# Few distinct weights and small bids, so equal rank scores (ties) are common.
WEIGHTS = (0.001, 0.004, 0.01, 0.0125, 0.02, 0.05, 0.1, 0.3333333333333333, 1.0)


Case = tuple[list[int], list[int], list[float], list[int], int]


@st.composite
def auctions(
    draw: st.DrawFn, most: int = 40
) -> tuple[list[int], list[int], list[float], list[int], int]:
    n = draw(st.integers(1, most))
    # Candidates come in tie-break order: ascending campaign id.
    keys = sorted(draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n, unique=True)))
    bids = draw(st.lists(st.integers(1, 3_000), min_size=n, max_size=n))
    weights = draw(
        st.lists(
            st.sampled_from(WEIGHTS) | st.floats(0.0005, 1.0, allow_nan=False),
            min_size=n,
            max_size=n,
        )
    )
    reserves = [draw(st.integers(1, b)) for b in bids]
    slots = draw(st.integers(1, 6))
    return list(keys), bids, weights, reserves, slots


def reference_order(keys: list[int], bids: list[int], weights: list[float]) -> list[int]:
    eligible = range(len(keys))
    return sorted(eligible, key=lambda i: (-(bids[i] * weights[i]), keys[i]))


def reference_slot(i: int, keys: list[int], bids: list[int], weights: list[float]) -> int:
    return reference_order(keys, bids, weights).index(i)


def reference_price(
    i: int, slot: int, *, keys: list[int], bids: list[int], weights: list[float], reserve: int
) -> int:
    """The least bid from the reserve up at which ``i`` still takes ``slot`` (binary search:
    a higher bid never takes a lower slot)."""
    lo, hi = reserve, bids[i]
    while lo < hi:
        mid = (lo + hi) // 2
        trial = [*bids]
        trial[i] = mid
        if reference_slot(i, keys, trial, weights) <= slot:
            hi = mid
        else:
            lo = mid + 1
    return lo


def run(
    keys: list[int],
    bids: list[int],
    weights: list[float],
    reserves: list[int],
    slots: int,
    *,
    rule: PriceRule = PriceRule.SECOND,
) -> tuple[list[int], list[int]]:
    assert keys == sorted(keys)
    ranked = rank_and_price(
        np.array(bids, dtype=np.int64),
        np.array(weights, dtype=np.float64),
        np.ones(len(bids), dtype=bool),
        np.array(reserves, dtype=np.int64),
        slots,
        rule=rule,
    )
    return ranked.winners, ranked.prices


@settings(max_examples=400, deadline=None)
@given(auctions())
def test_winners_and_second_prices_match_the_brute_force_reference(
    case: Case,
) -> None:
    keys, bids, weights, reserves, slots = case
    winners, prices = run(keys, bids, weights, reserves, slots)
    assert winners == reference_order(keys, bids, weights)[:slots]
    for slot, (i, price) in enumerate(zip(winners, prices, strict=True)):
        assert reserves[i] <= price <= bids[i]
        assert price == reference_price(
            i, slot, keys=keys, bids=bids, weights=weights, reserve=reserves[i]
        )


@settings(max_examples=60, deadline=None)
@given(auctions(most=200))
def test_large_candidate_sets_take_the_partition_path_and_still_agree(
    case: Case,
) -> None:
    keys, bids, weights, reserves, slots = case
    winners, prices = run(keys, bids, weights, reserves, slots)
    assert winners == reference_order(keys, bids, weights)[:slots]
    for slot, (i, price) in enumerate(zip(winners, prices, strict=True)):
        assert price == reference_price(
            i, slot, keys=keys, bids=bids, weights=weights, reserve=reserves[i]
        )


@settings(max_examples=200, deadline=None)
@given(auctions())
def test_first_price_winners_pay_their_bid(
    case: Case,
) -> None:
    keys, bids, weights, reserves, slots = case
    winners, prices = run(keys, bids, weights, reserves, slots, rule=PriceRule.FIRST)
    assert winners == reference_order(keys, bids, weights)[:slots]
    assert prices == [bids[i] for i in winners]


@pytest.mark.parametrize("count", [3, 40])  # passes of argmax; a partition
def test_equal_scores_go_to_the_earliest_candidate(count: int) -> None:
    # 100 candidates with the same score but one: the order of ids must decide.
    scores = np.full(100, 5.0)
    scores[60] = 6.0
    assert rank(scores, count) == [60, *range(count - 1)]


def test_gsp_prices_a_click_at_the_next_score_over_its_own_ctr() -> None:
    # A bids 2.00 at 5% CTR (score 0.10 a view), B 1.00 at 8% (0.08), C 3.00 at 1% (0.03).
    keys, bids = [1, 2, 3], [2_000_000, 1_000_000, 3_000_000]
    weights, reserves = [0.05, 0.08, 0.01], [10_000] * 3
    winners, prices = run(keys, bids, weights, reserves, slots=2)
    assert winners == [0, 1]
    # A pays B's score over A's CTR: 0.08 × 1,000,000 / 0.05 = 1,600,000 micros per click;
    # B pays C's: 0.01 × 3,000,000 / 0.08 = 375,000.
    assert prices == [1_600_000, 375_000]


def test_the_last_winner_with_nobody_below_pays_the_reserve() -> None:
    winners, prices = run([1], [500_000], [0.02], [40_000], slots=3)
    assert (winners, prices) == ([0], [40_000])


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"reserve_cpc": 0}, "reserve_cpc"),  # a price of nothing is no reserve
        ({"reserve_cpm": 1_500}, "multiple of 1000"),  # not a whole micro per impression
        ({"min_ctr": 0.0}, "min_ctr"),  # the floor must keep out a CTR of 0
        ({"max_slots": 0}, "max_slots"),
    ],
)
def test_unusable_rules_are_refused(rules: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        AuctionRules(**rules)  # type: ignore[arg-type]
