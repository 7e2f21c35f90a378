"""``accord examples``: write out the example files the README and the docs use.

They ship inside the package, so a command in the docs works as written wherever Accord was
installed from: the agreements of the partnership, a members file for ``accord person load``, both
parties' customer files for a private match (``accord psi run``), the clean room's report rule,
and the parties' dataset declarations.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from accord.console import handled
from accord.errors import InvalidInput

_out = Console(soft_wrap=True)

WHAT = {
    "chirp-reelix.yaml": "the published partnership agreement (accord agreement check|register)",
    "chirp-reelix-titan.yaml": "a Titan-style whitelist nobody reviewed: what Accord refuses",
    "chirp-reelix-cleanroom.yaml": "the clean room's agreement: rows in, aggregates out",
    "chirp-reelix-audience.yaml": "audience overlap: a private match of e-mail addresses",
    "chirp-reelix-partner-ads.yaml": "Reelix's audiences and lift on Chirp, only as consented",
    "members.csv": "Reelix's members and where each lives (accord person load)",
    "chirp-audience.csv": "Chirp's customers, where each lives, their e-mail (accord psi run)",
    "reelix-audience.csv": "Reelix's members, where each lives, their e-mail (accord psi run)",
    "report-rule.yaml": "the fortnightly report's analysis rule (accord cleanroom check|run)",
    "datasets/chirp.yaml": "Chirp's dataset declaration: what its database holds, about whom",
    "datasets/reelix.yaml": "Reelix's dataset declaration",
}


def _shipped() -> dict[str, Traversable]:
    package = resources.files("accord")
    files = {name: package / "examples" / name for name in WHAT if not name.startswith("datasets/")}
    for party in ("chirp", "reelix"):
        files[f"datasets/{party}.yaml"] = package / "scenario" / "datasets" / f"{party}.yaml"
    return files


def examples(
    folder: Annotated[Path, typer.Argument(help="Where to write them (made if missing).")] = Path(
        "accord-examples"
    ),
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files of the same name.")
    ] = False,
) -> None:
    """Write the example files the README and the docs use: agreements, a members file, the
    clean room's report rule and the parties' dataset declarations."""
    files = _shipped()
    clash = sorted(name for name in files if (folder / name).exists())
    if clash and not force:
        raise InvalidInput(
            f"{', '.join(clash)} already there: nothing written (--force overwrites)",
            where=str(folder),
        )
    table = Table(title=f"Examples written to {escape(str(folder))}", show_header=False, box=None)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for name, source in files.items():
        target = folder / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
        except OSError as exc:
            raise InvalidInput(f"cannot write {target}: {exc.strerror}") from None
        table.add_row(escape(name), escape(WHAT[name]))
    _out.print(table)


command = handled(examples)
