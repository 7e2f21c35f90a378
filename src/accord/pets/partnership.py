"""The clean room on the Chirp–Reelix reference scenario: its agreement, and rows fetched for it.

The clean-room agreement has one clause per table the room reads. Each is a record read, because
the rows go into the clean room, not to the analyst: only what an analysis rule lets out of the
room reaches anyone, and the rule (with its minimum of people, and noise) is what the privacy
review approves beside the clause. Whose rows come in is still decided per person by the gateway
(consents, opt-outs, the law), and every fetch is in the ledger.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from accord import agreements as ag
from accord.consent import Operation
from accord.gateway import Exchange, Gateway, Keyring, Release
from accord.pets.cleanroom import CleanRoom
from accord.requests import Request, Subjects
from accord.scenario.generate import write_databases
from accord.scenario.population import CHIRP, REELIX, generate
from accord.service import Accord
from accord.sources import Source, load
from accord.store.engine import make_engine

CLEANROOM_AGREEMENT_ID = "chirp-reelix-cleanroom"
REPORTING = "analytics.reporting.content_performance"
SCENARIO_AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

CLEANROOM_AGREEMENT = f"""\
id: {CLEANROOM_AGREEMENT_ID}
title: Chirp and Reelix clean room
version: 1
provider: chirp
recipient: reelix
valid_from: 2026-01-01
valid_until: 2028-01-01
description: >
  Rows that enter the Chirp–Reelix clean room, where only aggregates allowed by an analysis rule
  (at least 50 people per row, with differential privacy where the rule asks) leave it.
clauses:
  - id: report-rows
    description: Reelix's recommendation sends, for the fortnightly report run in the clean room.
    direction: recipient_to_provider
    operations: [read]
    categories: [user.behavior]
    fields:
      - recommendations.sender_member_id
      - recommendations.sent_at
      - recommendations.interface
      - recommendations.surface
      - recommendations.variant
      - recommendations.clicked_at
    purposes: [{REPORTING}]
    retention_days: 0
    legal_basis: legitimate_interests
    consent_needed: false
"""


@dataclass(frozen=True, slots=True)
class Partnership:
    """The scenario's store, gateway and party credentials."""

    accord: Accord
    gateway: Gateway
    tokens: dict[str, str]
    at: datetime


@contextmanager
def scenario_partnership(
    folder: Path, *, people: int, seed: int, at: datetime = SCENARIO_AT
) -> Iterator[Partnership]:
    """A fresh scenario in ``folder`` (its ``parties`` and ``accord`` subfolders replaced): both
    parties' databases, the store with the people's consents, the clean room's agreement active,
    and the gateway."""
    # Only what an earlier scenario wrote here is replaced; anything else in the folder stays.
    for own in ("parties", "accord"):
        if (folder / own).exists():
            shutil.rmtree(folder / own)
    written = write_databases(folder / "parties", people=people, seed=seed, at=at, parallel=False)
    files = {CHIRP: written.chirp, REELIX: written.reelix}
    engines = {party: make_engine(f"sqlite:///{path}") for party, path in files.items()}
    datasets = resources.files("accord") / "scenario" / "datasets"
    try:
        with Accord.open(data_dir=folder / "accord") as accord:
            for party in (CHIRP, REELIX):
                accord.add_party(party, party.capitalize())
            accord.register(CLEANROOM_AGREEMENT, source="cleanroom.yaml", by="partnerships team")
            accord.review(
                CLEANROOM_AGREEMENT_ID,
                reviewer="Privacy review board",
                findings="Rows enter the clean room only; reports leave it with k=50.",
                approved=True,
                on=at.date(),
            )
            accord.move(CLEANROOM_AGREEMENT_ID, ag.Status.ACTIVE, by="privacy review board")
            population = generate(people, seed=seed, at=at)
            accord.import_records(population.people, population.consents, population.opt_outs)
            sources = {
                party: Source(engines[party], load(str(datasets / f"{party}.yaml")))
                for party in (CHIRP, REELIX)
            }
            keyring = Keyring()
            tokens = {party: keyring.issue(party) for party in (CHIRP, REELIX)}
            yield Partnership(accord, Gateway(accord, sources, keyring), tokens, at)
    finally:
        for engine in engines.values():
            engine.dispose()


def report_rows_request(at: datetime) -> Request:
    """Chirp's read of Reelix's recommendation sends into the clean room."""
    return Request(
        requester=CHIRP,
        agreement=CLEANROOM_AGREEMENT_ID,
        clause="report-rows",
        operation=Operation.READ,
        purpose=REPORTING,
        categories=frozenset({"user.behavior"}),
        at=at,
        subjects=Subjects(),
    )


def fetch_report_rows(room: CleanRoom, partnership: Partnership) -> Release:
    """Load Reelix's recommendation sends into ``room`` through the gateway."""
    exchange = Exchange(
        report_rows_request(partnership.at), partnership.tokens[CHIRP], "recommendations"
    )
    return room.fetch(partnership.gateway, "recommendations", exchange)
