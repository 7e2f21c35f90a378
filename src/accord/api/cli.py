"""``accord serve`` and ``accord app``: run the partner API, and manage the partner apps.

``serve`` checks what the workers will open (migrating the store and making the ledger's key on
the way), then runs uvicorn over :func:`worker_app`, a factory each worker process calls; the
options reach the workers in the environment (``ACCORD_API_SERVE``, a JSON document) with one
signing key for all of them (``ACCORD_API_SECRET``, made up for the run when unset).

A worker only opens what ``serve`` has checked: uvicorn kills one that is slow to answer its
health check, and each spawned worker imports the ``accord`` command's module first, so neither
that import nor the worker's start-up does more than serving needs. The web stack is imported
when a command runs, not when this module is.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from accord.console import (
    PartyDatasets,
    PartySources,
    ScenarioDir,
    err,
    handled,
    open_accord,
    pairs,
    scenario_sources,
)
from accord.datafolder import DataFolder
from accord.errors import AccordError, ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

SERVE_ENV = "ACCORD_API_SERVE"
SHARED_WRITER_ENV = "ACCORD_SHARED_WRITER"
"""``1``: several workers hand their writes to one writer in the server's own process (by
default each commits its own, in turn: faster where commits are cheap beside the CPU, as
measured in docs/performance.md)."""
out = Console()


def plan(
    sources: list[str],
    datasets: list[str],
    scenario: Path | None,
    data_dir: Path | None,
    database_url: str | None,
) -> dict[str, Any]:
    """What each worker opens: the store, and each party's database and dataset declaration."""
    urls = scenario_sources(sources, scenario, data_dir, ConfigError)
    declared = pairs(datasets, "--dataset", ConfigError)
    bundled = resources.files("accord") / "scenario" / "datasets"
    for party in urls:
        if party not in declared:
            candidate = bundled / f"{party}.yaml"
            if not candidate.is_file():
                raise ConfigError(
                    f"no dataset declaration for {party}: pass --dataset {party}=PATH"
                )
            declared[party] = str(candidate)
    return {
        "sources": urls,
        "datasets": declared,
        "data_dir": str(data_dir) if data_dir else None,
        "database_url": database_url,
    }


def prepare(layout: dict[str, Any]) -> None:
    """Do once, before any worker starts, what the workers would otherwise each do or fail at:
    migrate the store and make the ledger's key, and read every party's dataset declaration."""
    from accord.sources import load

    with open_accord(
        layout["database_url"], Path(layout["data_dir"]) if layout["data_dir"] else None
    ):
        pass
    for declaration in layout["datasets"].values():
        load(declaration)


def worker_app() -> FastAPI:
    """The app one worker serves, from the plan ``serve`` left in the environment (and checked)."""
    from accord.api.app import create_app
    from accord.api.serving import stop_with_parent
    from accord.api.settings import ApiSettings
    from accord.service import Accord
    from accord.sources import Source, load
    from accord.store.engine import make_engine
    from accord.store.writer import ADDRESS_ENV, WriterAddress, WriterClient

    stop_with_parent()

    access = logging.getLogger("accord.api")
    if not access.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
    config = json.loads(os.environ.get(SERVE_ENV, "{}"))
    stack = ExitStack()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # What is alive once the worker has started (modules, the compiled policy, the app) lives
        # as long as the worker: frozen out of the collector's reach, it is not scanned again by
        # every collection that requests trigger (gc.freeze, as pre-forking servers do).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            stack.close()

    try:
        accord = stack.enter_context(
            Accord.open(
                config.get("database_url"),
                Path(config["data_dir"]) if config.get("data_dir") else None,
                migrate=False,
            )
        )
        shared = os.environ.get(ADDRESS_ENV)
        writer = WriterClient(WriterAddress.from_env(shared)) if shared else None
        if writer is not None:
            accord.ledger.send_appends_to(writer)
            stack.callback(writer.close)
            stack.callback(accord.ledger.send_appends_to, None)
        sources = {}
        for party, url in config.get("sources", {}).items():
            engine = make_engine(url)
            stack.callback(engine.dispose)
            sources[party] = Source(engine, load(config["datasets"][party]))
        return create_app(accord, sources, ApiSettings(), lifespan=lifespan, writer=writer)
    except BaseException:
        stack.close()
        raise


def serve(
    *,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    source: PartySources = None,
    dataset: PartyDatasets = None,
    scenario: ScenarioDir = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Folder of the Accord store and the ledger key.")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="URL of the Accord store (default: ACCORD_DATABASE_URL).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
) -> None:
    """Serve the partner API (OAuth 2.0, consent screens, exchanges) with uvicorn."""
    from pydantic import ValidationError

    from accord.api.serving import PROTOCOL
    from accord.api.settings import ApiSettings

    try:
        layout = plan(source or [], dataset or [], scenario, data_dir, database_url)
    except AccordError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(exc.exit_code) from None
    try:
        ApiSettings()
    except ValidationError as exc:
        for problem in exc.errors():
            name = "ACCORD_API_" + "_".join(str(p) for p in problem["loc"]).upper()
            err.print(f"[bold red]error:[/] {name}: {escape(problem['msg'])}")
        raise typer.Exit(2) from None
    try:
        prepare(layout)
    except AccordError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(exc.exit_code) from None
    _say_what_is_served(layout, data_dir)
    os.environ[SERVE_ENV] = json.dumps(layout)
    os.environ.setdefault("ACCORD_API_SECRET", secrets.token_urlsafe(32))
    run_workers(
        "accord.api.cli:worker_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        proxy_headers=True,
        http=PROTOCOL,
    )


