"""Two parties, each with an Accord store, people, consents and a list of e-mail addresses.

The ``audience`` agreement lets each side match its customers' e-mail addresses with the other's
for third-party targeted advertising, at match-only granularity, in both directions; a third
clause releases the addresses as records (which private matching must refuse to run under).

Who may be matched (the same on each side, ``c*`` at Chirp and ``m*`` at Reelix)::

    1  US-CA  consents                                   → fed in
    2  US-CA  consents, but a Global Privacy Control     → out (CCPA opt-out of sharing)
    3  DE     consents, but not distinct and separate    → out (GDPR Art. 7)
    4  US-NY  never consented                            → out (the clause needs consent)
    5  BR     consents                                   → fed in
    6  FR     consents, distinct and separate            → fed in
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

import yaml_text
from accord import agreements as ag
from accord.consent import Consent, Method, Operation, OptOut, OptOutKind, Person, SignalSource
from accord.requests import Request
from accord.service import Accord

NOW = datetime.now(UTC)
EMAIL = "user.contact.email"
ADS = "marketing.advertising.third_party.targeted"
AUDIENCE = "audience"

AGREEMENT = {
    "id": AUDIENCE,
    "title": "Audience overlap for advertising",
    "provider": "chirp",
    "recipient": "reelix",
    "valid_from": "2026-01-01",
    "valid_until": "2099-01-01",
    "clauses": [
        {
            "id": "chirp-match",
            "direction": "provider_to_recipient",
            "operations": ["read"],
            "categories": [EMAIL],
            "purposes": [ADS],
            "granularity": "match_only",
            "retention_days": 0,
            "legal_basis": "consent",
        },
        {
            "id": "reelix-match",
            "direction": "recipient_to_provider",
            "operations": ["read"],
            "categories": [EMAIL],
            "purposes": [ADS],
            "granularity": "match_only",
            "retention_days": 0,
            "legal_basis": "consent",
        },
        {
            "id": "chirp-records",
            "direction": "provider_to_recipient",
            "operations": ["read"],
            "categories": [EMAIL],
            "purposes": [ADS],
            "retention_days": 0,
            "legal_basis": "consent",
        },
    ],
}

PLACES = ("US-CA", "US-CA", "DE", "US-NY", "BR", "FR")
# Addresses shared by both parties' customers, written differently on each side.
CHIRP_EMAILS = {
    "c1": "Alice@Example.org",
    "c2": "bob@example.org",
    "c3": "carol@example.de",
    "c4": "dave@example.com",
    "c5": "Erin.Silva+promo@gmail.com",
    "c6": "frank@example.fr",
}
REELIX_EMAILS = {
    "m1": "alice@example.org",  # Alice: fed in on both sides → matched
    "m2": "Bob@Example.org",
    "m3": "carol@example.de",
    "m4": "frank@example.fr",  # Frank: fed in at Chirp (c6), but m4 never consented
    "m5": "erinsilva@googlemail.com",  # Erin: Gmail's rules make c5's address this one
    "m6": "bob@example.org",  # Bob: fed in here, but c2 at Chirp opted out
}


def people(party: str) -> list[Person]:
    prefix = "c" if party == "chirp" else "m"
    return [Person(f"{prefix}{i}", party, where) for i, where in enumerate(PLACES, 1)]


def consents(party: str) -> list[Consent]:
    other = "reelix" if party == "chirp" else "chirp"
    return [
        Consent(
            id=f"k-{p.id}",
            person=p.id,
            controller=party,
            recipient=other,
            purposes=frozenset({ADS}),
            categories=frozenset({EMAIL}),
            jurisdiction=p.jurisdiction,
            given_at=NOW - timedelta(days=30),
            method=Method.IN_APP_DIALOG,
            notice="notice-v1",
            distinct_and_separate=not p.id.endswith("3"),
            withdrawal_method=Method.SETTINGS_PAGE,
            operations=frozenset({Operation.READ}),
        )
        for p in people(party)
        if not p.id.endswith("4")
    ]


def opt_outs(party: str) -> list[OptOut]:
    prefix = "c" if party == "chirp" else "m"
    return [
        OptOut(f"{prefix}2", party, OptOutKind.SALE_SHARING, SignalSource.GPC, NOW - timedelta(1))
    ]


def records(party: str) -> list[tuple[str, str]]:
    """(person, e-mail) pairs, plus one address of someone the store does not know."""
    emails = CHIRP_EMAILS if party == "chirp" else REELIX_EMAILS
    return [*emails.items(), ("x9", "alice@example.org")]


def request(party: str, clause: str | None = None, **overrides: Any) -> Request:
    """The match-only request under which ``party``'s own people go out to the other party."""
    other = "reelix" if party == "chirp" else "chirp"
    fields: dict[str, Any] = {
        "requester": other,
        "agreement": AUDIENCE,
        "clause": clause or f"{party}-match",
        "operation": Operation.READ,
        "purpose": ADS,
        "categories": frozenset({EMAIL}),
        "at": NOW,
    }
    fields.update(overrides)
    return Request(**fields)


def build(accord: Accord) -> None:
    """Register and activate the agreement; load both parties' people, consents and opt-outs."""
    accord.register(yaml_text.dump(AGREEMENT), source="audience.yaml", by="legal")
    accord.review(AUDIENCE, reviewer="Dana Privacy", findings="no findings", approved=True)
    accord.move(AUDIENCE, ag.Status.ACTIVE, by="dpo")
    for party in ("chirp", "reelix"):
        accord.import_records(people(party), consents(party), opt_outs(party))


@contextmanager
def store(folder: Path, url: str | None = None) -> Iterator[Accord]:
    """A built Accord store at ``url``, or in ``folder`` (SQLite); the ledger key in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with Accord.open(database_url=url, data_dir=folder) as accord:
        build(accord)
        yield accord


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` on an ephemeral port of the loopback interface; yields its URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
