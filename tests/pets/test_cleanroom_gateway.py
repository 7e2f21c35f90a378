"""The clean room on the reference scenario: rows fetched through the gateway, reports out."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from typer.testing import CliRunner

from accord.ledger.audit import verify_ledger
from accord.pets.budget import PrivacyBudgets
from accord.pets.cleanroom import CleanRoom
from accord.pets.cleanroom_cli import app
from accord.pets.engines import SparkEngine
from accord.pets.partnership import Partnership, fetch_report_rows, scenario_partnership
from accord.pets.reports import fortnightly_report, report_query, report_rule
from accord.pets.rules import PrivacyRule

pytestmark = pytest.mark.integration

PEOPLE, SEED = 1_500, 11
START = date(2026, 11, 1)


@pytest.fixture(scope="module")
def partnership(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Partnership]:
    with scenario_partnership(
        tmp_path_factory.mktemp("cleanroom") / "world", people=PEOPLE, seed=SEED
    ) as p:
        yield p
        report = verify_ledger(p.accord.ledger)
        assert report.ok, report


def reelix_db(p: Partnership) -> Path:
    return Path(str(p.gateway.sources["reelix"].engine.url.database))


def test_rows_enter_the_room_only_through_the_gateway(partnership: Partnership) -> None:
    with CleanRoom(report_rule(min_people=5), analyst="chirp") as room:
        release = fetch_report_rows(room, partnership)
        table = room.tables["recommendations"]
    assert release.columns[0] == "sender_member_id"
    assert table.rows == len(release.rows) > 0
    assert table.party == "reelix"
    with sqlite3.connect(reelix_db(partnership)) as db:
        every = db.execute(
            "SELECT sender_member_id, sent_at, interface, surface, variant, clicked_at "
            "FROM recommendations"
        ).fetchall()
    # Only the people the policy lets through: a strict subset of Reelix's rows, all of them
    # rows Reelix holds.
    assert set(release.rows) < set(every)
    assert release.people == len({r[0] for r in release.rows})
    leaf = partnership.accord.ledger.leaf(release.receipts[-1].index).entry()
    assert leaf["kind"] == "release"
    assert leaf["agreement"] == "chirp-reelix-cleanroom"


def test_the_fortnightly_report_counts_sends_and_clicks_with_its_threshold(
    partnership: Partnership,
) -> None:
    minimum = 4
    with CleanRoom(report_rule(min_people=minimum), analyst="chirp") as room:
        release = fetch_report_rows(room, partnership)
        result = fortnightly_report(room, START, 28, by_day=False)
    # The reference, computed in Python from what the gateway released.
    groups: dict[tuple[str, str, str], list[tuple[str, str | None]]] = defaultdict(list)
    for sender, sent_at, interface, surface, variant, clicked_at in release.rows:
        if "2026-11-01" <= sent_at < "2026-11-29":
            groups[(interface, surface, variant)].append((sender, clicked_at))
    expected = sorted(
        (*key, len(rows), sum(c is not None for _, c in rows))
        for key, rows in groups.items()
        if len({s for s, _ in rows}) >= minimum
    )
    assert result.columns == ("interface", "surface", "variant", "sends", "clicks")
    assert expected  # some groups are big enough
    assert len(expected) < len(groups)  # and some are not, and are held back
    assert sorted(result.rows) == expected


def test_the_daily_report_holds_back_every_small_day(partnership: Partnership) -> None:
    with CleanRoom(report_rule(), analyst="chirp") as room:
        fetch_report_rows(room, partnership)
        result = fortnightly_report(room, START)
    assert result.columns == ("day", "interface", "surface", "variant", "sends", "clicks")
    assert result.rows == []  # no day of this small population has 50 senders in one group


def test_a_noisy_report_spends_every_senders_budget(partnership: Partnership) -> None:
    budgets = PrivacyBudgets(partnership.accord.engine, partnership.accord.ledger)
    privacy = PrivacyRule(epsilon=1.0, delta=1e-8, max_rows=5)
    with CleanRoom(
        report_rule(min_people=4, privacy=privacy), analyst="chirp", budgets=budgets
    ) as room:
        release = fetch_report_rows(room, partnership)
        result = room.run(report_query(START, 28, by_day=False))
    senders = {r[0] for r in release.rows}
    (spend,) = result.spends
    assert spend.people == len(senders)
    some = sorted(senders)[0]
    assert budgets.remaining("reelix", some).epsilon == pytest.approx(9.0)
    assert result.noise is not None
    assert all(sends >= 0 and clicks >= 0 for *_, sends, clicks in result.rows)


@pytest.mark.parametrize(
    ("by_day", "minimum"),
    [
        (False, 4),  # by interface, surface and variant over four weeks
        (True, 2),  # a row a day: fewer senders a row
    ],
)
def test_the_fortnightly_report_is_the_same_on_spark(
    partnership: Partnership, spark: SparkSession, by_day: bool, minimum: int
) -> None:
    results = []
    for engine in (None, SparkEngine(spark)):
        with CleanRoom(
            report_rule(min_people=minimum),
            analyst="chirp",
            ledger=partnership.accord.ledger,
            engine=engine,
        ) as room:
            fetch_report_rows(room, partnership)
            results.append(fortnightly_report(room, START, 28, by_day=by_day))
    duck, on_spark = results
    assert duck.rows, "the report should have rows at this minimum"
    assert on_spark.columns == duck.columns
    assert on_spark.rows == duck.rows
    # Both are releases from the room, each with its own ledger entry.
    assert on_spark.receipt is not None
    assert duck.receipt is not None
    assert on_spark.receipt.index > duck.receipt.index


# -- the command line ------------------------------------------------------------------------------

runner = CliRunner()

RULE = """\
kind: aggregation
tables:
  recommendations: {person: sender_member_id}
