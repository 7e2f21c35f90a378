"""A small population of Reelix members and their consents, and helpers to load them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table

from accord.consent import Consent, Person, PersonFacts
from accord.filters import ConsentNeed, PersonFilter, Rule
from accord.jurisdictions import Jurisdictions
from accord.store.repositories import ConsentRepository, PeopleRepository
from sources.conftest import Databases

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
WATCHED = "user.behavior.media_consumption"
PRIVATE = "user.content.private"
PURPOSE = "personalize.content"


def member(pid: str, jurisdiction: str) -> Person:
    return Person(pid, "reelix", jurisdiction)


def consent(pid: str, n: int = 0, **overrides: Any) -> Consent:
    fields: dict[str, Any] = {
        "id": f"k-{pid}-{n}",
        "person": pid,
        "controller": "reelix",
        "recipient": "chirp",
        "purposes": frozenset({PURPOSE}),
        "categories": frozenset({WATCHED, PRIVATE}),
        "jurisdiction": "US-CA",
        "given_at": AT - timedelta(days=10),
    }
    fields.update(overrides)
    return Consent(**fields)


def needs_consent(category: str = WATCHED, where: Sequence[str] = ("US",)) -> Rule:
    """The person must have consented to Chirp, where the rule applies."""
    return Rule(
        "consent",
        "has not consented",
        ConsentNeed(recipient="chirp", purpose=PURPOSE, category=category),
        applies_to=Jurisdictions.of(list(where)),
    )


class Streamed:
    """Ids that can only be iterated, as the store streams them: a read puts them in a temporary
    table (a list or set of a few ids is bound as parameters instead)."""

    def __init__(self, ids: Iterable[str]) -> None:
        self.ids = list(ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)


def consent_filter(**overrides: Any) -> PersonFilter:
    fields: dict[str, Any] = {"at": AT, "controller": "reelix", "rules": (needs_consent(),)}
    fields.update(overrides)
    return PersonFilter(**fields)


def facts(people: Iterable[Person], consents: Iterable[Consent]) -> list[PersonFacts]:
    consents = list(consents)
    return [PersonFacts.of(p, consents) for p in people]


def load_store(dbs: Databases, people: Iterable[Person], consents: Iterable[Consent]) -> None:
    with dbs.sessions() as session:
        PeopleRepository(session).upsert_many(people)
        ConsentRepository(session).bulk_add(consents)
        session.commit()


def insert(dbs: Databases, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        with dbs.party.begin() as conn:
            conn.execute(table.insert(), [dict(r) for r in rows])


# The fixed population of the example-based tests.
PEOPLE = (
    member("m1", "US-CA"),  # consented
    member("m2", "US-NY"),  # no consent
    member("m3", "DE"),  # no consent, but the rule applies only in the US
    member("m4", "US-CA"),  # consent withdrawn
    member("m5", "BR"),  # no consent, outside the US
)
CONSENTS = (consent("m1"), consent("m4", withdrawn_at=AT - timedelta(days=1)))
ALLOWED = {"m1", "m3", "m5"}
