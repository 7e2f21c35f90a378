"""``accord ads partner`` on a small reference scenario, and its refusal without one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from typer.testing import CliRunner

from accord.cli import app
from accord.datafolder import DataFolder
from accord.scenario.build import register_agreements
from accord.scenario.generate import write_databases
from accord.scenario.population import generate
from accord.service import Accord

pytestmark = pytest.mark.integration
runner = CliRunner()
AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PEOPLE, SEED = 2_000, 5


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding a finished scenario: both parties' databases and the store."""
    data = DataFolder(tmp_path_factory.mktemp("partner") / "data")
    write_databases(data.parties, people=PEOPLE, seed=SEED, at=AT, parallel=False)
    population = generate(PEOPLE, seed=SEED, at=AT)
    with Accord.open(data_dir=data.path) as accord:
        register_agreements(accord, AT)
        accord.import_records(population.people, population.consents, population.opt_outs)
    data.mark(people=PEOPLE, seed=SEED, ready=True, made_by="test")
    return data.path


def test_partner_prints_the_audience_the_lookalike_and_the_lift(folder: Path) -> None:
    result = runner.invoke(app, ["ads", "partner", "--min-size", "20", "--data-dir", str(folder)])
    assert result.exit_code == 0, result.output
    assert "audience on Chirp" in result.output
    assert "lookalike" in result.output
    assert "interval" in result.output
    shown = json.loads(
        runner.invoke(
            app, ["ads", "partner", "--min-size", "20", "--json", "--data-dir", str(folder)]
        ).stdout
    )
    assert shown["audience"] >= 20
    low, high = shown["lift"]["interval"]
    assert low <= shown["lift"]["lift"] <= high


def test_partner_runs_the_lookalike_and_the_lift_on_spark(
    folder: Path, spark: SparkSession
) -> None:
    # --engine spark with no master: the settings' master, this process's Spark application.
    result = runner.invoke(
        app,
        ["ads", "partner", "--min-size", "20", "--engine", "spark", "--data-dir", str(folder)],
    )
    assert result.exit_code == 0, result.output
    assert "lookalike:" in result.output
    assert "interval" in result.output
    assert spark.sparkContext.master == "local[2]"


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--engine", "hadoop"], "no engine 'hadoop'"),  # not an engine Accord has
        (["--spark-master", "local[1]"], "goes with --engine spark"),  # a master without Spark
    ],
)
def test_partner_refuses_a_wrong_engine(folder: Path, options: list[str], says: str) -> None:
    result = runner.invoke(app, ["ads", "partner", *options, "--data-dir", str(folder)])
    assert result.exit_code == 2
    assert says in result.output


def test_partner_refuses_a_folder_without_a_scenario(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ads", "partner", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "accord demo" in result.output
