"""``accord ledger``: show, checkpoint, key, and errors without stack traces."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ledger_builders import decision, release
from typer.testing import CliRunner

from accord.consent import Person
from accord.datafolder import KEY_FILE_NAME
from accord.ledger.checkpoint import Signer, Verifier
from accord.ledger.cli import app
from accord.ledger.entries import AgreementChangeEntry, ConsentChangeEntry
from accord.ledger.log import Ledger
from accord.ledger.merkle import leaf_hash
from accord.ledger.results import InclusionProof
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


# --- show's filters and JSON, and one entry in full -----------------------------------------

DAY = timedelta(days=1)
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def varied(tmp_path: Path) -> list[str]:
    """A ledger of every kind over a week, signed up to its fifth entry; its options."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(url)
    create_ledger_tables(engine)
    ledger = Ledger(engine, Signer.load_or_create(tmp_path / "data"))
    ledger.append(
        [
            replace(release(0, "alice"), at=T0),  # reelix → chirp, chirp-reelix-recommendations
            replace(decision(1, allowed=False), at=T0 + DAY),
            AgreementChangeEntry(
                agreement="acme-chirp",
                reason="agreement acme-chirp version 1: new → draft (registered)",
                from_status=None,
                to_status="draft",
                at=T0 + 2 * DAY,
            ),
            ConsentChangeEntry(
                agreement=None,
                reason="consent given to acme for functional.service",
                purpose="functional.service",
                about=("chirp/c1",),
                change="given",
                recipient="acme",
                at=T0 + 3 * DAY,
            ),
            replace(release(4, "bob"), at=T0 + 4 * DAY),
        ]
    )
    ledger.checkpoint()
    ledger.append([replace(decision(5), at=T0 + 5 * DAY)])
    engine.dispose()
    return ["--database-url", url, "--data-dir", str(tmp_path / "data")]


def _shown(options: list[str], *args: str) -> list[int]:
    code, stdout, output = _run("show", "--json", *args, *options)
    assert code == 0, output
    return [e["index"] for e in json.loads(stdout)["entries"]]


@pytest.mark.parametrize(
    ("args", "indexes"),
    [
        # newest first, ten at most by default
        ((), [5, 4, 3, 2, 1, 0]),
        (("--limit", "2"), [5, 4]),
        # by kind, one or several
        (("--kind", "release"), [4, 0]),
        (("--kind", "decision", "--kind", "agreement"), [5, 2, 1]),
        # by party: named as provider or recipient
        (("--party", "acme"), [3]),
        (("--party", "reelix"), [4, 0]),
        (("--party", "chirp", "--kind", "decision", "--limit", "1"), [5]),
        # by agreement
        (("--agreement", "acme-chirp"), [2]),
        (("--agreement", "chirp-reelix-recommendations", "--kind", "release"), [4, 0]),
        # by time: at or after --since, before --until
        (("--since", "2026-11-03T12:00:00"), [5, 4, 3, 2]),  # entry 2 is at that instant
        (("--until", "2026-11-03T12:00:00"), [1, 0]),
        (("--since", "2026-11-02", "--until", "2026-11-04"), [2, 1]),
        # nothing matches
        (("--party", "nobody"), []),
    ],
)
def test_show_filters(varied: list[str], args: tuple[str, ...], indexes: list[int]) -> None:
    assert _shown(varied, *args) == indexes


