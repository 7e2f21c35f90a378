"""A small Chirp–Reelix world: an Accord store, two party databases, people and consents.

Chirp's database holds friendships, message threads and a table for watch activity Reelix posts;
Reelix's holds watch events. Both datasets are declared here (small, and fixed for these tests).
Besides the example agreement, an ``insights`` agreement lets Chirp read Reelix's watch events
as records, as aggregates and as matches, so every granularity is exercised, and lets Reelix
post watch activity into Chirp's table (a write about each member).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Column, DateTime, Engine, Integer, MetaData, String, Table

import yaml_text
from accord import agreements as ag
from accord.consent import Consent, Method, Operation, Person
from accord.gateway import Gateway, Keyring
from accord.requests import Request, Subjects
from accord.service import Accord
from accord.sources import Source, parse
from accord.store.engine import make_engine

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
EXAMPLE = (resources.files("accord") / "examples" / "chirp-reelix.yaml").read_text()
FUNCTIONAL = "functional.service"
WATCHED = "user.behavior.media_consumption"
PRIVATE = "user.content.private"

INSIGHTS = {
    "id": "insights",
    "title": "Reelix watch insights for Chirp",
    "provider": "chirp",
    "recipient": "reelix",
    "valid_from": "2026-01-01",
    "valid_until": "2028-01-01",
    "clauses": [
        {
            "id": "watch-history",
            "direction": "recipient_to_provider",
            "operations": ["read"],
            "categories": [WATCHED],
            "fields": ["watch_events.title_id"],
            "purposes": ["personalize.content"],
            "retention_days": 30,
            "legal_basis": "consent",
        },
        {
            "id": "watch-counts",
            "direction": "recipient_to_provider",
            "operations": ["read"],
            "categories": [WATCHED],
            "fields": ["watch_events.title_id", "watch_events.seconds"],
            "purposes": ["analytics.reporting.content_performance"],
            "granularity": "aggregate",
            "min_group_size": 3,
            "retention_days": 30,
            "legal_basis": "legitimate_interests",
            "consent_needed": False,
        },
        {
            "id": "watch-posts",
            "direction": "recipient_to_provider",
            "operations": ["write"],
            "categories": [WATCHED],
            "fields": ["watch_events.title_id", "watch_events.watched_at"],
            "purposes": [FUNCTIONAL],
            "retention_days": 365,
            "legal_basis": "consent",
        },
        {
            "id": "audience-match",
            "direction": "recipient_to_provider",
            "operations": ["read"],
            "categories": [WATCHED],
            "purposes": ["personalize.content"],
            "granularity": "match_only",
            "retention_days": 0,
            "legal_basis": "consent",
        },
    ],
}

CHIRP_DATASET = """\
dataset: chirp
party: chirp
collections:
  - name: people
    person: person_id
    fields:
      - {name: person_id, category: user.unique_id}
      - {name: email, category: user.contact.email}
  - name: friendships
    description: One row per direction of a friendship, about the friend, with their email.
    person: friend_id
    relation_of: person_id
    fields:
      - {name: person_id, category: user.unique_id}
      - {name: friend_id, category: user.social}
      - {name: email, category: user.contact.email}
  - name: thread_participants
    person: person_id
    relation_of: person_id
    fields:
      - {name: thread_id, category: system.operations}
      - {name: person_id, category: user.unique_id}
  - name: messages
    group: {field: thread_id, members: thread_participants, member_group: thread_id,
            member_person: person_id}
    fields:
      - {name: message_id, category: system.operations}
      - {name: thread_id, category: system.operations}
      - {name: sender_id, category: user.unique_id}
      - {name: body, category: user.content.private}
      - {name: sent_at, category: user.content.private}
      - {name: sent_via, category: system.operations}
  - name: watch_events
    description: Watch activity Reelix posted for the feed, by Reelix member id.
    person: member_id
    fields:
      - {name: member_id, category: user.unique_id}
      - {name: title_id, category: user.behavior.media_consumption}
      - {name: watched_at, category: user.behavior.media_consumption}
