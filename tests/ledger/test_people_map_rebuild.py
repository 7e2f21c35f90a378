"""`accord ledger verify --people-map` recomputes the people map from the person index and the
leaf hashes and compares it with the one the checkpoint signed; `accord ledger rebuild-map`
builds a lost map again, and refuses to contradict a signed checkpoint."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from ledger_builders import decision, release
from typer.testing import CliRunner

import accord.ledger.verify_proof as standalone
from accord.errors import LedgerError, LedgerIntegrityError
from accord.ledger.checkpoint import Signer
from accord.ledger.cli import app
from accord.ledger.log import Ledger
from accord.ledger.tables import create_ledger_tables
from accord.store.engine import make_engine

pytestmark = pytest.mark.integration

runner = CliRunner()


@pytest.fixture
def people(ledger: Ledger) -> Ledger:
    """Alice, Bob and a crowd in a few entries, under a checkpoint."""
    ledger.append([release(0, "alice"), release(1, "bob"), decision(2)])
    ledger.append([release(3, "alice", *(f"p{i}" for i in range(80)))])
    ledger.checkpoint()
    return ledger


def _db(url: str) -> sqlite3.Connection:
    return sqlite3.connect(url.removeprefix("sqlite:///"))


def test_the_recomputed_map_is_the_signed_one(people: Ledger) -> None:
    report = people.verify(people_map=True)
    assert report.ok, report.problems
    assert report.people_map == "recomputed for 82 people at size 4"
    assert people.verify().people_map is None  # only when asked for


def test_a_lost_map_is_found_and_rebuilt_to_the_signed_root(
    people: Ledger, ledger_sqlite_url: str
) -> None:
    with _db(ledger_sqlite_url) as db:
        db.execute("DELETE FROM ledger_map_leaves")
        db.execute("DELETE FROM ledger_map_nodes")
    report = people.verify(people_map=True)
    assert [p.where for p in report.problems] == ["people map"]
    assert "the stored map is not the one" in report.problems[0].message
    people.rebuild_people_map()
    assert people.verify(people_map=True).ok
    assert standalone.check(people.prove_person("alice")) == []


def test_an_index_changed_after_signing_is_found_and_not_rebuilt(
    people: Ledger, ledger_sqlite_url: str
) -> None:
    key = people.key_of("bob")
    assert key is not None
    with _db(ledger_sqlite_url) as db:
        db.execute("DELETE FROM ledger_person_index WHERE pseudonym = ?", (key[1],))
    report = people.verify(people_map=True)
    assert any(
        p.where == "people map" and "recomputed from the person index" in p.message
        for p in report.problems
    ), report.problems
    signed = people.checkpoints()
    with pytest.raises(LedgerIntegrityError, match="nothing was rebuilt"):
        people.rebuild_people_map()
    assert people.checkpoints() == signed


def test_people_erased_since_the_checkpoint_are_not_recomputed_yet(people: Ledger) -> None:
    people.erase("bob", "asked to be forgotten")
    report = people.verify(people_map=True)
    assert report.ok, report.problems
    assert report.people_map is not None
    assert "1 people erased since" in report.people_map
    # The erasure grew the log: the next checkpoint takes Bob out, and the map recomputes again.
    people.rebuild_people_map()
    assert people.verify(people_map=True).people_map == "recomputed for 81 people at size 5"


def test_the_map_check_needs_the_signing_key(people: Ledger) -> None:
    reader = Ledger(people.engine, verifier=people.verifier)
    with pytest.raises(LedgerError, match="signing key"):
        reader.verify(people_map=True)


def test_verify_and_rebuild_on_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(url)
    create_ledger_tables(engine)
    ledger = Ledger(engine, Signer.load_or_create(tmp_path))
    ledger.append([release(0, "alice"), release(1, "bob")])
    ledger.checkpoint()
    with _db(url) as db:
        db.execute("DELETE FROM ledger_map_leaves")
    engine.dispose()
    where = ["--database-url", url, "--data-dir", str(tmp_path)]
    broken = runner.invoke(app, ["verify", "--people-map", *where])
    assert broken.exit_code == 1, broken.output
    assert "people map" in broken.output
    rebuilt = runner.invoke(app, ["rebuild-map", *where])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "Rebuilt the people map for 2 people at size 2." in rebuilt.output
    fixed = runner.invoke(app, ["verify", "--people-map", *where])
    assert fixed.exit_code == 0, fixed.output
    assert "recomputed for 2 people at size 2" in fixed.output
    missing_key = runner.invoke(
        app, ["rebuild-map", "--database-url", url, "--data-dir", str(tmp_path / "elsewhere")]
    )
    assert missing_key.exit_code == 2
    assert "Traceback" not in missing_key.output
