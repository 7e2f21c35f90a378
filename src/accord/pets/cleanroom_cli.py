"""``accord cleanroom``: check and run clean-room queries, and the fortnightly report.

``check`` needs only the rule: it checks a query against it, with the columns the rule names.
``run`` and ``report`` work on the Chirp–Reelix reference scenario, built in the data folder on
the first run and kept there: the rule's tables are fetched through the gateway, and with
``--epsilon`` every sender's privacy budget is spent in the scenario's store and ledger, where it
stays spent for the next run (only a new data folder starts every budget at zero).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from accord.console import handled
from accord.datafolder import DataFolder
from accord.errors import InvalidInput
from accord.pets.engine_options import EngineOption, SparkMasterOption, chosen_spark
from accord.pets.mechanisms import Mechanism

if TYPE_CHECKING:
    # The room (DuckDB, SQLGlot, OpenDP) and the scenario are imported when a command runs.
    from accord.pets.cleanroom import CleanRoom, Result
    from accord.pets.engines import QueryEngine
    from accord.pets.partnership import Partnership
    from accord.pets.rules import AnalysisRule

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    help="The clean room: queries checked against analysis rules, run on DuckDB (or Apache "
    "Spark) over data "
    "fetched through the gateway, with differential privacy and per-person budgets.",
    no_args_is_help=True,
)
console = Console()
progress = Console(stderr=True)
err = Console(stderr=True)

FETCHABLE = ("recommendations",)
"""The scenario tables the clean-room agreement lets into the room."""

RuleOption = Annotated[
    Path, typer.Option("--rule", help="YAML file of the analysis rule.", show_default=False)
]
QueryOption = Annotated[
    str, typer.Option("--query", help="The SQL query (one SELECT).", show_default=False)
]
PeopleOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="People in the scenario (each at both parties), if the data folder holds none yet "
        "[default: the folder's scenario, or 10,000 for a new one].",
        show_default=False,
    ),
]
SeedOption = Annotated[
    int | None,
    typer.Option(help="Seed of a new scenario [default: the folder's, or 7].", show_default=False),
]
DataOption = Annotated[
    Path | None,
    typer.Option(
        help="The data folder: the scenario there (from `accord demo`, say) is used with its "
        "store and the privacy budgets spent so far; a folder without one gets one built "
        "[default: ACCORD_DATA_DIR or accord-data].",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


@app.callback()
def cleanroom() -> None:
    """The clean room: analysis rules, differential privacy, per-person budgets."""


@app.command()
@handled
def check(rule: RuleOption, query: QueryOption) -> None:
    """Check a query against a rule, and show the query as it would run."""
    from accord.pets.checks import check_query
    from accord.pets.rules import load_rule

    analysis = load_rule(rule)
    checked = check_query(analysis, query, _schema(analysis))
    console.print(f"[green]allowed[/] under the {analysis.kind.value} rule; it runs as:")
    console.print(escape(checked.sql), soft_wrap=True)


@app.command()
@handled
def run(
    *,
    rule: RuleOption,
    query: QueryOption,
    people: PeopleOption = None,
    seed: SeedOption = None,
    data_dir: DataOption = None,
    as_json: JsonOption = False,
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
) -> None:
    """Run a query under a rule on the reference scenario, fetching its tables through the door."""
    from accord.pets.partnership import scenario_partnership
    from accord.pets.rules import load_rule

    analysis = load_rule(rule)
    unknown = sorted(set(analysis.tables) - set(FETCHABLE))
    if unknown:
        raise InvalidInput(
            f"the scenario's clean-room agreement lets in only {', '.join(FETCHABLE)}, "
            f"not {', '.join(unknown)}",
            where=str(rule),
        )
    with scenario_partnership(
        DataFolder.chosen(data_dir).path, people=people, seed=seed
    ) as partnership:
        result = _in_room(
            partnership,
            analysis,
            lambda room: room.run(query),
            engine=engine,
            spark_master=spark_master,
        )
    _show(result, as_json=as_json)


@app.command()
@handled
def report(
    *,
    start: Annotated[
        str, typer.Option(help="First day of the fortnight (YYYY-MM-DD).")
    ] = "2026-11-15",
    days: Annotated[int, typer.Option(min=1, help="Days in the report.")] = 14,
    min_people: Annotated[
        int, typer.Option(min=2, help="Fewest distinct senders in a row of the report.")
    ] = 50,
    by_day: Annotated[
        bool,
        typer.Option(
            help="One row per day (a day has fewer senders: rows need a large population) "
            "instead of one per interface, surface and variant over the whole period."
        ),
    ] = False,
    epsilon: Annotated[
        float | None,
        typer.Option(min=0, help="Add differential-privacy noise for this epsilon per query."),
    ] = None,
    mechanism: Annotated[Mechanism, typer.Option(help="Noise mechanism.")] = Mechanism.LAPLACE,
    delta: Annotated[
        float,
        typer.Option(
            min=0,
            help="Delta per query, needed with --epsilon: for the noisy choice of rows shown "
            "(and for Gaussian noise).",
        ),
    ] = 0.0,
    max_rows: Annotated[
        int, typer.Option(min=1, help="Rows one sender may contribute (with noise).")
    ] = 10,
    people: PeopleOption = None,
    seed: SeedOption = None,
    data_dir: DataOption = None,
    as_json: JsonOption = False,
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
) -> None:
    """The fortnightly recommendation report, run in the clean room on the reference scenario."""
    from pydantic import ValidationError

    from accord.pets.partnership import scenario_partnership
    from accord.pets.reports import fortnightly_report, report_rule
    from accord.pets.rules import PrivacyRule

    try:
        first = date.fromisoformat(start)
    except ValueError as exc:
        raise InvalidInput(f"not a date (YYYY-MM-DD): {start!r}", where="--start") from exc
    privacy = None
    if epsilon is not None:
        try:
            privacy = PrivacyRule(
                mechanism=mechanism, epsilon=epsilon, delta=delta, max_rows=max_rows
            )
        except ValidationError as exc:
            problems = "; ".join(str(e["msg"]) for e in exc.errors())
            raise InvalidInput(problems, where="noise options") from exc
    analysis = report_rule(min_people=min_people, privacy=privacy)
    with scenario_partnership(
        DataFolder.chosen(data_dir).path, people=people, seed=seed
    ) as partnership:
        result = _in_room(
            partnership,
            analysis,
            lambda room: fortnightly_report(room, first, days, by_day=by_day),
            engine=engine,
            spark_master=spark_master,
        )
    _show(result, as_json=as_json)


def _in_room(
    partnership: Partnership,
    analysis: AnalysisRule,
    query: Callable[[CleanRoom], Result],
    *,
    engine: str | None,
    spark_master: str | None,
) -> Result:
    from accord.pets.budget import PrivacyBudgets
    from accord.pets.cleanroom import CleanRoom
    from accord.pets.partnership import fetch_report_rows

    runs_on = _engine(engine, spark_master)
    budgets = None
    if analysis.privacy is not None:
        budgets = PrivacyBudgets(partnership.accord.engine, partnership.accord.ledger)
    with CleanRoom(
        analysis,
        analyst="chirp",
        budgets=budgets,
        ledger=partnership.accord.ledger,
        engine=runs_on,
    ) as room:
        release = fetch_report_rows(room, partnership)
        # On stderr: with --json, stdout carries the JSON alone.
        progress.print(
            f"fetched {len(release.rows):,} rows about {release.people:,} people through the "
            f"gateway (ledger entry {release.receipts[-1].index})"
        )
        return query(room)


def _engine(engine: str | None, spark_master: str | None) -> QueryEngine | None:
    """The engine chosen by the options or the settings (None: the room's DuckDB)."""
    from accord.pets.engines import SparkEngine

    spark = chosen_spark(engine, spark_master, progress=progress)
    return None if spark is None else SparkEngine(spark)


def _schema(analysis: AnalysisRule) -> dict[str, list[str]]:
    """Each table's columns as far as the rule names them (all a query could use)."""
    named = [*analysis.dimensions, *analysis.metrics, *analysis.join_columns, *analysis.columns]
    schema: dict[str, list[str]] = {t: [r.person] for t, r in analysis.tables.items()}
    for column in named:
        table, name = column.split(".")
        if name not in schema[table]:
            schema[table].append(name)
    return schema


def _show(result: Result, *, as_json: bool) -> None:
    from accord.pets.rules import RuleKind

    if as_json:
        rows: Sequence[Any] = [dict(zip(result.columns, r, strict=True)) for r in result.rows]
        console.print_json(
            json.dumps(
                {
                    "columns": list(result.columns),
                    "rows": rows,
                    "noise": result.noise,
                    "spends": [s.query_id for s in result.spends],
                },
                default=str,
            )
        )
        return
    table = Table(title=f"{len(result.rows)} rows")
    for column in result.columns:
        table.add_column(column)
    for row in result.rows:
        table.add_row(*(escape(_cell(v)) for v in row))
    console.print(table)
    if result.checked.kind is RuleKind.AGGREGATION and not result.rows:
        console.print(
            "no row reached the rule's minimum of distinct people: fewer groups (no --by-day), a "
            "longer period (--days) or a larger population gives each row more people"
        )
    if result.noise:
        console.print(f"noise: {result.noise}")
    for spend in result.spends:
        console.print(
            f"spent the budget of {spend.people:,} people (ledger entry {spend.receipt.index})"
        )
    if result.receipt is not None:
        console.print(f"released from the room (ledger entry {result.receipt.index})")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)
