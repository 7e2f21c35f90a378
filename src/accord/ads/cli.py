"""``accord ads``: simulate a campaign season on the reference scenario; spend per advertiser,
beside the data access its party holds; train the click model on the recorded impressions; list,
pause and resume campaigns.

Heavy modules (NumPy, SQLAlchemy, the scenario) are imported inside the commands, so that
``accord`` starts without them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from accord.console import DatabaseUrl, DataDir, handled, printable
from accord.pets.engine_options import EngineOption, SparkMasterOption, chosen_spark

if TYPE_CHECKING:
    from accord.ads.access import Access, SpendBesideAccess
    from accord.scenario.partner_ads import PartnerAdsShown

app = typer.Typer(
    help="Chirp's ad platform: a simulated campaign season; each advertiser's spend beside its "
    "data access.",
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
    _print_spend(database_url, data_dir, as_json=False, by="year")


@app.command("train")
@handled
def train(
    shards: Annotated[int, typer.Option(min=1, max=64, help="Shards (SISA) to train.")] = 4,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Train the click model on the recorded impressions, append its model card to the ledger
    and print the card (Chirp's own features: no partner data is read here)."""
    from datetime import UTC, datetime

    from accord.ads.learn import train_recorded
    from accord.ads.ranking import Settings
    from accord.ads.store import AdsStore
    from accord.service import Accord

    with Accord.open(database_url, data_dir) as accord:
        card, receipt = train_recorded(
            AdsStore(accord.engine, PLATFORM),
            accord.ledger,
            at=datetime.now(UTC),
            settings=Settings(shards=shards, rounds=100, min_leaf=50),
        )
    print(json.dumps(card.document(), indent=2))
    out.print(
        f"model {card.model}: AUC {card.metrics['auc']} (Bayes-optimal "
        f"{card.metrics['bayes_auc']}), calibration error {card.metrics['ece']}; "
        f"ledger entry {receipt.index}",
        highlight=False,
    )


