"""Erasure through the one door: after ``erase``, no flow releases the person, nothing gives
them a new ledger key, the store keeps nothing about them but the suppression entry and a proof
sealed under their key, and every recipient has a notice.

The oracles are the world's own rows: what the erased person would say was theirs (their watch
events, their place in a friend list), looked for in what the door releases afterwards.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, String, Text, func, select

from accord.consent import Operation, OptOut, OptOutKind, SignalSource
from accord.erasure import acknowledge, erase, notices, open_proof
from accord.errors import ConsentError, InvalidInput, LedgerError, NotFound
from accord.gateway import Exchange, Refused
from accord.ledger.entries import DecisionEntry, ReleaseEntry
from accord.ledger.notes import RELEASE_UNDELIVERED_RULE, never_received
from accord.ledger.tables import leaves_table, person_keys_table
from accord.requests import Request, Subjects, SubjectsKind
from accord.service import person_ref
from accord.store import tables as t
from accord.store.engine import Base
from gateway.helpers import FRIEND_PICKER
from gateway.world import AT, CONSENTS, FUNCTIONAL, REELIX_PEOPLE, WATCH, WATCHED, World, request

pytestmark = pytest.mark.integration

WATCH_FEED = request(
    "watch-activity",
    requester="chirp",
    categories=frozenset({WATCHED}),
    purpose=FUNCTIONAL,
    at=AT,
)


def watch_rows(w: World) -> list[tuple[Any, ...]]:
    release = w.gateway.exchange(Exchange(WATCH_FEED, w.tokens["chirp"], "watch_events"))
    return sorted(release.rows)


def events_of(member: str) -> list[tuple[Any, ...]]:
    """A member's watch events as the feed releases them: (title, when)."""
    return sorted(
        (e["title_id"], e["watched_at"].replace(tzinfo=None))  # the source reads naive UTC
        for e in WATCH
        if e["member_id"] == member
    )


def naming(conn: Connection, person: str) -> dict[str, int]:
    """How many rows of each table of the store hold ``person`` as a whole token in a text
    column (an id inside a consent id, "k-m1-1", counts). Keys, hashes and sealed bytes are
    random, not text; the ledger's leaves are searched on their own."""
    token = re.compile(rf"(?<![A-Za-z0-9]){re.escape(person)}(?![0-9])")
    found: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, String | Text)]
        if not columns:
            continue
        for row in conn.execute(select(*columns)):
            if any(isinstance(v, str) and token.search(v) for v in row):
                found[table.name] = found.get(table.name, 0) + 1
    return found


def test_after_erasure_the_watch_feed_releases_nothing_about_the_member(w: World) -> None:
    before = watch_rows(w)
    assert set(events_of("m1")) <= set(before)  # m1 consented: their events flowed
    ref = person_ref("reelix", "m1")
    assert w.accord.ledger.key_of(ref) is not None
    done = erase(w.accord, "reelix", "m1", at=AT)
    assert done.withdrawn == 1
    assert done.entries_forgotten > 0
    after = watch_rows(w)
    assert not set(events_of("m1")) & set(after)
    assert after == sorted(set(before) - set(events_of("m1")))  # everyone else's still flow
    # No release, refusal or decision after the erasure gave m1 a new key.
    assert w.accord.ledger.key_of(ref) is None
    assert w.accord.ledger.entries_about(ref) == []
    with w.accord.engine.connect() as conn:
        keys = conn.execute(
            select(func.count())
            .select_from(person_keys_table)
            .where(person_keys_table.c.person_id == ref)
        ).scalar_one()
    assert keys == 0


def test_after_erasure_the_friend_picker_never_shows_the_friend(w: World) -> None:
    pinned = {"person_id": "c1"}
    before = w.gateway.exchange(
        Exchange(FRIEND_PICKER, w.tokens["reelix"], "friendships", where=pinned)
    )
    assert ("c2",) in before.rows  # c2 consented: c1 could pick them
    erase(w.accord, "chirp", "c2", at=AT)
    after = w.gateway.exchange(
        Exchange(FRIEND_PICKER, w.tokens["reelix"], "friendships", where=pinned)
    )
    assert ("c2",) not in after.rows
    assert after.people == 0
    assert w.accord.ledger.key_of(person_ref("chirp", "c2")) is None


