"""``accord ledger``: verify the log, show it or one entry, prove a person's entries, sign
checkpoints."""

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

from accord.console import instant, printable
from accord.datafolder import DataFolder, NoStore
from accord.errors import AccordError, ConfigError, InvalidInput, translate
from accord.ledger.kinds import KINDS

if TYPE_CHECKING:
    # The settings, the store and the log are imported when a command runs, not for its help.
    from accord.config import Settings
    from accord.ledger.audit import VerifyReport
    from accord.ledger.log import Ledger
    from accord.ledger.results import InclusionProof, StoredLeaf

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
    folder, named = DataFolder.of_settings(settings, database_url, data_dir)
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
    people_map: Annotated[
        bool,
        typer.Option(
            "--people-map",
            help="Also recompute the people map from the person index (needs the signing key).",
        ),
    ] = False,
) -> None:
    """Recompute the whole tree from its leaves and check every checkpoint against it."""
    try:
        with _ledger(database_url, data_dir, signing=False, vkey=vkey) as ledger:
            report = ledger.verify(workers=workers, people_map=people_map)
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
    summary.add_row("subject lists checked against their roots", str(report.subject_lists_checked))
    if report.people_map is not None:
        summary.add_row("people map", report.people_map)
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
    *,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    limit: Annotated[int, typer.Option(min=1, help="How many entries to show, newest first.")] = 10,
    kind: Annotated[
        list[str] | None,
        typer.Option(help=f"Only entries of this kind (repeatable): {', '.join(KINDS)}."),
    ] = None,
    party: Annotated[
        str | None, typer.Option(help="Only entries naming this party as provider or recipient.")
    ] = None,
    agreement: Annotated[
        str | None, typer.Option(help="Only entries under this agreement.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only entries at or after this instant (ISO 8601).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only entries before this instant (ISO 8601).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the entries and the checkpoint as JSON.")
    ] = False,
) -> None:
    """The most recent entries (or those the filters let through) and the latest checkpoint."""
    from accord.ledger.browse import EntryFilter, find, require_ledger

    try:
        wanted = EntryFilter(
            frozenset(kind or ()),
            party,
            agreement,
            instant(since, "--since"),
            instant(until, "--until"),
        )
        with _ledger(database_url, data_dir, signing=False) as ledger:
            require_ledger(ledger)
            head = ledger.head()
            found = find(ledger, wanted, limit)
            stored = ledger.checkpoints()
    except AccordError as exc:
        _fail(exc)
    latest = stored[-1] if stored else None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "tree_size": head.size,
                    "root": head.root.hex(),
                    "entries": [
                        {"index": leaf.index, "leaf_hash": leaf.leaf_hash.hex(), "entry": entry}
                        for leaf, entry in found
                    ],
                    "checkpoint": _checkpoint_json(latest),
                },
                indent=2,
            )
        )
        return
    filtered = "" if wanted.everything else f"; {len(found)} shown that match"
    table = Table(title=f"Ledger: {head.size} entries{filtered}, root {head.root.hex()}")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("at (UTC)", max_width=10)  # the date, then the time below it
    table.add_column("agreement", overflow="fold", ratio=2)
    table.add_column("parties", overflow="fold", ratio=2)
    table.add_column("purpose", overflow="fold", ratio=3)
    table.add_column("people", justify="right", no_wrap=True)
    table.add_column("reason", overflow="fold", ratio=6)
    for leaf, entry in found:
        table.add_row(
            str(leaf.index),
            printable(entry.get("kind", "")),
            printable(_short_time(entry.get("at"))),
            printable(entry.get("agreement") or "—"),
            printable(_parties(entry)),
            printable(entry.get("purpose") or "—"),
            printable(entry.get("people", "")),
            printable(entry.get("reason", "")),
        )
    _out.print(table)
    if not found and not wanted.everything:
        _out.print("No entry matches.")
    if latest is None:
        _out.print("No checkpoint yet: run [bold]accord ledger checkpoint[/].")
    else:
        note = "\n".join(printable(line) for line in latest[2].rstrip("\n").split("\n"))
        _out.print(Panel(note, title="latest checkpoint", expand=False))


