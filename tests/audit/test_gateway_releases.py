"""The audit of releases the gateway really made, with the store on SQLite and on PostgreSQL.

The gateway's small world (tests/gateway/world.py) has people who consented, people whose consent
falls short (bundled, withdrawn) and people who never did. Each kind of read crosses the door —
a person's threads, a person's friends, everyone's watch history, a match — and the auditor,
rebuilding each release from the parties' databases, finds nothing to report; then one release
that leaks a row of a member without VPPA consent is appended, and it is found.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.audit import audit
from accord.audit.records import PartyDatabase
from accord.consent import Operation
from accord.gateway import Exchange
from accord.ledger.entries import ReleaseEntry
from accord.ledger.rows import rows_sum
from accord.requests import Subjects, SubjectsKind
from gateway.world import AT, WATCH, WATCHED, World, request, world

pytestmark = pytest.mark.integration


def _exchanges(w: World) -> int:
    """Every kind of read through the door; how many releases they made."""
    reelix, chirp = w.tokens["reelix"], w.tokens["chirp"]
    for person in ("c1", "c2"):
        threads = request(
            "message-sync",
            on_behalf_of=person,
            subjects=Subjects(SubjectsKind.THREADS_OF, anchor=person),
        )
        w.gateway.exchange(Exchange(threads, reelix, "messages"))
    friends = request(
        "friend-picker",
        categories=frozenset({"user.social"}),
        on_behalf_of="c1",
        subjects=Subjects(SubjectsKind.FRIENDS_OF, anchor="c1"),
    )
    w.gateway.exchange(Exchange(friends, reelix, "friendships", where={"person_id": "c1"}))
    history = request(
        "watch-history",
        requester="chirp",
        agreement="insights",
        purpose="personalize.content",
        categories=frozenset({WATCHED}),
    )
    w.gateway.exchange(Exchange(history, chirp, "watch_events"))
    match = request(
        "audience-match",
        requester="chirp",
        agreement="insights",
        purpose="personalize.content",
        categories=frozenset({WATCHED}),
        subjects=Subjects(SubjectsKind.PEOPLE, people=frozenset({"m1", "m2"})),
    )
    w.gateway.exchange(Exchange(match, chirp, "watch_events"))
    return 5


def _parties(w: World) -> dict[str, PartyDatabase]:
    return {party: PartyDatabase(s.engine, s.dataset) for party, s in w.sources.items()}


def _audit_the_world(folder: Path, store_url: str | None) -> None:
    with world(folder, store_url=store_url) as w:
        releases = _exchanges(w)
        clean = audit(w.accord.engine, w.accord.sessions, _parties(w))
        assert [d.to_json() for d in clean.differences] == [], [
            d.reasons for d in clean.differences
        ]
        assert clean.releases == releases
        assert clean.rows_compared == 4  # all but the match, whose rows are its people
        # A faulty door lets m4's viewing through: a US member whose consent is bundled.
        rows = [(e["title_id"],) for e in WATCH if e["member_id"] in {"m1", "m3", "m4", "m5"}]
        leak = ReleaseEntry(
            agreement="insights",
            clause="watch-history",
            purpose="personalize.content",
            categories=(WATCHED,),
            reason="a faulty release",
            about=tuple(f"reelix/{m}" for m in ("m1", "m3", "m4", "m5")),
            provider="reelix",
            recipient="chirp",
            fields=("watch_events.title_id",),
            operation=Operation.READ.value,
            scope="all",
            rows=len(rows),
            rows_sum=rows_sum(rows),
            at=AT,
        )
        (receipt,) = w.accord.ledger.append([leak])
        found = audit(w.accord.engine, w.accord.sessions, _parties(w))
        differences = [d for d in found.differences if d.leaf == receipt.index]
        assert {(d.kind, d.person) for d in differences} == {("released", "reelix/m4")}
        assert any("2710(b)(2)(B)" in r for r in differences[0].reasons)
        assert len(found.differences) == len(differences)


def test_the_gateways_releases_audit_clean_on_sqlite(tmp_path: Path) -> None:
    _audit_the_world(tmp_path, None)


@pytest.mark.postgres
def test_the_gateways_releases_audit_clean_on_postgres(tmp_path: Path, pg_url: str) -> None:
    _audit_the_world(tmp_path, pg_url)
