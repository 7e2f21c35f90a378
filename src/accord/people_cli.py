"""``accord people``: record the people a party holds, and where each lives, from its own records.

Where a person lives decides which laws bind their data (the VPPA in the US, the GDPR in the
EEA and the UK, a state's opt-out statute). It comes from the party that holds the person, never
from a consent record: a consent only says where it was collected.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from accord.consent import Person
from accord.console import DatabaseUrl, DataDir, handled
from accord.errors import InvalidInput
from accord.service import Accord

app = typer.Typer(
    help="People: record whom a party holds and where each lives, from its own records.",
    no_args_is_help=True,
)
out = Console()


@app.callback()
def people() -> None:
    """People: record whom a party holds and where each lives, from its own records."""


def read_people(path: Path, party: str) -> list[Person]:
    """The people of ``party`` in ``path``, a CSV file with ``person`` and ``jurisdiction``
    columns; a bad row is refused with its line."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in ("person", "jurisdiction") if c not in header]
            if missing:
                raise InvalidInput(
                    f"the header has no {' or '.join(missing)} column "
                    f"(it has {', '.join(header) or 'none'})",
                    where=f"{path}:1",
                )
            found: list[Person] = []
            for line, row in enumerate(reader, 2):
                person = (row.get("person") or "").strip()
                if not person:
                    raise InvalidInput("the row names no person", where=f"{path}:{line}")
                try:
                    found.append(Person(person, party, row.get("jurisdiction") or ""))
                except InvalidInput as exc:
                    raise InvalidInput(exc.message, where=f"{path}:{line}") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read the people file: {exc.strerror}", where=str(path)) from exc
    return found


@app.command("load")
@handled
def load(
    file: Annotated[Path, typer.Argument(help="A CSV file with person and jurisdiction columns.")],
    party: Annotated[str, typer.Option(help="The party that holds these people.")],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Record a party's people and where each lives (ISO 3166), from the party's own records."""
    found = read_people(file, party)
    with Accord.open(database_url, data_dir) as accord:
        count = accord.add_people(found)
    out.print(f"{count:,} people of {party} recorded")
