"""The command line, end to end on a SQLite store in a temporary folder."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.cli import app
from accord.service import Accord

pytestmark = pytest.mark.integration

EXAMPLES = resources.files("accord") / "examples"
runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture
def data(tmp_path: Path) -> list[str]:
    return [
        "--data-dir",
        str(tmp_path / "data"),
        "--database-url",
        f"sqlite:///{tmp_path / 'data' / 'accord.db'}",
    ]


def example(name: str, tmp_path: Path) -> str:
    path = tmp_path / name
    path.write_text((EXAMPLES / name).read_text())
    return str(path)


def test_check_explains_a_valid_agreement(tmp_path: Path) -> None:
    output = run("agreement", "check", example("chirp-reelix.yaml", tmp_path))
    assert "valid" in output
    assert "watch-activity: reelix → chirp (read)" in output


def test_check_reports_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (EXAMPLES / "chirp-reelix.yaml")
        .read_text()
        .replace("categories: [user.content.private]", "categories: [user.content.privte]", 1)
    )
    result = runner.invoke(app, ["agreement", "check", str(bad)])
    assert result.exit_code == 2
    assert "clauses[2].categories[0]: unknown data category 'user.content.privte'" in (
        result.output
    )
    assert f"{bad}:" in result.output
    assert "did you mean 'user.content.private'" in result.output


def test_check_a_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["agreement", "check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read" in result.output


def test_lifecycle_consent_and_decisions(tmp_path: Path, data: list[str]) -> None:
    doc = example("chirp-reelix.yaml", tmp_path)
    run("agreement", "register", doc, *data)
    # activation before review is refused, with the reason
    refused = run("agreement", "activate", "chirp-reelix", *data, code=2)
    assert "can move to" in refused
    run("agreement", "review", "chirp-reelix", "--reviewer", "Dana", "--findings", "none", *data)
    assert "active" in run("agreement", "activate", "chirp-reelix", *data)
    listing = run("agreement", "list", *data)
    assert "chirp-reelix" in listing
    assert "Dana" in listing

    # Reelix's member r1 lives in New York, as Reelix's own records say
    members = tmp_path / "members.csv"
    members.write_text("person,jurisdiction\nr1,US-NY\n")
    assert "1 person of reelix recorded" in run(
        "person", "load", str(members), "--party", "reelix", *data
    )

    # a consent collected in Germany and bundled with other terms is refused under GDPR Art. 7(2)
    grant = [
        "consent",
        "grant",
        "--person",
        "r1",
        "--controller",
        "reelix",
        "--recipient",
        "chirp",
        "--purpose",
        "functional.service",
        "--category",
        "user.behavior.media_consumption",
        "--operation",
        "read",
        "--notice",
        "n-2026",
        "--given",
        "2026-11-01",
    ]
    bundled = run(*grant, "--jurisdiction", "DE", "--bundled", "--id", "k0", *data, code=2)
    assert "Art. 7(2)" in bundled
    run(*grant, "--separate", "--id", "k1", *data)
    assert "k1" in run("consent", "list", "--person", "r1", "--controller", "reelix", *data)

    ask = [
        "decide",
        "--requester",
        "chirp",
        "--agreement",
        "chirp-reelix",
        "--clause",
        "watch-activity",
        "--operation",
        "read",
        "--purpose",
        "functional.service",
        "--category",
        "user.behavior.media_consumption",
        "--at",
        "2026-11-29T12:00:00",
        "--json",
        *data,
    ]
    allowed = json.loads(run(*ask))
    assert allowed["allowed"] is True
    assert allowed["people_allowed"] == 1
    assert allowed["ledger_index"] is not None

    # after withdrawal nobody's data goes
    withdrawn = run("consent", "withdraw", "k1", "--at", "2026-11-10", *data)
    assert "withdrawn" in withdrawn
    after = json.loads(run(*ask))
    assert after["people_allowed"] == 0
    assert after["people_withheld_by_rule"]["law:vppa.consent"] == 1

    # an abuse: the same data for ads under the feed clause; refused, exit 3, and logged
    abuse = [a if a != "functional.service" else "marketing.advertising" for a in ask]
    refused_json = json.loads(run(*abuse, code=3))
    assert refused_json["allowed"] is False
    assert refused_json["rules"] == ["clause:purpose"]
    assert refused_json["ledger_index"] > allowed["ledger_index"]

    assert "the ledger verifies" in run("ledger", "verify", *data)


def test_bad_input_is_a_message_not_a_trace(data: list[str]) -> None:
    out = run(
        "decide",
        "--requester",
        "reelix",
        "--agreement",
        "a",
        "--clause",
        "c",
        "--purpose",
        "functional.servce",
        "--category",
        "user.name",
        *data,
        code=2,
    )
    assert "unknown purpose 'functional.servce'" in out
    out = run(
        "decide",
        "--requester",
        "reelix",
        "--agreement",
        "a",
        "--clause",
        "c",
        "--purpose",
        "functional.service",
        "--category",
        "user.name",
        "--at",
        "yesterday",
        *data,
        code=2,
    )
    assert "is not a date or time" in out
    out = run(
        "decide",
        "--requester",
        "reelix",
        "--agreement",
        "a",
        "--clause",
        "c",
        "--purpose",
        "functional.service",
        "--category",
        "user.name",
        "--subjects",
        "everyone",
        *data,
        code=2,
    )
    assert "--subjects 'everyone'" in out


def test_demo_runs_every_flow(tmp_path: Path) -> None:
    output = run(
        "demo",
        "--people",
        "300",
        "--data-dir",
        str(tmp_path / "demo"),
        "--report",
        str(tmp_path / "report.html"),
    )
    for flow in ("Friend picker", "Message display", "Interest segments", "read every inbox"):
        assert flow in output
    assert "law:sca.no-bulk-read" in output
    assert "lifecycle:chirp-reelix-titan" in output
    assert "ledger verified" in output


WATCH_GRANT = [
    "consent", "grant",
    "--person", "r1",
    "--controller", "reelix",
    "--recipient", "chirp",
    "--purpose", "functional.service",
    "--category", "user.behavior.media_consumption",
    "--notice", "n-2026",
    "--given", "2026-11-01",
]  # fmt: skip
WATCH_DECISION = [
    "decide",
    "--requester", "chirp",
    "--agreement", "chirp-reelix",
    "--clause", "watch-activity",
    "--purpose", "functional.service",
    "--category", "user.behavior.media_consumption",
    "--at", "2026-11-29T12:00:00",
    "--json",
]  # fmt: skip


@pytest.fixture
def us_member(tmp_path: Path, data: list[str]) -> list[str]:
    """An active agreement, and Reelix's member r1, who lives in New York."""
    run("agreement", "register", example("chirp-reelix.yaml", tmp_path), *data)
    run("agreement", "review", "chirp-reelix", "--reviewer", "Dana", "--findings", "none", *data)
    run("agreement", "activate", "chirp-reelix", *data)
    members = tmp_path / "members.csv"
    members.write_text("person,jurisdiction\nr1,US-NY\n")
    run("person", "load", str(members), "--party", "reelix", *data)
    return data