def test_show_as_json_has_each_entry_and_the_checkpoint(varied: list[str]) -> None:
    code, stdout, output = _run("show", "--json", "--limit", "2", *varied)
    assert code == 0, output
    shown = json.loads(stdout)
    assert shown["tree_size"] == 6
    newest = shown["entries"][0]
    assert newest["entry"]["kind"] == "decision"
    assert newest["entry"]["reason"] == "decision 5"
    assert len(newest["leaf_hash"]) == 64
    assert shown["checkpoint"]["size"] == 5
    assert shown["checkpoint"]["note"].startswith("accord.local/ledger/")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        # a kind the ledger does not have
        (("--kind", "consents"), "--kind 'consents' is not a kind of ledger entry"),
        # not an instant
        (("--since", "last week"), "--since 'last week' is not a date or time"),
        # a period that ends before it starts
        (("--since", "2026-11-05", "--until", "2026-11-01"), "is not after --since"),
    ],
)
def test_show_refuses_bad_filters(varied: list[str], args: tuple[str, ...], says: str) -> None:
    code, _, output = _run("show", *args, *varied)
    assert code == 2
    assert says in output


def test_an_entry_in_full_with_its_proof(varied: list[str]) -> None:
    code, stdout, output = _run("entry", "3", "--json", *varied)
    assert code == 0, output
    shown = json.loads(stdout)
    assert shown["entry"]["change"] == "given"
    assert shown["entry"]["recipient"] == "acme"
    assert len(shown["entry"]["subjects"]) == 1
    assert shown["checkpoint"]["size"] == 5
    assert shown["checkpoint"]["signature"].startswith("verified with accord.local/ledger/")
    assert shown["proof_verifies"] is True
    # The proof checks on its own, against the checkpoint's root.
    proof = InclusionProof(
        3,
        5,
        bytes.fromhex(shown["leaf_hash"]),
        tuple(bytes.fromhex(h) for h in shown["inclusion_proof"]),
        bytes.fromhex(shown["checkpoint"]["root"]),
    )
    assert proof.verify()
    assert leaf_hash(shown["leaf"].encode()) == proof.leaf_hash
    code, _, output = _run("entry", "3", *varied)
    assert code == 0, output
    for line in ("ledger entry #3 (consent)", "recipient", "acme", "leaf hash", "✓ the proof"):
        assert line in output
    # The newest entry is not under the checkpoint yet: said so, no proof.
    code, _, output = _run("entry", "5", *varied)
    assert code == 0, output
    assert "covers 5 entries, not this one yet" in output


def test_an_entry_that_is_not_there(varied: list[str]) -> None:
    code, _, output = _run("entry", "6", *varied)
    assert code == 2
    assert "the ledger has 6 entries (0 to 5): there is no entry 6" in output


@pytest.mark.parametrize("command", [("show",), ("entry", "0")])
def test_a_missing_store_is_named_not_queried(tmp_path: Path, command: tuple[str, ...]) -> None:
    gone = tmp_path / "nowhere" / "accord.db"
    code, _, output = _run(*command, "--database-url", f"sqlite:///{gone}")
    assert code == 2
    assert f"there is no Accord store at {gone}" in output
    assert "SQL" not in output
    assert not gone.exists()
    # A database that is not an Accord store.
    empty = tmp_path / "other.db"
    sqlite3.connect(empty).close()
    code, _, output = _run(*command, "--database-url", f"sqlite:///{empty}")
    assert code == 2
    assert "holds no ledger" in output
    assert "SQL" not in output


def test_show_and_entry_escape_what_a_partner_wrote(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(url)
    create_ledger_tables(engine)
    hostile = "\x1b]52;c;cm0gLXJmIH4=\x07[bold red]ok[/]\u202e\nrelease 99"
    Ledger(engine).append([replace(release(0), reason=hostile, recipient="chirp\x1b[2J")])
    engine.dispose()
    for command in (("show",), ("entry", "0")):
        code, _, output = _run(*command, "--database-url", url)
        assert code == 0, output
        assert "\x1b" not in output
        assert "\x07" not in output
        assert "\u202e" not in output
        assert "\\x1b]52;c;" in output
        assert "[bold red]ok[/]" in output
        # The line break is shown as its code, not as a line (a table cell may still wrap it).
        flat = re.sub(r"[\s│]", "", output)
        assert "\\u202e\\x0arelease99" in flat
