"""Stored Communications Act, 18 U.S.C. 2702, and Accord's stricter house rule for messages.

18 U.S.C. 2702(a)(1): a provider of an electronic communication service "shall not knowingly
divulge to any person or entity the contents of a communication while in electronic storage by
that service". 2702(b)(3) allows it "with the lawful consent of the originator or an addressee or
intended recipient of such communication".

The statute is satisfied by any one participant's consent. Accord's house rule is stricter,
because a thread is about everyone in it:
  * a partner reads message contents (``user.content.private``) only on behalf of a participant,
    never in bulk (the "Inbox API" abuse), and only in threads where every participant consented;
  * a partner sends a message on a person's behalf only with that person's own send consent.
"""

from __future__ import annotations

from accord.consent import Operation
from accord.filters import ConsentNeed, Group, Rule
from accord.law import Disclosure, RequestRule
from accord.taxonomy import PRIVATE_CONTENT

CITATION = "18 U.S.C. 2702(b)(3)"

REQUEST_RULES = (
    RequestRule(
        id="law:sca.no-bulk-read",
        citation=CITATION,
        reason=(
            "message contents are read only on behalf of a participant in the conversation, "
            f"never in bulk ({CITATION}: consent of the originator or a recipient)"
        ),
        categories=frozenset({PRIVATE_CONTENT}),
        operation=Operation.READ,
    ),
    RequestRule(
        id="law:sca.send-on-behalf",
        citation=CITATION,
        reason="a message is sent on a person's behalf only when that person asks for it",
        categories=frozenset({PRIVATE_CONTENT}),
        operation=Operation.WRITE,
    ),
)

READ_RULE_ID = "law:sca.every-participant"
SEND_RULE_ID = "law:sca.send-consent"


def group(d: Disclosure) -> Group:
    """Threads are let through only when every participant is, for reads of message contents."""
    if d.touches(PRIVATE_CONTENT) and d.operation is Operation.READ:
        return Group.EVERY_PARTICIPANT
    return Group.EACH


def person_rules(d: Disclosure) -> tuple[Rule, ...]:
    """Each participant's own consent to the recipient reading, or the sender's to sending."""
    if not d.touches(PRIVATE_CONTENT):
        return ()
    if d.operation is Operation.READ:
        return (
            Rule(
                id=READ_RULE_ID,
                reason=(
                    "has not consented to this partner reading their messages; a thread is "
                    "shown only if every participant has"
                ),
                requirement=ConsentNeed(
                    recipient=d.counterparty,
                    purpose=d.purpose,
                    category=PRIVATE_CONTENT,
                    operation=Operation.READ,
                    title=d.title,
                ),
            ),
        )
    return (
        Rule(
            id=SEND_RULE_ID,
            reason="has not consented to this partner sending messages on their behalf",
            requirement=ConsentNeed(
                # The account holder gives the send consent to the partner that sends.
                recipient=d.counterparty,
                purpose=d.purpose,
                category=PRIVATE_CONTENT,
                operation=Operation.WRITE,
                title=d.title,
            ),
        ),
    )


def subjects_at(d: Disclosure) -> str:
    """Whose ids name the people: a send on someone's behalf is about the messaging provider's
    account holder, who gave the send consent there."""
    if d.touches(PRIVATE_CONTENT) and d.operation is Operation.WRITE:
        return d.destination
    return d.source
