"""``accord audit``: replay the ledger's releases against the law and report every difference.

Exit status: 0 when every release matches what the law and the agreements allowed, 1 when any
person was released who should not have been (or held back who should not have been), 2 on bad
input.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from accord.console import (
    DatabaseUrl,
    DataDir,
    PartyDatasets,
    PartySources,
    ScenarioDir,
    handled,
    instant,
    open_accord,
    pairs,
    scenario_sources,
)
from accord.errors import InvalidInput

if TYPE_CHECKING:
    # The store, the ledger and the parties' databases are read when the command runs.
    from accord.audit.records import PartyDatabase
    from accord.audit.replay import AuditReport
    from accord.service import Accord

SHOWN = 200
"""Differences listed in the table at most; ``--json`` lists them all."""

out = Console(width=None if Console().is_terminal else 140)


def party_databases(
    sources: list[str], datasets: list[str], scenario: Path | None, data_dir: Path | None = None
) -> dict[str, PartyDatabase]:
    """Each party's database and declaration, from ``--source``, ``--dataset``, ``--scenario``
    (by default the scenario in the data folder)."""
    from accord.audit.records import PartyDatabase
    from accord.sources.datasets import load
    from accord.store.engine import make_engine

    urls = scenario_sources(sources, scenario, data_dir)
    declared = pairs(datasets, "--dataset")
    bundled = resources.files("accord") / "scenario" / "datasets"
    out: dict[str, PartyDatabase] = {}
    for party, url in urls.items():
        declaration = declared.get(party)
        if declaration is None:
            candidate = bundled / f"{party}.yaml"
            if not candidate.is_file():
                raise InvalidInput(
                    f"no dataset declaration for {party}: pass --dataset {party}=PATH"
                )
            declaration = str(candidate)
        dataset = load(declaration)
        if dataset.party != party:
            raise InvalidInput(
                f"--dataset {party}={declaration} declares {dataset.party}'s dataset"
            )
        out[party] = PartyDatabase(make_engine(url), dataset)
    return out


def run(
    accord: Accord,
    parties: Mapping[str, PartyDatabase],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> AuditReport:
    """Audit the ledger of ``accord`` against ``parties``' databases."""
    from accord.audit.replay import audit

    if since is not None and until is not None and until <= since:
        raise InvalidInput(f"--until {until.isoformat()} is not after --since {since.isoformat()}")
    return audit(accord.engine, accord.sessions, parties, since=since, until=until)


def show(console: Console, report: AuditReport) -> None:
    """The report for a person: what was replayed, and each difference with its reasons."""
    period = (
        f"from {report.since.isoformat() if report.since else 'the start'} "
        f"until {report.until.isoformat() if report.until else 'now'}"
    )
    summary = (
        f"{report.releases:,} releases replayed {period}; {report.people:,} people judged; "
        f"{report.rows_compared:,} releases' rows rebuilt and compared"
    )
    if report.unexplained:
        summary += f"; {report.unexplained:,} pseudonyms of people erased since, not linkable"
    if report.ok:
        console.print(Panel(escape(summary), title="[green]audit: no differences"))
        return
    table = Table(title=f"{len(report.differences):,} differences", show_lines=True)
    table.add_column("leaf", justify="right")
    table.add_column("clause")
    table.add_column("what")
    table.add_column("person")
    table.add_column("why", ratio=3, overflow="fold")
    for d in report.differences[:SHOWN]:
        table.add_row(
            str(d.leaf),
            escape(f"{d.agreement}/{d.clause}"),
            d.kind,
            escape(d.person or "—"),
            escape("; ".join(d.reasons)),
        )
    console.print(table)
    if len(report.differences) > SHOWN:
        console.print(f"… and {len(report.differences) - SHOWN:,} more (use --json for all)")
    console.print(Panel(escape(summary), title="[red]audit: differences found"))


@handled
def command(
    *,
    since: Annotated[
        str | None, typer.Option(help="Replay releases at or after this instant (ISO 8601).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Replay releases before this instant (ISO 8601).")
    ] = None,
    source: PartySources = None,
    dataset: PartyDatasets = None,
    scenario: ScenarioDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Replay every release in the ledger against the law, the agreements, the consents and the
    parties' own databases; exit 1 if anyone was released (or held back) who should not be."""
    start, end = instant(since, "--since"), instant(until, "--until")
    parties = party_databases(source or [], dataset or [], scenario, data_dir)
    try:
        with open_accord(database_url, data_dir, existing=True) as accord:
            report = run(accord, parties, since=start, until=end)
    finally:
        for db in parties.values():
            db.engine.dispose()
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        show(out, report)
    if not report.ok:
        raise typer.Exit(1)
