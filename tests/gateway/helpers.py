"""Reading back what the gateway did: the ledger's recent leaves, and reference computations."""

from __future__ import annotations

from typing import Any

from accord.consent import PersonFacts
from accord.filters import PersonFilter
from accord.ledger.log import Ledger
from accord.requests import Subjects, SubjectsKind
from gateway.world import CHIRP_PEOPLE, CONSENTS, REELIX_PEOPLE, request

C1 = {"person_id": "c1"}  # a friends read is pinned to the person it is made for

FRIEND_PICKER = request(
    "friend-picker",
    categories=frozenset({"user.social"}),
    subjects=Subjects(SubjectsKind.FRIENDS_OF, anchor="c1"),
    on_behalf_of="c1",  # the person whose friends they are asks
)
"""Reelix's friend picker, for c1: c1's friends at Chirp, asked for on c1's behalf."""


def last_entries(ledger: Ledger, n: int) -> list[dict[str, Any]]:
    """The last ``n`` ledger leaves, oldest first."""
    return [leaf.entry() for leaf in sorted(ledger.recent(n), key=lambda leaf: leaf.index)]


def reference_allowed(f: PersonFilter) -> frozenset[str]:
    """Whom ``f`` lets through, judged in Python from the world's records (not the store's SQL)."""
    people = CHIRP_PEOPLE if f.controller == "chirp" else REELIX_PEOPLE
    return f.allowed(PersonFacts.of(p, CONSENTS) for p in people)
