"""What changes between two identical exchanges takes effect at the second, whoever changed it.

The door keeps what does not change from one request to the next (a plan per registry revision
and request shape, Cedar's answers per shape, prepared statements, a connection per thread):
a consent withdrawn, an opt-out, an erasure, a registry revision or an agreement's end must
still apply from the very next exchange, also when written by another process sharing the
store. Each test makes an exchange, changes one thing, and makes the same exchange again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import yaml_text
from accord import agreements as ag
from accord.consent import OptOut, OptOutKind, SignalSource
from accord.erasure import erase
from accord.gateway import Exchange, Refused
from accord.requests import Request, Subjects, SubjectsKind
from accord.service import Accord
from accord.store import filter_sql
from gateway.helpers import reference_allowed
from gateway.test_decision_shapes import TARGETED
from gateway.test_decision_shapes import for_ads as ads_consent
from gateway.world import AT, FUNCTIONAL, INSIGHTS, WATCH, WATCHED, World, request

pytestmark = pytest.mark.integration

# One member's watch activity, read by Chirp: a single-person read, as a partner makes them.
ONE_MEMBER = request(
    "watch-activity",
    requester="chirp",
    categories=frozenset({WATCHED}),
    purpose=FUNCTIONAL,
    subjects=Subjects(SubjectsKind.PEOPLE, frozenset({"m1"})),
)


def read(w: World, r: Request = ONE_MEMBER, collection: str = "watch_events") -> Any:
    return w.gateway.exchange(Exchange(r, w.tokens["chirp"], collection))


def other_process(folder: Path, script: str, *args: str) -> None:
    """Run ``script`` in another Python process on the store in ``folder``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", script, str(folder), *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def folder_of(w: World) -> Path:
    """The folder of the world's store and ledger key."""
    database = w.accord.engine.url.database
    assert database is not None
    return Path(database).parent


def another_accord(w: World) -> AbstractContextManager[Accord]:
    """The same store opened again: an engine, caches and connections of its own, as another
    worker has."""
    return Accord.open(data_dir=folder_of(w), migrate=False)


WITHDRAW = """\
import sys
from datetime import datetime
from pathlib import Path
from accord.service import Accord
from accord.store import filter_sql
with Accord.open(data_dir=Path(sys.argv[1])) as accord:
    accord.withdraw(sys.argv[2], at=datetime.fromisoformat(sys.argv[3]))
"""


def test_a_consent_withdrawn_by_another_process_stops_the_next_identical_exchange(
    w: World,
) -> None:
    assert read(w).people == 1  # m1's watch activity flows under their consent
    before = (AT - timedelta(hours=1)).isoformat()
    other_process(folder_of(w), WITHDRAW, "k-m1-1", before)
    again = read(w)
    assert again.rows == []
    assert again.people == 0


def test_a_consent_withdrawn_in_this_process_stops_the_next_identical_exchange(w: World) -> None:
    assert read(w).people == 1
    w.accord.withdraw("k-m1-1", at=AT - timedelta(hours=1))
    assert read(w).rows == []


def test_an_opt_out_by_another_worker_stops_the_next_identical_exchange(w: World) -> None:
    # Chirp's read for its ads: a marketing purpose, so an opt-out of sale and sharing applies.
    for_ads = replace(ONE_MEMBER, clause="interest-segments", purpose=TARGETED)
    w.accord.grant(ads_consent("m1", "US-CA"))
    assert read(w, for_ads).people == 1
    with another_accord(w) as other:
        other.opt_out(
            OptOut(
                person="m1",
                controller="reelix",
                kind=OptOutKind.SALE_SHARING,
                source=SignalSource.FORM,
                at=AT - timedelta(hours=1),
            )
        )
    again = read(w, for_ads)
    assert (again.people, again.rows) == (0, [])


