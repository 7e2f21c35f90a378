"""The reference scenario in a data folder (:mod:`accord.datafolder`): both parties' own
databases, and the Accord store holding their people, consents, opt-outs and agreements.

``accord demo``, ``accord scenario generate`` and the clean room's first run build it the same
way, so every other command (``serve``, ``audit``, ``ledger``, ``cleanroom``) finds it in the data
folder without flags. A folder is only ever replaced if a scenario was built there before; a store
no scenario made is never touched.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime
from importlib import resources

from accord import agreements as ag
from accord.datafolder import DataFolder
from accord.errors import InvalidInput
from accord.scenario.population import CHIRP, REELIX, Population
from accord.service import Accord

PARTNERSHIP = "chirp-reelix"
TITAN = "chirp-reelix-titan"
CLEANROOM = "chirp-reelix-cleanroom"


def prepare(folder: DataFolder) -> None:
    """Make ``folder`` ready for a new scenario: what a scenario wrote there before is replaced,
    anything else is refused (a store no scenario made) or left alone (other files)."""
    if not folder.path.exists():
        folder.path.mkdir(parents=True)
        return
    if not folder.path.is_dir():
        raise InvalidInput(f"{folder.path} is not a folder", where="--data-dir")
    if folder.scenario() is None and (folder.store.exists() or folder.key.exists()):
        raise InvalidInput(
            f"{folder.path} holds an Accord store and ledger key that no scenario made, and a "
            "new scenario would replace them: give --data-dir another folder (or move this one "
            "away)",
            where="--data-dir",
        )
    for path in (folder.marker, folder.key, *folder.path.glob(f"{folder.store.name}*")):
        path.unlink(missing_ok=True)
    if folder.parties.exists():
        shutil.rmtree(folder.parties)


def register_agreements(accord: Accord, at: datetime) -> None:
    """The parties and the scenario's agreements: the published partnership and the clean room's
    (each reviewed and active), and a Titan-style whitelist nobody reviewed (a draft)."""
    examples = resources.files("accord") / "examples"
    for party in (CHIRP, REELIX):
        accord.add_party(party, party.capitalize())
    for name in (PARTNERSHIP, TITAN, CLEANROOM):
        source = f"{name}.yaml"
        accord.register((examples / source).read_text(), source=source, by="partnerships team")
    reviews = {
        PARTNERSHIP: "Flows limited to consenting people; messages read only for display and "
        "sync; VPPA consent screen separate; report aggregate with k=50.",
        CLEANROOM: "Rows enter the clean room only; reports leave it with k=50.",
    }
    for agreement, findings in reviews.items():
        accord.review(
            agreement,
            reviewer="Privacy review board",
            findings=findings,
            approved=True,
            on=at.date(),
        )
        accord.move(agreement, ag.Status.ACTIVE, by="privacy review board")


def load_population(
    accord: Accord, population: Population, progress: Callable[[int], None] | None = None
) -> None:
    """The scenario's people, where each lives, their consents and opt-outs, into the store."""
    accord.import_records(
        population.people, population.consents, population.opt_outs, progress=progress
    )
