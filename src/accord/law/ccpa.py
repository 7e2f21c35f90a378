"""California Consumer Privacy Act as amended by the CPRA, with Global Privacy Control.

Cal. Civ. Code 1798.120(a): a consumer "shall have the right, at any time, to direct a business
that sells or shares personal information about the consumer to third parties not to sell or
share the consumer's personal information". 1798.140(ah) defines sharing as disclosure "for
cross-context behavioral advertising". 11 CCR 7025(b)-(c): a business "shall process any opt-out
preference signal" (Global Privacy Control) as a valid request to opt out of sale/sharing for
that browser or device and any consumer profile associated with it.

California is one entry of :mod:`accord.law.optout`, which applies the same opt-out in every
place under the statute that binds there (or Accord's own rule); this module keeps California's
names for the code that uses them.
"""

from __future__ import annotations

from accord.filters import Rule
from accord.law import Disclosure, optout

CITATION = optout.CALIFORNIA.citation
APPLIES_TO = optout.CALIFORNIA.places
RULE_ID = optout.CALIFORNIA.rule_id
CROSS_CONTEXT_ADVERTISING = optout.CROSS_CONTEXT_ADVERTISING
is_cross_context_advertising = optout.is_cross_context_advertising


def person_rules(d: Disclosure) -> tuple[Rule, ...]:
    """California's part of :func:`accord.law.optout.person_rules`."""
    return tuple(r for r in optout.person_rules(d) if r.id == RULE_ID)
