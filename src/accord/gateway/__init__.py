"""The one door: every exchange of personal data between two parties goes through
:meth:`Gateway.exchange`.

    exchange → authenticate the party (its token must be the requester's)
             → decide (the compiled policy, once for the request)
             → fetch from the sending party's source only the decision's fields of one collection,
               only the allowed people's rows (the filter travels into the party's database as a
               temporary table)
             → apply the clause's granularity: records, aggregates with small groups suppressed,
               or only which of the requested people are present
             → append the decision and the release to the ledger, durably
             → release

A write (a partner posting into the other party: a message sent on a person's behalf, watch
activity for the feed) runs the same steps, keeps only the rows whose person the decision lets
through, writes the ledger entries first and then the rows, in one transaction.

Fail closed: any error after authentication releases nothing. It is logged to the ledger, where
the ledger is still reachable, as a refused decision with the rule ``gateway:error``, and raised
as an :class:`~accord.errors.AccordError`. Errors of the gateway itself::

    AccordError
    ├── Unauthenticated      the token is not the requester's (or the party is unknown)
    ├── Refused              the policy refused the request; carries the decision and receipt
    └── GatewayError         the exchange failed and released nothing
        └── ReleaseFailed    a write failed after its release was logged (the failure is too)
"""

from __future__ import annotations

from accord.gateway.door import (
    ERROR_RULE,
    NOT_A_MEMBER,
    RELEASE_FAILED_RULE,
    UNAUTHENTICATED_RULE,
    UNKNOWN_PERSON,
    Gateway,
)
from accord.gateway.errors import GatewayError, Refused, ReleaseFailed, Unauthenticated
from accord.gateway.exchange import Exchange, Release
from accord.gateway.keyring import Keyring, hash_token

__all__ = [
    "ERROR_RULE",
    "NOT_A_MEMBER",
    "RELEASE_FAILED_RULE",
    "UNAUTHENTICATED_RULE",
    "UNKNOWN_PERSON",
    "Exchange",
    "Gateway",
    "GatewayError",
    "Keyring",
    "Refused",
    "Release",
    "ReleaseFailed",
    "Unauthenticated",
    "hash_token",
]
