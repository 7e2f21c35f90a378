"""``accord scenario``: write the Chirp–Reelix reference population's databases."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from accord.console import DataDir, handled
from accord.datafolder import DataFolder
from accord.errors import InvalidInput

if TYPE_CHECKING:
    from rich.progress import Progress

# The instant the scenario is written as of, unless told otherwise: the demo's.
DEFAULT_AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

app = typer.Typer(
    help="The Chirp–Reelix reference scenario: generate both parties' own databases.",
    no_args_is_help=True,
)
console = Console()


@app.callback()
def scenario() -> None:
    """The Chirp–Reelix reference scenario: generate both parties' own databases."""


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@app.command()
@handled
def generate(  # noqa: PLR0917 - one parameter per command-line option
    people: Annotated[
        int, typer.Option(min=1, help="People in the population (each at both parties).")
    ] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed writes the same rows.")] = 7,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write only chirp.db and reelix.db, into this folder (replaced if present), "
            "and nothing into the data folder.",
            show_default=False,
        ),
    ] = None,
    at: Annotated[
        str, typer.Option(help="ISO 8601 instant the data is as of (UTC if no offset).")
    ] = DEFAULT_AT.isoformat(),
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Write Chirp's and Reelix's databases on this PostgreSQL database "
            "(postgresql+psycopg://...), each party in a schema of its own, loaded with COPY, "
            "instead of as SQLite files.",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Write the scenario into the data folder: Chirp's and Reelix's own SQLite databases for a
    synthetic population (or, with --database-url, their schemas on PostgreSQL), and the Accord
    store with their people, consents, opt-outs and the partnership's agreements, ready for
    `accord serve`, `accord audit` and `accord cleanroom`.

    A folder holding an earlier scenario (or demo) is replaced; a store no scenario made is not.
    """
    try:
        moment = _instant(at)
    except ValueError as exc:
        raise InvalidInput(f"not an ISO 8601 instant: {at!r}", where="--at") from exc
    from accord.scenario.build import load_population, prepare, register_agreements
    from accord.scenario.generate import write_databases
    from accord.scenario.population import generate as generate_population
    from accord.service import Accord

    started = time.perf_counter()
    folder: DataFolder | None = None
    if out is not None:
        target = out
    else:
        folder = DataFolder.chosen(data_dir)
        prepare(folder)
        folder.mark(people=people, seed=seed, ready=False, made_by="scenario")
        target = folder.parties
    with _bars() as bars:

        def phase(description: str, total: int, /) -> Callable[[int], None]:
            task = bars.add_task(description, total=total)
            return lambda steps: bars.advance(task, steps)

        if database_url is not None:
            from accord.scenario.postgres import write_postgres

            written = write_postgres(
                database_url, people=people, seed=seed, at=moment, report=phase
            )
        else:
            written = write_databases(target, people=people, seed=seed, at=moment, report=phase)
    table = Table(title=f"{people:,} people, seed {seed}, as of {moment.isoformat()}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in written.rows.items():
        table.add_row(name, f"{count:,}")
    console.print(table)
    if database_url is None:
        console.print(f"wrote {written.chirp} and {written.reelix}")
    else:
        console.print(
            "wrote schemas chirp and reelix on PostgreSQL: each party's source connects with "
            "its schema on the search path (accord.scenario.postgres.party_url)"
        )
    if folder is not None:
        population = generate_population(people, seed=seed, at=moment)
        with Accord.open(data_dir=folder.path) as accord, _bars() as bars:
            task = bars.add_task("consents into the store", total=len(population.consents))
            register_agreements(accord, moment)
            load_population(accord, population, lambda n: bars.advance(task, n))
        folder.mark(people=people, seed=seed, ready=True, made_by="scenario")
        console.print(
            f"and the store {folder.store}: {len(population.people):,} people a party, "
            f"{len(population.consents):,} consents, {len(population.opt_outs):,} opt-outs, "
            "the partnership's agreements"
        )
        console.print(
            "`accord serve`, `accord audit` and `accord cleanroom` use this scenario from here on"
        )
    console.print(f"in {time.perf_counter() - started:.1f} s")


def _bars() -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
