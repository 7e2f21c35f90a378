"""One data folder: the demo, every command and the server find the same store and key.

A newcomer runs `accord demo` and then the commands its report suggests, without flags; an
operator moves the whole folder with `--data-dir` or ACCORD_DATA_DIR. Commands that only read
never make a store, a proof never signs behind the user's back, and no two ledgers share a name.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.api.cli import plan
from accord.audit.cli import party_databases
from accord.cli import app
from accord.datafolder import KEY_FILE_NAME, DataFolder
from accord.errors import InvalidInput
from accord.ledger.checkpoint import Verifier
from accord.service import Accord

pytestmark = pytest.mark.integration

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), env=WIDE)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo run into its own data folder (the default one is the working folder's)."""
    folder = tmp_path_factory.mktemp("demo") / "accord-data"
    report = folder.parent / "accord-report.html"
    run("demo", "--people", "300", "--data-dir", str(folder), "--report", str(report))
    return folder


def test_the_demo_writes_one_folder_every_command_reads(demo_folder: Path) -> None:
    data = DataFolder(demo_folder)
    assert data.store.is_file()
    assert data.key.is_file()
    assert {p.name for p in data.parties.iterdir()} == {"chirp.db", "reelix.db"}
    mark = data.scenario()
    assert mark is not None
    assert (mark.people, mark.ready, mark.made_by) == (300, True, "demo")


def test_commands_find_the_demo_through_the_environment(
    demo_folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """ACCORD_DATA_DIR alone (or the default folder) is enough for every command."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ACCORD_DATA_DIR", str(demo_folder))
    monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
    assert "the ledger verifies" in run("ledger", "verify")
    assert "chirp-reelix" in run("agreement", "list")
    vkey = run("ledger", "key").strip()
    assert Verifier.from_vkey(vkey).name.startswith("accord.local/ledger/")
    assert "no differences" in run("audit")
    # The server and the auditor read the scenario's parties from the folder without flags.
    layout = plan([], [], None, None, None)
    assert set(layout["sources"]) == {"chirp", "reelix"}
    assert str(demo_folder.resolve() / "parties") in layout["sources"]["chirp"]
    parties = party_databases([], [], None)
    try:
        assert set(parties) == {"chirp", "reelix"}
    finally:
        for party in parties.values():
            party.engine.dispose()
    assert not (tmp_path / "accord-data").exists()  # nothing made in the working folder


def test_a_proof_uses_the_latest_checkpoint_and_signs_nothing(demo_folder: Path) -> None:
    """`prove` reads; the entries after the last checkpoint are listed as pending."""
    with Accord.open(data_dir=demo_folder) as accord:
        before = accord.ledger.checkpoints()
        people = accord.ledger.entries_about("reelix/r0000010")
    assert people, "the demo's sample member has entries"
    out = run("ledger", "prove", "--person", "reelix/r0000010", "--data-dir", str(demo_folder))
    bundle = json.loads(out[out.index("{") :])
    assert bundle["tree_size"] == before[-1][0]
    assert bundle["pending"] == [i for i in people if i >= before[-1][0]]
    with Accord.open(data_dir=demo_folder) as accord:
        assert accord.ledger.checkpoints() == before


def test_reading_commands_never_make_a_store(tmp_path: Path) -> None:
    empty = tmp_path / "nothing-here"
    for command in (
        ["ledger", "verify"],
        ["ledger", "show"],
        ["ledger", "prove", "--person", "reelix/r1"],
        ["ledger", "key"],
        ["agreement", "list"],
        ["audit"],
    ):
        output = run(*command, "--data-dir", str(empty), code=2)
        assert f"in {empty}" in output.replace("\n", ""), command
        assert "accord demo" in output
        assert not empty.exists(), command


def test_data_dir_moves_the_store_and_the_key_together(tmp_path: Path) -> None:
    """`ledger checkpoint --data-dir D` signs D's own store with D's key, and verifies there."""
    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one, two):
        with Accord.open(data_dir=folder) as accord:
            accord.add_party("chirp")
    note = run("ledger", "checkpoint", "--data-dir", str(one))
    assert "the ledger verifies" in run("ledger", "verify", "--data-dir", str(one))
    with Accord.open(data_dir=one) as accord:
        assert [n for _, _, n in accord.ledger.checkpoints()] == [note]
    with Accord.open(data_dir=two) as accord:
        assert accord.ledger.checkpoints() == []


def test_every_ledger_has_its_own_origin(tmp_path: Path) -> None:
    names = set()
    for folder in ("a", "b", "c"):
        with Accord.open(data_dir=tmp_path / folder) as accord:
            assert accord.ledger.signer is not None
            names.add(accord.ledger.signer.name)
    assert len(names) == 3


def test_a_key_from_another_folder_is_named_as_such_not_as_tampering(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one, two):
        with Accord.open(data_dir=folder) as accord:
            accord.add_party("chirp")
            accord.ledger.checkpoint()
    # The store of `one` checked with the key of `two`.
    output = run(
        "ledger",
        "verify",
        "--database-url",
        f"sqlite:///{one / 'accord.db'}",
        "--data-dir",
        str(two),
        code=1,
    )
    assert "different data folders" in output
    assert "does not verify" in output


def test_the_demo_replaces_an_earlier_demo_but_never_a_store_it_did_not_make(
    tmp_path: Path,
) -> None:
    theirs = tmp_path / "theirs"
    with Accord.open(data_dir=theirs) as accord:
        accord.add_party("acme")
    output = run("demo", "--people", "50", "--no-audit", "--data-dir", str(theirs), code=2)
    assert "no scenario made" in output
    assert (theirs / "accord.db").is_file()
    assert not (theirs / "parties").exists()
    assert DataFolder(theirs).scenario() is None
    ours = tmp_path / "ours"
    run("demo", "--people", "50", "--no-audit", "--data-dir", str(ours))
    first = (ours / KEY_FILE_NAME).read_text()
    run("demo", "--people", "60", "--no-audit", "--data-dir", str(ours))
    mark = DataFolder(ours).scenario()
    assert mark is not None
    assert mark.people == 60
    assert (ours / KEY_FILE_NAME).read_text() != first  # a new ledger, under a new name


def test_a_scenario_folder_given_explicitly_must_hold_both_databases(tmp_path: Path) -> None:
    (tmp_path / "chirp.db").touch()
    with pytest.raises(InvalidInput, match=r"there is no reelix\.db"):
        party_databases([], [], tmp_path)
