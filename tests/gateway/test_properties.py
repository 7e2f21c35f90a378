"""Nothing leaves that the decision did not allow: releases against an independent recomputation."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.consent import Consent, PersonFacts
from accord.gateway import Exchange
from accord.requests import Subjects, SubjectsKind
from gateway.world import AT, REELIX_PEOPLE, WATCH, WATCHED, World, consent, request

pytestmark = pytest.mark.integration

# What each member's consent looks like in one example.
KINDS = ("none", "vppa-grade", "not-distinct", "withdrawn", "other-purpose")
_round = itertools.count(1)


def _consent(kind: str, person: Any, n: int, at: Any) -> Consent | None:
    window: dict[str, Any] = {
        "given_at": at - timedelta(days=1),
        "expires_at": at + timedelta(days=1),
        "purposes": frozenset({"personalize.content"}),
        "categories": frozenset({WATCHED}),
    }
    if kind == "none":
        return None
    if kind == "not-distinct":
        window["distinct_and_separate"] = False
    if kind == "withdrawn":
        window["withdrawn_at"] = at - timedelta(hours=1)
    if kind == "other-purpose":
        window["purposes"] = frozenset({"functional.service"})
    return consent(person, n, **window)


def _withdraw_the_worlds_watch_consents(w: World) -> None:
    """So that every member's consent at the instant asked about is the example's own."""
    for person in REELIX_PEOPLE:
        for c in w.accord.consents("reelix", person.id):
            if c.withdrawn_at is None and c.expires_at is None:
                w.accord.withdraw(c.id, at=AT)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kinds=st.lists(st.sampled_from(KINDS), min_size=5, max_size=5),
    asked=st.one_of(st.none(), st.sets(st.sampled_from(["m1", "m2", "m3", "m4", "m5", "m9"]))),
)
def test_a_release_is_exactly_what_an_independent_recomputation_allows(
    w: World, kinds: list[str], asked: set[str] | None
) -> None:
    n = next(_round)
    _withdraw_the_worlds_watch_consents(w)
    # Each example lives in its own fortnight, so earlier examples' consents have expired.
    at = AT + timedelta(days=14 * n)
    given = [
        c
        for person, kind in zip(REELIX_PEOPLE, kinds, strict=True)
        if (c := _consent(kind, person, 100 + n, at)) is not None
    ]
    w.accord.import_records([], given)
    subjects = Subjects(SubjectsKind.PEOPLE, frozenset(asked)) if asked else Subjects()
    r = request(
        "watch-history",
        agreement="insights",
        requester="chirp",
        purpose="personalize.content",
        categories=frozenset({WATCHED}),
        subjects=subjects,
        at=at,
    )
    release = w.gateway.exchange(Exchange(r, w.tokens["chirp"], "watch_events"))
    decision = w.accord.policy().decide(r)
    assert decision.filter is not None
    # Judged in Python over the records as the store returns them, not by the store's SQL.
    allowed = decision.filter.allowed(
        PersonFacts.of(p, w.accord.consents("reelix", p.id)) for p in REELIX_PEOPLE
    )
    expected = sorted((e["title_id"],) for e in WATCH if e["member_id"] in allowed)
    assert sorted(release.rows) == expected
    assert release.people == len({e["member_id"] for e in WATCH if e["member_id"] in allowed})
