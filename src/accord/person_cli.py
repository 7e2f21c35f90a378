"""``accord person``: what a party does about one person it holds (erasure)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from accord.console import DatabaseUrl, DataDir, handled
from accord.erasure import erase
from accord.errors import InvalidInput
from accord.service import Accord

app = typer.Typer(help="People: erase a person a party holds.", no_args_is_help=True)
_out = Console(soft_wrap=True)


def _known_as(values: list[str]) -> dict[str, str]:
    """``party=id`` pairs, one per recipient."""
    pairs: dict[str, str] = {}
    for value in values:
        party, sep, person = value.partition("=")
        if not sep or not party.strip() or not person.strip():
            raise InvalidInput(
                f"--known-as {value!r} is not party=id (e.g. --known-as chirp=c0000042)"
            )
        pairs[party.strip()] = person.strip()
    return pairs


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
    names = _known_as(known_as or [])
    with Accord.open(database_url, data_dir) as accord:
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