def run_workers(app: str, *, workers: int, **options: Any) -> None:
    """:func:`accord.api.serving.run` over ``app``; with several workers and
    ``ACCORD_SHARED_WRITER=1``, one writer for all of them, in this process
    (:mod:`accord.store.writer`): each commit of the ledger then groups every worker's appends,
    and each of the ads store's every worker's impressions. The store is the one ``serve`` left
    the workers in the environment."""
    from accord.api.serving import run

    if workers < 2 or os.environ.get(SHARED_WRITER_ENV, "0") != "1":
        run(app, workers=workers, **options)
        return
    from accord.ads.store import RECORD_JOB, record_many
    from accord.ledger.log import APPEND_JOB
    from accord.service import Accord
    from accord.store.writer import ADDRESS_ENV, SharedWriter

    layout = json.loads(os.environ.get(SERVE_ENV, "{}"))
    data_dir = layout.get("data_dir")
    with (
        Accord.open(
            layout.get("database_url"), Path(data_dir) if data_dir else None, migrate=False
        ) as accord,
        SharedWriter(
            {APPEND_JOB: accord.ledger.commit_appends, RECORD_JOB: record_many(accord.engine)}
        ) as writer,
    ):
        os.environ[ADDRESS_ENV] = writer.address.to_env()
        try:
            run(app, workers=workers, **options)
        finally:
            os.environ.pop(ADDRESS_ENV, None)
    err.print(
        f"the workers' shared writer committed {writer.answered[APPEND_JOB]:,} of their groups "
        f"of ledger appends in {writer.groups[APPEND_JOB]:,} commits, and "
        f"{writer.answered[RECORD_JOB]:,} groups of ad impressions in "
        f"{writer.groups[RECORD_JOB]:,}"
    )


def _say_what_is_served(layout: dict[str, Any], data_dir: Path | None) -> None:
    """One line on what this server reads, before uvicorn's own lines."""
    store = layout["database_url"] or str(DataFolder.chosen(data_dir).store)
    parties = ", ".join(
        f"{party} ({url.removeprefix('sqlite:///')})" for party, url in layout["sources"].items()
    )
    if parties:
        err.print(
            f"serving the store {escape(store)}, and the parties' databases {escape(parties)}"
        )
    else:
        err.print(
            f"serving the store {escape(store)} without any party's database: sign-in and "
            "exchanges need one (`accord demo` writes a scenario into the data folder; or pass "
            "--scenario or --source)"
        )


# -- accord app: the partner apps ---------------------------------------------------------------

app = typer.Typer(
    help="Partner apps of the API: register, review, test people, revoke.", no_args_is_help=True
)
DataDir = Annotated[Path | None, typer.Option(help="Folder of the Accord store.")]


@app.command("register")
@handled
def register(
    name: Annotated[str, typer.Argument(help="The app's name, as people see it.")],
    *,
    party: Annotated[str, typer.Option(help="The party the app belongs to.")],
    agreement: Annotated[str, typer.Option(help="The agreement it is registered under.")],
    redirect_uri: Annotated[
        list[str] | None, typer.Option(help="A redirect URI for the code flow (repeatable).")
    ] = None,
    public: Annotated[
        bool, typer.Option(help="A public client: no secret, the code flow with PKCE only.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Register a partner app; prints its client id and (once) its secret."""
    from accord.api.apps import PartnerApps

    with open_accord(data_dir=data_dir) as accord:
        registered, secret = PartnerApps(accord).register(
            name, party=party, agreement=agreement, redirect_uris=redirect_uri or [], public=public
        )
    out.print(f"client_id: {registered.client_id}")
    if secret:
        out.print(f"client_secret: {secret}  (shown once; only its hash is kept)")


@app.command("review")
@handled
def review(
    client_id: Annotated[str, typer.Argument(help="The app reviewed.")],
    scope: Annotated[str, typer.Argument(help="The permission, category:purpose[:write].")],
    *,
    reviewer: Annotated[str, typer.Option(help="Who reviewed it.")],
    findings: Annotated[str, typer.Option(help="What the review found.")],
    approve: Annotated[bool, typer.Option("--approve/--reject", help="The verdict.")] = True,
    data_dir: DataDir = None,
) -> None:
    """Record an app review of one permission (only approved ones reach the public)."""
    from accord.api.apps import PartnerApps
    from accord.api.scopes import Scope

    with open_accord(data_dir=data_dir) as accord:
        PartnerApps(accord).review(
            client_id, Scope.parse(scope), approved=approve, reviewer=reviewer, findings=findings
        )
    out.print(f"{scope}: {'approved' if approve else 'rejected'} for {client_id}")


@app.command("test-person")
@handled
def add_test_person(
    client_id: Annotated[str, typer.Argument(help="The app.")],
    person: Annotated[
        str,
        typer.Argument(help="The person, by their id at the data holder (the other party)."),
    ],
    data_dir: DataDir = None,
) -> None:
    """Make a person one of the partner's test people for an app.

    The person must be one the other party of the app's agreement holds, and has not erased.
    """
    from accord.api.apps import PartnerApps

    with open_accord(data_dir=data_dir) as accord:
        PartnerApps(accord).add_test_person(client_id, person)
    out.print(f"{person} is a test person of {client_id}")


@app.command("revoke")
@handled
def revoke(
    client_id: Annotated[str, typer.Argument(help="The app to revoke.")],
    data_dir: DataDir = None,
) -> None:
    """Revoke an app: its tokens stop working at once and every grant is withdrawn."""
    from accord.api.apps import PartnerApps

    with open_accord(data_dir=data_dir) as accord:
        withdrawn = PartnerApps(accord).revoke_app(client_id)
    out.print(f"revoked {client_id}; {withdrawn} grants withdrawn")
