"""What every fault test checks of the ledger, and the partner's read they all make."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from accord.gateway import RELEASE_UNDELIVERED_RULE
from accord.ledger.entries import ReleaseEntry
from accord.ledger.log import Ledger
from accord.service import Accord

LINK = "/v1/agreements/chirp-reelix/clauses/account-link/exchanges"


def link_read(member: str) -> dict[str, Any]:
    """A partner's read of one member's linked account (clause ``account-link``)."""
    return {
        "collection": "linked_accounts",
        "purpose": "essential.service.authentication",
        "categories": ["user.account.linked"],
        "subjects": {"kind": "people", "people": [member]},
    }


def assert_logged(ledger: Ledger, answers: Iterable[dict[str, Any]]) -> int:
    """Every receipt of every acknowledged answer names an entry the ledger holds, at its index;
    returns how many releases the answers acknowledged."""
    released = 0
    for answer in answers:
        kinds = []
        for receipt in answer["receipts"]:
            stored = ledger.leaf(receipt["index"])
            assert stored.leaf_hash.hex() == receipt["leaf_hash"], receipt
            kinds.append(stored.entry()["kind"])
        assert kinds == ["decision", "release"], kinds
        released += 1
    return released


def releases_from(ledger: Ledger, start: int) -> list[dict[str, Any]]:
    """The release entries at index ``start`` and after."""
    size = ledger.head().size
    entries = (ledger.leaf(i).entry() for i in range(start, size))
    return [e for e in entries if e["kind"] == "release"]


_NEVER_RECEIVED = re.compile(r"the release logged at index (\d+) was never received")


def received_releases_from(ledger: Ledger, start: int) -> list[int]:
    """The indexes of the releases at ``start`` and after that no later entry notes as never
    received (a release whose commit's acknowledgement the store lost)."""
    released: list[int] = []
    unreceived: set[int] = set()
    for i in range(start, ledger.head().size):
        entry = ledger.leaf(i).entry()
        if entry["kind"] == "release":
            released.append(i)
        elif entry.get("rules") == [RELEASE_UNDELIVERED_RULE]:
            unreceived |= {int(n) for n in _NEVER_RECEIVED.findall(entry["reason"])}
    return [i for i in released if i not in unreceived]


def _armed_by_a_release(monkeypatch: pytest.MonkeyPatch, ledger: Ledger) -> list[bool]:
    """A flag set when the ledger has written a group holding a release, before its commit."""
    write = ledger._write_locked
    armed: list[bool] = []

    def write_then_arm(conn: Any, state: Any, leaves: Any) -> Any:
        written = write(conn, state, leaves)
        if any(isinstance(e, ReleaseEntry) for e in leaves.entries):
            armed.append(True)
        return written

    monkeypatch.setattr(ledger, "_write_locked", write_then_arm)
    return armed


def commit_failing_after_the_release(
    monkeypatch: pytest.MonkeyPatch,
    accord: Accord,
    *,
    stored: bool,
    error: Exception,
    then: Callable[[], None] | None = None,
) -> None:
    """The store fails (``error``, the driver's own) while committing the next ledger group
    that holds a release: having stored it (its acknowledgement lost, as when a connection
    drops during COMMIT) or not; ``then`` runs before the failure is raised (cutting the store
    off, say)."""
    dialect = accord.engine.dialect
    commit = dialect.do_commit
    armed = _armed_by_a_release(monkeypatch, accord.ledger)

    def failing_commit(dbapi_connection: Any) -> None:
        if not armed:
            commit(dbapi_connection)
            return
        armed.clear()
        if stored:
            commit(dbapi_connection)
        else:
            dbapi_connection.rollback()
        if then is not None:
            then()
        raise error

    monkeypatch.setattr(dialect, "do_commit", failing_commit)


def commit_slow_after_the_release(
    monkeypatch: pytest.MonkeyPatch, accord: Accord, seconds: float
) -> None:
    """The store takes ``seconds`` to commit the next ledger group that holds a release, then
    commits it."""
    dialect = accord.engine.dialect
    commit = dialect.do_commit
    armed = _armed_by_a_release(monkeypatch, accord.ledger)

    def slow_commit(dbapi_connection: Any) -> None:
        if armed:
            armed.clear()
            time.sleep(seconds)
        commit(dbapi_connection)

    monkeypatch.setattr(dialect, "do_commit", slow_commit)


def assert_verifies(ledger: Ledger) -> None:
    """The whole tree recomputes from its leaves and matches every stored checkpoint."""
    report = ledger.verify(workers=1)
    assert report.ok, report.problems
