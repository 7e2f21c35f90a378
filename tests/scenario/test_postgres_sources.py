"""The parties' own databases on PostgreSQL: `accord scenario generate --database-url` writes
them with COPY on a fresh database, and a bulk release reads from them the rows it reads from
the SQLite files the same seed writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from accord.cli import app
from accord.consent import Operation
from accord.gateway import Exchange, Gateway, Keyring
from accord.requests import Request
from accord.scenario.build import load_population, register_agreements
from accord.scenario.generate import write_databases
from accord.scenario.population import CHIRP, REELIX, generate
from accord.scenario.postgres import party_url
from accord.service import Accord
from accord.sources import Source, load
from accord.store.engine import make_engine
from databases import fresh_postgres_database

pytestmark = [pytest.mark.postgres, pytest.mark.integration]

AT = datetime(2026, 11, 29, 12, tzinfo=UTC)
PEOPLE, SEED = 300, 11
WATCHED = "user.behavior.media_consumption"


def _watch_activity() -> Request:
    return Request(
        requester=CHIRP,
        agreement="chirp-reelix",
        clause="watch-activity",
        operation=Operation.READ,
        purpose="functional.service",
        categories=frozenset({WATCHED}),
        at=AT,
    )


@contextmanager
def _released_from(reelix_url: str, store: Path) -> Iterator[list[tuple[object, ...]]]:
    """The bulk release of everyone's watch events, read from Reelix's database at
    ``reelix_url``, judged by a store holding the scenario's consents."""
    dataset = load(str(resources.files("accord") / "scenario" / "datasets" / "reelix.yaml"))
    engine = make_engine(reelix_url)
    try:
        with Accord.open(data_dir=store) as accord:
            register_agreements(accord, AT)
            load_population(accord, generate(PEOPLE, seed=SEED, at=AT))
            keyring = Keyring()
            door = Gateway(accord, {REELIX: Source(engine, dataset)}, keyring)
            exchange = Exchange(_watch_activity(), keyring.issue(CHIRP), "watch_events")
            yield door.exchange(exchange).rows
    finally:
        engine.dispose()


def test_generate_writes_the_parties_on_postgresql_and_a_bulk_release_reads_them(
    tmp_path: Path,
) -> None:
    with fresh_postgres_database() as url:
        result = CliRunner().invoke(
            app,
            [
                "scenario",
                "generate",
                "--people",
                str(PEOPLE),
                "--seed",
                str(SEED),
                "--at",
                AT.isoformat(),
                "--database-url",
                url,
                "--out",
                str(tmp_path / "unused"),
            ],
        )
        assert result.exit_code == 0, result.output
        written = write_databases(tmp_path / "sqlite", people=PEOPLE, seed=SEED, at=AT)
        pg = create_engine(url)
        try:
            with pg.connect() as conn:
                for party, tables in ((CHIRP, ("people", "friendships")), (REELIX, ("members",))):
                    for table in (*tables, "watch_events") if party == REELIX else tables:
                        (count,) = conn.execute(
                            text(f'SELECT count(*) FROM "{party}"."{table}"')  # noqa: S608
                        ).one()
                        assert count == written.rows[table], (party, table)
        finally:
            pg.dispose()
        with _released_from(party_url(url, REELIX), tmp_path / "pg-store") as on_postgres:
            pg_rows = sorted(map(tuple, on_postgres))
        with _released_from(f"sqlite:///{written.reelix}", tmp_path / "sqlite-store") as on_sqlite:
            sqlite_rows = sorted(map(tuple, on_sqlite))
    assert pg_rows, "some watch events are released"
    assert pg_rows == sqlite_rows
