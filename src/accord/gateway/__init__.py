"""The one door: every exchange of personal data between two parties goes through
:meth:`Gateway.exchange`.

    exchange → authenticate the party (its token must be the requester's)
             → decide (the compiled policy, once for the request)
             → fetch from the sending party's source only the decision's fields of one collection,
               only the allowed people's rows (the allowed ids travel into the party's database as
               a temporary table; a request naming a few people has them judged at once and their
               ids bound into the query)
             → apply the clause's granularity: records, aggregates (small groups dropped, and
               not mentioned; under a clause with a privacy budget, each person's rows bounded,
               the budget spent, the groups chosen and the counts noised with differential
               privacy), or only which of the requested people are present
             → append the decision and the release to the ledger, durably
             → release

A write (a partner posting into the other party: a message sent on a person's behalf, watch
activity for the feed) runs the same steps, keeps only the rows whose person the decision lets
through (and, for a message, only into threads the person is in), writes the ledger entries first
and then the rows, in one transaction.

Rows that carry a title (a collection naming its title field) are judged by person and title,
in reads and writes alike: a title a person excluded case by case never goes, a consent for one
disclosure releases its title once, and a request about one title moves only that title's rows
(:mod:`~accord.gateway.titles`).

What narrows a read is checked as strictly as what it returns: a condition (``where``) may name a
released field or an identifier, never other personal data; a read about one person's relations
(a collection declaring ``relation_of``, or rows about groups) is made only on that person's
behalf and pinned to them (their own threads; a condition naming them for their friends), and is
refused and logged otherwise, however the request names the person; an aggregate groups and
measures only released fields. Each release is logged with whom it is about
(pseudonymised by the ledger); an aggregate names no one, and says nothing of the groups below
the clause's minimum: it may not be pinned by a condition to one person, it counts no
contributors, and its rows are said to be about at least the minimum of people each.

Memory: a record read holds its released rows once, in the :class:`Release`, plus the set of
the people they are about for the ledger entry; nothing is held twice.

Modules: :mod:`~accord.gateway.door` (the steps), :mod:`~accord.gateway.exchange` (what goes in
and comes out), :mod:`~accord.gateway.private` (aggregates with differential privacy),
:mod:`~accord.gateway.keyring` (party credentials), :mod:`~accord.gateway.errors`.

Fail closed: any error after authentication releases nothing. It is logged to the ledger, where
the ledger is still reachable, as a refused decision with the rule ``gateway:error``, and raised
as an :class:`~accord.errors.AccordError`. Errors of the gateway itself::

    AccordError
    ├── Unauthenticated      the token is not the requester's (or the party is unknown)
    ├── Refused              the policy refused the request; carries the decision and receipt
    └── GatewayError         the exchange failed and released nothing
        ├── ReleaseFailed    a write failed after its release was logged (the failure is too)
        └── ReleaseInDoubt   the store failed while committing the release's entries: once it
                             answers, the ledger says whether they were stored (a release
                             logged but never received, ``gateway:release-undelivered``)
"""

from __future__ import annotations

from accord.gateway.door import (
    ERROR_RULE,
    NOT_A_MEMBER,
    TITLE_WITHHELD,
    UNAUTHENTICATED_RULE,
    UNKNOWN_PERSON,
    Gateway,
)
from accord.gateway.errors import (
    GatewayError,
    Refused,
    ReleaseFailed,
    ReleaseInDoubt,
    Unauthenticated,
)
from accord.gateway.exchange import Exchange, Noise, Release
from accord.gateway.keyring import Keyring, hash_token
from accord.ledger.notes import RELEASE_FAILED_RULE, RELEASE_UNDELIVERED_RULE, undone_release

__all__ = [
    "ERROR_RULE",
    "NOT_A_MEMBER",
    "RELEASE_FAILED_RULE",
    "RELEASE_UNDELIVERED_RULE",
    "TITLE_WITHHELD",
    "UNAUTHENTICATED_RULE",
    "UNKNOWN_PERSON",
    "Exchange",
    "Gateway",
    "GatewayError",
    "Keyring",
    "Noise",
    "Refused",
    "Release",
    "ReleaseFailed",
    "ReleaseInDoubt",
    "Unauthenticated",
    "hash_token",
    "undone_release",
]
