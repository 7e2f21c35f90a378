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
    epsilon: float | None = None
    """For an aggregate under a clause with a privacy budget: the epsilon the answer may spend of
    each person's budget and the clause's (default: a tenth of the clause's budget; see
    :mod:`accord.gateway.private`)."""
    max_rows: int | None = None
    """For the same: the rows each person may contribute to the answer (default 5)."""


@dataclass(frozen=True, slots=True)
class Noise:
    """How a differentially private answer was made, and what it spent of each person's budget
    and of the clause's (see :mod:`accord.gateway.private`)."""

    epsilon: float
    delta: float
    mechanism: str
    max_rows: int
    threshold: int
    """The noisy count of a group's people must reach this for the group to show."""
    description: str
    spend: Receipt
    """The ledger receipt of the spend (a ``budget`` entry), durable before the release."""


@dataclass(frozen=True, slots=True)
class Release:
    """What crossed: the decision, the columns and rows released, how many people, and receipts.

    The rows are held in memory once (a read of a million rows holds them here, and nowhere
    else). For a write, ``rows`` is empty and ``written`` counts the rows posted; ``withheld``
    counts the rows (or people) kept out by each rule. For an aggregate, ``people`` is only what
    the rows shown imply — the clause's minimum when any row is shown, else 0 — and nothing is
    said of the groups below the minimum (not even how many were dropped): an exact count would
    tell whether one person is among them. Under a clause with a privacy budget, ``noise`` says
    how its figures were noised.
    """

    decision: Decision
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    people: int
    receipts: tuple[Receipt, ...]
    granularity: Granularity = Granularity.RECORD
    written: int = 0
    withheld: Mapping[str, int] = field(default_factory=dict)
    noise: Noise | None = None
    """For an aggregate under a clause with a privacy budget: its noise and its spend; its
    figures are then noisy, and which groups show was chosen with noise too."""
    about: tuple[str, ...] = ()
    """The ledger ids of the people the release is about (its entry's): a note that its caller
    never received it is about them too."""


LEDGER_GRANULARITY: dict[Granularity, Literal["record", "aggregate", "match-only"]] = {
    Granularity.RECORD: "record",
    Granularity.AGGREGATE: "aggregate",
    Granularity.MATCH_ONLY: "match-only",
}
