"""Permissions in plain words, for the consent screens and a person's apps page.

A permission is a (data category, purpose) pair; a person reads it as what the app may read or
send, why, what the agreement's clause says it is for, and how long the receiving party keeps it.
The words come from fideslang's taxonomy (each key's name and description) and from the clause
itself (its description and ``retention_days``); no taxonomy key is shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from accord import taxonomy
from accord.agreements import Agreement
from accord.api.scopes import Scope, offered
from accord.consent import Operation


@dataclass(frozen=True, slots=True)
class Wording:
    """One permission as a person reads it."""

    title: str
    """``Chirp may read your private content, for: Service`` (one purpose a title)."""
    what: str
    """The data category's name and description."""
    why: str
    """The purpose's name and description."""
    clause: str
    """What the agreement's clause says the flow is for ('' if it says nothing)."""
    kept: str
    """How long the receiving party keeps the data, from the clause's ``retention_days``."""
    advertising: bool
    """Whether the purpose is marketing or advertising (never bundled with the service)."""


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text


def kept_for(days: int, keeper: str) -> str:
    """How long ``keeper`` keeps what it receives, in words."""
    if days == 0:
        return f"{keeper} uses it as it arrives and keeps none of it."
    if days % 365 == 0:
        years = days // 365
        span = f"{years} year{'s' if years > 1 else ''} ({days} days)"
    else:
        span = f"{days} day{'s' if days > 1 else ''}"
    return f"{keeper} keeps it for at most {span}."


def word(scope: Scope, agreement: Agreement, asking: str, names: Mapping[str, str]) -> Wording:
    """``scope`` in plain words, as party ``asking`` asks for it under ``agreement``; ``names``
    gives each party's display name."""
    cat = taxonomy.terms(taxonomy.Kind.CATEGORY)[scope.category]
    use = taxonomy.terms(taxonomy.Kind.PURPOSE)[scope.purpose]
    other = agreement.recipient if asking == agreement.provider else agreement.provider
    asker = names.get(asking, asking)
    if scope.operation is Operation.WRITE:
        title = (
            f"{asker} may send your {cat.name.lower()} to {names.get(other, other)} for you, "
            f"for: {use.name}"
        )
        keeper = names.get(other, other)
    else:
        title = f"{asker} may read your {cat.name.lower()}, for: {use.name}"
        keeper = asker
    clauses = offered(agreement, asking).get(scope, ())
    days = max((c.retention_days for c in clauses), default=0)
    said = " ".join(_sentence(" ".join(c.description.split())) for c in clauses if c.description)
    return Wording(
        title=title,
        what=f"{cat.name}: {_sentence(cat.description)}",
        why=f"{use.name}: {_sentence(use.description)}",
        clause=said,
        kept=kept_for(days, keeper),
        advertising=taxonomy.covers("marketing", scope.purpose),
    )
