"""``accord scenario``: write the Chirp–Reelix reference population's databases."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

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
def generate(
    people: Annotated[
        int, typer.Option(min=1, help="People in the population (each at both parties).")
    ] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed writes the same rows.")] = 7,
    out: Annotated[
        Path, typer.Option(help="Folder for chirp.db and reelix.db (replaced if present).")
    ] = Path("accord-data/scenario"),
    at: Annotated[
        str, typer.Option(help="ISO 8601 instant the data is as of (UTC if no offset).")
    ] = DEFAULT_AT.isoformat(),
) -> None:
    """Write Chirp's and Reelix's own SQLite databases for a synthetic population."""
    try:
        moment = _instant(at)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 instant: {at!r}", param_hint="--at") from exc
    from accord.scenario.generate import write_databases

    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bars:

        def phase(description: str, total: int, /) -> Callable[[int], None]:
            task = bars.add_task(description, total=total)
            return lambda steps: bars.advance(task, steps)

        written = write_databases(out, people=people, seed=seed, at=moment, report=phase)
    table = Table(title=f"{people:,} people, seed {seed}, as of {moment.isoformat()}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in written.rows.items():
        table.add_row(name, f"{count:,}")
    console.print(table)
    console.print(
        f"wrote {written.chirp} and {written.reelix} in {time.perf_counter() - started:.1f} s"
    )
