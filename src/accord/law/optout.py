"""Opt-outs of sale, sharing and targeted advertising, honoured wherever the person lives.

A person who said no to the sale and sharing of their data — on a form, or with a Global Privacy
Control signal (``Sec-GPC: 1``) — is left out of every partner flow for marketing, in every
place. Where a statute gives that right, the rule names it; elsewhere Accord applies the same
rule as its own, and says so. Each place falls under exactly one of these rules, so the reason a
person reads names the law where they live:

* **United States**, the state comprehensive privacy laws that give a right to opt out of the
  sale of personal data and of targeted advertising (California's: of sale and of *sharing*,
  which is disclosure for cross-context behavioural advertising, Cal. Civ. Code 1798.140(ah)).
  Several also require a business to honour a universal opt-out signal such as GPC
  (California, 11 CCR 7025; Colorado, 4 CCR 904-3 Rule 5; Connecticut, Texas, Oregon, Montana,
  Delaware, New Jersey, New Hampshire, Minnesota, Maryland). Where a statute gives the right
  without requiring signals to be honoured, Accord takes the signal as the person's request
  under it, and the reason says so. Statutes are cited by section where the section is certain,
  otherwise by the act's name.
* **The GDPR region** (the EEA, and the United Kingdom under the UK GDPR): Art. 21(2) gives the
  right to object at any time to processing for direct marketing, Art. 21(3) makes that
  objection final ("the personal data shall no longer be processed for such purposes"), and
  Art. 21(5) lets it be exercised "by automated means using technical specifications", which a
  GPC signal is. There is no balancing test for direct marketing: the objection always wins.
* **Everywhere else** (Canada, Brazil, US states without such a law, any place not named): no
  statute is relied on; Accord's own rule keeps the person out all the same.

Which purposes it bars: every purpose under ``marketing`` — every kind of advertising and
marketing communications. In a partner flow the data always leaves the party that collected it,
so advertising with it is cross-context by construction (behavioural advertising, profiling for
ads, but also "first-party" or contextual advertising, frequency capping or negative targeting
that the partner runs on the other party's people), and handing it to a partner for its
marketing is what the US statutes call a sale (Cal. Civ. Code 1798.140(ad)) or targeted
advertising; the GDPR's objection covers direct marketing generally, communications included.
The narrower :data:`CROSS_CONTEXT_ADVERTISING` set is kept for callers that name it.
"""

from __future__ import annotations

from dataclasses import dataclass

from accord import taxonomy
from accord.consent import OptOutKind
from accord.filters import NoOptOut, Rule
from accord.jurisdictions import REGIONS, Jurisdictions
from accord.law import Disclosure

# Purposes that are cross-context behavioural advertising (or sale for it), CCPA's "sharing".
CROSS_CONTEXT_ADVERTISING = frozenset(
    {"marketing.advertising.third_party", "marketing.advertising.profiling"}
)
# Every purpose an opt-out keeps a person out of (see the module docstring).
MARKETING = frozenset({"marketing"})


def is_cross_context_advertising(purpose: str) -> bool:
    """Whether ``purpose`` is, or lies under, a cross-context behavioural advertising purpose."""
    return taxonomy.covered_by_any(purpose, CROSS_CONTEXT_ADVERTISING)


def is_barred_by_opt_out(purpose: str) -> bool:
    """Whether a sale/sharing opt-out keeps a person out of a flow for ``purpose``."""
    return taxonomy.covered_by_any(purpose, MARKETING)


@dataclass(frozen=True, slots=True)
class OptOutLaw:
    """A statute (or Accord's own rule) under which an opt-out keeps a person out, and where."""

    rule_id: str
    places: Jurisdictions
    name: str
    citation: str
    right: str = "the sale of their personal data and targeted advertising with it"
    signal_required: bool = True
    said: str = "opted out of"

    def rule(self) -> Rule:
        """The per-person rule: no sale/sharing opt-out in force, where this law applies."""
        how = (
            "on a form or by a Global Privacy Control signal"
            if self.signal_required
            else "on a form, or by a Global Privacy Control signal Accord takes as that request"
        )
        source = self.name if self.citation == self.name else f"{self.name}, {self.citation}"
        return Rule(
            id=self.rule_id,
            reason=(
                f"{self.said} {self.right} ({how}), which keeps their data out of marketing by "
                f"a partner ({source})"
            ),
            requirement=NoOptOut(OptOutKind.SALE_SHARING),
            applies_to=self.places,
        )


