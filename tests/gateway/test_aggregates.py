"""An aggregate says nothing about groups or people below the clause's minimum.

The insights agreement's ``watch-counts`` clause shows groups of at least 3 viewers. Title t1 is
watched by all five members, t2 by two, t3 by m5 alone, t9 by nobody. Whatever a recipient asks,
it must not learn whether one person is among the rows: not by pinning the aggregate to them,
not by comparing an answer over one person's rows with one over nobody's.
"""

from __future__ import annotations

from typing import Any

import pytest

from accord.errors import InvalidInput
from accord.gateway import ERROR_RULE, Exchange, Release
from gateway.helpers import last_entries
from gateway.world import WATCH, WATCHED, World, request

pytestmark = pytest.mark.integration

MINIMUM = 3
COUNTS = request(
    "watch-counts",
    agreement="insights",
    requester="chirp",
    purpose="analytics.reporting.content_performance",
    categories=frozenset({WATCHED}),
)
MEASURES = {"views": "count", "seconds": "sum(seconds)"}


def counts(w: World, where: dict[str, Any] | None, group_by: tuple[str, ...] = ()) -> Release:
    return w.gateway.exchange(
        Exchange(
            COUNTS,
            w.tokens["chirp"],
            "watch_events",
            where=where,
            group_by=group_by,
            measures=MEASURES,
        )
    )


def answer(release: Release, w: World) -> tuple[Any, ...]:
    """Everything the recipient and the ledger learn of a release, but its receipts."""
    logged = last_entries(w.accord.ledger, 1)[0]
    return (
        release.columns,
        release.rows,
        release.people,
        release.withheld,
        logged["people"],
        logged["reason"],
        logged["fields"],
    )


@pytest.mark.parametrize(
    ("one", "none", "group_by"),
    [
        # one viewer (m5) against no viewer at all: one person's presence
        ({"title_id": "t3"}, {"title_id": "t9"}, ()),
        # the same, broken down by title
        ({"title_id": "t3"}, {"title_id": "t9"}, ("title_id",)),
        # two viewers (m1, m3) against none: still below the minimum
        ({"title_id": "t2"}, {"title_id": "t9"}, ("title_id",)),
    ],
)
def test_an_answer_over_a_few_people_is_the_answer_over_nobody(
    w: World, one: dict[str, Any], none: dict[str, Any], group_by: tuple[str, ...]
) -> None:
    viewers = {e["member_id"] for e in WATCH if e["title_id"] == one["title_id"]}
    assert 0 < len(viewers) < MINIMUM
    assert not [e for e in WATCH if e["title_id"] == none["title_id"]]
    few = answer(counts(w, one, group_by), w)
    nobody = answer(counts(w, none, group_by), w)
    assert few == nobody
    assert few[1] == []  # no row
    assert few[2] == 0  # and no one said to be in it


def test_an_answer_with_rows_says_only_that_each_has_the_minimum(w: World) -> None:
    release = counts(w, None, ("title_id",))
    assert [row[0] for row in release.rows] == ["t1"]  # five viewers; t2 and t3 dropped
    assert release.people == MINIMUM  # not 5, not 5 + 2 + 1
    assert not hasattr(release, "suppressed")


@pytest.mark.parametrize(
    "where",
    [
        {"member_id": "m5"},  # the person field
        {"watch_events.member_id": "m1"},  # named in full
        {"member_id": "m5", "title_id": "t1"},  # among other conditions
    ],
)
def test_an_aggregate_pinned_to_one_person_is_refused(w: World, where: dict[str, Any]) -> None:
    size = w.accord.ledger.head().size
    with pytest.raises(InvalidInput, match="about no one in particular"):
        counts(w, where)
    (logged,) = last_entries(w.accord.ledger, 1)
    assert w.accord.ledger.head().size == size + 1  # the refusal, and no release
    assert logged["rules"] == [ERROR_RULE]
    assert logged["allowed"] is False
    assert "m5" not in logged["reason"]
    assert "m1" not in logged["reason"]
