"""``accord examples``: every shipped example file is written out, and the private match's files
do what docs/psi.md says they do."""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord import agreements as ag
from accord.cli import app
from accord.examples_cli import WHAT
from accord.person_cli import read_people
from accord.pets.psi.choices import Kind
from accord.pets.psi.cli import read_records
from accord.pets.reports import report_rule
from accord.pets.rules import load_rule

pytestmark = pytest.mark.integration

EXAMPLES = resources.files("accord") / "examples"
ADS = "marketing.advertising.third_party.targeted"
runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


def test_every_shipped_example_is_written_as_shipped(tmp_path: Path) -> None:
    shipped = sorted(p.name for p in EXAMPLES.iterdir() if p.is_file())
    listed = sorted(name for name in WHAT if not name.startswith("datasets/"))
    assert shipped == listed, "a file in accord/examples that `accord examples` does not write"
    output = run("examples", str(tmp_path / "out"))
    for name in shipped:
        assert (tmp_path / "out" / name).read_bytes() == (EXAMPLES / name).read_bytes()
        assert name in output


def test_examples_overwrite_only_with_force(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    run("examples", str(folder))
    (folder / "members.csv").write_text("changed\n")
    output = run("examples", str(folder), code=2)
    assert "already there: nothing written (--force overwrites)" in output
    assert (folder / "members.csv").read_text() == "changed\n"
    run("examples", str(folder), "--force")
    assert (folder / "members.csv").read_bytes() == (EXAMPLES / "members.csv").read_bytes()


def test_the_audience_agreement_matches_each_way_only() -> None:
    document = (EXAMPLES / "chirp-reelix-audience.yaml").read_text()
    agreement = ag.parse(document, source="chirp-reelix-audience.yaml")
    senders = {agreement.sender_of(c) for c in agreement.clauses}
    assert senders == {"chirp", "reelix"}
    for clause in agreement.clauses:
        assert clause.granularity is ag.Granularity.MATCH_ONLY
        assert clause.categories == frozenset({"user.contact.email"})
        assert clause.purposes == frozenset({ADS})
        assert clause.consent_needed


def test_the_shipped_report_rule_is_the_one_the_report_runs_under(tmp_path: Path) -> None:
    path = tmp_path / "report-rule.yaml"
    path.write_bytes((EXAMPLES / "report-rule.yaml").read_bytes())
    assert load_rule(path) == report_rule()


@pytest.mark.parametrize("party", ["chirp", "reelix"])
def test_the_audience_files_hold_people_where_they_live_and_reserved_addresses(
    tmp_path: Path, party: str
) -> None:
    path = tmp_path / f"{party}-audience.csv"
    path.write_bytes((EXAMPLES / path.name).read_bytes())
    people = read_people(path, party)
    assert 6 <= len(people) <= 10
    records = list(read_records(path, Kind.EMAIL)())
    assert [p for p, _ in records] == [p.id for p in people]
    # RFC 2606: domains reserved for examples, so no address is anyone's.
    domains = {e.rsplit("@", 1)[1].lower() for _, e in records}
    assert domains <= {"example.com", "example.org", "example.net"}


def test_the_docs_match_lets_only_consenting_people_take_part(tmp_path: Path) -> None:
    """docs/psi.md's "Try it on one machine", on the shipped files: Alice and Bob match; Chloe
    (opted out at Chirp), Diego (no consent at Reelix) and Emma (none at Chirp) do not."""
    files = tmp_path / "examples"
    store = ["--data-dir", str(tmp_path / "store")]
    run("examples", str(files))
    run("agreement", "register", str(files / "chirp-reelix-audience.yaml"), *store)
    run("agreement", "review", "chirp-reelix-audience", "--reviewer", "Privacy board",
        "--findings", "none", "--approve", *store)  # fmt: skip
    run("agreement", "activate", "chirp-reelix-audience", *store)
    for party in ("chirp", "reelix"):
        output = run(
            "person", "load", str(files / f"{party}-audience.csv"), "--party", party, *store
        )
        assert f"6 people of {party} recorded" in output
    consenting = {
        "chirp": ["c0000001", "c0000002", "c0000003", "c0000004"],
        "reelix": ["r0000101", "r0000102", "r0000103", "r0000105"],
    }
    for party, people in consenting.items():
        other = "reelix" if party == "chirp" else "chirp"
        for person in people:
            run("consent", "grant", "--id", f"{person}-match", "--person", person,
                "--controller", party, "--recipient", other, "--purpose", ADS,
                "--category", "user.contact.email", "--notice", f"{party}-ads-2026-01",
                *store)  # fmt: skip
    run("consent", "opt-out", "--person", "c0000003", "--controller", "chirp", *store)
    matched = tmp_path / "matched.txt"
    match = [
        "psi", "run", "--as", "chirp", "--with", "reelix",
        "--agreement", "chirp-reelix-audience",
        "--ours", str(files / "chirp-audience.csv"),
        "--theirs", str(files / "reelix-audience.csv"),
        "--clause", "chirp-match", "--their-clause", "reelix-match",
        "--purpose", ADS, "--workers", "1", *store,
    ]  # fmt: skip
    output = run(*match, "--out", str(matched))
    said = " ".join(output.split())
    assert (
        "2 of our 3 identifiers (3 people allowed to take part) are among the partner's 4" in said
    )
    assert matched.read_text() == "c0000001\nc0000002\n"
    with (files / "chirp-audience.csv").open(newline="") as handle:
        emails = {row["person"]: row["email"] for row in csv.DictReader(handle)}
    assert emails["c0000002"] == "Bob.Tanaka@Example.com", "matched despite its case"
    sized = " ".join(run(*match, "--mode", "size").split())
    assert "2 of our 3 identifiers" in sized
    assert "matched" not in sized
