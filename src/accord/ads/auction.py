"""The auction: rank the eligible candidates and price the winners, vectorised with NumPy.

Every candidate has a bid per billable event (per click for CPC, per impression for CPM, in
micros) and a weight, the billable events it is expected to bring per impression: its predicted
click-through rate (CTR) for CPC, 1 for CPM. Its **rank score** is ``bid × weight``, the revenue
it is expected to bring per impression — bid × predicted CTR for a CPC bid, the one currency in
which CPC and CPM bids compete. Candidates are ranked by score, highest first; equal scores are
ordered by campaign id, lowest first, so the same auction always has the same result. The first
``slots`` win, one slot each.

Prices (per billable event, in whole micros):

* **Generalised second price** (Edelman, Ostrovsky and Schwarz, "Internet Advertising and the
  Generalized Second-Price Auction", American Economic Review 97(1), 2007; Varian, "Position
  auctions", International Journal of Industrial Organization 25(6), 2007): each winner pays the
  least whole bid that keeps its slot, that is the least ``b`` whose score ``b × weight`` still
  ranks above the candidate just below it — ``next score / own weight`` (for CPC, next rank score
  / own CTR), rounded up to the next micro, one micro more where equal scores would put it
  behind — and never less than the reserve. A winner with nobody below it pays the reserve. The
  price is never more than the winner's own bid (its own bid keeps the slot).
* **First price**: each winner pays its own bid.

Every candidate handed in must already be eligible (bid at least the reserve, predicted CTR at
least the quality floor: see :mod:`accord.ads.market`), in tie-break order. The best few are
found by as many passes of ``argmax`` (the first of equal maxima is the earliest candidate), more
by ``argpartition`` and ``lexsort``: no Python loop over the candidates, only over the slots,
which are then priced one by one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from accord.ads.model import MAX_MONEY, PER_MILLE, BidStrategy
from accord.errors import InvalidInput

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
T_co = TypeVar("T_co", covariant=True)


class Indexed(Protocol[T_co]):
    """Values by candidate position: a list, or a mapping of the positions used."""

    def __getitem__(self, position: int, /) -> T_co: ...


# Up to this many places, the best are found by passes of argmax; beyond, by a partition.
_ARGMAX_UP_TO = 12
_SPENT = -math.inf


class PriceRule(StrEnum):
    """How winners pay: the generalised second price, or their own bid."""

    SECOND = "second"
    FIRST = "first"


@dataclass(frozen=True, slots=True)
class AuctionRules:
    """A platform's auction rules.

    ``reserve_cpc`` is the least price of a click and ``reserve_cpm`` of a thousand impressions
    (a whole number of micros per impression), in micros; ``min_ctr`` is the quality floor: a
    candidate whose predicted click-through rate is lower never takes part.
    """

    reserve_cpc: int = 10_000
    reserve_cpm: int = 100_000
    min_ctr: float = 0.0005
    price_rule: PriceRule = PriceRule.SECOND
    max_slots: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "price_rule", PriceRule(self.price_rule))
        for name in ("reserve_cpc", "reserve_cpm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_MONEY:
                raise InvalidInput(f"{name} must be a whole number of micros, at least 1")
        if self.reserve_cpm % PER_MILLE:
            raise InvalidInput(
                f"reserve_cpm must be a whole number of micros per impression (a multiple of "
                f"{PER_MILLE}), not {self.reserve_cpm}"
            )
        if not 0.0 < self.min_ctr <= 1.0:
            raise InvalidInput(f"min_ctr must be above 0 and at most 1, not {self.min_ctr}")
        if not 1 <= self.max_slots <= 100:
            raise InvalidInput(f"max_slots must be from 1 to 100, not {self.max_slots}")

    def reserve(self, strategy: BidStrategy) -> int:
        """The reserve per billable event of a bid of this strategy."""
        return self.reserve_cpc if strategy is BidStrategy.CPC else self.reserve_cpm // PER_MILLE


@dataclass(frozen=True, slots=True)
class Ranked:
    """The winners (positions in the candidate arrays, best first), what each pays per billable
    event, and their rank scores."""

    winners: list[int]
    prices: list[int]
    scores: list[float]


def rank(
    scores: Floats, count: int, quality: Floats | None = None, floor: float = 0.0
) -> list[int]:
    """Positions of the ``count`` best candidates (fewer if there are fewer), in rank order:
    score descending, then position ascending (candidates come in tie-break order).

    Eligible candidates score above 0; a score of 0 or less marks one that is not. With
    ``quality``, a candidate whose quality is below ``floor`` is passed over too. ``scores`` is
    overwritten.
    """
    return best(scores, count, quality, floor)[0]


def best(
    scores: Floats,
    count: int,
    quality: Floats | None = None,
    floor: float = 0.0,
) -> tuple[list[int], list[float]]:
    """:func:`rank`, with the rank scores of the candidates found. ``scores`` is overwritten."""
    want = min(count, len(scores))
    order: list[int] = []
    found: list[float] = []
    if want <= 0:
        return order, found
    if want <= _ARGMAX_UP_TO:
        # A few passes of argmax, which returns the first of equal maxima: the lowest position.
        while len(order) < want:
            at = int(scores.argmax())
            score = scores.item(at)
            if score <= 0.0:
                break
            scores[at] = _SPENT
            if quality is None or quality.item(at) >= floor:
                order.append(at)
                found.append(score)
        return order, found
    usable = scores > 0.0
    if quality is not None:
        usable &= quality >= floor
    kept = np.flatnonzero(usable)
    mine = scores[kept]
    want = min(want, len(kept))
    if want < len(kept):
        top = np.argpartition(-mine, want - 1)[:want]
        edge = mine[top].min()
        if np.count_nonzero(mine >= edge) > want:
            # Equal scores at the edge: which of them are in is for the positions to say.
            top = np.flatnonzero(mine >= edge)
    else:
        top = np.arange(len(kept))
    ranked = top[np.lexsort((top, -mine[top]))][:want]
    return kept[ranked].tolist(), mine[ranked].tolist()


def second_prices(
    order: Sequence[int],
    scores: Sequence[float],
    slots: int,
    *,
    ctr: Floats,
    cpc: Indexed[bool],
    bids: Indexed[int],
    reserves: Indexed[int],
) -> list[int]:
    """The generalised second price of each of the first ``slots`` candidates of ``order`` (in
    rank order, with their rank ``scores``): the least whole bid that keeps its slot, at least
    its reserve, at most its bid. ``ctr``, ``cpc``, ``bids`` and ``reserves`` are indexed by
    candidate position. A Python loop over the slots: with a few slots it costs less than the
    NumPy calls a vectorised form would make."""
    prices = []
    last = len(order) - 1
    for k in range(slots if slots <= last else last + 1):
        mine = order[k]
        price = reserves[mine]
        if k < last:
            # A CPM bid's weight is 1.
            weight = ctr.item(mine) if cpc[mine] else 1.0
            least = least_bid(weight, scores[k + 1], mine < order[k + 1])
            price = least if least > price else price
        # Never above the bid (the bid itself keeps the slot: this only guards the arithmetic).
        bid = bids[mine]
        prices.append(price if price < bid else bid)
    return prices


def rank_and_price(
    bids: Ints,
    ctr: Floats,
    cpc: Mask,
    reserves: Ints,
    slots: int,
    *,
    rule: PriceRule = PriceRule.SECOND,
    eligible: Mask | None = None,
    floor: float = 0.0,
    scores: Floats | None = None,
) -> Ranked:
    """Rank the eligible candidates and price the first ``slots`` of them.

    Candidates come in tie-break order (ascending campaign id): of equal scores, the earlier
    wins. ``bids`` and ``reserves`` are micros per billable event, ``ctr`` the predicted
    click-through rates (above 0), ``cpc`` which bids are per click (the others are per
    impression). Eligible are all candidates, or those ``eligible`` marks; one whose predicted
    CTR is below the quality ``floor`` neither wins nor sets a price. ``scores`` may be given,
    computed already: ``bid × weight`` for eligible candidates and 0 for the others (they are
    overwritten).
    """
    if scores is None:
        computed = np.multiply(bids, np.where(cpc, ctr, 1.0), dtype=np.float64)
        if eligible is not None:
            computed[~eligible] = 0.0
        scores = computed
    order, found = best(scores, slots + 1, ctr, floor)
    winners = order[:slots]
    won = found[:slots]
    if rule is PriceRule.FIRST:
        return Ranked(winners, [bids.item(i) for i in winners], won)
    bid = {i: bids.item(i) for i in order}
    reserve = {i: reserves.item(i) for i in order}
    kind = {i: bool(cpc.item(i)) for i in order}
    return Ranked(
        winners,
        second_prices(order, found, slots, ctr=ctr, cpc=kind, bids=bid, reserves=reserve),
        won,
    )


def least_bid(weight: float, next_score: float, first: bool) -> int:
    """The least whole bid whose score ``bid × weight`` ranks before ``next_score``: above it,
    or equal to it where the candidate comes ``first`` on equal scores."""
    # The quotient's ceiling, moved by the rounding of the division and of the product (a micro
    # either way at most). Mostly it is right as it is: two products tell.
    bid = max(1, math.ceil(next_score / weight))
    if first:
        if bid * weight >= next_score and (bid == 1 or (bid - 1) * weight < next_score):
            return bid
        while bid > 1 and (bid - 1) * weight >= next_score:
            bid -= 1
        while bid * weight < next_score:
            bid += 1
        return bid
    if bid * weight > next_score and (bid == 1 or (bid - 1) * weight <= next_score):
        return bid
    while bid > 1 and (bid - 1) * weight > next_score:
        bid -= 1
    while bid * weight <= next_score:
        bid += 1
    return bid


__all__ = [
    "AuctionRules",
    "PriceRule",
    "Ranked",
    "best",
    "least_bid",
    "rank",
    "rank_and_price",
    "second_prices",
]
