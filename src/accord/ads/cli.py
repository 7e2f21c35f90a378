"""``accord ads``: simulate a campaign season on the reference scenario; spend per advertiser.

Heavy modules (NumPy, SQLAlchemy, the scenario) are imported inside the commands, so that
``accord`` starts without them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from accord.console import DatabaseUrl, DataDir, handled

app = typer.Typer(
    help="Chirp's ad platform: a simulated campaign season; spend per advertiser and month.",
    no_args_is_help=True,
)
out = Console()

PLATFORM = "chirp"


@app.command("simulate")
@handled
def simulate(
    people: Annotated[
        int, typer.Option(min=1, help="People in the scenario, if it has to be generated.")
    ] = 2_000,
    years: Annotated[int, typer.Option(min=1, max=10, help="Years in the season.")] = 3,
    start: Annotated[
        str, typer.Option(help="First day of the season (YYYY-MM-DD).")
    ] = "2023-01-01",
    days: Annotated[
        int | None,
        typer.Option(min=1, help="Simulate only this many days of the season (default: all)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed runs the same season.")] = 7,
    scenario: Annotated[
        Path | None,
        typer.Option(
            help="Folder with chirp.db and reelix.db; generated there if missing "
            "(default: the data folder's scenario/).",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Run a campaign season: Chirp's people open their feeds, advertisers compete (Reelix
    spending in the filings' shape), every charge recorded, each day in the ledger."""
    import time
    from datetime import date, timedelta

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from accord.ads.simulate import Season, run_season
    from accord.ads.spend import SpendBook
    from accord.ads.store import AdsStore
    from accord.config import Settings
    from accord.errors import InvalidInput
    from accord.scenario.ads import RULES, build_world
    from accord.scenario.cli import DEFAULT_AT
    from accord.scenario.generate import write_databases
    from accord.service import Accord

    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise InvalidInput(f"--start {start!r} is not a date: write it YYYY-MM-DD") from None
    folder = data_dir if data_dir is not None else Settings().data_dir
    where = scenario if scenario is not None else folder / "scenario"
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    started = time.perf_counter()
    if not (where / "chirp.db").is_file() or not (where / "reelix.db").is_file():
        with Progress(*columns, console=out) as bars:

            def phase(description: str, total: int, /):  # type: ignore[no-untyped-def]
                task = bars.add_task(description, total=total)
                return lambda steps: bars.advance(task, steps)

            write_databases(where, people=people, seed=seed, at=DEFAULT_AT, report=phase)
    with Accord.open(database_url, data_dir) as accord:
        store = AdsStore(accord.engine, PLATFORM)
        if store.campaigns():
            raise InvalidInput(
                "this store already holds a season's campaigns: use another --data-dir "
                "(or --database-url)"
            )
        world = build_world(accord, where, seed=seed, start=first, years=years)
        end = date(first.year + years, first.month, first.day)
        total = (end - first).days if days is None else min(days, (end - first).days)
        season = Season(first, total, seed=seed, rules=RULES)
        book = SpendBook(accord.engine, accord.ledger, PLATFORM)
        with Progress(*columns, console=out) as bars:
            task = bars.add_task(
                f"{len(world.people):,} people, {len(world.campaigns)} campaigns", total=total
            )
            done = run_season(world, season, store, book, lambda n: bars.advance(task, n))
        head = accord.ledger.head()
    last = first + timedelta(days=total - 1)
    out.print(
        f"{first} to {last}: {done.requests:,} ad requests, {done.impressions:,} impressions, "
        f"{done.clicks:,} clicks, {done.conversions:,} conversions; "
        f"{done.ledger_entries:,} ledger entries (tree size {head.size:,}), "
        f"{done.invoices} invoices; {time.perf_counter() - started:.1f} s"
    )
    _print_spend(database_url, data_dir, as_json=False)


@app.command("spend")
@handled
def spend(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Spend, impressions, clicks and conversions per advertiser and month."""
    _print_spend(database_url, data_dir, as_json=as_json)


def _print_spend(database_url: str | None, data_dir: Path | None, *, as_json: bool) -> None:
    from accord.ads.model import show_money
    from accord.ads.spend import advertiser_months
    from accord.service import Accord

    with Accord.open(database_url, data_dir) as accord:
        rows = advertiser_months(accord.engine, PLATFORM)
    if as_json:
        print(json.dumps([r.to_json() for r in rows], indent=2))
        return
    if not rows:
        out.print("no ad spend recorded")
        return
    table = Table(title="Ad spend per advertiser and month")
    for column in ("advertiser", "month", "spend", "impressions", "clicks", "conversions"):
        table.add_column(column, justify="left" if column in ("advertiser", "month") else "right")
    for r in rows:
        name = escape(r.name) + (" [dim](partner data)[/]" if r.partner_data else "")
        table.add_row(
            name,
            r.month,
            show_money(r.spend),
            f"{r.impressions:,}",
            f"{r.clicks:,}",
            f"{r.conversions:,}",
        )
    out.print(table)
    years: dict[str, dict[str, int]] = {}
    for r in rows:
        years.setdefault(r.name, {}).setdefault(r.month[:4], 0)
        years[r.name][r.month[:4]] += r.spend
    summary = Table(title="Spend per advertiser and year")
    all_years = sorted({y for by in years.values() for y in by})
    summary.add_column("advertiser")
    for year in all_years:
        summary.add_column(year, justify="right")
    for name, by in sorted(years.items()):
        summary.add_row(escape(name), *(show_money(by.get(y, 0)) for y in all_years))
    out.print(summary)
