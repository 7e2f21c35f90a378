"""A request to move personal data between two parties, as Accord receives it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from accord import taxonomy
from accord.consent import Operation, utc
from accord.errors import RequestError, TaxonomyError


class SubjectsKind(StrEnum):
    """Which people a request is about."""

    ALL = "all"
    PEOPLE = "people"
    FRIENDS_OF = "friends_of"
    THREADS_OF = "threads_of"


@dataclass(frozen=True, slots=True)
class Subjects:
    """The people a request asks about: everyone, named people, or those related to a person."""

    kind: SubjectsKind = SubjectsKind.ALL
    people: frozenset[str] = frozenset()
    anchor: str | None = None

    def __post_init__(self) -> None:
        if self.kind is SubjectsKind.PEOPLE and not self.people:
            raise RequestError("subjects of kind 'people' must name at least one person")
        relative = self.kind in {SubjectsKind.FRIENDS_OF, SubjectsKind.THREADS_OF}
        if relative and not self.anchor:
            raise RequestError(f"subjects of kind {self.kind.value!r} must name the person")

    @property
    def relative(self) -> bool:
        """Whether the people are defined by their relation to one person."""
        return self.kind in {SubjectsKind.FRIENDS_OF, SubjectsKind.THREADS_OF}

    def describe(self) -> str:
        """A short phrase: 'everyone', '3 named people', 'the friends of one person'.

        It never names the person: the phrase goes into reasons, which the ledger keeps.
        """
        if self.kind is SubjectsKind.ALL:
            return "everyone"
        if self.kind is SubjectsKind.PEOPLE:
            return f"{len(self.people)} named {'person' if len(self.people) == 1 else 'people'}"
        what = "friends" if self.kind is SubjectsKind.FRIENDS_OF else "message threads"
        return f"the {what} of one person"


EVERYONE = Subjects()


@dataclass(frozen=True, slots=True)
class Request:
    """A party asking to read or write data under one clause of one agreement.

    ``on_behalf_of`` is the person (by their id at the party whose people the request is about)
    for whom the partner acts, when access was delegated; ``title`` names the video when the
    request is about one title (VPPA case-by-case consent).
    """

    requester: str
    agreement: str
    clause: str
    operation: Operation
    purpose: str
    categories: frozenset[str]
    at: datetime
    fields: frozenset[str] = frozenset()
    subjects: Subjects = EVERYONE
    on_behalf_of: str | None = None
    title: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", utc(self.at))
        object.__setattr__(self, "categories", frozenset(self.categories))
        object.__setattr__(self, "fields", frozenset(self.fields))
        if not self.categories:
            raise RequestError("a request names at least one data category")
        try:
            _known(taxonomy.Kind.PURPOSE, self.purpose)
            for category in self.categories:
                _known(taxonomy.Kind.CATEGORY, category)
        except TaxonomyError as exc:
            raise RequestError(exc.message, where=f"request {self.id}") from exc

    @property
    def delegated(self) -> bool:
        """Whether the partner acts on behalf of a person."""
        return self.on_behalf_of is not None

    @property
    def requester_person(self) -> str | None:
        """The person the request is made for or about, if any."""
        return self.on_behalf_of or self.subjects.anchor


_KNOWN: set[tuple[taxonomy.Kind, str]] = set()


def _known(kind: taxonomy.Kind, key: str) -> None:
    # Requests arrive by the thousand; remember keys already validated.
    if (kind, key) not in _KNOWN:
        taxonomy.validate(kind, key)
        _KNOWN.add((kind, key))
