"""``accord psi``: match our people's e-mail addresses or phone numbers with a partner's, privately.

``accord psi run`` matches as the client, against a partner's Accord over HTTP or against a
second file in this process; ``accord psi serve`` answers partners' matches. Both go through
this Accord's store: the decision, the per-person filter and the ledger (see
:mod:`accord.pets.psi.consented`).

Records files are CSV with a header: a ``person`` column (the person's id at our party) and a
column of identifiers (``email`` or ``phone`` by default, or ``--column``). A person may have
several rows; empty identifiers are skipped.
"""

from __future__ import annotations

import csv
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from accord.consent import Operation
from accord.console import DatabaseUrl, DataDir, open_accord
from accord.errors import AccordError, InvalidInput
from accord.pets.psi.choices import OPRF_FROM, Kind, Mode, Protocol, check
from accord.requests import Request

if TYPE_CHECKING:
    # The protocol, its curve and its HTTP server are imported when a command runs.
    from accord.pets.psi.consented import Matched, Records
    from accord.pets.psi.ecdh import Transport

app = typer.Typer(
    help="Private matching: which of our people a partner also has, without either side "
    "seeing the other's list; only people whose consent allows it take part.",
    no_args_is_help=True,
)
_out = Console()
_err = Console(stderr=True, soft_wrap=True)

KindOption = Annotated[Kind, typer.Option("--kind", help="What the identifiers are.")]
ColumnOption = Annotated[
    str | None,
    typer.Option("--column", help="CSV column of the identifiers (default: the kind's name)."),
]
RegionOption = Annotated[
    str | None,
    typer.Option("--region", help="Default region of phone numbers written without +, e.g. US."),
]


def read_records(path: Path, kind: Kind, column: str | None = None) -> Callable[[], Records]:
    """A reader of ``path``'s (person, identifier) rows, checked now and read afresh per call."""
    name = column or kind.value
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
    except OSError as exc:
        raise InvalidInput(
            f"cannot read the records file: {exc.strerror}", where=str(path)
        ) from exc
    except UnicodeDecodeError:
        raise InvalidInput("the records file is not UTF-8 text", where=f"{path}:1") from None
    missing = [c for c in ("person", name) if c not in header]
    if missing:
        raise InvalidInput(
            f"the header has no {' or '.join(missing)} column "
            f"(it has {', '.join(header) or 'none'})",
            where=f"{path}:1",
        )

    def rows() -> Iterator[tuple[str, str]]:
        line = 1
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                for line, row in enumerate(csv.DictReader(handle), 2):
                    person = (row.get("person") or "").strip()
                    value = (row.get(name) or "").strip()
                    if not value:
                        continue
                    if not person:
                        raise InvalidInput("the row names no person", where=f"{path}:{line}")
                    yield person, value
        except UnicodeDecodeError:
            raise InvalidInput(
                "the records file is not UTF-8 text", where=f"{path}:{line + 1}"
            ) from None

    return rows


def _fail(exc: AccordError) -> typer.Exit:
    _err.print(f"[bold red]error:[/] {escape(str(exc))}")
    return typer.Exit(exc.exit_code)


def _request(
    requester: str, agreement: str, clause: str, purpose: str, categories: list[str]
) -> Request:
    return Request(
        requester=requester,
        agreement=agreement,
        clause=clause,
        operation=Operation.READ,
        purpose=purpose,
        categories=frozenset(categories),
        at=datetime.now(UTC),
    )


