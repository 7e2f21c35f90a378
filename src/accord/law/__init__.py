"""The law Accord enforces, one small pure module per statute or rule.

Each module reads a :class:`Disclosure` (what a request would move, between whom, for what) and
returns what the law demands of it:

* :class:`RequestRule` — conditions on the request as a whole, compiled into Cedar ``forbid``
  policies (for example: message contents are never read in bulk);
* :class:`accord.filters.Rule` — conditions on each person whose data would move, which become
  part of the decision's per-person filter (for example: VPPA consent for US viewers).

Nothing here does I/O or imports a framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from accord import taxonomy
from accord.consent import Operation


class LegalBasis(StrEnum):
    """The lawful bases of GDPR Art. 6(1) that a clause may rest on."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    LEGITIMATE_INTERESTS = "legitimate_interests"


@dataclass(frozen=True, slots=True)
class Disclosure:
    """What a request would disclose, as the law sees it.

    ``source`` is the party the data leaves and ``destination`` the party it reaches.
    ``subjects_at`` is the party whose people the data is about (the controller that collected
    their consent): the source, except where a partner writes on a person's behalf into the
    person's own account elsewhere. ``aggregate`` says only counts over groups no smaller than
    the clause's minimum cross, never a record about one person. ``requester_person`` is the
    person on whose behalf a partner acts, if any; ``relative`` says the people asked about are
    defined by their relation to that person (their friends, their threads).
    """

    source: str
    destination: str
    operation: Operation
    purpose: str
    categories: frozenset[str]
    at: datetime
    legal_basis: LegalBasis = LegalBasis.CONSENT
    clause_needs_consent: bool = True
    title: str | None = None
    requester_person: str | None = None
    relative: bool = False
    subjects_at: str = ""
    aggregate: bool = False

    @property
    def controller(self) -> str:
        """The party whose people the data is about, and which collected their consent."""
        return self.subjects_at or self.source

    @property
    def counterparty(self) -> str:
        """The other party: the one the people's consent must name."""
        return self.destination if self.controller == self.source else self.source

    def touches(self, category: str) -> bool:
        """Whether any requested category is ``category``, is above it, or is below it."""
        return any(
            taxonomy.covers(c, category) or taxonomy.covers(category, c) for c in self.categories
        )

    def touched(self, category: str) -> frozenset[str]:
        """The requested categories that are ``category`` or lie below it, else ``category``."""
        below = frozenset(c for c in self.categories if taxonomy.covers(category, c))
        return below or frozenset({category})


@dataclass(frozen=True, slots=True)
class RequestRule:
    """A rule on the request as a whole: forbid when the request touches one of ``categories``
    with ``operation`` and is not made on behalf of a person (``unless_delegated``)."""

    id: str
    citation: str
    reason: str
    categories: frozenset[str]
    operation: Operation | None = None
    unless_delegated: bool = True

    def forbids(self, d: Disclosure, *, delegated: bool) -> bool:
        """The reference meaning of this rule (policy compiles it to Cedar and is tested against
        this)."""
        return (
            any(d.touches(c) for c in self.categories)
            and (self.operation is None or d.operation is self.operation)
            and not (self.unless_delegated and delegated)
        )
