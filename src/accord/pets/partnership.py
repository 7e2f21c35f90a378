"""The clean room on the Chirp–Reelix reference scenario: its agreement, and rows fetched for it.

The clean-room agreement has one clause per table the room reads. Each is a record read, because
the rows go into the clean room, not to the analyst: only what an analysis rule lets out of the
room reaches anyone, and the rule (with its minimum of people, and noise) is what the privacy
review approves beside the clause. Whose rows come in is still decided per person by the gateway
(consents, opt-outs, the law), and every fetch is in the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from accord.consent import Operation
from accord.datafolder import DataFolder
from accord.errors import InvalidInput
from accord.gateway import Exchange, Gateway, Keyring, Release
from accord.pets.cleanroom import CleanRoom
from accord.requests import Request, Subjects
from accord.scenario.build import CLEANROOM, load_population, prepare, register_agreements
from accord.scenario.generate import write_databases
from accord.scenario.population import CHIRP, REELIX, generate
from accord.service import Accord
from accord.sources import Source, load
from accord.store.engine import make_engine

CLEANROOM_AGREEMENT_ID = CLEANROOM
REPORTING = "analytics.reporting.content_performance"
SCENARIO_AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

CLEANROOM_AGREEMENT = (resources.files("accord") / "examples" / f"{CLEANROOM}.yaml").read_text()
"""The clean room's agreement, as shipped in the examples."""


@dataclass(frozen=True, slots=True)
class Partnership:
    """The scenario's store, gateway and party credentials."""

    accord: Accord
    gateway: Gateway
    tokens: dict[str, str]
    at: datetime


NEW_SCENARIO_PEOPLE = 10_000
NEW_SCENARIO_SEED = 7


@contextmanager
def scenario_partnership(
    folder: Path,
    *,
    people: int | None = None,
    seed: int | None = None,
    at: datetime = SCENARIO_AT,
) -> Iterator[Partnership]:
    """The reference scenario in the data folder ``folder``: both parties' databases, the store
    with the people's consents, the clean room's agreement active, and the gateway.

    A folder holding a finished scenario (from ``accord demo``, ``accord scenario generate`` or an
    earlier run) is opened as it is: the store keeps what the runs did, above all each person's
    privacy budget, so a budget spent by one run stays spent for the next. A folder holding
    none gets one built (``people`` and ``seed``, by default 10,000 and 7). Asking for another
    population (``people``, ``seed``) than the folder holds is refused rather than rebuilt,
    which would hand everyone a fresh budget.
    """
    data = DataFolder(folder)
    mark = data.scenario()
    new: tuple[int, int] | None = None
    if mark is not None and mark.ready:
        asked = {"people": people or mark.people, "seed": mark.seed if seed is None else seed}
        if asked != {"people": mark.people, "seed": mark.seed}:
            raise InvalidInput(
                f"the folder holds the scenario of {mark.people} people (seed {mark.seed}), "
                f"not {asked['people']} (seed {asked['seed']}), and its people's privacy "
                f"budgets: leave out --people and --seed to use it, or give another --data-dir "
                "for a new scenario",
                where=str(folder),
            )
        files = {party: data.party_database(party) for party in (CHIRP, REELIX)}
        missing = sorted(str(f) for f in files.values() if not f.is_file())
        if missing:
            raise InvalidInput(
                f"the scenario's databases are missing ({', '.join(missing)}); give another "
                "--data-dir for a new scenario",
                where=str(folder),
            )
    else:
        new = (people or NEW_SCENARIO_PEOPLE, NEW_SCENARIO_SEED if seed is None else seed)
        prepare(data)
        data.mark(people=new[0], seed=new[1], ready=False, made_by="cleanroom")
        written = write_databases(data.parties, people=new[0], seed=new[1], at=at, parallel=False)
        files = {CHIRP: written.chirp, REELIX: written.reelix}
    engines = {party: make_engine(f"sqlite:///{path}") for party, path in files.items()}
    datasets = resources.files("accord") / "scenario" / "datasets"
    try:
        with Accord.open(data_dir=data.path) as accord:
            if new is not None:
                register_agreements(accord, at)
                load_population(accord, generate(new[0], seed=new[1], at=at))
                data.mark(people=new[0], seed=new[1], ready=True, made_by="cleanroom")
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
