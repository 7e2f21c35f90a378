"""Friends' data: data about a person other than the one asking needs that person's own consent.

The 2011 terms the filings quote let a partner "access information about you and your Facebook
friends on an on-going basis" on the strength of one person's click. Accord's rule: when a
partner acts on behalf of a person, or asks about people by their relation to a person (their
friends, their threads), every other person's data needs a consent of their own. The asking
person's consent, or a clause that needs no consent from them, never stands in for a friend's.

And a person's relations are read only with that person acting: a read about one person's
friends or threads is made on that person's behalf, with their own authorization, never by a
partner on its own account (the Titan API read "app and non-app friends" of anyone it liked).
The policy refuses such a request when it names the person in its subjects; the gateway, when a
condition pins the rows to them or when it reads a collection of relations in bulk.
"""

from __future__ import annotations

from accord.filters import ConsentNeed, Rule
from accord.law import Disclosure

RULE_ID = "rule:friends.own-consent"

RELATIONS_RULE_ID = "rule:relations.person-acting"
RELATIONS_REASON = (
    "a read about one person's relations (their friends, their threads) is made only on that "
    "person's behalf, with their own authorization, never on a partner's own account or on "
    "someone else's behalf"
)
"""The reason given when a read of someone's relations is not made by that person; it names
no one."""


def person_rules(d: Disclosure) -> tuple[Rule, ...]:
    """Consent from every person other than the requester, when the clause itself needs none."""
    if d.clause_needs_consent or not (d.requester_person or d.relative):
        # Where the clause needs consent from everyone, that rule already covers friends.
        return ()
    return tuple(
        Rule(
            id=RULE_ID,
            reason=(
                "is not the person who asked, and has not consented themselves; a friend's "
                "consent is never given for them"
            ),
            requirement=ConsentNeed(
                recipient=d.counterparty,
                purpose=d.purpose,
                category=category,
                operation=d.operation,
                title=d.title,
            ),
            exempt=d.requester_person,
        )
        for category in sorted(d.categories)
    )
