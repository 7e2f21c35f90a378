"""What every ``accord`` command shares: the error console, the decorator that turns Accord's
errors into a message and an exit code (never a stack trace), the options naming the store, and
the store itself, opened only when a command runs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from accord.datafolder import DataFolder
from accord.errors import AccordError, InvalidInput, visible

if TYPE_CHECKING:
    from accord.service import Accord

P = ParamSpec("P")
R = TypeVar("R")

err = Console(stderr=True, soft_wrap=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="ACCORD_DATABASE_URL",
        help="SQLAlchemy URL of the Accord store (default: accord.db in the data folder).",
        show_default=False,
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder for the embedded databases and the ledger key (default: ACCORD_DATA_DIR "
        "or accord-data).",
        show_default=False,
    ),
]


PartySources = Annotated[
    list[str] | None,
    typer.Option("--source", help="A party's own database, PARTY=URL (repeatable)."),
]
"""The parties' databases, for the commands that read them (``serve``, ``audit``)."""

PartyDatasets = Annotated[
    list[str] | None,
    typer.Option(
        "--dataset",
        help="A party's dataset declaration, PARTY=PATH (default: the bundled one by name).",
    ),
]

ScenarioDir = Annotated[
    Path | None,
    typer.Option(
        help="A folder holding chirp.db and reelix.db, or a data folder holding a scenario "
        "[default: the scenario in the data folder, if it holds one].",
        show_default=False,
    ),
]


def open_accord(
    database_url: str | None = None, data_dir: Path | None = None, *, existing: bool = False
) -> AbstractContextManager[Accord]:
    """:meth:`Accord.open`, imported when a command opens the store: the service brings
    SQLAlchemy, Alembic and the policy engine, which no command's help needs. With
    ``existing`` (commands that only read), a missing embedded store is an error, not made."""
    from accord.service import Accord  # noqa: PLC0415

    return Accord.open(database_url, data_dir, existing=existing)


def handled(command: Callable[P, R]) -> Callable[P, R]:
    """Print Accord's errors as a message, not a trace, and exit with their code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except AccordError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(exc.exit_code) from None

    return run


def printable(value: object) -> str:
    """``value`` as text safe to print in Rich markup: its markup escaped, and every control
    character (terminal escape codes, line breaks, bidirectional overrides) shown as its code,
    ``\\x1b`` or ``\\u202e``, so text a partner wrote can neither restyle the terminal nor
    pass for another line or column."""
    return escape(visible(value))


def instant(text: str | None, name: str) -> datetime | None:
    """An option's date or time (ISO 8601) as an aware UTC instant; naive ones are taken as UTC."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{name} {text!r} is not a date or time: use ISO 8601, e.g. 2026-06-01 or "
            "2026-06-01T12:00:00+00:00"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def pairs(
    values: list[str], option: str, error: type[AccordError] = InvalidInput
) -> dict[str, str]:
    """``PARTY=VALUE`` options (repeated) as a mapping, or ``error`` naming the bad one."""
    found: dict[str, str] = {}
    for value in values:
        party, sep, target = value.partition("=")
        if not sep or not party.strip() or not target.strip():
            raise error(f"{option} takes PARTY=VALUE, not {value!r}")
        found[party.strip()] = target.strip()
    return found


def scenario_sources(
    sources: list[str],
    scenario: Path | None,
    data_dir: Path | None,
    error: type[AccordError] = InvalidInput,
) -> dict[str, str]:
    """The parties' database URLs from ``--source``, ``--scenario`` or, with neither, the scenario
    in the data folder (``accord demo``, ``accord scenario generate``) if it holds one.

    ``--scenario`` takes a folder holding ``chirp.db`` and ``reelix.db`` (``scenario generate
    --out``) or a data folder holding a scenario.
    """
    urls = pairs(sources, "--source", error)
    if scenario is None:
        if urls:
            return urls
        found = DataFolder.chosen(data_dir).scenario_parties()
    else:
        if not scenario.is_dir():
            raise error(f"--scenario {scenario} is not a folder")
        held = DataFolder(scenario).scenario_parties()
        found = held or {
            party: scenario / f"{party}.db"
            for party in ("chirp", "reelix")
            if (scenario / f"{party}.db").is_file()
        }
        missing = [party for party in ("chirp", "reelix") if party not in found]
        if missing:
            # SQLite would make an empty database there, and nobody would be served or audited.
            raise error(
                f"--scenario {scenario}: there is no {missing[0]}.db in it (`accord scenario "
                "generate` writes a scenario into the data folder; `--out DIR` only the databases)"
            )
    for party, path in found.items():
        urls.setdefault(party, f"sqlite:///{path.resolve()}")
    return urls