def test_a_reload_of_the_party_records_does_not_bring_the_person_back(w: World) -> None:
    erase(w.accord, "reelix", "m1", at=AT)
    w.accord.import_records(list(REELIX_PEOPLE), [c for c in CONSENTS if c.person == "m1"])
    with w.accord.session() as s:
        people = s.execute(select(t.people.c.person_id).where(t.people.c.party == "reelix")).all()
        consents = s.execute(select(t.consents.c.id).where(t.consents.c.person == "m1")).all()
    assert ("m1",) not in people
    assert consents == []
    assert set(events_of("m1")).isdisjoint(watch_rows(w))
    # A consent recorded one by one is refused outright, and no entry names the person again.
    (given,) = [c for c in CONSENTS if c.person == "m1"]
    with pytest.raises(ConsentError, match="erased"):
        w.accord.grant(given.__class__(**{**_fields(given), "id": "k-again"}))
    with pytest.raises(LedgerError, match="erased"):
        w.accord.ledger.append(
            [
                DecisionEntry(
                    agreement=None,
                    reason="test",
                    allowed=False,
                    about=(person_ref("reelix", "m1"),),
                )
            ]
        )
    assert w.accord.ledger.key_of(person_ref("reelix", "m1")) is None


def _fields(consent: Any) -> dict[str, Any]:
    return {name: getattr(consent, name) for name in consent.__dataclass_fields__}


def test_erasure_deletes_the_person_rows_and_keeps_only_the_suppression_entry(w: World) -> None:
    w.accord.opt_out(
        OptOut(
            person="m1",
            controller="reelix",
            kind=OptOutKind.SALE_SHARING,
            source=SignalSource.FORM,
            at=AT - timedelta(days=1),
        )
    )
    watch_rows(w)  # m1's events go to Chirp, which must then be told
    done = erase(w.accord, "reelix", "m1", at=AT)
    assert done.deleted["consents"] == 1
    assert done.deleted["opt_outs"] == 1
    assert done.deleted["people"] == 1
    assert done.recipients == ("chirp",)
    with w.accord.session() as s:
        assert w.accord.consents("reelix", "m1") == []
        assert s.execute(select(t.opt_outs.c.id).where(t.opt_outs.c.person == "m1")).all() == []
    (notice,) = notices(w.accord, "chirp")
    assert (notice.provider, notice.person) == ("reelix", "m1")
    with w.accord.engine.connect() as conn:
        assert naming(conn, "m1") == {"erased_people": 1, "erasure_notices": 1}
    acknowledge(w.accord, "chirp", notice.id)
    assert notices(w.accord, "chirp") == []
    with w.accord.engine.connect() as conn:
        assert naming(conn, "m1") == {"erased_people": 1}  # the suppression entry alone
        leaves = [bytes(d).decode() for (d,) in conn.execute(select(leaves_table.c.data))]
    assert not [leaf for leaf in leaves if re.search(r"(?<![A-Za-z0-9])m1(?![0-9])", leaf)]


def test_the_sealed_proof_opens_only_with_the_person_key(w: World) -> None:
    ref = person_ref("reelix", "m1")
    bundle = w.accord.ledger.prove_person(ref, sign=True)  # what the person holds: their key
    theirs = bytes.fromhex(bundle["person"]["key"])
    done = erase(w.accord, "reelix", "m1", at=AT)
    assert done.sealed
    # The store holds no key that opens it: the person's key is shredded.
    with w.accord.engine.connect() as conn:
        stored = [bytes(k) for (k,) in conn.execute(select(person_keys_table.c.key))]
        sealed = conn.execute(select(func.count()).select_from(t.sealed_consent_proofs)).scalar()
    assert sealed == 1
    assert theirs not in stored
    for key in stored:
        with pytest.raises(NotFound):
            open_proof(w.accord, key)
    # With the person's own key, the proof of what they consented to, and of its withdrawal.
    (kept,) = open_proof(w.accord, theirs)["consents"]
    assert kept["recipient"] == "chirp"
    assert kept["withdrawn_at"] is not None
    assert kept["given_at"] == (AT - timedelta(days=30)).isoformat()


