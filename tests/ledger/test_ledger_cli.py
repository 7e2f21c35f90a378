"""``accord ledger``: show, checkpoint, key, and errors without stack traces."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from ledger_builders import decision, release
from typer.testing import CliRunner

from accord.consent import Person
from accord.datafolder import KEY_FILE_NAME
from accord.ledger.checkpoint import Verifier
from accord.ledger.cli import app
from accord.ledger.log import Ledger
from accord.ledger.tables import create_ledger_tables
from accord.service import Accord
from accord.store.engine import make_engine
from builders import consent

pytestmark = pytest.mark.integration

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, Path]:
    """A ledger with a few entries: its URL and a data folder for the key."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(url)
    create_ledger_tables(engine)
    Ledger(engine).append([release(0, "alice"), decision(1, allowed=False), release(2, "bob")])
    engine.dispose()
    return url, tmp_path / "data"


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=WIDE)
    return result.exit_code, result.stdout, result.output


def test_checkpoint_signs_and_prints_a_note(store: tuple[str, Path]) -> None:
    url, data_dir = store
    code, stdout, _ = _run("checkpoint", "--database-url", url, "--data-dir", str(data_dir))
    assert code == 0
    assert (data_dir / KEY_FILE_NAME).exists()
    code, vkey, _ = _run("key", "--data-dir", str(data_dir))
    assert code == 0
    checkpoint = Verifier.from_vkey(vkey.strip()).open(stdout)
    assert checkpoint.size == 3


def test_show_lists_recent_entries_and_the_checkpoint(store: tuple[str, Path]) -> None:
    url, data_dir = store
    code, _, output = _run("show", "--database-url", url, "--data-dir", str(data_dir))
    assert code == 0
    assert "No checkpoint yet" in output
    assert "decision 1" in output
    _run("checkpoint", "--database-url", url, "--data-dir", str(data_dir))
    code, _, output = _run("show", "--database-url", url, "--limit", "1")
    assert code == 0
    assert "release 2" in output
    assert "decision 1" not in output
    assert "latest checkpoint" in output
    assert "alice" not in output
    assert "bob" not in output


def test_verify_passes_on_a_sound_ledger(store: tuple[str, Path]) -> None:
    url, data_dir = store
    _run("checkpoint", "--database-url", url, "--data-dir", str(data_dir))
    code, _, output = _run("verify", "--database-url", url, "--data-dir", str(data_dir))
    assert code == 0, output
    assert re.search(r"checkpoints checked\s+1\b", output)
    assert re.search(r"leaves rehashed\s+3\b", output)
    assert "the ledger verifies" in output
    code, _, output = _run(
        "verify", "--database-url", url, "--data-dir", str(data_dir), "--workers", "2"
    )
    assert code == 0, output
    assert re.search(r"leaves rehashed\s+3\b", output)


def test_verify_without_the_key_cannot_vouch_for_checkpoints(
    store: tuple[str, Path], tmp_path: Path
) -> None:
    url, data_dir = store
    _run("checkpoint", "--database-url", url, "--data-dir", str(data_dir))
    code, _, output = _run("verify", "--database-url", url, "--data-dir", str(tmp_path / "empty"))
    assert code == 1
    assert "no verifier key" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # a database without the ledger's tables
        (("verify",), "verifying the ledger failed"),
        # a URL that is not one
        (("show", "--database-url", "nonsense://"), "database"),
        # a verifier key that is not one
        (("verify", "--vkey", "not-a-key"), "not a verifier key"),
        # no process at all to rehash the leaves with
        (("verify", "--workers", "0"), "--workers"),
    ],
)
def test_errors_are_messages_not_tracebacks(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    full = [*args] if "--database-url" in args else [*args, "--database-url", url]
    result = runner.invoke(app, [*full, "--data-dir", str(tmp_path)], env=WIDE)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_the_sub_app_lists_its_commands() -> None:
    result = runner.invoke(app, ["--help"], env=WIDE)
    assert result.exit_code == 0
    for command in ("verify", "show", "prove", "checkpoint", "key"):
        assert command in result.output


def test_a_bad_setting_is_a_message(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["show", "--database-url", f"sqlite:///{tmp_path}/x.db"],
        env={"ACCORD_LEDGER_BATCH_SIZE": "0"},
    )
    assert result.exit_code != 0
    assert "reading the ACCORD_ settings failed" in result.output
    assert "Traceback" not in result.output


def test_every_command_is_in_the_ledger_docs() -> None:
    import typer.main

    docs = (Path(__file__).parents[2] / "docs" / "ledger.md").read_text()
    names = list(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert {"verify", "show", "prove", "checkpoint", "key"} <= set(names)
    missing = [name for name in names if f"`accord ledger {name}" not in docs]
    assert missing == []


def test_the_docs_name_a_person_as_prove_takes_them(tmp_path: Path) -> None:
    """The person id shown in docs/ledger.md's proof bundle finds that person's entries."""
    docs = (Path(__file__).parents[2] / "docs" / "ledger.md").read_text()
    shown = re.search(r'"person": \{"id": "([^"]+)"', docs)
    assert shown is not None
    party, _, member = shown.group(1).partition("/")
    assert party == "reelix"
    assert member
    with Accord.open(data_dir=tmp_path) as accord:
        accord.add_party("chirp")
        accord.add_party("reelix")
        accord.import_records(
            [Person(member, "reelix", "US-NY")],
            [consent(member, controller="reelix", recipient="chirp", jurisdiction="US-NY")],
        )
    url = f"sqlite:///{tmp_path / 'accord.db'}"
    code, stdout, output = _run(
        "prove",
        "--person",
        shown.group(1),
        "--checkpoint",
        "--database-url",
        url,
        "--data-dir",
        str(tmp_path),
    )
    assert code == 0, output
    bundle = json.loads(stdout)
    assert bundle["person"]["id"] == shown.group(1)
    assert [json.loads(e["leaf"])["change"] for e in bundle["entries"]] == ["given"]
