"""A world for aggregates with differential privacy: Reelix's plays, read as counts by Chirp.

Two hundred members play titles on devices, a few rows each; ``m007`` alone played ``t-lone``;
``m-heavy`` played ``t0`` on the tv ten thousand times; ``m-none`` played nothing. The ``plays``
agreement has three aggregate clauses over the same fields: ``exact-counts`` (no privacy budget:
exact counts of groups of at least 20 people), ``private-counts`` (a privacy budget of 1) and
``tracker-counts`` (a budget of 10, for answers with a large epsilon).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Engine, Integer, MetaData, String, Table

import yaml_text
from accord import agreements as ag
from accord.consent import Operation, Person
from accord.gateway import Gateway, Keyring
from accord.requests import Request, Subjects
from accord.service import Accord
from accord.sources import Source, parse
from accord.store.engine import make_engine

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MINIMUM = 20
DEVICES = ("tv", "web", "ios")
LONE, HEAVY, NOBODY = "m007", "m-heavy", "m-none"
HEAVY_ROWS = 10_000
REPORTING = "analytics.reporting.content_performance"


def _clause(clause_id: str, budget: float | None) -> dict[str, Any]:
    clause: dict[str, Any] = {
        "id": clause_id,
        "direction": "recipient_to_provider",
        "operations": ["read"],
        "categories": ["user.behavior"],
        "fields": ["plays.device", "plays.title_id"],
        "purposes": [REPORTING],
        "granularity": "aggregate",
        "min_group_size": MINIMUM,
        "retention_days": 30,
        "legal_basis": "legitimate_interests",
        "consent_needed": False,
    }
    if budget is not None:
        clause["privacy_budget"] = budget
    return clause


AGREEMENT = {
    "id": "plays",
    "title": "Counts of Reelix plays for Chirp",
    "provider": "chirp",
    "recipient": "reelix",
    "valid_from": "2026-01-01",
    "valid_until": "2028-01-01",
    "clauses": [
        _clause("exact-counts", None),
        _clause("private-counts", 1.0),
        _clause("tracker-counts", 10.0),
    ],
}

DATASET = """\
dataset: reelix
party: reelix
collections:
  - name: plays
    person: member_id
    fields:
      - {name: play_id, category: system.operations}
      - {name: member_id, category: user.unique_id}
      - {name: device, category: user.behavior}
      - {name: title_id, category: user.behavior}
"""

tables = MetaData()
Table(
    "plays",
    tables,
    Column("play_id", Integer, primary_key=True),
    Column("member_id", String, nullable=False),
    Column("device", String, nullable=False),
    Column("title_id", String, nullable=False),
)

MEMBERS = tuple(f"m{i:03d}" for i in range(200))


def _plays() -> list[dict[str, Any]]:
    rows = [
        {"member_id": m, "device": DEVICES[(i + j) % len(DEVICES)], "title_id": f"t{j}"}
        for i, m in enumerate(MEMBERS)
        for j in range(1 + i % 3)
    ]
    rows.append({"member_id": LONE, "device": "tv", "title_id": "t-lone"})
    rows += [{"member_id": HEAVY, "device": "tv", "title_id": "t0"}] * HEAVY_ROWS
    return [{"play_id": n, **row} for n, row in enumerate(rows, 1)]


PLAYS = _plays()
PEOPLE = tuple(Person(m, "reelix", "US-NY") for m in (*MEMBERS, HEAVY, NOBODY))


@dataclass
class PlaysWorld:
    """The store, Reelix's database and source, the gateway and Chirp's token."""

    accord: Accord
    reelix: Engine
    source: Source
    gateway: Gateway
    token: str


def counts(clause: str) -> Request:
    """Chirp's request for counts of Reelix's plays under ``clause``."""
    return Request(
        requester="chirp",
        agreement="plays",
        clause=clause,
        operation=Operation.READ,
        purpose=REPORTING,
        categories=frozenset({"user.behavior"}),
        at=AT,
        subjects=Subjects(),
    )


def contributors(where: dict[str, Any] | None = None) -> set[str]:
    """Whom the plays matching ``where`` are about (the oracle, from the rows themselves)."""
    return {r["member_id"] for r in PLAYS if all(r[k] == v for k, v in (where or {}).items())}


@contextmanager
def plays_world(
    folder: Path,
    store_url: str | None = None,
    party_url: str | None = None,
    *,
    populate: bool = True,
) -> Iterator[PlaysWorld]:
    """The world, built in ``folder`` (or with the store and Reelix's database at the URLs), or
    (``populate=False``) opened as a copy left it."""
    reelix = make_engine(party_url or f"sqlite:///{folder / 'reelix.db'}")
    try:
        if populate:
            tables.create_all(reelix)
            with reelix.begin() as conn:
                conn.execute(tables.tables["plays"].insert(), PLAYS)
        with Accord.open(database_url=store_url, data_dir=folder) as accord:
            if populate:
                accord.register(yaml_text.dump(AGREEMENT), source="plays.yaml", by="legal")
                accord.review(
                    "plays", reviewer="Dana Privacy", findings="no findings", approved=True
                )
                accord.move("plays", ag.Status.ACTIVE, by="dpo")
                accord.import_records(list(PEOPLE), [])
            source = Source(reelix, parse(DATASET, source="reelix.yaml"))
            keyring = Keyring()
            token = keyring.issue("chirp")
            keyring.issue("reelix")
            gateway = Gateway(accord, {"reelix": source}, keyring)
            yield PlaysWorld(accord, reelix, source, gateway, token)
    finally:
        reelix.dispose()
