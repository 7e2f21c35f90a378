"""``accord scenario generate`` on the sub-application."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.scenario.cli import app

runner = CliRunner()


@pytest.mark.integration
def test_generate_writes_both_databases_and_counts_their_rows(tmp_path: Path) -> None:
    out = tmp_path / "scenario"
    args = ["generate", "--people", "120", "--seed", "3", "--out", str(out)]
    result = runner.invoke(app, [*args, "--at", "2025-06-01T00:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "watch_events" in result.output
    for name, table in (("chirp.db", "people"), ("reelix.db", "members")):
        with closing(sqlite3.connect(out / name)) as db:
            assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == (120,)  # noqa: S608
            newest = db.execute(
                f"SELECT max({'created_at' if table == 'people' else 'joined_at'})"  # noqa: S608
                f" FROM {table}"
            ).fetchone()[0]
            assert newest < "2025-06-01"


@pytest.mark.integration
@pytest.mark.parametrize(
    "args",
    [
        ["--people", "0"],  # nobody to generate
        ["--at", "yesterday"],  # not an instant
    ],
)
def test_generate_refuses_bad_options(tmp_path: Path, args: list[str]) -> None:
    result = runner.invoke(app, ["generate", "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert not (tmp_path / "chirp.db").exists()
