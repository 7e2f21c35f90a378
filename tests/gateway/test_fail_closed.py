"""Failing closed: credentials that are not the party's, and errors on the way, release nothing."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from accord.errors import AccordError
from accord.gateway import (
    ERROR_RULE,
    RELEASE_UNDELIVERED_RULE,
    UNAUTHENTICATED_RULE,
    Exchange,
    Gateway,
    GatewayError,
    Keyring,
    Release,
    ReleaseInDoubt,
    Unauthenticated,
    undone_release,
)
from accord.ledger.checkpoint import Signer
from accord.ledger.log import Ledger
from accord.requests import Subjects, SubjectsKind
from accord.service import Accord
from accord.store.engine import make_engine
from faults.helpers import commit_failing_after_the_release
from gateway.helpers import C1, FRIEND_PICKER, last_entries
from gateway.world import CHIRP_PEOPLE, World, request

pytestmark = pytest.mark.integration

FRIENDS_OF_C1 = {"c2", "c3", "c4", "c5"}


def _people_of(ledger: Ledger, index: int) -> set[str]:
    """Whom the entry at ``index`` is about, among Chirp's people, as the ledger's index says."""
    return {p.id for p in CHIRP_PEOPLE if index in ledger.entries_about(f"chirp/{p.id}")}


@pytest.mark.parametrize(
    ("requester", "token_of"),
    [
        ("reelix", "chirp"),  # another party's valid token
        ("reelix", None),  # a made-up token
        ("nobody", None),  # a party that does not exist
    ],
)
def test_credentials_not_the_requesters_are_refused_and_logged(
    w: World, requester: str, token_of: str | None
) -> None:
    r = request(
        "friend-picker",
        requester=requester,
        categories=frozenset({"user.social"}),
        subjects=Subjects(SubjectsKind.FRIENDS_OF, anchor="c1"),
        on_behalf_of="c1",
    )
    token = w.tokens[token_of] if token_of else "not-a-token"
    with pytest.raises(Unauthenticated) as refused:
        w.gateway.exchange(Exchange(r, token, "friendships", where=C1))
    # The same words whether or not the party exists.
    assert str(refused.value) == "the credentials presented are not valid for the requesting party"
    assert refused.value.receipt is not None
    (logged,) = last_entries(w.accord.ledger, 1)
    assert logged["rules"] == [UNAUTHENTICATED_RULE]
    assert logged["allowed"] is False
    assert logged["recipient"] == requester


def test_an_unwritable_ledger_releases_nothing(w: World, tmp_path: Path) -> None:
    w.gateway.exchange(Exchange(FRIEND_PICKER, w.tokens["reelix"], "friendships", where=C1))
    size = w.accord.ledger.head().size
    # The same store, its ledger now on a read-only connection to the same file.
    read_only = make_engine(f"sqlite:///file:{tmp_path / 'accord.db'}?mode=ro&uri=true")
    try:
        ledger = Ledger(read_only, Signer.load_or_create(tmp_path))
        stuck = Accord(w.accord.engine, w.accord.sessions, ledger)
        gateway = Gateway(stuck, w.sources, w.keyring)
        released: list[Release] = []
        with pytest.raises(AccordError):
            released.append(
                gateway.exchange(
                    Exchange(FRIEND_PICKER, w.tokens["reelix"], "friendships", where=C1)
                )
            )
        assert released == []
    finally:
        read_only.dispose()
    assert w.accord.ledger.head().size == size


def test_a_failing_source_releases_nothing_and_is_logged(w: World) -> None:
    with w.chirp.begin() as conn:
        conn.execute(text("DROP TABLE friendships"))
    with pytest.raises(AccordError, match="no table 'friendships'"):
        w.gateway.exchange(Exchange(FRIEND_PICKER, w.tokens["reelix"], "friendships", where=C1))
    (logged,) = last_entries(w.accord.ledger, 1)
    assert logged["rules"] == [ERROR_RULE]
    assert logged["allowed"] is False
    assert "no table 'friendships'" in logged["reason"]


def test_an_exchange_past_its_deadline_logs_its_failure_and_no_release(w: World) -> None:
    # The caller stopped waiting (a store stalled on the way): a release it will never receive
    # is not logged, the failure is.
    size = w.accord.ledger.head().size
    late = Exchange(
        FRIEND_PICKER, w.tokens["reelix"], "friendships", where=C1, deadline=time.monotonic() - 1
    )
    with pytest.raises(GatewayError, match="abandoned before its release was logged"):
        w.gateway.exchange(late)
    (logged,) = last_entries(w.accord.ledger, 1)
    assert w.accord.ledger.head().size == size + 1
    assert logged["kind"] == "decision"
    assert logged["allowed"] is False
    assert logged["rules"] == [ERROR_RULE]
    # In time, the same exchange is released.
    timely = Exchange(
        FRIEND_PICKER, w.tokens["reelix"], "friendships", where=C1, deadline=time.monotonic() + 60
    )
    assert w.gateway.exchange(timely).receipts


class BrokenPolicy(Accord):
    """A store whose policy evaluation fails with a foreign exception."""

    def policy(self) -> Any:
        return self

    def decide(self, request: object, *, count_people: bool = True) -> Any:  # noqa: ARG002
        raise ZeroDivisionError("the policy engine fell over")


def test_a_foreign_error_becomes_a_gateway_error(w: World) -> None:
    broken = BrokenPolicy(w.accord.engine, w.accord.sessions, w.accord.ledger)
    gateway = Gateway(broken, w.sources, w.keyring)
    with pytest.raises(GatewayError, match="ZeroDivisionError"):
        gateway.exchange(Exchange(FRIEND_PICKER, w.tokens["reelix"], "friendships", where=C1))
    (logged,) = last_entries(w.accord.ledger, 1)
    assert logged["rules"] == [ERROR_RULE]


def test_keyring_keeps_only_hashes_and_replaces_on_issue() -> None:
    keyring = Keyring()
    first = keyring.issue("chirp")
    second = keyring.issue("chirp")
    assert first not in repr(vars(keyring))
    assert not keyring.authenticate("chirp", first)
    assert keyring.authenticate("chirp", second)
    assert not keyring.authenticate("reelix", second)
    keyring.revoke("chirp")
    assert not keyring.authenticate("chirp", second)


@pytest.mark.parametrize("stored", [True, False])
def test_a_release_whose_commit_fails_reaches_no_one_and_the_ledger_says_if_it_holds_it(
    w: World, monkeypatch: pytest.MonkeyPatch, *, stored: bool
) -> None:
    """A store that fails while committing a release's entries may have stored them or not: the
    caller is told nothing was released either way, and the ledger says which it was: a
    release it holds is followed by a note that it was never received, naming it; one it does
    not hold leaves the failure, as any other."""
    ledger = w.accord.ledger
    size = ledger.head().size
    commit_failing_after_the_release(
        monkeypatch, w.accord, stored=stored, error=sqlite3.OperationalError("disk I/O error")
    )
    with pytest.raises(ReleaseInDoubt, match="nothing was released"):
        w.gateway.exchange(Exchange(FRIEND_PICKER, w.tokens["reelix"], "friendships", where=C1))
    entries = [ledger.leaf(i).entry() for i in range(size, ledger.head().size)]
    kinds = [(e["kind"], e.get("rules")) for e in entries]
    if stored:
        assert kinds == [
            ("decision", ["clause:chirp-reelix/friend-picker:read"]),
            ("release", None),
            ("decision", [RELEASE_UNDELIVERED_RULE]),
        ]
        note = entries[-1]
        assert note["allowed"] is False
        assert f"the release logged at index {size + 1} was never received" in note["reason"]
        assert note["recipient"] == "reelix"
        assert undone_release(note) == size + 1
        # The note is about the release's people (c1's friends whose rows were read), so each
        # finds it beside the release; and about nobody else.
        released = _people_of(ledger, size + 1)
        assert released
        assert released <= FRIENDS_OF_C1
        assert _people_of(ledger, size + 2) == released
    else:
        assert kinds == [("decision", [ERROR_RULE])]
        assert "failed while committing its release" in entries[-1]["reason"]
    assert ledger.verify(workers=1).ok
    # Nothing is left to settle: the next exchange logs only itself.
    monkeypatch.undo()
    after = ledger.head().size
    w.gateway.exchange(Exchange(FRIEND_PICKER, w.tokens["reelix"], "friendships", where=C1))
    assert [ledger.leaf(i).entry()["kind"] for i in range(after, ledger.head().size)] == [
        "decision",
        "release",
    ]
