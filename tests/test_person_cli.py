"""``accord person erase`` on a SQLite store in a temporary folder."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.cli import app

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
    store = [
        "--data-dir",
        str(tmp_path / "data"),
        "--database-url",
        f"sqlite:///{tmp_path / 'data' / 'accord.db'}",
    ]
    doc = tmp_path / "chirp-reelix.yaml"
    doc.write_text((EXAMPLES / "chirp-reelix.yaml").read_text())
    run("agreement", "register", str(doc), *store)
    run("agreement", "review", "chirp-reelix", "--reviewer", "Dana", "--findings", "none", *store)
    run("agreement", "activate", "chirp-reelix", *store)
    people = doc.parent / "members.csv"
    people.write_text("person,jurisdiction\nr1,US-NY\n")
    run("person", "load", str(people), "--party", "reelix", *store)
    run(
        "consent", "grant", "--person", "r1", "--controller", "reelix", "--recipient", "chirp",
        "--purpose", "functional.service", "--category", "user.behavior.media_consumption",
        "--operation", "read", "--notice", "n-2026", "--given", "2026-11-01",
        "--jurisdiction", "US-NY", "--separate", "--id", "k1", *store,
    )  # fmt: skip
    return store


def test_erase_withdraws_deletes_and_tells_the_recipient(data: list[str]) -> None:
    out = json.loads(
        run(
            "person",
            "erase",
            "--party",
            "reelix",
            "--person",
            "r1",
            "--known-as",
            "chirp=c7",
            "--json",
            *data,
        )
    )
    assert out["withdrawn"] == 1
    assert out["recipients"] == ["chirp"]
    assert out["deleted"]["consents"] == 1
    assert out["sealed"] is True
    listed = run("consent", "list", "--person", "r1", "--controller", "reelix", *data, code=2)
    assert "party reelix erased person 'r1'" in listed
    assert "k1" not in listed
    again = run("person", "erase", "--party", "reelix", "--person", "r1", *data)
    assert "already erased" in again
    # The ledger no longer knows the person.
    missing = run("ledger", "prove", "--person", "reelix/r1", *data, code=2)
    assert "no entries about" in missing


def test_no_consent_is_taken_for_an_erased_person_nor_are_they_loaded_again(
    data: list[str], tmp_path: Path
) -> None:
    run("person", "erase", "--party", "reelix", "--person", "r1", *data)
    grant = [
        "consent", "grant", "--person", "r1", "--controller", "reelix", "--recipient", "chirp",
        "--purpose", "functional.service", "--category", "user.behavior.media_consumption",
        "--notice", "n-2026", "--separate", *data,
    ]  # fmt: skip
    out = run(*grant, code=2)
    assert "erased person 'r1'" in out
    # Reloading the party's records does not bring them back either.
    people = tmp_path / "again.csv"
    people.write_text("person,jurisdiction\nr1,US-NY\n")
    loaded = run("person", "load", str(people), "--party", "reelix", *data)
    assert "0 people of reelix recorded; 1 left out: reelix erased them" in loaded
    assert "erased person 'r1'" in run(*grant, code=2)


def test_erasing_an_unknown_person_exits_2_and_says_why(data: list[str]) -> None:
    out = run("person", "erase", "--party", "reelix", "--person", "r404", *data, code=2)
    assert "party reelix holds no person 'r404'" in out
    out = run("person", "erase", "--party", "acme", "--person", "r1", *data, code=2)
    assert "no party 'acme'" in out
    out = run(
        "person", "erase", "--party", "reelix", "--person", "r1", "--known-as", "chirp", *data,
        code=2,
    )  # fmt: skip
    assert "--known-as takes PARTY=VALUE" in out