def _short_time(at: object) -> str:
    """``2026-11-29T12:00:00.000000Z`` as ``2026-11-29 12:00:00``."""
    text = str(at or "")
    return text[:19].replace("T", " ") if len(text) >= 19 and text[10:11] == "T" else text


def _parties(entry: dict[str, Any]) -> str:
    provider, recipient = entry.get("provider"), entry.get("recipient")
    if provider and recipient:
        return f"{provider} → {recipient}"
    return str(recipient or provider or "—")


def _checkpoint_json(latest: tuple[int, bytes, str] | None) -> dict[str, Any] | None:
    if latest is None:
        return None
    size, root, note = latest
    return {"size": size, "root": root.hex(), "note": note}


@app.command()
def entry(
    index: Annotated[int, typer.Argument(min=0, help="The entry's index in the log (from 0).")],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
) -> None:
    """One entry in full: every field, its leaf hash, and its inclusion proof against the latest
    checkpoint, checked."""
    from accord.ledger.browse import require_ledger

    try:
        with _ledger(database_url, data_dir, signing=False) as ledger:
            require_ledger(ledger)
            size = ledger.head().size
            if index >= size:
                raise InvalidInput(
                    f"the ledger has {size} entries (0 to {size - 1}): there is no entry {index}"
                    if size
                    else "the ledger has no entries yet"
                )
            leaf = ledger.leaf(index)
            stored = ledger.checkpoints()
            latest = stored[-1] if stored else None
            proof = (
                ledger.inclusion_proof(index, latest[0])
                if latest is not None and index < latest[0]
                else None
            )
            signature = _signature(ledger, latest[2]) if latest is not None else None
    except AccordError as exc:
        _fail(exc)
    try:
        fields: dict[str, Any] | None = leaf.entry()
    except AccordError:
        fields = None
    verifies = None
    if proof is not None and latest is not None:
        verifies = proof.root == latest[1] and proof.verify()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "index": index,
                    "leaf": leaf.data.decode("utf-8", errors="replace"),
                    "entry": fields,
                    "leaf_hash": leaf.leaf_hash.hex(),
                    "checkpoint": None
                    if latest is None
                    else {**(_checkpoint_json(latest) or {}), "signature": signature},
                    "inclusion_proof": None if proof is None else [h.hex() for h in proof.path],
                    "proof_verifies": verifies,
                },
                indent=2,
            )
        )
    else:
        _print_entry(
            leaf,
            fields=fields,
            latest=latest,
            proof=proof,
            verifies=verifies,
            signature=signature,
        )
    if verifies is False:
        raise typer.Exit(1)


def _signature(ledger: Ledger, note: str) -> str:
    """Whether the checkpoint's signature verifies with the local key, in words."""
    if ledger.verifier is None:
        return "not checked: no signing key in the data folder (pass --data-dir)"
    try:
        ledger.verifier.open(note)
    except AccordError as exc:
        return f"does not verify: {exc}"
    return f"verified with {ledger.verifier.vkey}"


def _print_entry(
    leaf: StoredLeaf,
    *,
    fields: dict[str, Any] | None,
    latest: tuple[int, bytes, str] | None,
    proof: InclusionProof | None,
    verifies: bool | None,
    signature: str | None,
) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    if fields is None:
        grid.add_row("leaf", printable(leaf.data.decode("utf-8", errors="replace")))
        grid.add_row("", "[red](not a JSON object: unreadable)[/]")
    else:
        for name in sorted(fields, key=lambda n: (n not in _FIRST, _FIRST.get(n, 0), n)):
            value = fields[name]
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            grid.add_row(printable(name), printable("—" if shown in (None, "") else shown))
    grid.add_row("leaf hash", leaf.leaf_hash.hex())
    if latest is None:
        grid.add_row("proof", "no checkpoint yet: run [bold]accord ledger checkpoint[/]")
    elif proof is None:
        grid.add_row(
            "proof",
            f"the latest checkpoint covers {latest[0]} entries, not this one yet: run "
            "[bold]accord ledger checkpoint[/]",
        )
    else:
        grid.add_row("checkpoint", f"size {latest[0]}, root {latest[1].hex()}")
        grid.add_row("signature", printable(signature or ""))
        grid.add_row("inclusion proof", "\n".join(h.hex() for h in proof.path) or "(none needed)")
        grid.add_row(
            "verifies",
            "[green]✓ the proof leads from the leaf hash to the checkpoint's root[/]"
            if verifies
            else "[red]✗ the proof does not lead to the checkpoint's root[/]",
        )
    kind = printable(fields.get("kind", "")) if fields else "unreadable"
    _out.print(Panel(grid, title=f"ledger entry #{leaf.index} ({kind})", title_align="left"))