@app.command("run")
def run(
    *,
    ours: Annotated[Path, typer.Option("--ours", help="Our records (CSV: person, identifier).")],
    theirs: Annotated[
        str,
        typer.Option(
            "--theirs",
            help="The partner's Accord (http:// or https:// URL), or a records file of the "
            "partner's to match in this process through this same store.",
        ),
    ],
    party: Annotated[str, typer.Option("--as", help="Our party's id.")],
    partner: Annotated[str, typer.Option("--with", help="The partner's party id.")],
    agreement: Annotated[
        str, typer.Option("--agreement", help="The agreement both clauses are in.")
    ],
    clause: Annotated[
        str, typer.Option("--clause", help="The match-only clause under which our people go out.")
    ],
    their_clause: Annotated[
        str,
        typer.Option("--their-clause", help="The match-only clause under which theirs go out."),
    ],
    purpose: Annotated[str, typer.Option("--purpose", help="The purpose of the match.")],
    category: Annotated[
        list[str] | None,
        typer.Option("--category", help="Data categories (repeat); default user.contact.email."),
    ] = None,
    kind: KindOption = Kind.EMAIL,
    column: ColumnOption = None,
    region: RegionOption = None,
    mode: Annotated[
        Mode, typer.Option("--mode", help="intersection: which; size: only how many.")
    ] = Mode.INTERSECTION,
    protocol: Annotated[
        Protocol | None,
        typer.Option(
            "--protocol",
            help="ecdh: Diffie–Hellman on Curve25519, the only one for --mode size; oprf: an "
            "oblivious PRF from oblivious transfers, faster on large sets (default: oprf from "
            f"{OPRF_FROM:,} of our identifiers in intersection mode, ecdh otherwise).",
        ),
    ] = None,
    token: Annotated[
        str,
        typer.Option(
            "--token", envvar="ACCORD_PSI_TOKEN", help="Our token at the partner's Accord."
        ),
    ] = "",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write our matched people's ids here, one a line.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Cores to use (default: all).")
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0.1,
            help="Seconds to wait for each answer of a partner over HTTP before giving up.",
        ),
    ] = 120.0,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Match our people with the partner's; print how many matched (and, with --out, who)."""
    from accord.pets.psi import curve
    from accord.pets.psi.consented import admit_through_accord, ask_for
    from accord.pets.psi.consented import match_through_accord as through_accord
    from accord.pets.psi.ecdh import LocalTransport, Server

    try:
        check(protocol, mode)
        records = read_records(ours, kind, column)
        categories = category or ["user.contact.email"]
        ours_out = _request(partner, agreement, clause, purpose, categories)
        theirs_out = _request(party, agreement, their_clause, purpose, categories)
        with ExitStack() as stack:
            accord = stack.enter_context(open_accord(database_url, data_dir))
            engine = stack.enter_context(curve.Engine(workers))
            transport: Transport
            if theirs.startswith(("http://", "https://")):
                from accord.pets.psi.http import HttpTransport

                transport = HttpTransport(theirs, party, token, timeout=timeout)
                stack.enter_context(closing(transport))
            else:
                their_records = read_records(Path(theirs), kind, column)
                admit = admit_through_accord(accord, their_records, party, kind=kind, region=region)
                transport = LocalTransport(Server(admit, engine))
            matched = through_accord(
                accord,
                ours_out,
                records(),
                transport,
                ask=ask_for(theirs_out),
                kind=kind,
                mode=mode,
                engine=engine,
                region=region,
                protocol=protocol,
            )
    except AccordError as exc:
        raise _fail(exc) from None
    _report(matched, out)


def _report(matched: Matched, out: Path | None) -> None:
    r = matched.result
    _out.print(
        f"{r.size} of our {r.ours} identifiers ({matched.feed.people} people allowed to take part) "
        f"are among the partner's {r.theirs}; {r.exchanged:,} bytes exchanged."
    )
    if r.mode is Mode.INTERSECTION:
        _out.print(f"{len(matched.people)} of our people matched.")
        if out is not None:
            out.write_text("".join(f"{p}\n" for p in sorted(matched.people)), encoding="utf-8")
            _out.print(f"Their ids are in {out}.")


@app.command("serve")
def serve(
    *,
    records_file: Annotated[
        Path, typer.Option("--records", help="Our records (CSV: person, identifier).")
    ],
    partner: Annotated[
        list[str],
        typer.Option(
            "--partner",
            help="A party that may ask, as NAME=TOKEN, or NAME to issue it a token (printed once).",
        ),
    ],
    kind: KindOption = Kind.EMAIL,
    column: ColumnOption = None,
    region: RegionOption = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8765,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Cores to use (default: all).")
    ] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Answer partners' private matches with our records, through this Accord."""
    import uvicorn

    from accord.gateway.keyring import Keyring, hash_token
    from accord.pets.psi import curve
    from accord.pets.psi.http import psi_app

    try:
        records = read_records(records_file, kind, column)
        hashes: dict[str, bytes] = {}
        for entry in partner:
            name, _, token = entry.partition("=")
            if not name:
                raise InvalidInput(f"--partner {entry!r} names no party")
            if not token:
                token = secrets.token_urlsafe(32)
                _out.print(f"token for {escape(name)}: {token}")
            hashes[name] = hash_token(token)
        keyring = Keyring(hashes)
        with open_accord(database_url, data_dir) as accord, curve.Engine(workers) as engine:
            application = psi_app(accord, keyring, records, kind=kind, engine=engine, region=region)
            _out.print(f"answering private matches on http://{host}:{port}/psi/v1/messages")
            uvicorn.run(application, host=host, port=port, log_level="warning")
    except AccordError as exc:
        raise _fail(exc) from None
