"""What goes through the door and what comes out: :class:`Exchange` and :class:`Release`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from accord.agreements import Granularity
from accord.ledger.log import Receipt
from accord.policy import Decision
from accord.requests import Request


@dataclass(frozen=True, slots=True)
class Exchange:
    """One call through the door: a request, the party's token, and what it touches.

    ``collection`` is the collection of the sending party's dataset (for reads) or of the
    receiving party's (for writes). ``where`` holds equality conditions on its fields; ``rows``
    the rows a write posts; ``group_by`` and ``measures`` what an aggregate computes (see
    :meth:`accord.sources.Source.aggregate`).
    """

    request: Request
    token: str
    collection: str
    where: Mapping[str, Any] | None = None
    rows: Sequence[Mapping[str, Any]] | None = None
    group_by: Sequence[str] = ()
    measures: Mapping[str, str] | None = None
    client: str | None = None
    """The OAuth client id of the partner app making the call, if one is (for the ledger)."""
    deadline: float | None = None
    """A :func:`time.monotonic` instant: an exchange still running then is abandoned before its
    release is logged (the caller has stopped waiting for it)."""


@dataclass(frozen=True, slots=True)
class Release:
    """What crossed: the decision, the columns and rows released, how many people, and receipts.

    The rows are held in memory once (a read of a million rows holds them here, and nowhere
    else). For a write, ``rows`` is empty and ``written`` counts the rows posted; ``withheld``
    counts the rows (or people) kept out by each rule. For an aggregate, ``people`` is only what
    the rows shown imply — the clause's minimum when any row is shown, else 0 — and nothing is
    said of the groups below the minimum (not even how many were dropped): an exact count would
    tell whether one person is among them.
    """

    decision: Decision
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    people: int
    receipts: tuple[Receipt, ...]
    granularity: Granularity = Granularity.RECORD
    written: int = 0
    withheld: Mapping[str, int] = field(default_factory=dict)


LEDGER_GRANULARITY: dict[Granularity, Literal["record", "aggregate", "match-only"]] = {
    Granularity.RECORD: "record",
    Granularity.AGGREGATE: "aggregate",
    Granularity.MATCH_ONLY: "match-only",
}
