"""A person's relations (their friends, their threads) are read only by that person.

However a request names the person — in its subjects, as ``on_behalf_of``, by a condition on the
field holding whose relation each row is, or not at all — the rows of one person's relations
cross only when the partner acts on that person's behalf. Everything else is refused, logged with
a reason that names no one, and releases nothing.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from accord.errors import AccordError
from accord.gateway import Exchange, Refused, Release
from accord.law.friends import RELATIONS_RULE_ID
from accord.requests import Subjects, SubjectsKind
from gateway.helpers import last_entries
from gateway.world import FRIENDS, THREADS, World, request

pytestmark = pytest.mark.integration

ALL = Subjects()
C1_FRIENDS = Subjects(SubjectsKind.FRIENDS_OF, anchor="c1")
# c1's friends are c2..c5; of them only c2 agreed to be shown (c3's consent falls short of the
# GDPR, c4 never consented, c5 withdrew): what c1 would be told.
C1_SHOWN = {"c2"}
PERSON_ID = re.compile(r"\b[cm]\d\b")


@pytest.mark.parametrize(
    ("subjects", "on_behalf_of", "where", "expected"),
    [
        # The finding: the app's own account, the person pinned by a condition only.
        (ALL, None, {"person_id": "c1"}, "refused"),
        # The same through the qualified field name.
        (ALL, None, {"friendships.person_id": "c1"}, "refused"),
        # No condition at all: the whole social graph, on nobody's behalf.
        (ALL, None, None, "refused"),
        # Acting for c2 while pinning c1's friend list.
        (ALL, "c2", {"person_id": "c1"}, "refused"),
        # Acting for c1, but the friend list asked for is c2's.
        (C1_FRIENDS, "c1", {"person_id": "c2"}, "refused"),
        # Named in the subjects, nobody acting (refused by the policy itself).
        (C1_FRIENDS, None, {"person_id": "c1"}, "refused"),
        # Named in the subjects, someone else acting.
        (C1_FRIENDS, "c2", {"person_id": "c1"}, "refused"),
        # Even on c1's behalf, a read of every friend list at once.
        (ALL, "c1", None, "refused"),
        # A condition on the friend, not on whose friend list it is: every list naming c1.
        (ALL, "c1", {"friend_id": "c1"}, "refused"),
        # c1 asks for their own friends: those who agreed come back.
        (C1_FRIENDS, "c1", {"person_id": "c1"}, C1_SHOWN),
        # c1 asks without naming themselves in the subjects: the same.
        (ALL, "c1", {"person_id": "c1"}, C1_SHOWN),
        (ALL, "c1", {"friendships.person_id": "c1"}, C1_SHOWN),
    ],
)
def test_a_friend_list_crosses_only_for_its_own_person(
    w: World,
    subjects: Subjects,
    on_behalf_of: str | None,
    where: dict[str, Any] | None,
    expected: str | set[str],
) -> None:
    r = request(
        "friend-picker",
        categories=frozenset({"user.social"}),
        subjects=subjects,
        on_behalf_of=on_behalf_of,
    )
    size = w.accord.ledger.head().size
    exchange = Exchange(r, w.tokens["reelix"], "friendships", where=where)
    if expected == "refused":
        with pytest.raises(Refused) as refused:
            w.gateway.exchange(exchange)
        assert RELATIONS_RULE_ID in refused.value.decision.rules
        (logged,) = last_entries(w.accord.ledger, 1)
        assert w.accord.ledger.head().size == size + 1  # the refusal, and no release
        assert logged["kind"] == "decision"
        assert logged["allowed"] is False
        assert logged["people"] == 0
        assert RELATIONS_RULE_ID in logged["rules"]
        assert not PERSON_ID.search(logged["reason"]), logged["reason"]
        return
    release = w.gateway.exchange(exchange)
    assert {friend for (friend,) in release.rows} == expected
    owners = {f["friend_id"] for f in FRIENDS if f["person_id"] == "c1"}
    assert {friend for (friend,) in release.rows} <= owners


def test_a_thread_read_shows_only_the_acting_persons_threads(w: World) -> None:
    """On c1's behalf, whatever the subjects say, only threads c1 is in: t-solo is c2's alone
    (and c2 agreed), and stays out."""
    for subjects in (ALL, Subjects(SubjectsKind.THREADS_OF, anchor="c1")):
        r = request("message-sync", on_behalf_of="c1", subjects=subjects)
        release = w.gateway.exchange(Exchange(r, w.tokens["reelix"], "messages"))
        threads = {row[1] for row in release.rows}
        assert threads == {"t-ok"}
        assert all("c1" in THREADS[t] for t in threads)


def test_a_thread_read_for_someone_else_is_refused(w: World) -> None:
    r = request(
        "message-sync", on_behalf_of="c2", subjects=Subjects(SubjectsKind.THREADS_OF, anchor="c1")
    )
    with pytest.raises(Refused) as refused:
        w.gateway.exchange(Exchange(r, w.tokens["reelix"], "messages"))
    assert RELATIONS_RULE_ID in refused.value.decision.rules
    assert not PERSON_ID.search(refused.value.decision.reason)


PEOPLE = ("c1", "c2", "c3", "c4", "c5")


@st.composite
def friend_reads(draw: Any) -> tuple[Subjects, str | None, dict[str, Any] | None]:
    acting = draw(st.one_of(st.none(), st.sampled_from(PEOPLE)))
    # Often the person acting, so that some reads are let through and their rows checked.
    person = draw(
        st.sampled_from(PEOPLE) if acting is None else st.sampled_from((acting,) * 5 + PEOPLE)
    )
    kind = draw(st.sampled_from(list(SubjectsKind)))
    if kind is SubjectsKind.ALL:
        subjects = ALL
    elif kind is SubjectsKind.PEOPLE:
        subjects = Subjects(
            kind, people=frozenset(draw(st.sets(st.sampled_from(PEOPLE), min_size=1)))
        )
    else:
        subjects = Subjects(kind, anchor=draw(st.sampled_from((person,) * 5 + PEOPLE)))
    field = draw(st.sampled_from(["person_id", "friendships.person_id", "friend_id"]))
    where = draw(st.sampled_from([None, {field: person}, {field: person, "friend_id": person}]))
    return subjects, acting, where


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(read=friend_reads())
def test_no_friend_list_crosses_but_to_its_own_person(
    w: World, read: tuple[Subjects, str | None, dict[str, Any] | None]
) -> None:
    """Whatever the subjects, the person acting and the condition: rows cross only for the person
    acting, only their own friends; a refusal names no one."""
    subjects, acting, where = read
    r = request(
        "friend-picker",
        categories=frozenset({"user.social"}),
        subjects=subjects,
        on_behalf_of=acting,
    )
    exchange = Exchange(r, w.tokens["reelix"], "friendships", where=where)
    outcome: Release | AccordError
    try:
        outcome = w.gateway.exchange(exchange)
    except AccordError as exc:
        outcome = exc
    if isinstance(outcome, Refused):
        assert not PERSON_ID.search(outcome.decision.reason), outcome.decision.reason
    if isinstance(outcome, AccordError):
        return  # refused (other refusals are the gateway's own tests')
    release = outcome
    event("released")
    assert acting is not None
    assert where is not None
    owner = [v for k, v in where.items() if k.removeprefix("friendships.") == "person_id"]
    assert owner == [acting]  # pinned to the person acting, whatever else narrows it
    theirs = {f["friend_id"] for f in FRIENDS if f["person_id"] == acting}
    assert {friend for (friend,) in release.rows} <= theirs
