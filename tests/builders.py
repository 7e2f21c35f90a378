"""Small builders for agreements, consents and requests used across the tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import yaml_text
from accord import agreements as A
from accord.consent import (
    Consent,
    Method,
    Operation,
    OptOut,
    OptOutKind,
    Person,
    PersonFacts,
    SignalSource,
)
from accord.filters import ConsentNeed, PersonFilter
from accord.policy import Policy
from accord.requests import Request, Subjects

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PROVIDER, RECIPIENT = "chirp", "reelix"


def clause(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "c1",
        "direction": "provider_to_recipient",
        "operations": ["read"],
        "categories": ["user.behavior.media_consumption"],
        "purposes": ["personalize.content"],
        "retention_days": 30,
    }
    base.update(overrides)
    return base


def agreement(*clauses: dict[str, Any], **overrides: Any) -> A.Agreement:
    doc: dict[str, Any] = {
        "id": "chirp-reelix",
        "title": "Chirp and Reelix",
        "provider": PROVIDER,
        "recipient": RECIPIENT,
        "valid_from": "2026-01-01",
        "valid_until": "2028-01-01",
        "clauses": list(clauses) or [clause()],
    }
    doc.update(overrides)
    return A.parse(yaml_text.dump(doc), source="test.yaml")


def activate(agreement_: A.Agreement, *, reviewed: bool = True) -> A.Registered:
    reg = A.Registered(agreement_)
    if not reviewed:
        return reg
    review = A.Review("Dana Privacy", date(2026, 1, 2), "no findings", True, agreement_.version)
    reg = A.advance(reg, A.Status.IN_REVIEW, at=NOW, by="legal")
    reg = A.advance(reg, A.Status.APPROVED, at=NOW, by="dpo", review=review)
    return A.advance(reg, A.Status.ACTIVE, at=NOW, by="dpo")


def policy(*clauses: dict[str, Any], **overrides: Any) -> Policy:
    return Policy([activate(agreement(*clauses, **overrides))])


def consent(person: str = "p1", **overrides: Any) -> Consent:
    base: dict[str, Any] = {
        "id": f"k-{person}-{len(overrides)}-{abs(hash(repr(sorted(overrides.items())))) % 10**8}",
        "person": person,
        "controller": PROVIDER,
        "recipient": RECIPIENT,
        "purposes": frozenset({"personalize.content"}),
        "categories": frozenset({"user.behavior.media_consumption"}),
        "jurisdiction": "CA",
        "given_at": NOW - timedelta(days=30),
        "method": Method.IN_APP_DIALOG,
        "notice": "notice-v1",
        "distinct_and_separate": True,
        "withdrawal_method": Method.SETTINGS_PAGE,
    }
    base.update(overrides)
    return Consent(**base)


def opt_out(person: str = "p1", **overrides: Any) -> OptOut:
    base: dict[str, Any] = {
        "person": person,
        "controller": PROVIDER,
        "kind": OptOutKind.SALE_SHARING,
        "source": SignalSource.GPC,
        "at": NOW - timedelta(days=1),
    }
    base.update(overrides)
    return OptOut(**base)


def facts(
    person: str, jurisdiction: str, *consents: Consent, opt_outs: tuple[OptOut, ...] = ()
) -> PersonFacts:
    return PersonFacts(Person(person, PROVIDER, jurisdiction), tuple(consents), opt_outs)


def request(**overrides: Any) -> Request:
    base: dict[str, Any] = {
        "requester": RECIPIENT,
        "agreement": "chirp-reelix",
        "clause": "c1",
        "operation": Operation.READ,
        "purpose": "personalize.content",
        "categories": frozenset({"user.behavior.media_consumption"}),
        "at": NOW,
        "subjects": Subjects(),
    }
    base.update(overrides)
    return Request(**base)


def for_title(f: PersonFilter, title: str) -> PersonFilter:
    """``f`` judging a disclosure of ``title``: every consent it asks for, asked for that title
    (how a row that carries ``title`` is judged)."""
    return replace(
        f,
        rules=tuple(
            replace(r, requirement=replace(r.requirement, title=title))
            if isinstance(r.requirement, ConsentNeed)
            else r
            for r in f.rules
        ),
    )