_FIRST = {"kind": 0, "at": 1, "agreement": 2, "clause": 3, "reason": 4}
"""Fields shown first, in this order; the others follow by name."""


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
def consistency(
    old: Annotated[
        int, typer.Argument(metavar="OLD", help="The earlier tree size (a checkpoint's).")
    ],
    new: Annotated[
        int, typer.Argument(metavar="NEW", help="The later tree size, at most the ledger's.")
    ],
    *,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    vkey: Annotated[
        str | None,
        typer.Option(help="Check the checkpoints' signatures against this verifier key."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the proof as JSON.")] = False,
) -> None:
    """The consistency proof (RFC 9162) that the tree of OLD entries is a prefix of the tree of
    NEW entries, checked, with the signed checkpoints of both sizes; exit 1 if it does not
    verify."""
    from accord.ledger.browse import require_ledger
    from accord.ledger.consistency import prove_consistency

    try:
        with _ledger(database_url, data_dir, signing=False, vkey=vkey) as ledger:
            require_ledger(ledger)
            report = prove_consistency(ledger, old, new)
    except AccordError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(report.json(), indent=2))
    else:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        p = report.proof
        for label, size, root, cp in (
            ("old", p.old_size, p.old_root, report.old),
            ("new", p.new_size, p.new_root, report.new),
        ):
            grid.add_row(f"{label} size", str(size))
            grid.add_row(f"{label} root", root.hex())
            stated = ""
            if cp.signed:
                stated = (
                    "; states this root" if cp.root_matches else "; [red]states another root[/]"
                )
            grid.add_row(f"{label} checkpoint", escape(cp.signature) + stated)
        grid.add_row("proof", "\n".join(h.hex() for h in p.path) or "(none needed)")
        grid.add_row(
            "verifies",
            f"[green]✓ the tree of {p.old_size} entries is a prefix of the tree of {p.new_size}[/]"
            if report.verifies
            else "[red]✗ the proof does not link the two roots[/]",
        )
        _out.print(Panel(grid, title="ledger consistency proof", title_align="left"))
    if not report.verifies or any(
        cp.note is not None and cp.signed and not cp.root_matches for cp in (report.old, report.new)
    ):
        raise typer.Exit(1)


@app.command()
def checkpoint(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """Sign the current tree head, store it, and print the signed note."""
    try:
        with _ledger(database_url, data_dir, signing=True) as ledger:
            signed = ledger.checkpoint()
    except AccordError as exc:
        _fail(exc)
    typer.echo(signed.note, nl=False)


@app.command("rebuild-map")
def rebuild_map(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """Build the people map again from the person index, and sign a checkpoint committing to it.

    For a store whose people map was lost or damaged (`accord ledger verify --people-map` says
    so). Refused, with nothing changed, where it would contradict a checkpoint already signed.
    """
    try:
        with _ledger(database_url, data_dir, signing=False) as ledger:
            if ledger.signer is None:
                raise NoStore(
                    "rebuilding the people map needs the log's signing key: name the data folder "
                    "that holds it with --data-dir"
                )
            signed = ledger.rebuild_people_map()
            people = ledger.last_map_cost.get("people_touched", 0)
    except AccordError as exc:
        _fail(exc)
    _out.print(f"Rebuilt the people map for {people:,} people at size {signed.checkpoint.size}.")
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
