"""``accord ads campaign list``, ``pause`` and ``resume`` on a small store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.ads.model import CampaignStatus
from accord.ads.store import AdsStore
from accord.cli import app
from accord.service import Accord
from ads.test_campaigns_follow import _world

pytestmark = pytest.mark.integration
runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture
def where(tmp_path: Path) -> list[str]:
    """The options naming a store with Chirp's two campaigns."""
    url, data = f"sqlite:///{tmp_path / 'accord.db'}", tmp_path / "accord"
    with Accord.open(url, data) as accord:
        _world(accord)
    return ["--database-url", url, "--data-dir", str(data)]


def _statuses(where: list[str]) -> dict[int, str]:
    with Accord.open(where[1], Path(where[3])) as accord:
        return {c.id: c.status.value for c in AdsStore(accord.engine, "chirp").campaigns()}


def test_list_pause_resume(where: list[str]) -> None:
    listed = json.loads(run("ads", "campaign", "list", "--json", *where))
    assert [(c["name"], c["advertiser"], c["status"]) for c in listed] == [
        ("high", "northwind", "active"),
        ("low", "northwind", "active"),
    ]
    assert listed[0]["daily_budget_micros"] == 2_000_000
    assert listed[0]["lifetime_budget_micros"] is None
    high = listed[0]["id"]
    assert "is now paused" in run("ads", "campaign", "pause", str(high), *where)
    assert _statuses(where)[high] == CampaignStatus.PAUSED.value
    assert "was already paused" in run("ads", "campaign", "pause", str(high), *where)
    table = run("ads", "campaign", "list", *where)
    assert "paused" in table
    assert "2.00" in table  # the daily budget, in dollars
    assert "none" in table  # no lifetime budget
    assert "is now active" in run("ads", "campaign", "resume", str(high), *where)
    assert _statuses(where)[high] == CampaignStatus.ACTIVE.value


def test_an_unknown_campaign_is_an_error_not_a_trace(where: list[str]) -> None:
    out = run("ads", "campaign", "pause", "999", *where, code=2)
    assert "chirp has no campaign 999" in out