@app.command("spend")
@handled
def spend(
    by: Annotated[str, typer.Option(help="Periods: year or month.", show_default=True)] = "year",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Spend, impressions, clicks and conversions per advertiser and year (or month), beside the
    data access the advertiser's party holds through agreements in the same period: clauses in
    force, exchanges allowed and refused, people and records released (from the ledger)."""
    _print_spend(database_url, data_dir, as_json=as_json, by=by)


@app.command("partner")
@handled
def partner(
    genre: Annotated[
        str | None,
        typer.Option(
            help="The genre whose Reelix viewers make the audience (default: the most watched).",
            show_default=False,
        ),
    ] = None,
    min_size: Annotated[
        int, typer.Option(min=1, help="The fewest members the audience may have.")
    ] = 100,
    epsilon: Annotated[
        float, typer.Option(min=0.01, help="Privacy loss of the lift's noisy counts.")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the lookalike and simulated conversions.")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Reelix's data in Chirp's ads, on the reference scenario (run `accord demo` first): an
    audience of a genre's viewers matched privately under their consent, built again after some
    withdraw, a lookalike of it, and a campaign's conversion lift with noise; each step in the
    ledger. The lookalike's features and audience and the lift's counts run on DuckDB or, with
    --engine spark, on Apache Spark."""
    from accord.config import Settings
    from accord.datafolder import DataFolder
    from accord.errors import InvalidInput
    from accord.scenario.partner_ads import run_partner_ads
    from accord.service import Accord

    folder, url = DataFolder.of_settings(Settings(), database_url, data_dir)
    parties = folder.scenario_parties()
    if set(parties) != {"chirp", "reelix"}:
        raise InvalidInput(
            f"{folder.path} holds no finished reference scenario: run `accord demo` first",
            where="--data-dir",
        )
    spark = chosen_spark(engine, spark_master, progress=Console(stderr=True))
    with Accord.open(url, folder.path) as accord:
        shown = run_partner_ads(
            accord,
            parties["chirp"],
            parties["reelix"],
            genre=genre,
            min_size=min_size,
            epsilon=epsilon,
            seed=seed,
            spark=spark,
        )
    if as_json:
        print(json.dumps(shown.to_json(), indent=2))
        return
    for line in partner_lines(shown):
        out.print(line)


campaign_app = typer.Typer(
    help="Chirp's campaigns: list them, pause and resume one (every ad server follows at its "
    "next request).",
    no_args_is_help=True,
)
app.add_typer(campaign_app, name="campaign")


@campaign_app.command("list")
@handled
def campaign_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Every campaign of Chirp's advertisers: id, advertiser, name, status, daily and lifetime
    budgets."""
    from accord.ads.model import show_money
    from accord.ads.store import AdsStore
    from accord.service import Accord

    with Accord.open(database_url, data_dir) as accord:
        campaigns = AdsStore(accord.engine, PLATFORM).campaigns()
    if as_json:
        rows = [
            {
                "id": c.id,
                "advertiser": c.advertiser,
                "name": c.name,
                "status": c.status.value,
                "daily_budget_micros": c.daily_budget,
                "lifetime_budget_micros": c.lifetime_budget,
            }
            for c in campaigns
        ]
        print(json.dumps(rows, indent=2))
        return
    if not campaigns:
        out.print(f"{PLATFORM} runs no campaign")
        return
    table = Table(title=f"{PLATFORM.capitalize()}'s campaigns")
    table.add_column("id", justify="right")
    table.add_column("advertiser")
    table.add_column("name")
    table.add_column("status")
    table.add_column("daily budget ($)", justify="right", no_wrap=True)
    table.add_column("lifetime budget ($)", justify="right", no_wrap=True)
    for c in campaigns:
        table.add_row(
            str(c.id),
            printable(c.advertiser),
            printable(c.name),
            c.status.value,
            show_money(c.daily_budget),
            "none" if c.lifetime_budget is None else show_money(c.lifetime_budget),
        )
    out.print(table)


CampaignId = Annotated[
    int, typer.Argument(help="The campaign's id (see `accord ads campaign list`).")
]


@campaign_app.command("pause")
@handled
def campaign_pause(
    campaign: CampaignId, database_url: DatabaseUrl = None, data_dir: DataDir = None
) -> None:
    """Pause a campaign: no ad server shows it from its next request on."""
    _set_status(campaign, "paused", database_url, data_dir)


@campaign_app.command("resume")
@handled
def campaign_resume(
    campaign: CampaignId, database_url: DatabaseUrl = None, data_dir: DataDir = None
) -> None:
    """Resume a paused campaign: ad servers show it again from their next request on."""
    _set_status(campaign, "active", database_url, data_dir)


def _set_status(
    campaign: int, status: str, database_url: str | None, data_dir: Path | None
) -> None:
    from accord.ads.model import CampaignStatus
    from accord.ads.store import AdsStore
    from accord.service import Accord

    with Accord.open(database_url, data_dir) as accord:
        changed = AdsStore(accord.engine, PLATFORM).set_campaign_status(
            campaign, CampaignStatus(status)
        )
    out.print(f"campaign {campaign} {'is now' if changed else 'was already'} {status}")


def partner_lines(shown: PartnerAdsShown) -> list[str]:
    """What ``accord ads partner`` prints."""
    lines = [f"Reelix's {escape(shown.genre)} viewers: {shown.viewers:,} at Reelix"]
    if shown.audience is None:
        lines.append(f"audience refused: {escape(shown.refused or '')}")
    else:
        lines.append(
            f"audience on Chirp: {shown.audience:,} people (only those who consented and did not "
            "opt out)"
        )
        rebuilt = "refused" if shown.rebuilt is None else f"{shown.rebuilt:,} people"
        lines.append(f"after {shown.withdrawn} withdrawals, built again: {rebuilt}")
    if shown.lookalike is not None:
        lines.append(
            f"lookalike: {shown.lookalike:,} people outside a seed of {shown.seed:,}; recall of "
            f"held-out seed members in the top 20%: {shown.recall:.2f} (random: 0.20)"
        )
    lift = shown.lift
    if lift is None:
        lines.append("lift: refused (a group under 50 people, or someone's privacy budget spent)")
    else:
        lines.append(
            f"lift: {lift.lift * 100:+.2f} points ({lift.confidence:.0%} interval "
            f"{lift.low * 100:+.2f} to {lift.high * 100:+.2f}, noise and sampling), planted "
            f"{shown.planted * 100:+.2f}"
        )
    return lines


def _print_spend(
    database_url: str | None, data_dir: Path | None, *, as_json: bool, by: str = "year"
) -> None:
    from accord.ads.access import PERIODS, Period, spend_beside_access
    from accord.errors import InvalidInput
    from accord.service import Accord

    if by not in PERIODS:
        raise InvalidInput(f"periods are {' or '.join(PERIODS)}, not {by!r}", where="--by")
    period: Period = "year" if by == "year" else "month"
    with Accord.open(database_url, data_dir) as accord:
        result = spend_beside_access(accord.engine, PLATFORM, by=period)
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
        return
    if not result.rows:
        out.print("no ad spend recorded")
        return
    for table in spend_tables(result, out.width):
        out.print(table)
    for line in ledger_lines(result):
        out.print(line)


NARROW = 100
"""Below this many columns the access is shown in a table of its own, under the money."""


def spend_tables(result: SpendBesideAccess, width: int) -> list[Table]:
    """The money beside the data, as Rich tables: a row per advertiser and period, its spend and
    what its ads did, then what its party's agreements let it do in the same period (on a
    console narrower than :data:`NARROW`, in a second table under the first)."""
    from accord.ads.model import show_money

    narrow = width < NARROW
    caption = (
        "data access: what the advertiser's party holds through agreements in the "
        f"{result.by}, from the registry and the ledger (exchanges and releases dated in it); "
        "none for an advertiser that is no party"
    )
    money = Table(
        title=f"The money beside the data: {result.platform.capitalize()}'s advertisers, "
        f"per {result.by}",
        caption=None if narrow else caption,
    )
    money.add_column("advertiser")
    money.add_column(result.by, no_wrap=True)
    for column in ("spend ($)", "impressions", "clicks", "conversions"):
        money.add_column(column, justify="right", no_wrap=True)
    if not narrow:
        money.add_column("data access", min_width=24, ratio=1)
    access = Table(title="... and the data access of each", caption=caption)
    access.add_column("advertiser")
    access.add_column(result.by, no_wrap=True)
    access.add_column("data access", ratio=1)
    for r in result.rows:
        name = escape(r.name) + (" [dim](partner data)[/]" if r.partner_data else "")
        cells = [
            name,
            r.period,
            show_money(r.spend),
            f"{r.impressions:,}",
            f"{r.clicks:,}",
            f"{r.conversions:,}",
        ]
        money.add_row(*cells, *(() if narrow else (access_text(r.access),)))
        access.add_row(name, r.period, access_text(r.access))
    return [money, access] if narrow else [money]


def access_text(a: Access | None) -> str:
    """A party's data access in a period, in a few words (Rich markup)."""
    if a is None:
        return "[dim]none[/]"
    clauses = f"{a.clauses:,} clause{'' if a.clauses == 1 else 's'} in force"
    if not a.clauses:
        clauses = "no clause in force"
    exchanges = f"exchanges [green]{a.allowed:,} allowed[/], [red]{a.refused:,} refused[/]"
    if not a.allowed + a.refused:
        exchanges = "no exchange"
    released = (
        f"{a.people:,} people, {a.records:,} records ({a.received:,} to it, {a.given:,} from it)"
        if a.releases
        else "nothing released"
    )
    return f"{clauses}; {exchanges}; {released}"


def ledger_lines(result: SpendBesideAccess) -> list[str]:
    """What the ledger holds of the spend, checked against the spend records."""
    from accord.ads.model import show_money

    same = result.spend_in_ledger == result.spend
    days = ", ".join(f"{n:,} in {period}" for period, n in sorted(result.days.items()))
    return [
        f"days with spend records: {days}",
        f"the ledger holds {result.spend_entries:,} ad_spend entries (one per campaign and day) "
        f"for ${show_money(result.spend_in_ledger)}: "
        + (
            "the same as the spend records"
            if same
            else f"[red]the spend records hold ${show_money(result.spend)}[/]"
        )
        + "; `accord ledger verify` checks every one",
    ]
