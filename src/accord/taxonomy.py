"""Data categories, purposes (data uses) and data subjects, from fideslang's default taxonomy.

Keys are dotted and hierarchical: ``user.behavior`` covers ``user.behavior.media_consumption``.
Accord adds a key of its own only where fideslang has none (:data:`ACCORD_EXTENSIONS`).
Unknown keys are rejected with the nearest valid key suggested.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

from accord.errors import TaxonomyError


class Kind(StrEnum):
    """The three vocabularies of the taxonomy."""

    CATEGORY = "data category"
    PURPOSE = "purpose"
    SUBJECT = "data subject"


@dataclass(frozen=True, slots=True)
class Term:
    """One key of the taxonomy, with its name and description."""

    key: str
    name: str
    description: str
    parent: str | None


# Keys fideslang lacks that the partnerships Accord runs need. Each says why it exists.
ACCORD_EXTENSIONS: dict[Kind, tuple[Term, ...]] = {
    Kind.CATEGORY: (
        Term(
            "user.account.linked",
            "Linked account",
            "A link between a person's accounts at two parties, made by the person.",
            "user.account",
        ),
    ),
    Kind.PURPOSE: (),
    Kind.SUBJECT: (),
}

# Well-known keys used by the law modules, named once.
MEDIA_CONSUMPTION = "user.behavior.media_consumption"
PRIVATE_CONTENT = "user.content.private"
THIRD_PARTY_TARGETED_ADS = "marketing.advertising.third_party.targeted"


@cache
def _terms(kind: Kind) -> dict[str, Term]:
    # fideslang's taxonomy is a few hundred pydantic models: built when a key is first looked up,
    # not by every module (and command) that merely names a vocabulary.
    from fideslang.default_taxonomy import DEFAULT_TAXONOMY  # noqa: PLC0415

    sources: dict[Kind, list[Any]] = {
        Kind.CATEGORY: DEFAULT_TAXONOMY.data_category,
        Kind.PURPOSE: DEFAULT_TAXONOMY.data_use,
        Kind.SUBJECT: DEFAULT_TAXONOMY.data_subject,
    }
    source = sources[kind]
    terms = {
        item.fides_key: Term(
            item.fides_key,
            item.name or item.fides_key,
            item.description or "",
            getattr(item, "parent_key", None),
        )
        for item in source
    }
    for term in ACCORD_EXTENSIONS[kind]:
        terms[term.key] = term
    return terms


def terms(kind: Kind) -> dict[str, Term]:
    """Every key of one vocabulary, by key."""
    return _terms(kind)


def validate(kind: Kind, key: str) -> str:
    """Return ``key`` if it is a known key of ``kind``; otherwise raise with the nearest keys."""
    known = _terms(kind)
    if key in known:
        return key
    nearest = difflib.get_close_matches(key, known.keys(), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(n) for n in nearest)}?" if nearest else ""
    raise TaxonomyError(f"unknown {kind} {key!r}{hint}")


def validate_all(kind: Kind, keys: Iterable[str]) -> frozenset[str]:
    """Validate each key; the set of them."""
    return frozenset(validate(kind, key) for key in keys)


def ancestors(key: str) -> tuple[str, ...]:
    """``key`` and every key above it, nearest first: ``a.b.c`` gives ``a.b.c, a.b, a``."""
    parts = key.split(".")
    return tuple(".".join(parts[:i]) for i in range(len(parts), 0, -1))


def covers(general: str, specific: str) -> bool:
    """Whether ``general`` is ``specific`` or one of its ancestors."""
    return specific == general or specific.startswith(general + ".")


def covered_by_any(specific: str, generals: Iterable[str]) -> bool:
    """Whether any key of ``generals`` covers ``specific``."""
    return any(covers(g, specific) for g in generals)


@cache
def descendants(kind: Kind, key: str) -> frozenset[str]:
    """``key`` and every known key below it."""
    return frozenset(k for k in _terms(kind) if covers(key, k))


def expand(kind: Kind, keys: Iterable[str]) -> frozenset[str]:
    """Every known key covered by one of ``keys`` (the keys themselves included)."""
    out: set[str] = set()
    for key in keys:
        out |= descendants(kind, key)
    return frozenset(out)