dimensions: [recommendations.interface]
metrics:
  recommendations.clicked_at: [count]
min_people: 5
"""


def test_check_shows_the_query_as_it_runs(tmp_path: Path) -> None:
    rule = tmp_path / "rule.yaml"
    rule.write_text(RULE)
    ok = runner.invoke(
        app,
        [
            "check",
            "--rule",
            str(rule),
            "--query",
            "SELECT interface, count(*) AS n FROM recommendations GROUP BY 1",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "allowed" in ok.output
    assert "HAVING" in ok.output
    refused = runner.invoke(
        app, ["check", "--rule", str(rule), "--query", "SELECT * FROM recommendations"]
    )
    assert refused.exit_code == 3
    assert "SELECT * is not allowed" in refused.output
    assert "Traceback" not in refused.output


def test_a_bad_rule_file_says_where(tmp_path: Path) -> None:
    rule = tmp_path / "rule.yaml"
    rule.write_text(RULE.replace("min_people: 5", "min_people: one"))
    result = runner.invoke(app, ["check", "--rule", str(rule), "--query", "SELECT 1"])
    assert result.exit_code == 2
    assert "rule.yaml:7" in result.output
    missing = runner.invoke(app, ["check", "--rule", str(tmp_path / "no.yaml"), "--query", "x"])
    assert missing.exit_code == 2
    assert "cannot read" in missing.output


def test_run_and_report_on_the_scenario(tmp_path: Path) -> None:
    rule = tmp_path / "rule.yaml"
    rule.write_text(RULE)
    ran = runner.invoke(
        app,
        [
            "run",
            "--rule",
            str(rule),
            "--people",
            "600",
            "--data-dir",
            str(tmp_path / "a"),
            "--query",
            "SELECT interface, count(*) AS sends FROM recommendations GROUP BY 1",
            "--json",
        ],
    )
    assert ran.exit_code == 0, ran.output
    rows = json.loads(ran.output[ran.output.index("{") :])["rows"]
    assert {"interface", "sends"} <= set(rows[0])
    report = runner.invoke(
        app,
        [
            "report",
            "--people",
            "600",
            "--data-dir",
            str(tmp_path / "b"),
            "--min-people",
            "3",
            "--no-by-day",
            "--epsilon",
            "1",
            "--delta",
            "1e-8",
            "--start",
            "2026-11-01",
            "--days",
            "28",
        ],
    )
    assert report.exit_code == 0, report.output
    assert "laplace noise" in report.output
    assert "spent the budget of" in report.output
    assert "released from the room (ledger entry" in report.output
    bad = runner.invoke(app, ["report", "--start", "soon", "--data-dir", str(tmp_path / "c")])
    assert bad.exit_code == 2
    assert "not a date" in bad.output
    for mechanism in ("laplace", "gaussian"):  # rows are chosen with noise: both need a delta
        no_delta = runner.invoke(
            app, ["report", "--epsilon", "1", "--mechanism", mechanism, "--data-dir", str(tmp_path)]
        )
        assert no_delta.exit_code == 2
        assert "needs a delta" in no_delta.output


def test_the_privacy_budget_lasts_from_one_report_to_the_next(tmp_path: Path) -> None:
    """Each sender has epsilon 10 in all; a report at epsilon 4 spends 4 of it. Two reports on
    one data folder leave 2, so the third is refused, whatever the command line is run as; a new
    folder is a new store, where everyone starts with the whole budget."""

    def report(folder: Path, *more: str) -> Any:
        return runner.invoke(
            app,
            [
                "report",
                "--people",
                "150",
                "--data-dir",
                str(folder),
                "--min-people",
                "2",
                "--no-by-day",
                "--epsilon",
                "4",
                "--delta",
                "1e-8",
                "--start",
                "2026-11-01",
                "--days",
                "28",
                *more,
            ],
        )

    same = tmp_path / "same"
    for run in (1, 2):
        ran = report(same)
        assert ran.exit_code == 0, (run, ran.output)
        assert "spent the budget of" in ran.output
    spent = report(same)
    assert spent.exit_code == 3, spent.output
    assert "less than epsilon 4.0" in spent.output
    assert "privacy budget left" in spent.output
    assert "nothing was charged or released" in spent.output
    assert "Traceback" not in spent.output
    # Another population asked of the same folder would start everyone afresh: refused.
    other = report(same, "--seed", "12")
    assert other.exit_code == 2, other.output
    assert "(seed 7), not 150 (seed 12)" in other.output
    assert "leave out --people and --seed" in other.output
    assert report(tmp_path / "fresh").exit_code == 0


def test_run_chooses_its_engine(tmp_path: Path, spark: SparkSession) -> None:
    rule = tmp_path / "rule.yaml"
    rule.write_text(RULE)

    def run(*engine: str) -> Any:
        return runner.invoke(
            app,
            [
                "run",
                "--rule",
                str(rule),
                "--people",
                "300",
                "--data-dir",
                str(tmp_path / "a"),
                "--query",
                "SELECT interface, count(*) AS sends FROM recommendations GROUP BY 1 ORDER BY 1",
                "--json",
                *engine,
            ],
        )

    def rows(output: str) -> Any:
        return json.loads(output[output.index("{") :])["rows"]

    on_duckdb = run()
    on_spark = run("--engine", "spark")  # the Spark application of this process
    assert on_duckdb.exit_code == 0, on_duckdb.output
    assert on_spark.exit_code == 0, on_spark.output
    assert rows(on_spark.output) == rows(on_duckdb.output) != []
    unknown = run("--engine", "sqlite")
    assert unknown.exit_code == 2
    assert "no engine 'sqlite': choose duckdb or spark" in unknown.output
    stray = run("--spark-master", "local[1]")
    assert stray.exit_code == 2
    assert "--spark-master goes with --engine spark" in stray.output
