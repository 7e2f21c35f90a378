"""The clean room on the Chirp–Reelix reference scenario: its agreement, and rows fetched for it.

The clean-room agreement has one clause per table the room reads. Each is a record read, because
the rows go into the clean room, not to the analyst: only what an analysis rule lets out of the
room reaches anyone, and the rule (with its minimum of people, and noise) is what the privacy
review approves beside the clause. Whose rows come in is still decided per person by the gateway
(consents, opt-outs, the law), and every fetch is in the ledger.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from accord import agreements as ag
from accord.consent import Operation
from accord.errors import InvalidInput
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


SCENARIO_FILE = "scenario.json"
"""The file in a scenario's folder saying what was built there: written once the store is ready."""


@contextmanager
def scenario_partnership(
    folder: Path, *, people: int, seed: int, at: datetime = SCENARIO_AT
) -> Iterator[Partnership]:
    """The scenario in ``folder``: both parties' databases, the store with the people's consents,
    the clean room's agreement active, and the gateway.

    Built the first time (its ``parties`` and ``accord`` subfolders replaced), and opened as it
    is on every later run: the store keeps what the runs did, above all each person's privacy
    budget, so a budget spent by one run stays spent for the next. Only a new folder starts
    every budget at zero. A folder built for another population (``people``, ``seed``) is
    refused rather than rebuilt, which would hand everyone a fresh budget.
    """
    wanted = {"people": people, "seed": seed}
    built = _built(folder)
    if built is not None and built != wanted:
        raise InvalidInput(
            f"the folder holds the scenario of {built['people']} people (seed {built['seed']}), "
            f"not {people} (seed {seed}), and its people's privacy budgets: run with "
            f"--people {built['people']} --seed {built['seed']}, or give another --data-dir "
            "for a new scenario",
            where=str(folder),
        )
    files = {CHIRP: folder / "parties" / "chirp.db", REELIX: folder / "parties" / "reelix.db"}
    if built is None:
        # Only what an earlier, unfinished setup wrote here is replaced; anything else stays.
        for own in ("parties", "accord"):
            if (folder / own).exists():
                shutil.rmtree(folder / own)
        written = write_databases(
            folder / "parties", people=people, seed=seed, at=at, parallel=False
        )
        files = {CHIRP: written.chirp, REELIX: written.reelix}
    else:
        missing = sorted(str(f) for f in files.values() if not f.is_file())
        if missing:
            raise InvalidInput(
                f"the scenario's databases are missing ({', '.join(missing)}); give another "
                "--data-dir for a new scenario",
                where=str(folder),
            )
    engines = {party: make_engine(f"sqlite:///{path}") for party, path in files.items()}
    datasets = resources.files("accord") / "scenario" / "datasets"
    try:
        with Accord.open(data_dir=folder / "accord") as accord:
            if built is None:
                _set_up(accord, people=people, seed=seed, at=at)
                (folder / SCENARIO_FILE).write_text(json.dumps(wanted) + "\n", encoding="utf-8")
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


def _built(folder: Path) -> dict[str, int] | None:
    """What the folder's scenario was built for, or None if no setup finished there."""
    marker = folder / SCENARIO_FILE
    if not marker.is_file():
        return None
    try:
        found = json.loads(marker.read_text(encoding="utf-8"))
        return {"people": int(found["people"]), "seed": int(found["seed"])}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(
            f"{marker} does not say which scenario was built there ({exc}); give another "
            "--data-dir for a new scenario",
            where=str(marker),
        ) from exc


def _set_up(accord: Accord, *, people: int, seed: int, at: datetime) -> None:
    """A new store: the parties, the clean room's agreement active, the people and consents."""
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
