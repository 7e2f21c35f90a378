"""Permissions: OAuth 2.0 scopes (RFC 6749 section 3.3) that are (data category, purpose) pairs.

A scope reads ``category:purpose`` (``user.social:functional.service``); a scope to write on a
person's behalf adds ``:write``, so an app that only sends asks for no right to read. The scopes
an app may ask for are drawn from its agreement: every pair of every clause under which the app's
party is the one asking (the receiver of a read, the sender of a write).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from accord import taxonomy
from accord.agreements import Agreement, Clause
from accord.consent import Operation
from accord.errors import InvalidInput
from accord.law import optout


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    """One permission: a data category for a purpose, to read or to write."""

    category: str
    purpose: str
    operation: Operation = Operation.READ

    def __str__(self) -> str:
        suffix = ":write" if self.operation is Operation.WRITE else ""
        return f"{self.category}:{self.purpose}{suffix}"

    @classmethod
    def parse(cls, text: str) -> Scope:
        """The scope ``text`` names; :class:`InvalidInput` unless it is category:purpose[:write]."""
        return _parse(text)

    @property
    def viewing(self) -> bool:
        """Whether it moves what a person watched (needs its own VPPA consent screen)."""
        return taxonomy.covers(taxonomy.MEDIA_CONSUMPTION, self.category) or taxonomy.covers(
            self.category, taxonomy.MEDIA_CONSUMPTION
        )

    @property
    def sale_or_sharing(self) -> bool:
        """Whether it is for marketing, which a sale/sharing opt-out (``Sec-GPC: 1``) bars in
        every place (:mod:`accord.law.optout`)."""
        return optout.is_barred_by_opt_out(self.purpose)

    def describe(self) -> str:
        """A sentence a person can read: what the app may do with which data, and why."""
        cat = taxonomy.terms(taxonomy.Kind.CATEGORY)[self.category].name
        use = taxonomy.terms(taxonomy.Kind.PURPOSE)[self.purpose].name
        verb = "Send on your behalf" if self.operation is Operation.WRITE else "Read"
        return f"{verb}: {cat.lower()}, for {use.lower()}"


# Every request parses its token's scopes and its app's reviews: the same few strings each time.
@lru_cache(maxsize=4096)
def _parse(text: str) -> Scope:
    """:meth:`Scope.parse`, remembered: a scope's text always names the same scope."""
    parts = text.split(":")
    if len(parts) == 3 and parts[2] == "write":
        operation = Operation.WRITE
    elif len(parts) == 2:
        operation = Operation.READ
    else:
        raise InvalidInput(
            f"scope {text!r} is not category:purpose or category:purpose:write",
            where="scope",
        )
    try:
        taxonomy.validate(taxonomy.Kind.CATEGORY, parts[0])
        taxonomy.validate(taxonomy.Kind.PURPOSE, parts[1])
    except InvalidInput as exc:
        raise InvalidInput(exc.message, where=f"scope {text!r}") from exc
    return Scope(parts[0], parts[1], operation)


def parse_all(text: str | None) -> frozenset[Scope]:
    """The scopes of a space-separated scope string."""
    return frozenset(Scope.parse(part) for part in (text or "").split())


def render(scopes: Iterable[Scope]) -> str:
    """Scopes as a space-separated string, in a stable order."""
    return " ".join(str(s) for s in sorted(scopes))


def requester_of(agreement: Agreement, clause: Clause, operation: Operation) -> str:
    """Who asks under ``clause`` to ``operation``: a read's receiver, a write's sender."""
    if operation is Operation.WRITE:
        return agreement.sender_of(clause)
    return agreement.receiver_of(clause)


def offered(agreement: Agreement, party: str) -> dict[Scope, tuple[Clause, ...]]:
    """Every scope ``party`` may ask for under ``agreement``, with the clauses that grant it."""
    out: dict[Scope, tuple[Clause, ...]] = {}
    for clause in agreement.clauses:
        for operation in clause.operations:
            if requester_of(agreement, clause, operation) != party:
                continue
            for category in clause.categories:
                for purpose in clause.purposes:
                    scope = Scope(category, purpose, operation)
                    out[scope] = (*out.get(scope, ()), clause)
    return out


def needed(categories: Iterable[str], purpose: str, operation: Operation) -> frozenset[Scope]:
    """The scopes a request for ``categories`` and ``purpose`` needs: one per category."""
    return frozenset(Scope(c, purpose, operation) for c in categories)


def covered(need: Scope, held: Iterable[Scope]) -> bool:
    """Whether a held scope covers ``need`` (same operation; a broader category or purpose)."""
    if need in held:  # held as it is: it covers itself
        return True
    return any(
        h.operation is need.operation
        and taxonomy.covers(h.category, need.category)
        and taxonomy.covers(h.purpose, need.purpose)
        for h in held
    )
