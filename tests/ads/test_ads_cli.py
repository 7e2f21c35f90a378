"""``accord ads simulate`` and ``accord ads spend`` end to end, on a small scenario."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.ads.store import AdsStore
from accord.cli import app
from accord.scenario.ads import REELIX_YEARLY, SCALE_AUDIENCE
from accord.service import Accord

pytestmark = pytest.mark.integration
runner = CliRunner()
PEOPLE = 1_000


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture(scope="module")
def season(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three simulated days of a three-year season for 1,000 people."""
    data = tmp_path_factory.mktemp("ads") / "data"
    out = run("ads", "simulate", "--people", str(PEOPLE), "--days", "3", "--data-dir", str(data))
    assert "ad requests" in out
    return data


def test_a_season_is_recorded_and_the_ledger_verifies(season: Path) -> None:
    spent = json.loads(run("ads", "spend", "--json", "--by", "month", "--data-dir", str(season)))
    rows = spent["rows"]
    assert spent["by"] == "month"
    assert {r["period"] for r in rows} == {"2023-01"}
    assert all(r["days"] == 3 for r in rows)
    by = {r["advertiser"]: r for r in rows}
    assert "reelix" in by
    assert all(r["spend_micros"] > 0 and r["impressions"] > 0 for r in by.values())
    # Reelix is the largest advertiser, listed first.
    assert rows[0]["advertiser"] == "reelix"
    assert by["reelix"]["spend_micros"] == max(r["spend_micros"] for r in rows)
    # Reelix is a party, with no agreement in this store; the others are no party at all.
    assert by["reelix"]["access"]["party"] == "reelix"
    assert by["reelix"]["access"]["clauses_in_force"] == 0
    assert all(r["access"] is None for r in rows if r["advertiser"] != "reelix")
    # Every charge is in the ledger: three days' entries add up to the spend records.
    assert spent["ledger"]["ad_spend_micros"] == spent["spend_micros"]
    assert spent["spend_micros"] == sum(r["spend_micros"] for r in rows)
    assert spent["ledger"]["ad_spend_entries"] >= 3 * len(rows)
    url = f"sqlite:///{season / 'accord.db'}"
    verified = run("ledger", "verify", "--data-dir", str(season), "--database-url", url)
    assert "the ledger verifies" in verified
    table = run("ads", "spend", "--by", "month", "--data-dir", str(season))
    assert "Reelix" in table
    assert "2023-01" in table
    assert "the same as the spend records" in " ".join(table.split())
    yearly = json.loads(run("ads", "spend", "--json", "--data-dir", str(season)))
    assert yearly["by"] == "year"
    assert {r["period"] for r in yearly["rows"]} == {"2023"}


def test_spend_periods_are_a_year_or_a_month(season: Path) -> None:
    out = run("ads", "spend", "--by", "week", "--data-dir", str(season), code=2)
    assert "--by" in out
    assert "year or month" in out


def test_reelix_buys_in_the_filings_shape_scaled_to_the_population(season: Path) -> None:
    with Accord.open(None, season) as accord:
        campaigns = AdsStore(accord.engine, "chirp").campaigns()
    yearly: dict[int, int] = {}
    for c in campaigns:
        if c.advertiser == "reelix":
            year = c.schedule.start.year
            yearly[year] = yearly.get(year, 0) + (c.lifetime_budget or 0)
    assert sorted(yearly) == [2023, 2024, 2025]
    for year, dollars in zip(sorted(yearly), REELIX_YEARLY, strict=True):
        days = 366 if year == 2024 else 365
        expected = dollars * PEOPLE / SCALE_AUDIENCE * 1_000_000 * days / 365
        assert abs(yearly[year] - expected) <= 2
    # Every other advertiser buys less a day than Reelix does in its first year.
    first_year = sum(
        c.daily_budget
        for c in campaigns
        if c.advertiser == "reelix" and c.schedule.start.year == 2023
    )
    assert max(c.daily_budget for c in campaigns if c.advertiser != "reelix") < first_year


def test_a_second_season_into_the_same_store_is_refused(season: Path) -> None:
    out = run(
        "ads", "simulate", "--people", str(PEOPLE), "--days", "1", "--data-dir", str(season), code=2
    )
    assert "already holds" in out


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--start", "first of May"], "not a date"),  # a date, written YYYY-MM-DD
        (["--people", "50"], "too few"),  # budgets too small to pay for one click a day
    ],
)
def test_bad_options_say_what_is_wrong(tmp_path: Path, args: list[str], said: str) -> None:
    out = run("ads", "simulate", "--days", "1", "--data-dir", str(tmp_path / "data"), *args, code=2)
    assert said in out


def test_train_on_too_few_impressions_says_so(season: Path) -> None:
    out = run("ads", "train", "--data-dir", str(season), code=2)
    assert "too few" in out


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated month of a season for 1,000 people."""
    data = tmp_path_factory.mktemp("ads") / "data"
    run("ads", "simulate", "--people", str(PEOPLE), "--days", "30", "--data-dir", str(data))
    return data


def test_train_writes_a_model_card_to_the_ledger_and_prints_it(month: Path) -> None:
    season = month
    first = run("ads", "train", "--shards", "2", "--data-dir", str(season))
    card = json.loads(first[: first.rindex("}") + 1])
    assert card["partner_people"] == 0  # no partner data is read by this command
    assert card["replaces"] is None
    assert 0.5 < float(card["metrics"]["auc"]) <= 1.0
    assert (
        sum(x["rows"] for x in card["lists"] if not x["name"].endswith("partner")) == card["rows"]
    )
    second = run("ads", "train", "--shards", "2", "--data-dir", str(season))
    again = json.loads(second[: second.rindex("}") + 1])
    assert again["replaces"] == card["model"]  # the lineage: the new card names the old
    shown = run("ledger", "show", "--kind", "model_card", "--data-dir", str(season))
    assert "2 shown that match" in shown  # both cards are ledger entries of their kind
