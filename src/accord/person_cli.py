"""``accord person``: the people a party holds — where each lives, from the party's own records,
and erasure.

Where a person lives decides which laws bind their data (the VPPA in the US, the GDPR in the EEA
and the UK, a state's opt-out statute). It comes from the party that holds the person, never from
a consent record: a consent only says where it was collected.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from accord.consent import Person
from accord.console import DatabaseUrl, DataDir, handled, open_accord, pairs
from accord.errors import InvalidInput

app = typer.Typer(
    help="People: record whom a party holds and where each lives; erase a person.",
    no_args_is_help=True,
)
_out = Console(soft_wrap=True)


@app.command("erase")
@handled
def person_erase(
    *,
    party: Annotated[str, typer.Option(help="The party that holds the person.")],
    person: Annotated[str, typer.Option(help="The person's id at that party.")],
    known_as: Annotated[
        list[str] | None,
        typer.Option(
            "--known-as",
            help="party=id: the id a recipient knows the person by (a linked account); "
            "repeat for each. Others are told the holding party's id.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Erase a person (GDPR Art. 17): withdraw their consents, stop every flow about them,
    delete their records (the proof of past consent kept sealed under their key), tell every
    recipient (Art. 19), and destroy their ledger key."""
    from accord.erasure import erase

    names = pairs(known_as or [], "--known-as")
    with open_accord(database_url, data_dir) as accord:
        done = erase(accord, party, person, known_as=names)
    if as_json:
        _out.print_json(json.dumps(asdict(done)))
        return
    who = f"{escape(person)} at {escape(party)}"
    if done.already:
        _out.print(f"{who} was already erased; nothing was left to do")
        return
    _out.print(f"[green]erased[/] {who}")
    _out.print(f"  consents withdrawn: {done.withdrawn}")
    deleted = ", ".join(f"{n} {table}" for table, n in sorted(done.deleted.items())) or "none"
    _out.print(f"  rows deleted: {deleted}")
    _out.print(
        "  proof of past consent: "
        + ("sealed under the person's key" if done.sealed else "none to keep")
    )
    _out.print(f"  recipients told: {', '.join(done.recipients) or 'none'}")
    _out.print(
        f"  ledger: key destroyed; {done.entries_forgotten} entries no longer tied to them "
        f"(erasure entry {done.receipt})"
    )


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
    except UnicodeDecodeError:
        raise InvalidInput("the people file is not UTF-8 text", where=str(path)) from None
    return found


@app.command("retry-erasures")
@handled
def person_retry_erasures(
    *,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Tell again every recipient past its deadline to acknowledge an erasure (GDPR Art. 19),
    with a new deadline and the reason: run it from a schedule, so no request stays stuck."""
    from accord.erasure import retry_overdue

    with open_accord(database_url, data_dir) as accord:
        told = retry_overdue(accord)
    _out.print(f"told again: {told} overdue recipient{'' if told == 1 else 's'}")


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
    with open_accord(database_url, data_dir) as accord:
        count = accord.add_people(found)
    left_out = len(found) - count
    _out.print(
        f"{count:,} {'person' if count == 1 else 'people'} of {party} recorded"
        + (f"; {left_out:,} left out: {party} erased them" if left_out else "")
    )