def _residence(data: list[str]) -> str:
    with Accord.open(database_url=data[3], data_dir=Path(data[1])) as accord:
        return accord.person("reelix", "r1").jurisdiction


def test_a_consent_never_moves_a_person(us_member: list[str]) -> None:
    data = us_member
    # A bundled consent that says it was collected in Canada: it is recorded as collected there...
    run(*WATCH_GRANT, "--jurisdiction", "CA", "--bundled", "--id", "k-ca", *data)
    # ... but r1 still lives in New York, so the VPPA still binds their watch history: a bundled
    # consent is not "distinct and separate" (18 U.S.C. 2710(b)(2)(B)(i)), and nothing flows.
    assert _residence(data) == "US-NY"
    decided = json.loads(run(*WATCH_DECISION, *data))
    assert decided["people_allowed"] == 0
    assert decided["people_withheld_by_rule"]["law:vppa.consent"] == 1


def test_a_consent_from_nowhere_is_refused(us_member: list[str]) -> None:
    data = us_member
    bad = run(*WATCH_GRANT, "--jurisdiction", "XX-YY", "--id", "k-x", *data, code=2)
    assert "'XX' is not an ISO 3166-1 country code" in bad
    bad = run(*WATCH_GRANT, "--jurisdiction", "US-ZZ", "--id", "k-z", *data, code=2)
    assert "not an ISO 3166-2 subdivision of US" in bad
    assert _residence(data) == "US-NY"
    assert "k-x" not in run("consent", "list", "--person", "r1", "--controller", "reelix", *data)


def test_a_consent_for_someone_the_party_does_not_hold_is_refused(us_member: list[str]) -> None:
    data = us_member
    out = run(
        *[a if a != "r1" else "r404" for a in WATCH_GRANT], "--jurisdiction", "CA", *data, code=2
    )
    assert "reelix has no person 'r404'" in out
    assert "never places a person" in out


def test_people_load_says_which_line_is_wrong(tmp_path: Path, us_member: list[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("person,jurisdiction\nr2,DE\nr3,Narnia\n")
    out = run("person", "load", str(bad), "--party", "reelix", *us_member, code=2)
    assert "bad.csv:3" in out
    assert "not a jurisdiction" in out
    no_column = tmp_path / "no-column.csv"
    no_column.write_text("person,home\nr2,DE\n")
    out = run("person", "load", str(no_column), "--party", "reelix", *us_member, code=2)
    assert "no-column.csv:1" in out
