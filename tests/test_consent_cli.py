"""``accord consent list``, ``opt-out`` and ``opt-in``, end to end on a SQLite store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from accord.cli import app
from accord.consent_view import person_view
from accord.service import Accord
from accord.store.title_sql import record_uses

pytestmark = pytest.mark.integration

EXAMPLE = resources.files("accord") / "examples" / "chirp-reelix.yaml"
ADS = "marketing.advertising.third_party.targeted"
MEDIA = "user.behavior.media_consumption"
AS_OF = "2026-07-01T12:00:00+00:00"
runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture
def data(tmp_path: Path) -> list[str]:
    """An active Chirp–Reelix agreement; Reelix's members r1 (New York) and r2 (Germany)."""
    d = ["--data-dir", str(tmp_path / "data")]
    agreement = tmp_path / "chirp-reelix.yaml"
    agreement.write_text(EXAMPLE.read_text())
    run("agreement", "register", str(agreement), *d)
    run("agreement", "review", "chirp-reelix", "--reviewer", "Dana", "--findings", "none", *d)
    run("agreement", "activate", "chirp-reelix", *d)
    members = tmp_path / "members.csv"
    members.write_text("person,jurisdiction\nr1,US-NY\nr2,DE\n")
    run("person", "load", str(members), "--party", "reelix", *d)
    return d


def grant(data: list[str], consent_id: str, options: str, person: str = "r1") -> None:
    """Record a consent of ``person`` to Chirp with ``options`` (split on spaces)."""
    to_chirp = ["--controller", "reelix", "--recipient", "chirp", "--notice", "n-2026"]
    run(
        "consent",
        "grant",
        *to_chirp,
        "--person",
        person,
        "--id",
        consent_id,
        *options.split(),
        *data,
    )


WATCH = f"--purpose functional.service --category {MEDIA}"


@pytest.fixture
def records(data: list[str]) -> list[str]:
    """r1's consents, one of each state at AS_OF, and an opt-out withdrawn."""
    # Given in advance 2024-01-10, no expiry stated: the VPPA's two years ended 2026-01-10.
    grant(data, "k-watch-old", f"{WATCH} --given 2024-01-10")
    # Given 2025-03-01 until 2028: in force; for viewing only until 2027-03-01 (VPPA).
    grant(
        data,
        "k-watch",
        f"{WATCH} --given 2025-03-01 --expires 2028-01-01 --exclude-title t-17 "
        "--exclude-title t-42",
    )
    # Viewing and friends, given 2023: in force for friends, no longer for viewing.
    grant(data, "k-mixed", f"{WATCH} --category user.social --given 2023-05-01")
    # Messages, read and write, withdrawn.
    grant(
        data,
        "k-msg",
        "--purpose functional.service --category user.content.private --operation read "
        "--operation write --given 2026-02-01",
    )
    run("consent", "withdraw", "k-msg", "--at", "2026-03-01", *data)
    # One disclosure of t-9, spent by a release; one of t-10, not yet used.
    grant(data, "k-one", f"{WATCH} --title t-9 --given 2026-06-01")
    grant(data, "k-two", f"{WATCH} --title t-10 --given 2026-06-02")
    # Expired as stated.
    ads = f"--purpose {ADS} --category {MEDIA}"
    grant(data, "k-ads", f"{ads} --given 2026-01-01 --expires 2026-04-01")
    # Given only after the instant shown.
    grant(data, "k-later", f"{WATCH} --given 2026-08-01")
    with Accord.open(data_dir=Path(data[1])) as accord:
        record_uses(accord.engine, ["k-one"], datetime(2026, 6, 5, tzinfo=UTC), "req-1")
    opt = ["--person", "r1", "--controller", "reelix", *data]
    run("consent", "opt-out", *opt, "--at", "2026-02-01")
    run("consent", "opt-in", *opt, "--at", "2026-03-01")
    run("consent", "opt-out", *opt, "--source", "form", "--at", "2026-05-01")
    return data


def test_list_as_json_gives_each_consent_its_end_and_state(records: list[str]) -> None:
    shown = json.loads(
        run(
            "consent",
            "list",
            "--person",
            "r1",
            "--controller",
            "reelix",
            "--at",
            AS_OF,
            "--json",
            *records,
        )
    )
    assert shown["lives_in"] == "US-NY"
    by_id = {c["id"]: c for c in shown["consents"]}
    states = {i: c["state"] for i, c in by_id.items()}
    assert states == {
        "k-watch-old": "expired",  # viewing only, past the VPPA's two years
        "k-watch": "in force",
        "k-mixed": "in force",  # still for friends' data
        "k-msg": "withdrawn",
        "k-one": "spent",
        "k-two": "in force",
        "k-ads": "expired",
        "k-later": "not yet given",
    }
    watch = by_id["k-watch"]
    assert watch["recipient"] == "chirp"
    assert watch["purposes"] == ["functional.service"]
    assert watch["categories"] == [MEDIA]
    assert watch["operations"] == ["read"]
    assert watch["titles"] == {"only": None, "excluded": ["t-17", "t-42"]}
    assert watch["given_at"] == "2025-03-01T00:00:00+00:00"
    assert watch["expires_at"] == "2028-01-01T00:00:00+00:00"
    assert watch["viewing_until"] == "2027-03-01T00:00:00+00:00"
    assert by_id["k-msg"]["operations"] == ["read", "write"]
    assert by_id["k-msg"]["withdrawn_at"] == "2026-03-01T00:00:00+00:00"
    assert by_id["k-one"]["titles"] == {"only": "t-9", "excluded": []}
    assert by_id["k-one"]["spent_at"] == "2026-06-05T00:00:00+00:00"
    assert by_id["k-one"]["viewing_until"] is None  # given at the time, not in advance
    assert [
        (o["at"], o["withdrawn_at"], o["source"], o["in_force"]) for o in shown["opt_outs"]
    ] == [
        ("2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00", "global_privacy_control", False),
        ("2026-05-01T00:00:00+00:00", None, "form", True),
    ]
    assert shown["opted_out"] is True


