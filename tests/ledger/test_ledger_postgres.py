"""The same ledger on PostgreSQL: migrations, appends, proofs, erasure, threads, the CLI."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_builders import decision, release
from sqlalchemy import Engine
from typer.testing import CliRunner

import accord.ledger.verify_proof as standalone
from accord.ledger import merkle, shred
from accord.ledger.audit import verify_ledger
from accord.ledger.checkpoint import Signer
from accord.ledger.cli import app
from accord.ledger.log import Ledger
from accord.store.engine import make_engine
from accord.store.migrate import upgrade

pytestmark = [pytest.mark.postgres, pytest.mark.integration]


@pytest.fixture
def pg_engine(ledger_pg_url: str) -> Iterator[Engine]:
    """A fresh PostgreSQL database migrated to the newest schema."""
    engine = make_engine(ledger_pg_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_the_postgres_ledger_is_the_reference_tree(pg_engine: Engine) -> None:
    ledger = Ledger(pg_engine, Signer.generate("test.accord.local/ledger"))
    reference = merkle.MemoryTree()
    rng = random.Random(5)
    while reference.size < 200:
        batch = [
            release(reference.size + i, f"p{rng.randrange(9)}") for i in range(rng.randint(1, 20))
        ]
        for receipt in ledger.append(batch):
            reference.append_hash(receipt.leaf_hash)
        ledger.checkpoint()
    assert ledger.head().root == reference.root()
    for _ in range(30):
        size = rng.randint(1, reference.size)
        index, old = rng.randrange(size), rng.randint(0, size)
        assert list(ledger.inclusion_proof(index, size).path) == reference.inclusion_proof(
            index, size
        )
        assert list(ledger.consistency_proof(old, size).path) == reference.consistency_proof(
            old, size
        )
    found = ledger.entries_about("p3")
    assert found
    ledger.erase("p3", "asked to be forgotten")
    assert ledger.entries_about("p3") == []
    report = ledger.verify()
    assert report.ok, report.problems
    # Chunks of 16 leaves checked by worker processes, each opening the database again.
    shared = verify_ledger(ledger, workers=2, chunk_level=4)
    assert shared.ok, shared.problems
    assert (shared.leaves_checked, shared.checkpoints_checked) == (
        report.leaves_checked,
        report.checkpoints_checked,
    )
    assert report.checkpoints_checked > 5


def test_threads_on_postgres_never_fork_the_tree(pg_engine: Engine) -> None:
    ledgers = [Ledger(pg_engine), Ledger(pg_engine)]  # two groups of writers, one database
    failures: list[BaseException] = []
    indexes: list[int] = []
    lock = threading.Lock()

    def writer(number: int) -> None:
        try:
            for round_ in range(25):
                got = ledgers[number % 2].append([decision(number * 100 + round_)])
                with lock:
                    indexes.extend(r.index for r in got)
        except BaseException as exc:  # noqa: BLE001  (handed to the main thread's assertion)
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(indexes) == list(range(150))
    assert ledgers[0].verify().ok


def test_verify_on_the_command_line_against_postgres(
    pg_engine: Engine, ledger_pg_url: str, tmp_path: Path
) -> None:
    ledger = Ledger(pg_engine, Signer.load_or_create(tmp_path))
    ledger.append([release(0, "alice"), decision(1)])
    ledger.checkpoint()
    runner = CliRunner()
    args = ["verify", "--database-url", ledger_pg_url, "--data-dir", str(tmp_path)]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    with pg_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE ledger_leaves SET data = 'x'::bytea WHERE idx = 1")
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "leaf 1" in result.output


def test_a_release_about_many_people_is_indexed_on_postgres(pg_engine: Engine) -> None:
    """Past shred.MANY people an entry's index rows are written by one statement of the database
    (beside the Python work of the append): every person still finds the entry, and the audit
    checks each of their rows against their key."""
    ledger = Ledger(pg_engine, Signer.generate("test.accord.local/ledger"))
    crowd = [f"p{i:05d}" for i in range(shred.MANY + 300)]
    ledger.append([release(0, *crowd), release(1, "alice"), release(2, *crowd[: shred.MANY])])
    assert ledger.entries_about("p00001") == [0, 2]
    assert ledger.entries_about(crowd[-1]) == [0]
    assert ledger.entries_about("alice") == [1]
    report = ledger.verify()
    assert report.ok, report.problems
    assert report.index_rows_checked == len(crowd) + 1 + shred.MANY
    ledger.erase("p00001", "asked to be forgotten")
    assert ledger.entries_about("p00001") == []
    # Each release commits to its subjects by a root; a person's proof is a path in its tree.
    assert report.subject_lists_checked == 2
    bundle = ledger.prove_person(crowd[5], sign=True)
    assert [e["index"] for e in bundle["entries"]] == [0, 2]
    assert all(len(e["subject_proof"]["path"]) <= 11 for e in bundle["entries"])  # log2(1300)
    assert standalone.check(bundle) == []
    assert ledger.verify(people_map=True).ok


def test_the_index_parts_fold_on_postgres(pg_engine: Engine) -> None:
    ledger = Ledger(pg_engine, Signer.generate("test.accord.local/ledger"))
    crowds = [[f"c{k}-{i:05d}" for i in range(shred.MANY)] for k in range(2)]
    for k, crowd in enumerate(crowds):
        ledger.append([release(k, *crowd, "shared")])
    assert ledger.compact_index() == (2, 2 * (shred.MANY + 1))
    assert ledger.entries_about("shared") == [0, 1]
    assert ledger.entries_about(crowds[1][9]) == [1]
    report = ledger.verify()
    assert report.ok, report.problems
