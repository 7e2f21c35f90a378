"""What every fault test checks of the ledger, and the partner's read they all make."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from accord.ledger.log import Ledger

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


def assert_verifies(ledger: Ledger) -> None:
    """The whole tree recomputes from its leaves and matches every stored checkpoint."""
    report = ledger.verify(workers=1)
    assert report.ok, report.problems