def test_list_for_a_person_in_germany_has_no_vppa_limit(data: list[str]) -> None:
    grant(data, "k-de", f"{WATCH} --given 2023-01-01", person="r2")
    shown = json.loads(
        run("consent", "list", "--person", "r2", "--controller", "reelix", "--json", *data)
    )
    (only,) = shown["consents"]
    assert only["viewing_until"] is None
    assert only["state"] == "in force"
    assert shown["opt_outs"] == []


def test_list_reads_in_a_hundred_columns(records: list[str]) -> None:
    output = run(
        "consent", "list", "--person", "r1", "--controller", "reelix", "--at", AS_OF, *records
    )
    for shown in (
        "k-watch → chirp",
        "all but t-17, t-42",
        "only t-9 (one disclosure)",
        "spent 2026-06-05",
        "withdrawn 2026-03-01",
        "in force, not for what they watched",
        "not yet given",
        "read, write",
        "2027-03-01 00:00 UTC (VPPA",
        "Opt-outs of r1 at reelix",
        "global_privacy_control",
    ):
        assert shown in output, shown
    # The same view in a 100-column terminal: no id, taxonomy key or date cut in two.
    with Accord.open(data_dir=Path(records[1])) as accord:
        standing = accord.standing("reelix", "r1", datetime.fromisoformat(AS_OF))
    console = Console(width=100, record=True, color_system=None)
    console.print(person_view(standing))
    text = console.export_text()
    whole = [s.consent.id for s in standing.consents]
    whole += [key for s in standing.consents for key in s.consent.purposes | s.consent.categories]
    whole += ["2024-01-10 00:00 UTC", "2026-01-10 00:00 UTC", "2027-03-01 00:00 UTC"]
    assert ADS in whole
    assert [w for w in whole if w not in text] == []
    assert "18 U.S.C. 2710(b)(2)(B)(ii)(II)" in text


def test_list_escapes_what_a_partner_wrote(data: list[str]) -> None:
    grant(data, "k\x1b[2J[bold red]x[/]\u202e", f"{WATCH} --given 2026-01-01")
    output = run("consent", "list", "--person", "r1", "--controller", "reelix", *data)
    assert "\x1b" not in output
    assert "\u202e" not in output
    assert "k\\x1b[2J[bold red]x[/]\\u202e" in output


def test_list_for_nobody_is_an_error(data: list[str]) -> None:
    # A typo: Reelix has no such member, and no record names them.
    output = run("consent", "list", "--person", "r404", "--controller", "reelix", *data, code=2)
    assert "party reelix holds no person 'r404'" in output
    # A member Reelix erased: nothing about them is kept to list.
    run("person", "erase", "--party", "reelix", "--person", "r2", *data)
    output = run("consent", "list", "--person", "r2", "--controller", "reelix", *data, code=2)
    assert "party reelix erased person 'r2'" in output


def test_opting_back_in_lets_marketing_include_the_person_again(data: list[str]) -> None:
    grant(data, "k-ads", f"--purpose {ADS} --category {MEDIA} --given 2026-11-01")
    decide = [
        "decide",
        "--requester",
        "chirp",
        "--agreement",
        "chirp-reelix",
        "--clause",
        "interest-segments",
        "--purpose",
        ADS,
        "--category",
        MEDIA,
        "--json",
    ]

    def allowed(at: str) -> int:
        return int(json.loads(run(*decide, "--at", at, *data))["people_allowed"])

    assert allowed("2026-11-10") == 1
    opt = ["--person", "r1", "--controller", "reelix", *data]
    run("consent", "opt-out", *opt, "--at", "2026-11-05")
    assert allowed("2026-11-10") == 0
    said = run("consent", "opt-in", *opt, "--at", "2026-11-20")
    assert "withdrawn for r1 at reelix (in force since 2026-11-05)" in said
    assert allowed("2026-11-10") == 0  # while opted out, still out
    assert allowed("2026-11-25") == 1  # released again, as their consent allows
    # Nothing left to withdraw: a message, exit 2.
    again = run("consent", "opt-in", *opt, "--at", "2026-11-26", code=2)
    assert "has no opt-out of sale/sharing in force at reelix" in again
    # Both changes are in the ledger, in the person's own proof bundle.
    store = ["--database-url", f"sqlite:///{Path(data[1]) / 'accord.db'}"]
    bundle = json.loads(
        run("ledger", "prove", "--person", "reelix/r1", "--checkpoint", *data, *store)
    )
    changes = [json.loads(e["leaf"]).get("change") for e in bundle["entries"]]
    assert changes == ["given", "opted_out", "opted_in"]
