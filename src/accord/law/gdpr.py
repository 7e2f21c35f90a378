"""General Data Protection Regulation (EU) 2016/679, as it bears on data moving to a partner.

* Art. 5(1)(b), purpose limitation: data is "collected for specified, explicit and legitimate
  purposes and not further processed in a manner that is incompatible with those purposes".
  Accord: the purpose must be in the clause, and in the person's consent unless the clause
  states another lawful basis of Art. 6(1).
* Art. 7(1): the controller "shall be able to demonstrate that the data subject has consented";
  Art. 7(2): the request for consent is "clearly distinguishable from the other matters";
  Art. 7(3): "It shall be as easy to withdraw as to give consent."
  Accord: a consent from a person under the GDPR is accepted only with its collection method and
  notice recorded, distinct and separate, and withdrawable the same way it was given.
* Art. 17(1)(b): erasure is due when "the data subject withdraws consent ... and where there is
  no other legal ground for the processing"; Art. 19: the controller "shall communicate any ...
  erasure ... to each recipient to whom the personal data have been disclosed".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from accord.consent import Consent
from accord.filters import ConsentNeed, Rule
from accord.jurisdictions import REGIONS, Jurisdictions
from accord.law import Disclosure, LegalBasis

APPLIES_TO = Jurisdictions(countries=REGIONS["GDPR"])
RULE_ID = "law:gdpr.purpose-consent"

# How hard each way of giving or withdrawing consent is; withdrawal may not be harder than grant.
_EFFORT = {
    "in_app_dialog": 1,
    "oauth_consent_screen": 1,
    "settings_page": 1,
    "web_form": 1,
    "api": 1,
    "paper": 3,
}


def person_rules(d: Disclosure) -> tuple[Rule, ...]:
    """Under consent as the lawful basis, each category needs a demonstrable consent (Art. 7)
    naming the purpose: one asked for apart from other matters."""
    if d.legal_basis is not LegalBasis.CONSENT:
        return ()
    return tuple(
        Rule(
            id=RULE_ID,
            reason=(
                "is protected by the GDPR and has no consent to this purpose that was asked "
                "for apart from other matters (Art. 5(1)(b), Art. 6(1)(a), Art. 7(2))"
            ),
            requirement=ConsentNeed(
                recipient=d.counterparty,
                purpose=d.purpose,
                category=category,
                operation=d.operation,
                distinct_and_separate=True,
                title=d.title,
            ),
            applies_to=APPLIES_TO,
        )
        for category in sorted(d.categories)
    )


def _applies(consent: Consent, lives_in: str | None) -> bool:
    """Whether the GDPR binds a consent: the person lives under it (Art. 3(2)), or the consent
    was collected where it applies (Art. 3(1))."""
    return APPLIES_TO.contains(consent.jurisdiction) or (
        lives_in is not None and APPLIES_TO.contains(lives_in)
    )


def consent_problems(consent: Consent, lives_in: str | None = None) -> list[str]:
    """What keeps a consent from standing under Art. 7; empty if it stands.

    ``lives_in`` is where the person lives, as the party that holds them recorded it.
    """
    if not _applies(consent, lives_in):
        return []
    problems = []
    if not consent.notice:
        problems.append(
            "Art. 7(1): record the notice the person was shown, so the consent can be demonstrated"
        )
    if not consent.distinct_and_separate:
        problems.append(
            "Art. 7(2): the request for consent must be distinguishable from other matters "
            "(distinct_and_separate)"
        )
    if consent.withdrawal_method is None:
        problems.append("Art. 7(3): record how the person can withdraw")
    elif _EFFORT[consent.withdrawal_method] > _EFFORT[consent.method]:
        problems.append(
            f"Art. 7(3): withdrawing by {consent.withdrawal_method} is harder than giving "
            f"consent by {consent.method}"
        )
    return problems


@dataclass(frozen=True, slots=True)
class Obligations:
    """What withdrawing a consent sets in motion."""

    erase: bool
    notify: frozenset[str]
    reason: str


def on_withdrawal(
    consent: Consent, other_bases: Iterable[LegalBasis] = (), lives_in: str | None = None
) -> Obligations:
    """Art. 17(1)(b) and Art. 19: erase unless another lawful basis remains; tell recipients.

    ``lives_in`` is where the person lives, as the party that holds them recorded it.
    """
    if not _applies(consent, lives_in):
        return Obligations(False, frozenset(), "the GDPR does not apply to this person")
    remaining = sorted(set(other_bases) - {LegalBasis.CONSENT})
    if remaining:
        return Obligations(
            False,
            frozenset(),
            f"another lawful basis remains ({', '.join(remaining)}): no erasure is due",
        )
    return Obligations(
        True,
        frozenset({consent.recipient}),
        "consent withdrawn and no other lawful basis: erase (Art. 17(1)(b)) and tell the "
        "recipient (Art. 19)",
    )