def test_recipients_are_told_by_the_id_they_know(w: World) -> None:
    watch_rows(w)
    erase(w.accord, "reelix", "m3", known_as={"chirp": "c9"}, at=AT)
    assert [(n.provider, n.person) for n in notices(w.accord, "chirp")] == [("reelix", "c9")]
    assert notices(w.accord, "reelix") == []
    with pytest.raises(NotFound):
        acknowledge(w.accord, "reelix", notices(w.accord, "chirp")[0].id)  # not Reelix's notice


def test_erasing_an_unknown_person_is_a_clear_error(w: World) -> None:
    with pytest.raises(InvalidInput, match="holds no person 'nobody'"):
        erase(w.accord, "reelix", "nobody")
    with pytest.raises(InvalidInput, match="no party 'acme'"):
        erase(w.accord, "acme", "m1")


def test_erasing_twice_does_nothing_more(w: World) -> None:
    erase(w.accord, "reelix", "m1", at=AT)
    size = w.accord.ledger.head().size
    again = erase(w.accord, "reelix", "m1", at=AT)
    assert again.already
    assert w.accord.ledger.head().size == size


def test_refusals_about_the_erased_person_name_nobody(w: World) -> None:
    erase(w.accord, "chirp", "c2", at=AT)
    bad = request(
        "friend-picker",
        categories=frozenset({"user.social"}),
        subjects=Subjects(SubjectsKind.FRIENDS_OF, anchor="c2"),
        operation=Operation.READ,
    )
    # Refused by the policy (no person acting) or by the door (an erased anchor): either way
    # the refusal is logged, and must not name the person.
    with pytest.raises((InvalidInput, Refused)):
        w.gateway.exchange(Exchange(bad, w.tokens["reelix"], "friendships"))
    with w.accord.engine.connect() as conn:
        leaves = [bytes(d).decode() for (d,) in conn.execute(select(leaves_table.c.data))]
    assert not [leaf for leaf in leaves if re.search(r"(?<![A-Za-z0-9])c2(?![0-9])", leaf)]
    assert w.accord.ledger.key_of(person_ref("chirp", "c2")) is None


_ = Request, Path


def test_nothing_flows_on_behalf_of_an_erased_person(w: World) -> None:
    erase(w.accord, "chirp", "c1", at=AT)
    size = w.accord.ledger.head().size
    with pytest.raises(InvalidInput, match="was erased"):
        w.gateway.exchange(
            Exchange(FRIEND_PICKER, w.tokens["reelix"], "friendships", where={"person_id": "c1"})
        )
    (refusal,) = [
        leaf.entry() for leaf in w.accord.ledger.recent(w.accord.ledger.head().size - size)
    ]
    assert refusal["allowed"] is False
    assert refusal["kind"] == "decision"


@pytest.mark.parametrize("received", [True, False])
def test_only_recipients_that_received_a_release_are_told(w: World, *, received: bool) -> None:
    """m2 gave Chirp no consent; one release about them went to Chirp. If a later entry says
    Chirp never received it (answered that nothing was released), Chirp is not told of the
    erasure: it was given nothing about m2, and the notice would tell it of them (GDPR Art. 19
    names the recipients to whom the data were disclosed)."""
    ref = person_ref("reelix", "m2")
    (_, release) = w.accord.ledger.append(
        [
            DecisionEntry(
                agreement="chirp-reelix",
                reason="allowed",
                allowed=True,
                rules=("clause:chirp-reelix/watch-activity:read",),
                recipient="chirp",
                people=1,
            ),
            ReleaseEntry(
                agreement="chirp-reelix",
                reason="reelix → chirp: 1 row",
                provider="reelix",
                recipient="chirp",
                fields=("watch_events.title_id",),
                about=(ref,),
            ),
        ]
    )
    if not received:
        w.accord.ledger.append(
            [
                DecisionEntry(
                    agreement="chirp-reelix",
                    reason=f"Refused: {never_received(release.index, 'the store failed')}; "
                    "nothing was released.",
                    allowed=False,
                    rules=(RELEASE_UNDELIVERED_RULE,),
                    recipient="chirp",
                    about=(ref,),
                )
            ]
        )
    erase(w.accord, "reelix", "m2", at=AT)
    told = [(n.provider, n.person) for n in notices(w.accord, "chirp")]
    assert told == ([("reelix", "m2")] if received else [])