"""

REELIX_DATASET = """\
dataset: reelix
party: reelix
collections:
  - name: watch_events
    person: member_id
    fields:
      - {name: event_id, category: system.operations}
      - {name: member_id, category: user.unique_id}
      - {name: title_id, category: user.behavior.media_consumption}
      - {name: watched_at, category: user.behavior.media_consumption}
      - {name: seconds, category: user.behavior.media_consumption}
"""

chirp_tables = MetaData()
Table(
    "people", chirp_tables, Column("person_id", String, primary_key=True), Column("email", String)
)
Table(
    "friendships",
    chirp_tables,
    Column("person_id", String),
    Column("friend_id", String),
    Column("email", String),
)
Table(
    "thread_participants",
    chirp_tables,
    Column("thread_id", String, primary_key=True),
    Column("person_id", String, primary_key=True),
)
Table(
    "messages",
    chirp_tables,
    Column("message_id", Integer, primary_key=True),
    Column("thread_id", String, nullable=False),
    Column("sender_id", String),
    Column("body", String),
    Column("sent_at", DateTime),
    Column("sent_via", String),
)
Table(
    "watch_events",
    chirp_tables,
    Column("member_id", String, nullable=False),
    Column("title_id", String, nullable=False),
    Column("watched_at", DateTime),
)
reelix_tables = MetaData()
Table(
    "watch_events",
    reelix_tables,
    Column("event_id", Integer, primary_key=True),
    Column("member_id", String),
    Column("title_id", String),
    Column("watched_at", DateTime),
    Column("seconds", Integer),
)

# -- the people --------------------------------------------------------------------------------

CHIRP_PEOPLE = (
    Person("c1", "chirp", "US-CA"),  # consents to everything
    Person("c2", "chirp", "US-NY"),  # consents to everything
    Person("c3", "chirp", "DE"),  # consents, but not distinct and separate (GDPR falls short)
    Person("c4", "chirp", "BR"),  # no consent
    Person("c5", "chirp", "CA"),  # consent withdrawn
)
REELIX_PEOPLE = (
    Person("m1", "reelix", "US-CA"),  # VPPA-grade consent
    Person("m2", "reelix", "US-NY"),  # no consent
    Person("m3", "reelix", "BR"),  # consent
    Person("m4", "reelix", "US-TX"),  # consent, but not distinct and separate (fails VPPA)
    Person("m5", "reelix", "FR"),  # consent
)


def consent(person: Person, n: int, **overrides: Any) -> Consent:
    """A consent of ``person`` to the other party; distinct and separate unless overridden."""
    other = "reelix" if person.party == "chirp" else "chirp"
    fields: dict[str, Any] = {
        "id": f"k-{person.id}-{n}",
        "person": person.id,
        "controller": person.party,
        "recipient": other,
        "purposes": frozenset({FUNCTIONAL}),
        "categories": frozenset({"user.social", "user.name", PRIVATE}),
        "jurisdiction": person.jurisdiction,
        "given_at": AT - timedelta(days=30),
        "method": Method.IN_APP_DIALOG,
        "notice": "notice-v1",
        "distinct_and_separate": True,
        "withdrawal_method": Method.SETTINGS_PAGE,
        "operations": frozenset({Operation.READ, Operation.WRITE}),
    }
    fields.update(overrides)
    return Consent(**fields)


def _watching(person: Person, n: int, **overrides: Any) -> Consent:
    fields: dict[str, Any] = {
        "purposes": frozenset({FUNCTIONAL, "personalize.content"}),
        "categories": frozenset({WATCHED}),
    }
    fields.update(overrides)
    return consent(person, n, **fields)


c1, c2, c3, c4, c5 = CHIRP_PEOPLE
m1, m2, m3, m4, m5 = REELIX_PEOPLE
CONSENTS = (
    consent(c1, 1),
    consent(c2, 1),
    consent(c3, 1, distinct_and_separate=False),
    consent(c5, 1, withdrawn_at=AT - timedelta(days=2)),
    _watching(m1, 1),
    _watching(m3, 1),
    _watching(m4, 1, distinct_and_separate=False),
    _watching(m5, 1),
)

FRIENDS = [
    {"person_id": "c1", "friend_id": f, "email": f"{f}@chirp"} for f in ("c2", "c3", "c4", "c5")
] + [{"person_id": "c2", "friend_id": "c1", "email": "c1@chirp"}]
THREADS = {
    "t-ok": ("c1", "c2"),  # everyone consented
    "t-eu": ("c1", "c3"),  # c3's consent falls short of the GDPR
    "t-no": ("c1", "c4"),  # c4 never consented
    "t-solo": ("c2",),
}
# Each thread holds a message Reelix sent and one its people wrote in Chirp itself; message sync
# reads only the first kind.
MESSAGES = [
    {
        "thread_id": t,
        "sender_id": people[0],
        "body": f"hello in {t}" if via else f"a private note in {t}",
        "sent_at": AT,
        "sent_via": via,
    }
    for t, people in THREADS.items()
    for via in ("reelix", None)
]
# Title t1 is watched by every member, t2 by m1 and m3, t3 by m5 only.
WATCH = [
    {"member_id": m, "title_id": t, "watched_at": AT - timedelta(hours=h), "seconds": 60 * h}
    for h, (m, t) in enumerate(
        [(m.id, "t1") for m in REELIX_PEOPLE] + [("m1", "t2"), ("m3", "t2"), ("m5", "t3")], 1
    )
]


def request(clause: str, **overrides: Any) -> Request:
    """A request of Reelix under the example agreement, at ``AT``."""
    fields: dict[str, Any] = {
        "requester": "reelix",
        "agreement": "chirp-reelix",
        "clause": clause,
        "operation": Operation.READ,
        "purpose": FUNCTIONAL,
        "categories": frozenset({PRIVATE}),
        "at": AT,
        "subjects": Subjects(),
    }
    fields.update(overrides)
    return Request(**fields)


@dataclass
class World:
    """The store, the parties' databases and sources, the gateway and each party's token."""

    accord: Accord
    chirp: Engine
    reelix: Engine
    sources: dict[str, Source]
    keyring: Keyring
    gateway: Gateway
    tokens: dict[str, str]


def _activate(accord: Accord, document: str, agreement_id: str) -> None:
    accord.register(document, source=f"{agreement_id}.yaml", by="legal")
    accord.review(agreement_id, reviewer="Dana Privacy", findings="no findings", approved=True)
    accord.move(agreement_id, ag.Status.ACTIVE, by="dpo")


def _fill(engine: Engine, metadata: MetaData, rows: dict[str, list[dict[str, Any]]]) -> None:
    metadata.create_all(engine)
    with engine.begin() as conn:
        for name, values in rows.items():
            if values:
                conn.execute(metadata.tables[name].insert(), values)


@contextmanager
def world(folder: Path, store_url: str | None = None, *, populate: bool = True) -> Iterator[World]:
    """The world in ``folder``: built there, or (``populate=False``) opened as a copy left it.

    The Accord store is at ``store_url`` if given, else a SQLite file in ``folder``.
    """
    chirp = make_engine(f"sqlite:///{folder / 'chirp.db'}")
    reelix = make_engine(f"sqlite:///{folder / 'reelix.db'}")
    try:
        if populate:
            _fill(
                chirp,
                chirp_tables,
                {
                    "people": [{"person_id": p.id, "email": f"{p.id}@chirp"} for p in CHIRP_PEOPLE],
                    "friendships": FRIENDS,
                    "thread_participants": [
                        {"thread_id": t, "person_id": p}
                        for t, members in THREADS.items()
                        for p in members
                    ],
                    "messages": MESSAGES,
                },
            )
            _fill(reelix, reelix_tables, {"watch_events": WATCH})
        with Accord.open(database_url=store_url, data_dir=folder) as accord:
            if populate:
                _activate(accord, EXAMPLE, "chirp-reelix")
                _activate(accord, yaml_text.dump(INSIGHTS), "insights")
                accord.import_records([*CHIRP_PEOPLE, *REELIX_PEOPLE], list(CONSENTS))
            sources = {
                "chirp": Source(chirp, parse(CHIRP_DATASET, source="chirp.yaml")),
                "reelix": Source(reelix, parse(REELIX_DATASET, source="reelix.yaml")),
            }
            keyring = Keyring()
            tokens = {party: keyring.issue(party) for party in ("chirp", "reelix")}
            yield World(
                accord, chirp, reelix, sources, keyring, Gateway(accord, sources, keyring), tokens
            )
    finally:
        chirp.dispose()
        reelix.dispose()
