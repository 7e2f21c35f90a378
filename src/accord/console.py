"""What every ``accord`` command shares: the error console, the decorator that turns Accord's
errors into a message and an exit code (never a stack trace), and the options naming the store."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from accord.errors import AccordError

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
