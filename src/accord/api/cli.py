"""``accord serve`` and ``accord app``: run the partner API, and manage the partner apps.

``serve`` runs uvicorn over :func:`worker_app`, a factory each worker process calls; the options
reach the workers in the environment (``ACCORD_API_SERVE``, a JSON document) with one signing key
for all of them (``ACCORD_API_SECRET``, made up for the run when unset).
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
from typing import Annotated, Any

import typer
import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from accord.api.app import create_app
from accord.api.apps import PartnerApps
from accord.api.scopes import Scope
from accord.api.serving import PROTOCOL
from accord.api.settings import ApiSettings
from accord.console import PartyDatasets, PartySources, ScenarioDir, err, handled, pairs
from accord.errors import AccordError, ConfigError
from accord.service import Accord
from accord.sources import Source, load
from accord.store.engine import make_engine

SERVE_ENV = "ACCORD_API_SERVE"
out = Console()


def plan(
    sources: list[str],
    datasets: list[str],
    scenario: Path | None,
    data_dir: Path | None,
    database_url: str | None,
) -> dict[str, Any]:
    """What each worker opens: the store, and each party's database and dataset declaration."""
    urls = pairs(sources, "--source", ConfigError)
    if scenario is not None:
        for party in ("chirp", "reelix"):
            if party in urls:
                continue
            database = scenario / f"{party}.db"
            # SQLite would make an empty database there, and the API would serve nobody.
            if not database.is_file():
                raise ConfigError(
                    f"--scenario {scenario}: there is no {party}.db in it (write both parties' "
                    f"databases with `accord scenario generate --out {scenario}`)"
                )
            urls[party] = f"sqlite:///{database.resolve()}"
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


def worker_app() -> FastAPI:
    """The app one worker serves, from the plan ``serve`` left in the environment."""
    config = json.loads(os.environ.get(SERVE_ENV, "{}"))
    stack = ExitStack()
    try:
        accord = stack.enter_context(
            Accord.open(
                config.get("database_url"),
                Path(config["data_dir"]) if config.get("data_dir") else None,
            )
        )
        sources = {}
        for party, url in config.get("sources", {}).items():
            engine = make_engine(url)
            stack.callback(engine.dispose)
            sources[party] = Source(engine, load(config["datasets"][party]))
    except BaseException:
        stack.close()
        raise
    access = logging.getLogger("accord.api")
    if not access.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)

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

    return create_app(accord, sources, ApiSettings(), lifespan=lifespan)


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
    os.environ[SERVE_ENV] = json.dumps(layout)
    os.environ.setdefault("ACCORD_API_SECRET", secrets.token_urlsafe(32))
    uvicorn.run(
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
    with Accord.open(data_dir=data_dir) as accord:
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
    with Accord.open(data_dir=data_dir) as accord:
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
    with Accord.open(data_dir=data_dir) as accord:
        PartnerApps(accord).add_test_person(client_id, person)
    out.print(f"{person} is a test person of {client_id}")


@app.command("revoke")
@handled
def revoke(
    client_id: Annotated[str, typer.Argument(help="The app to revoke.")],
    data_dir: DataDir = None,
) -> None:
    """Revoke an app: its tokens stop working at once and every grant is withdrawn."""
    with Accord.open(data_dir=data_dir) as accord:
        withdrawn = PartnerApps(accord).revoke_app(client_id)
    out.print(f"revoked {client_id}; {withdrawn} grants withdrawn")
