"""Builders for the audit's tests: a test agreement, a release under it, a member's consent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from accord import agreements as ag
from accord.audit.law import Disclosure
from accord.consent import Consent, Operation

AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MEDIA = "user.behavior.media_consumption"
PRIVATE = "user.content.private"
FEED = "functional.service"
ADS = "marketing.advertising.third_party.targeted"

AGREEMENT = ag.parse(
    """
id: test-partnership
title: A test partnership
provider: chirp
recipient: reelix
valid_from: 2026-01-01
valid_until: 2028-01-01
clauses:
  - id: feed
    direction: recipient_to_provider
    categories: [user.behavior.media_consumption]
    fields: [watch_events.title_id, watch_events.watched_at]
    purposes: [functional.service]
    retention_days: 30
  - id: ads
    direction: recipient_to_provider
    categories: [user.behavior.media_consumption]
    fields: [watch_events.title_id]
    purposes: [marketing.advertising.third_party.targeted]
    retention_days: 30
  - id: mail
    direction: recipient_to_provider
    categories: [user.behavior.media_consumption]
    fields: [watch_events.title_id]
    purposes: [marketing.communications.email]
    retention_days: 30
  - id: report
    direction: recipient_to_provider
    categories: [user.behavior]
    purposes: [analytics.reporting.content_performance]
    granularity: aggregate
    min_group_size: 50
    retention_days: 30
    legal_basis: legitimate_interests
    consent_needed: false
  - id: link
    direction: recipient_to_provider
    categories: [user.account.linked]
    purposes: [essential.service.authentication]
    retention_days: 30
    legal_basis: contract
    consent_needed: false
  - id: picker
    direction: provider_to_recipient
    categories: [user.social]
    purposes: [functional.service]
    retention_days: 0
    legal_basis: legitimate_interests
    consent_needed: false
  - id: send
    direction: recipient_to_provider
    operations: [write]
    categories: [user.content.private]
    purposes: [functional.service]
    retention_days: 0
  - id: eu-feed
    direction: recipient_to_provider
    categories: [user.behavior.media_consumption]
    purposes: [functional.service]
    retention_days: 30
    regions: [EU]
""",
    source="test",
)


def release(clause: str = "feed", **kw: Any) -> Disclosure:
    """A release under ``clause`` at AT, read by chirp from reelix unless told otherwise."""
    base: dict[str, Any] = {
        "at": AT,
        "agreement": AGREEMENT,
        "in_force": None,
        "clause_id": clause,
        "provider": "reelix",
        "recipient": "chirp",
        "controller": "reelix",
        "operation": Operation.READ,
        "purpose": FEED,
        "categories": frozenset({MEDIA}),
        "field_categories": frozenset({MEDIA}),
    }
    base.update(kw)
    return Disclosure(**base)


def consent(**kw: Any) -> Consent:
    """Member m1's consent to chirp seeing their watch activity, given 100 days ago."""
    base: dict[str, Any] = {
        "id": "k1",
        "person": "m1",
        "controller": "reelix",
        "recipient": "chirp",
        "purposes": frozenset({FEED}),
        "categories": frozenset({MEDIA}),
        "jurisdiction": "CA",
        "given_at": AT - 100 * DAY,
        "notice": "notice-1",
        "distinct_and_separate": True,
    }
    base.update(kw)
    return Consent(**base)