def test_an_erasure_by_another_worker_stops_the_next_identical_exchange(w: World) -> None:
    assert read(w).people == 1
    with another_accord(w) as other:
        erase(other, "reelix", "m1", at=datetime.now(UTC))
    again = read(w)
    assert again.rows == []
    assert again.people == 0


def test_an_agreement_suspended_by_another_worker_refuses_the_next_identical_exchange(
    w: World,
) -> None:
    assert read(w).people == 1
    with another_accord(w) as other:
        other.move("chirp-reelix", ag.Status.SUSPENDED, by="dpo", note="under review")
    with pytest.raises(Refused):
        read(w)
    with another_accord(w) as other:
        other.move("chirp-reelix", ag.Status.ACTIVE, by="dpo", note="review done")
    assert read(w).people == 1


def test_a_new_revision_of_a_clause_applies_from_the_next_identical_exchange(w: World) -> None:
    history = request(
        "watch-history",
        requester="chirp",
        agreement="insights",
        purpose="personalize.content",
        categories=frozenset({WATCHED}),
        subjects=Subjects(SubjectsKind.PEOPLE, frozenset({"m1"})),
    )
    first = read(w, history)
    assert first.columns == ("title_id",)
    clause = dict(INSIGHTS["clauses"][0])
    clause["fields"] = ["watch_events.title_id", "watch_events.watched_at"]
    amended = {**INSIGHTS, "version": 2, "clauses": [clause, *INSIGHTS["clauses"][1:]]}
    with another_accord(w) as other:
        other.register(yaml_text.dump(amended), source="insights.yaml", by="legal")
        other.review("insights", reviewer="Dana Privacy", findings="one field more", approved=True)
        other.move("insights", ag.Status.ACTIVE, by="dpo")
    again = read(w, history)
    assert again.columns == ("title_id", "watched_at")
    assert sorted(again.rows) == sorted(
        (e["title_id"], e["watched_at"].replace(tzinfo=None))
        for e in WATCH
        if e["member_id"] == "m1"
    )


def test_the_same_exchange_after_the_agreement_ended_is_refused(w: World) -> None:
    # chirp-reelix is valid until 2028-01-01: the same request a moment before and after.
    last_day = datetime(2027, 12, 31, 23, 59, tzinfo=UTC)
    assert read(w, _at(last_day)).people == 1
    with pytest.raises(Refused) as refused:
        read(w, _at(datetime(2028, 1, 1, 0, 1, tzinfo=UTC)))
    assert refused.value.decision.allowed is False
    assert read(w, _at(last_day)).people == 1


def test_the_same_exchange_before_the_agreement_began_is_refused(w: World) -> None:
    assert read(w).people == 1
    with pytest.raises(Refused):
        read(w, _at(datetime(2025, 12, 31, 23, 59, tzinfo=UTC)))


def test_a_consent_expiring_between_two_identical_exchanges_lets_the_second_release_nothing(
    w: World,
) -> None:
    ends = AT + timedelta(days=1)
    w.accord.withdraw("k-m1-1", at=ends)
    assert read(w, _at(ends - timedelta(seconds=1))).people == 1
    assert read(w, _at(ends)).people == 0


def _at(when: datetime) -> Request:
    return replace(ONE_MEMBER, at=when)


def test_filters_alike_but_for_their_rules_are_each_judged_by_their_own(w: World) -> None:
    # The statement judging a few people is kept by the identity of the filter's rules: two
    # filters of one controller, one with the clause's rules and one without, never share it.
    decision = w.accord.policy().decide(replace(ONE_MEMBER, subjects=_named("m1", "m2")))
    assert decision.filter is not None
    strict = decision.filter
    lax = replace(strict, rules=())
    for f in (strict, lax, strict, lax):
        assert filter_sql.allowed_people(w.accord.engine, f) == reference_allowed(f)
    assert reference_allowed(strict) != reference_allowed(lax)  # m2 gave no consent


def _named(*people: str) -> Subjects:
    return Subjects(SubjectsKind.PEOPLE, frozenset(people))
