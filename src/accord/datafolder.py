"""The data folder: the one place every ``accord`` command, the server and the demo look.

::

    accord-data/                 ACCORD_DATA_DIR, or --data-dir on any command
      accord.db                  the Accord store (unless ACCORD_DATABASE_URL names another)
      ledger-signing.key         the ledger's signing key; its name is the log's origin
      parties/chirp.db           Chirp's own database   } when the folder holds the reference
      parties/reelix.db          Reelix's own database  } scenario (accord demo, accord scenario
      scenario.json              which scenario it is   }  generate, the clean room's first run)

``--data-dir`` moves the store and the key together; ``--database-url`` (or
``ACCORD_DATABASE_URL``) puts the store elsewhere and leaves the key in the folder. Commands that
only read (``ledger verify``, ``ledger show``, ``ledger prove``, ``audit`` ...) never create a
store: on a folder without one they say so and exit 2.

This module is light on purpose (no SQLAlchemy, no web stack): every command's start reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.errors import InvalidInput

if TYPE_CHECKING:
    from accord.config import Settings

STORE_FILE = "accord.db"
KEY_FILE_NAME = "ledger-signing.key"
PARTIES_DIR = "parties"
DOUBTS_DIR = "doubts"
SCENARIO_FILE = "scenario.json"
DEFAULT_DATA_DIR = Path("accord-data")


class NoStore(InvalidInput):
    """A command that only reads was pointed at a folder without an Accord store."""


@dataclass(frozen=True, slots=True)
class ScenarioMark:
    """What ``scenario.json`` says was built in a data folder."""

    people: int
    seed: int
    ready: bool
    """False while the scenario is being written (or if writing it stopped half-way)."""
    made_by: str


@dataclass(frozen=True, slots=True)
class DataFolder:
    """A data folder and the files Accord keeps in it."""

    path: Path

    @classmethod
    def chosen(cls, data_dir: Path | None = None) -> DataFolder:
        """``data_dir`` if given, else ``ACCORD_DATA_DIR``, else ``accord-data``."""
        if data_dir is not None:
            return cls(data_dir)
        from accord.config import Settings  # noqa: PLC0415  (pydantic-settings: only if needed)

        return cls(Settings().data_dir)

    @property
    def store(self) -> Path:
        """The embedded SQLite store."""
        return self.path / STORE_FILE

    @property
    def key(self) -> Path:
        """The ledger's signing key."""
        return self.path / KEY_FILE_NAME

    @property
    def doubts(self) -> Path:
        """The journals of releases in doubt, one per serving process
        (:mod:`accord.gateway.doubts`)."""
        return self.path / DOUBTS_DIR

    @property
    def parties(self) -> Path:
        """The folder of the scenario parties' own databases."""
        return self.path / PARTIES_DIR

    @property
    def marker(self) -> Path:
        """``scenario.json``: which scenario the folder holds."""
        return self.path / SCENARIO_FILE

    def party_database(self, party: str) -> Path:
        """A scenario party's own SQLite database."""
        return self.parties / f"{party}.db"

    @classmethod
    def of_settings(
        cls, settings: Settings, database_url: str | None, data_dir: Path | None
    ) -> tuple[DataFolder, str | None]:
        """The folder and the store URL named for a command: ``--data-dir`` moves the store with
        the key; without it, ``ACCORD_DATABASE_URL`` may name the store. ``None``: the folder's."""
        if data_dir is not None:
            return cls(data_dir), database_url
        return cls(settings.data_dir), database_url or settings.database_url

    def store_url(self, database_url: str | None = None) -> str:
        """The store: ``database_url`` if given, else the SQLite file in this folder."""
        return database_url or f"sqlite:///{self.store}"

    def existing_store_url(self, database_url: str | None = None) -> str:
        """The store's URL for a command that only reads: an embedded store must exist."""
        if database_url is None and not self.store.is_file():
            raise NoStore(
                f"there is no Accord store in {self.path} (no {STORE_FILE}): run `accord demo` "
                "to make one there, or name the folder that holds yours with --data-dir "
                "(or the store with --database-url)"
            )
        return self.store_url(database_url)

    def scenario(self) -> ScenarioMark | None:
        """What scenario the folder holds, or None if none was ever started here."""
        if not self.marker.is_file():
            return None
        try:
            found: Any = json.loads(self.marker.read_text(encoding="utf-8"))
            return ScenarioMark(
                people=int(found["people"]),
                seed=int(found["seed"]),
                ready=found.get("state", "ready") == "ready",
                made_by=str(found.get("made_by", "scenario")),
            )
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidInput(
                f"{self.marker} does not say which scenario was built there ({exc}); remove the "
                "folder or give another --data-dir",
                where=str(self.marker),
            ) from exc

    def mark(self, *, people: int, seed: int, ready: bool, made_by: str) -> None:
        """Write ``scenario.json`` (``ready`` once the store holds the whole scenario)."""
        self.path.mkdir(parents=True, exist_ok=True)
        body = {
            "people": people,
            "seed": seed,
            "state": "ready" if ready else "building",
            "made_by": made_by,
        }
        temporary = self.marker.with_suffix(".tmp")
        temporary.write_text(json.dumps(body) + "\n", encoding="utf-8")
        temporary.replace(self.marker)

    def scenario_parties(self) -> dict[str, Path]:
        """The scenario parties' databases in this folder, if a finished scenario is here."""
        mark = self.scenario()
        if mark is None or not mark.ready:
            return {}
        return {
            party: self.party_database(party)
            for party in ("chirp", "reelix")
            if self.party_database(party).is_file()
        }
