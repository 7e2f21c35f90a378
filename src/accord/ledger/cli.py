"""``accord ledger``: verify the log, show it, prove a person's entries, sign checkpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from accord.datafolder import DataFolder, NoStore
from accord.errors import AccordError, ConfigError, translate

if TYPE_CHECKING:
    # The settings, the store and the log are imported when a command runs, not for its help.
    from accord.config import Settings
    from accord.ledger.audit import VerifyReport
    from accord.ledger.log import Ledger

app = typer.Typer(
    help="The ledger: an append-only Merkle log of every decision and release, with signed "
    "checkpoints and proofs anyone can check.",
    no_args_is_help=True,
)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL of the Accord store. Default: ACCORD_DATABASE_URL, or accord.db in "
        "the data folder.",
        show_default=False,
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder holding the store and the ledger's signing key. Default: ACCORD_DATA_DIR "
        "(accord-data).",
        show_default=False,
    ),
]

_out = Console()
_err = Console(stderr=True)


def _fail(exc: AccordError) -> NoReturn:
    _err.print(f"[bold red]error:[/] {escape(str(exc))}")
    raise typer.Exit(exc.exit_code)


def _settings() -> Settings:
    from accord.config import Settings

    with translate(ConfigError, "reading the ACCORD_ settings"):
        return Settings()


@contextmanager
def _ledger(
    database_url: str | None,
    data_dir: Path | None,
    *,
    signing: bool,
    vkey: str | None = None,
) -> Iterator[Ledger]:
    """The ledger behind the settings; with ``signing``, its key (created on first use)."""
    from accord.ledger.checkpoint import Signer, Verifier
    from accord.ledger.log import Ledger
    from accord.store.engine import make_engine

    settings = _settings()
    folder = DataFolder(data_dir if data_dir is not None else settings.data_dir)
    # --data-dir moves the store with the key; without it, ACCORD_DATABASE_URL may name the store.
    named = database_url or (settings.database_url if data_dir is None else None)
    # Only a signature writes; every other command reads a store that must already be there.
    url = folder.store_url(named) if signing else folder.existing_store_url(named)
    engine = make_engine(url)
    try:
        signer: Signer | None = None
        if signing or (vkey is None and folder.key.exists()):
            signer = Signer.load_or_create(folder.path)
        verifier = Verifier.from_vkey(vkey) if vkey else None
        yield Ledger(engine, signer, verifier=verifier, batch_size=settings.ledger_batch_size)
    finally:
        engine.dispose()


@app.command()
def verify(
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    vkey: Annotated[
        str | None,
        typer.Option(
            help="Check checkpoint signatures against this verifier key instead of the local key."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="Processes rehashing the leaves of large logs [default: one per core]."
        ),
    ] = None,
) -> None:
    """Recompute the whole tree from its leaves and check every checkpoint against it."""
    try:
        with _ledger(database_url, data_dir, signing=False, vkey=vkey) as ledger:
            report = ledger.verify(workers=workers)
    except AccordError as exc:
        _fail(exc)
    _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: VerifyReport) -> None:
    summary = Table(title="Ledger verification", show_header=False, box=None)
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("tree size", str(report.size))
    summary.add_row("root", report.root.hex())
    summary.add_row("leaves rehashed", str(report.leaves_checked))
    summary.add_row("stored nodes recomputed", str(report.nodes_checked))
    summary.add_row("checkpoints checked", str(report.checkpoints_checked))
    summary.add_row("person index rows checked", str(report.index_rows_checked))
    summary.add_row("time", f"{report.seconds:.2f} s")
    _out.print(summary)
    if report.ok:
        _out.print("[bold green]✓ the ledger verifies[/]")
        return
    problems = Table(title="What does not verify", title_style="bold red")
    problems.add_column("where", style="bold")
    problems.add_column("problem")
    for problem in report.problems:
        problems.add_row(escape(problem.where), escape(problem.message))
    _out.print(problems)
    if report.problems_left_out:
        _out.print(f"… and {report.problems_left_out} more")
    _out.print(f"[bold red]✗ the ledger does not verify ({len(report.problems)} problems)[/]")


@app.command()
def show(
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    limit: Annotated[int, typer.Option(min=1, help="How many recent entries to show.")] = 10,
) -> None:
    """The most recent entries and the latest checkpoint."""
    try:
        with _ledger(database_url, data_dir, signing=False) as ledger:
            head = ledger.head()
            leaves = ledger.recent(limit)
            note = ledger.latest_checkpoint()
    except AccordError as exc:
        _fail(exc)
    table = Table(title=f"Ledger: {head.size} entries, root {head.root.hex()}")
    for column in ("#", "kind", "at", "agreement", "purpose", "people", "reason"):
        table.add_column(column)
    for leaf in leaves:
        try:
            entry: dict[str, Any] = leaf.entry()
        except AccordError:
            entry = {"kind": "(unreadable)"}
        table.add_row(
            str(leaf.index),
            escape(str(entry.get("kind", ""))),
            escape(str(entry.get("at", ""))),
            escape(str(entry.get("agreement") or "—")),
            escape(str(entry.get("purpose") or "—")),
            str(entry.get("people", "")),
            escape(str(entry.get("reason", ""))),
        )
    _out.print(table)
    if note is None:
        _out.print("No checkpoint yet: run [bold]accord ledger checkpoint[/].")
    else:
        _out.print(Panel(escape(note.rstrip("\n")), title="latest checkpoint", expand=False))


@app.command()
def prove(
    person: Annotated[
        str,
        typer.Option(
            "--person", help="The person as PARTY/ID: their id at the party, e.g. reelix/r0000001."
        ),
    ],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    sign: Annotated[
        bool,
        typer.Option(
            "--checkpoint",
            help="Sign a checkpoint of the current tree first, so the newest entries are proved "
            "too (a write; without it the latest stored checkpoint is used).",
        ),
    ] = False,
) -> None:
    """Every entry about a person, with inclusion proofs under the latest signed checkpoint, as
    JSON; entries newer than it are listed under "pending".

    The output includes the person's ledger key; check it with verify_proof.py.
    """
    try:
        with _ledger(database_url, data_dir, signing=sign) as ledger:
            bundle = ledger.prove_person(person, sign=sign)
    except AccordError as exc:
        _fail(exc)
    typer.echo(json.dumps(bundle, indent=2, ensure_ascii=False))
    if bundle["pending"]:
        _err.print(
            f"{len(bundle['pending'])} newer entries are not under the latest checkpoint yet; "
            "`accord ledger checkpoint` signs one (or pass --checkpoint)"
        )


@app.command()
def checkpoint(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """Sign the current tree head, store it, and print the signed note."""
    try:
        with _ledger(database_url, data_dir, signing=True) as ledger:
            signed = ledger.checkpoint()
    except AccordError as exc:
        _fail(exc)
    typer.echo(signed.note, nl=False)


@app.command()
def compact(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """Fold the person index's parts into one, so finding a person's entries stays quick.

    Each entry about 1,000 people or more adds a part, searched by every lookup; run this from a
    scheduled job. No leaf changes: the tree, its checkpoints and proofs stay as they are.
    """
    try:
        with _ledger(database_url, data_dir, signing=False) as ledger:
            parts, rows = ledger.compact_index()
    except AccordError as exc:
        _fail(exc)
    if parts == 0:
        _out.print("The person index has at most one part beside part 0: nothing to fold.")
    else:
        _out.print(f"Folded {parts} parts of the person index ({rows:,} rows) into one.")


@app.command()
def key(data_dir: DataDir = None) -> None:
    """Print the verifier key of the log's signing key: what anyone checks checkpoints with."""
    from accord.ledger.checkpoint import Signer

    try:
        folder = DataFolder(data_dir if data_dir is not None else _settings().data_dir)
        if not folder.key.is_file():
            raise NoStore(
                f"there is no ledger signing key in {folder.path}: a store makes one when it is "
                "first opened (run `accord demo`), or name the folder that holds it with "
                "--data-dir"
            )
        signer = Signer.load_or_create(folder.path)
    except AccordError as exc:
        _fail(exc)
    typer.echo(signer.verifier.vkey)
