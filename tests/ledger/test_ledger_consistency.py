"""``accord ledger consistency OLD NEW`` and the proof behind it: checked against an independent
in-memory tree, against the stored signed checkpoints, and refused for sizes no proof links."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_builders import decision, release
from sqlalchemy import insert
from typer.testing import CliRunner

from accord.ledger import merkle
from accord.ledger.checkpoint import Checkpoint, Signer
from accord.ledger.cli import app
from accord.ledger.consistency import prove_consistency
from accord.ledger.log import Ledger
from accord.ledger.tables import checkpoints_table, create_ledger_tables
from accord.store.engine import make_engine

pytestmark = pytest.mark.integration

runner = CliRunner()
WIDE = {"COLUMNS": "200"}
SIZE = 40  # past 16 leaves: proofs read stored nodes as well as leaves


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, Path]:
    """A ledger of :data:`SIZE` entries with checkpoints at 7 and at 40: its URL and data folder."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    data_dir = tmp_path / "data"
    engine = make_engine(url)
    create_ledger_tables(engine)
    ledger = Ledger(engine, Signer.load_or_create(data_dir))
    ledger.append([release(n, f"p{n % 3}") for n in range(7)])
    ledger.checkpoint()
    ledger.append([decision(n) for n in range(7, SIZE)])
    ledger.checkpoint()
    engine.dispose()
    return url, data_dir


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=WIDE)
    return result.exit_code, result.output


def _reference(url: str) -> merkle.MemoryTree:
    """The tree rebuilt in memory from the stored leaves' bytes."""
    engine = make_engine(url)
    try:
        ledger = Ledger(engine)
        return merkle.MemoryTree(merkle.leaf_hash(ledger.leaf(i).data) for i in range(SIZE))
    finally:
        engine.dispose()


def test_consistency_prints_a_proof_that_verifies(store: tuple[str, Path]) -> None:
    url, data_dir = store
    code, output = _run(
        "consistency", "7", "40", "--database-url", url, "--data-dir", str(data_dir)
    )
    assert code == 0, output
    assert "the tree of 7 entries is a prefix of the tree of 40" in output
    assert output.count("verified with") == 2  # both sizes have a signed checkpoint
    code, output = _run(
        "consistency", "7", "40", "--database-url", url, "--data-dir", str(data_dir), "--json"
    )
    assert code == 0
    got = json.loads(output)
    tree = _reference(url)
    assert got["old_root"] == tree.root(7).hex()
    assert got["new_root"] == tree.root(40).hex()
    assert [bytes.fromhex(h) for h in got["proof"]] == tree.consistency_proof(7, 40)
    assert got["verifies"] is True
    assert got["old_checkpoint"].startswith("accord.local/ledger/")


def test_consistency_between_sizes_without_a_checkpoint_says_so(store: tuple[str, Path]) -> None:
    url, data_dir = store
    code, output = _run(
        "consistency", "3", "20", "--database-url", url, "--data-dir", str(data_dir)
    )
    assert code == 0, output
    assert output.count("no checkpoint of this size is stored") == 2


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["9", "3"], "OLD (9) is larger than NEW (3)"),  # backwards
        (["3", "41"], "NEW (41) is beyond the ledger, which holds 40 entries"),  # past the end
        (["--", "-1", "3"], "a tree size is a whole number from 0, not -1"),  # negative
        (["three", "4"], "Invalid value for 'OLD'"),  # not a number
    ],
)
def test_consistency_refuses_bad_sizes(store: tuple[str, Path], args: list[str], said: str) -> None:
    url, _ = store
    code, output = _run("consistency", "--database-url", url, *args)
    assert code == 2
    assert said in " ".join(output.split())
    assert "Traceback" not in output


def test_consistency_names_a_missing_store(tmp_path: Path) -> None:
    code, output = _run("consistency", "1", "2", "--database-url", f"sqlite:///{tmp_path}/no.db")
    assert code == 2
    assert "there is no Accord store" in output


def test_a_checkpoint_stating_another_root_fails(store: tuple[str, Path]) -> None:
    """A signed checkpoint whose root is not the tree's: the log rewrote its past."""
    url, data_dir = store
    signer = Signer.load_or_create(data_dir)
    forged = signer.sign(Checkpoint(signer.name, 20, bytes(32)))
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(checkpoints_table).values(
                size=20, root=bytes(32), note=forged.note, created_at=datetime.now(UTC)
            )
        )
    engine.dispose()
    code, output = _run(
        "consistency", "20", "40", "--database-url", url, "--data-dir", str(data_dir)
    )
    assert code == 1
    assert "states another root" in output


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sizes=st.tuples(st.integers(0, SIZE), st.integers(0, SIZE)).map(sorted))
def test_every_pair_of_sizes_is_consistent(store: tuple[str, Path], sizes: list[int]) -> None:
    url, data_dir = store
    old, new = sizes
    engine = make_engine(url)
    try:
        report = prove_consistency(Ledger(engine, Signer.load_or_create(data_dir)), old, new)
    finally:
        engine.dispose()
    tree = _reference(url)
    assert report.verifies
    assert report.proof.old_root == tree.root(old)
    assert report.proof.new_root == tree.root(new)
    assert list(report.proof.path) == tree.consistency_proof(old, new)
