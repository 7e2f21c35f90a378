"""``accord cleanroom … --json`` prints JSON alone on stdout, so a script can read it as it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.pets.cleanroom_cli import app

pytestmark = pytest.mark.integration


def test_report_json_is_only_json_on_stdout(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "report",
            "--people", "400",
            "--data-dir", str(tmp_path / "room"),
            "--min-people", "3",
            "--no-by-day",
            "--start", "2026-11-01",
            "--days", "28",
            "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # the whole of stdout, not from the first brace
    assert set(report) == {"columns", "rows", "noise", "spends"}
    assert report["rows"], "the report should have rows at this minimum"
    # what the command did on the way is still said, on stderr
    assert "through the gateway" in result.stderr