def _state(
    code: str,
    name: str,
    citation: str | None = None,
    *,
    signal_required: bool = True,
    right: str | None = None,
) -> OptOutLaw:
    return OptOutLaw(
        rule_id=f"law:opt-out.{code.lower()}",
        places=Jurisdictions.of([code]),
        name=name,
        citation=citation or name,
        signal_required=signal_required,
        **({"right": right} if right else {}),
    )


CALIFORNIA = OptOutLaw(
    rule_id="law:ccpa.opt-out",
    places=Jurisdictions.of(["US-CA"]),
    name="CCPA as amended by the CPRA",
    citation="Cal. Civ. Code 1798.120, 1798.135; 11 CCR 7025",
    right="the sale and sharing of their personal information",
)

US_STATES: tuple[OptOutLaw, ...] = (
    CALIFORNIA,
    _state("US-CO", "Colorado Privacy Act", "C.R.S. 6-1-1306(1)(a); 4 CCR 904-3, Rule 5"),
    _state("US-CT", "Connecticut Data Privacy Act", "Conn. Gen. Stat. 42-518, 42-520"),
    _state(
        "US-TX", "Texas Data Privacy and Security Act", "Tex. Bus. & Com. Code 541.051, 541.055"
    ),
    _state("US-OR", "Oregon Consumer Privacy Act", "ORS 646A.574, 646A.578"),
    _state("US-MT", "Montana Consumer Data Privacy Act"),
    _state("US-DE", "Delaware Personal Data Privacy Act", "Del. Code tit. 6, ch. 12D"),
    _state("US-NJ", "New Jersey Data Privacy Act"),
    _state("US-NH", "New Hampshire Privacy Act", "RSA ch. 507-H"),
    _state("US-MN", "Minnesota Consumer Data Privacy Act", "Minn. Stat. ch. 325M"),
    _state("US-MD", "Maryland Online Data Privacy Act of 2024"),
    _state(
        "US-VA",
        "Virginia Consumer Data Protection Act",
        "Va. Code 59.1-577(A)(5)",
        signal_required=False,
    ),
    _state(
        "US-UT",
        "Utah Consumer Privacy Act",
        "Utah Code 13-61-201(4)",
        signal_required=False,
    ),
    _state(
        "US-IA",
        "Iowa Consumer Data Protection Act",
        "Iowa Code ch. 715D",
        signal_required=False,
    ),
    _state("US-TN", "Tennessee Information Protection Act", signal_required=False),
    _state(
        "US-IN",
        "Indiana Consumer Data Protection Act",
        "Ind. Code art. 24-15",
        signal_required=False,
    ),
    _state("US-KY", "Kentucky Consumer Data Protection Act", signal_required=False),
    _state("US-NE", "Nebraska Data Privacy Act", signal_required=False),
    _state(
        "US-RI",
        "Rhode Island Data Transparency and Privacy Protection Act",
        signal_required=False,
    ),
)

GDPR = OptOutLaw(
    rule_id="law:gdpr.object-direct-marketing",
    places=Jurisdictions(countries=REGIONS["GDPR"], label="the EEA and the UK"),
    name="GDPR and UK GDPR",
    citation="Art. 21(2), 21(3); by automated means, Art. 21(5)",
    right="direct marketing, an objection that always prevails",
    said="objected to",
)

ELSEWHERE = OptOutLaw(
    rule_id="rule:opt-out.elsewhere",
    places=Jurisdictions.everywhere_but(
        *(law.places for law in (*US_STATES, GDPR)), label="places no opt-out statute covers"
    ),
    name="Accord's own rule where no statute requires it",
    citation="Accord's own rule where no statute requires it",
    right="the sale and sharing of their data",
)

LAWS: tuple[OptOutLaw, ...] = (*US_STATES, GDPR, ELSEWHERE)
"""Every opt-out rule; each place is in exactly one's ``places``."""

RULE_IDS = frozenset(law.rule_id for law in LAWS)

_RULES = tuple(law.rule() for law in LAWS)


def person_rules(d: Disclosure) -> tuple[Rule, ...]:
    """People with a sale/sharing opt-out in force stay out of partner flows for marketing,
    under the statute where they live, or Accord's own rule where there is none."""
    if not is_barred_by_opt_out(d.purpose):
        return ()
    return _RULES


def law_for(jurisdiction: str) -> OptOutLaw:
    """The opt-out rule that binds a person living in ``jurisdiction``."""
    return next(law for law in LAWS if law.places.contains(jurisdiction))
