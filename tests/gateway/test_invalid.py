"""Exchanges that cannot be carried out: refused with a clear message, logged, nothing released."""

from __future__ import annotations

from typing import Any

import pytest

from accord.consent import Operation
from accord.errors import InvalidInput
from accord.gateway import ERROR_RULE, Exchange
from accord.requests import Request
from gateway.helpers import FRIEND_PICKER, last_entries
from gateway.world import AT, WATCHED, World, request

pytestmark = pytest.mark.integration

COUNTS = request(
    "watch-counts",
    agreement="insights",
    requester="chirp",
    purpose="analytics.reporting.content_performance",
    categories=frozenset({WATCHED}),
)
ACTIVITY = request(
    "watch-posts", agreement="insights", operation=Operation.WRITE, categories=frozenset({WATCHED})
)


@pytest.mark.parametrize(
    ("r", "collection", "extra", "message"),
    [
        # A collection the dataset does not declare.
        (FRIEND_PICKER, "friendz", {}, "declares no collection 'friendz'"),
        # A read carries no rows.
        (FRIEND_PICKER, "friendships", {"rows": [{"friend_id": "c2"}]}, "posts no rows"),
        # Grouping is for aggregate clauses only.
        (
            FRIEND_PICKER,
            "friendships",
            {"group_by": ("friend_id",), "where": {"person_id": "c1"}},
            "for aggregate clauses",
        ),
        # An aggregate measures something.
        (COUNTS, "watch_events", {"group_by": ("title_id",)}, "at least one measure"),
        # A write posts rows.
        (ACTIVITY, "watch_events", {"rows": []}, "at least one row"),
        # Every row of a write says whom it is about.
        (
            ACTIVITY,
            "watch_events",
            {"rows": [{"title_id": "t1", "watched_at": AT}]},
            "do not say whom",
        ),
        # A write takes no conditions.
        (
            ACTIVITY,
            "watch_events",
            {"rows": [{"member_id": "m1", "title_id": "t1"}], "where": {"member_id": "m1"}},
            "no conditions",
        ),
    ],
)
def test_an_exchange_that_cannot_be_carried_out_is_refused_and_logged(
    w: World, r: Request, collection: str, extra: dict[str, Any], message: str
) -> None:
    size = w.accord.ledger.head().size
    with pytest.raises(InvalidInput, match=message):
        w.gateway.exchange(Exchange(r, w.tokens[r.requester], collection, **extra))
    (logged,) = last_entries(w.accord.ledger, 1)
    assert logged["rules"] == [ERROR_RULE]
    assert message in logged["reason"]
    assert w.accord.ledger.head().size == size + 1  # the refusal, and no release
