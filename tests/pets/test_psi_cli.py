"""``accord psi run``: a match from the command line, through the store, in process or over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.gateway import Keyring
from accord.pets.psi import curve
from accord.pets.psi.choices import Kind
from accord.pets.psi.cli import app, read_records
from accord.pets.psi.http import psi_app
from pets.psi_world import ADS, AUDIENCE, records, serving, store

pytestmark = pytest.mark.integration


def write(path: Path, party: str) -> Path:
    path.write_text(
        "person,email\n" + "".join(f"{p},{e}\n" for p, e in records(party)) + "c9,\n",
        encoding="utf-8",
    )
    return path


def args(folder: Path, theirs: str, *extra: str) -> list[str]:
    return [
        "run",
        "--ours", str(write(folder / "chirp.csv", "chirp")),
        "--theirs", theirs,
        "--as", "chirp",
        "--with", "reelix",
        "--agreement", AUDIENCE,
        "--clause", "chirp-match",
        "--their-clause", "reelix-match",
        "--purpose", ADS,
        "--workers", "1",
        "--data-dir", str(folder),
        *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("protocol", ["ecdh", "oprf"])
def test_run_in_process_prints_the_count_and_writes_who(tmp_path: Path, protocol: str) -> None:
    with store(tmp_path):
        pass
    theirs = write(tmp_path / "reelix.csv", "reelix")
    out = tmp_path / "matched.txt"
    extra = ("--out", str(out), "--protocol", protocol)
    result = CliRunner().invoke(app, args(tmp_path, str(theirs), *extra))
    assert result.exit_code == 0, result.output
    assert "2 of our 3 identifiers (3 people allowed to take part)" in result.output
    assert out.read_text() == "c1\nc5\n"


def test_run_size_only_says_how_many_and_writes_no_one(tmp_path: Path) -> None:
    with store(tmp_path):
        pass
    theirs = write(tmp_path / "reelix.csv", "reelix")
    out = tmp_path / "matched.txt"
    result = CliRunner().invoke(
        app, args(tmp_path, str(theirs), "--mode", "size", "--out", str(out))
    )
    assert result.exit_code == 0, result.output
    assert "2 of our 3 identifiers" in result.output
    assert not out.exists()


def test_size_only_with_the_oprf_protocol_exits_2_before_anything_is_decided(
    tmp_path: Path,
) -> None:
    with store(tmp_path):
        pass
    theirs = write(tmp_path / "reelix.csv", "reelix")
    extra = ("--mode", "size", "--protocol", "oprf")
    result = CliRunner().invoke(app, args(tmp_path, str(theirs), *extra))
    assert result.exit_code == 2
    assert "--protocol ecdh" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("protocol", ["ecdh", "oprf"])
def test_run_against_a_partner_over_http(tmp_path: Path, protocol: str) -> None:
    partner = tmp_path / "partner"
    with store(partner) as accord:
        keyring = Keyring()
        token = keyring.issue("chirp")
        served = psi_app(
            accord, keyring, lambda: records("reelix"), kind=Kind.EMAIL, engine=curve.Engine(1)
        )
        with serving(served) as url:
            with store(tmp_path / "us"):
                pass
            extra = ("--token", token, "--protocol", protocol)
            result = CliRunner().invoke(app, args(tmp_path / "us", url, *extra))
    assert result.exit_code == 0, result.output
    assert "2 of our people matched" in result.output


def test_a_refused_match_exits_3_with_the_reason(tmp_path: Path) -> None:
    with store(tmp_path):
        pass
    theirs = write(tmp_path / "reelix.csv", "reelix")
    wrong = [
        a if a != ADS else "marketing.advertising.first_party.targeted"
        for a in args(tmp_path, str(theirs))
    ]
    result = CliRunner().invoke(app, wrong)
    assert result.exit_code == 3
    assert "error:" in result.output


def test_a_records_file_without_the_column_is_refused_where_it_is(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,mail\n1,a@b.org\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"bad\.csv:1: the header has no person or email column"):
        read_records(bad, Kind.EMAIL)


def test_a_row_with_an_identifier_but_no_person_is_refused_by_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("person,email\nc1,a@b.org\n,b@b.org\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"bad\.csv:3: the row names no person"):
        list(read_records(bad, Kind.EMAIL)())
