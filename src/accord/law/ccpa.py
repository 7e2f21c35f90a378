"""California Consumer Privacy Act as amended by the CPRA, with Global Privacy Control.

Cal. Civ. Code 1798.120(a): a consumer "shall have the right, at any time, to direct a business
that sells or shares personal information about the consumer to third parties not to sell or
share the consumer's personal information". 1798.140(ah) defines sharing as disclosure "for
cross-context behavioral advertising". 11 CCR 7025(b)-(c): a business "shall process any opt-out
preference signal" (Global Privacy Control) as a valid request to opt out of sale/sharing for
that browser or device and any consumer profile associated with it.

Colorado (4 CCR 904-3, Rule 5) and Connecticut (Conn. Gen. Stat. 42-520(e)(1)(A)(ii)) require
the same universal opt-out signals to be honoured, so the rule applies there too.

Accord: a person with a sale/sharing opt-out in force (from a form or a ``Sec-GPC: 1`` signal)
is left out of any flow whose purpose is cross-context behavioural advertising.
"""

from __future__ import annotations

from accord import taxonomy
from accord.consent import OptOutKind
from accord.filters import NoOptOut, Rule
from accord.jurisdictions import Jurisdictions
from accord.law import Disclosure

CITATION = "Cal. Civ. Code 1798.120; 11 CCR 7025"
APPLIES_TO = Jurisdictions.of(["US-CA", "US-CO", "US-CT"])
RULE_ID = "law:ccpa.opt-out"

# Purposes that are cross-context behavioural advertising (or sale for it).
CROSS_CONTEXT_ADVERTISING = frozenset(
    {"marketing.advertising.third_party", "marketing.advertising.profiling"}
)


def is_cross_context_advertising(purpose: str) -> bool:
    """Whether ``purpose`` is, or lies under, a cross-context behavioural advertising purpose."""
    return taxonomy.covered_by_any(purpose, CROSS_CONTEXT_ADVERTISING)


def person_rules(d: Disclosure) -> tuple[Rule, ...]:
    """People who opted out of sale/sharing stay out of cross-context advertising flows."""
    if not is_cross_context_advertising(d.purpose):
        return ()
    return (
        Rule(
            id=RULE_ID,
            reason=(
                "opted out of the sale and sharing of their data (a form or a Global Privacy "
                f"Control signal), which bars cross-context behavioural advertising ({CITATION})"
            ),
            requirement=NoOptOut(OptOutKind.SALE_SHARING),
            applies_to=APPLIES_TO,
        ),
    )
