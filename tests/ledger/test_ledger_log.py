"""The stored log: appends, receipts, roots and proofs against the in-memory reference."""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_builders import decision, release
from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection

from accord.errors import InvalidInput, LedgerError, NotFound
from accord.ledger import merkle
from accord.ledger.checkpoint import Signer
from accord.ledger.entries import DecisionEntry
from accord.ledger.log import Ledger
from accord.ledger.tables import LEDGER_TABLES, create_ledger_tables
from accord.store.engine import Base, make_engine

pytestmark = pytest.mark.integration


def test_append_returns_durable_receipts(ledger: Ledger) -> None:
    receipts = ledger.append([release(0, "alice"), decision(1)])
    assert [r.index for r in receipts] == [0, 1]
    assert all(r.tree_size == 2 for r in receipts)
    for receipt in receipts:
        stored = ledger.leaf(receipt.index)
        assert hashlib.sha256(b"\x00" + stored.data).digest() == receipt.leaf_hash
        assert stored.leaf_hash == receipt.leaf_hash
    assert ledger.leaf(0).entry()["kind"] == "release"
    assert ledger.leaf(1).entry()["reason"] == "decision 1"
    assert ledger.append([]) == []


def test_the_stored_tree_is_the_reference_tree(ledger: Ledger) -> None:
    """Appends in batches of every shape; roots and proofs match the in-memory tree throughout."""
    rng = random.Random(7)
    reference = merkle.MemoryTree()
    sizes = [0]
    while reference.size < 700:
        batch = [decision(reference.size + i) for i in range(rng.choice([1, 2, 3, 15, 16, 17, 64]))]
        for receipt in ledger.append(batch):
            assert receipt.index == reference.append_hash(receipt.leaf_hash)
        assert ledger.head() == type(ledger.head())(reference.size, reference.root())
        sizes.append(reference.size)
    for size in [*rng.sample(sizes, 25), 1, 15, 16, 17, 256, 511, 512, 513]:
        assert ledger.root(size) == reference.root(size)
        for index in {0, size - 1, rng.randrange(max(size, 1))} if size else set():
            proof = ledger.inclusion_proof(index, size)
            assert list(proof.path) == reference.inclusion_proof(index, size)
            assert proof.verify()
        old = rng.randint(0, size)
        consistency = ledger.consistency_proof(old, size)
        assert list(consistency.path) == reference.consistency_proof(old, size)
        assert consistency.verify()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ledger, merkle.MemoryTree]]:
    """A 300-leaf ledger and its reference tree, shared by the property tests."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('built') / 'ledger.db'}")
    create_ledger_tables(engine)
    ledger = Ledger(engine, Signer.generate("test.accord.local/ledger"))
    reference = merkle.MemoryTree()
    for start in range(0, 300, 37):
        for receipt in ledger.append([decision(start + i) for i in range(37)]):
            reference.append_hash(receipt.leaf_hash)
    yield ledger, reference
    engine.dispose()


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_stored_proof_is_the_reference_proof(
    built: tuple[Ledger, merkle.MemoryTree], data: st.DataObject
) -> None:
    ledger, reference = built
    size = data.draw(st.integers(1, reference.size), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    old = data.draw(st.integers(0, size), label="old size")
    proof = ledger.inclusion_proof(index, size)
    assert proof.root == reference.root(size)
    assert list(proof.path) == reference.inclusion_proof(index, size)
    consistency = ledger.consistency_proof(old, size)
    assert list(consistency.path) == reference.consistency_proof(old, size)
    assert consistency.verify()


@pytest.mark.parametrize(
    ("index", "size", "message"),
    [
        (5, 5, "not in the tree"),  # the index must be below the size
        (0, 9, "no tree of size 9"),  # no tree larger than the log
        (-1, None, "not in the tree"),
    ],
)
def test_impossible_proofs_are_refused(
    ledger: Ledger, index: int, size: int | None, message: str
) -> None:
    ledger.append([decision(i) for i in range(5)])
    with pytest.raises(LedgerError, match=message):
        ledger.inclusion_proof(index, size)


def test_impossible_consistency_proofs_are_refused(ledger: Ledger) -> None:
    ledger.append([decision(i) for i in range(5)])
    with pytest.raises(LedgerError, match="no consistency proof"):
        ledger.consistency_proof(6, 5)


def test_missing_leaves_and_non_entries(ledger: Ledger) -> None:
    with pytest.raises(NotFound):
        ledger.leaf(0)
    with pytest.raises(InvalidInput, match="not a ledger entry"):
        ledger.append(["a string"])  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match="batch_size"):
        Ledger(ledger.engine, batch_size=0)


def test_checkpoints_are_signed_once_per_size_and_chain(ledger: Ledger, signer: Signer) -> None:
    empty = ledger.checkpoint()
    assert empty.checkpoint.size == 0
    assert empty.checkpoint.root == merkle.EMPTY_ROOT
    ledger.append([decision(i) for i in range(10)])
    first = ledger.checkpoint()
    assert ledger.checkpoint().note == first.note
    ledger.append([decision(i) for i in range(10, 33)])
    second = ledger.checkpoint()
    stored = ledger.checkpoints()
    assert [size for size, _, _ in stored] == [0, 10, 33]
    assert ledger.latest_checkpoint() == second.note
    a, b = signer.verifier.open(first.note), signer.verifier.open(second.note)
    proof = ledger.consistency_proof(a.size, b.size)
    assert merkle.verify_consistency(a.size, b.size, a.root, b.root, proof.path)


def test_checkpoints_need_a_signing_key(engine: Engine) -> None:
    with pytest.raises(LedgerError, match="without a signing key"):
        Ledger(engine).checkpoint()


def test_bulk_and_receipted_appends_build_the_same_tree(tmp_path: Path, signer: Signer) -> None:
    at = datetime(2024, 5, 1, tzinfo=UTC)
    entries = [
        DecisionEntry(agreement="a", reason=f"r{i}", allowed=i % 2 == 0, at=at) for i in range(300)
    ]
    heads = []
    for name in ("bulk", "receipted"):
        engine = make_engine(f"sqlite:///{tmp_path / name}.db")
        create_ledger_tables(engine)
        log = Ledger(engine, signer, batch_size=64)
        if name == "bulk":
            log.append_bulk(iter(entries), batch_size=128)
        else:
            log.append(entries)
        heads.append(log.head())
        assert log.verify().ok
        engine.dispose()
    assert heads[0] == heads[1]
    assert heads[0].size == 300


def test_one_append_mixing_people_and_nobody_across_batches(engine: Engine) -> None:
    """Leaves about people are written under the lock, the others ahead of it: one tree."""
    log = Ledger(engine, batch_size=16)
    entries = [release(i, f"p{i % 5}") if i % 3 == 0 else decision(i) for i in range(70)]
    receipts = log.append(entries)
    assert [r.index for r in receipts] == list(range(70))
    assert {r.tree_size for r in receipts[:16]} == {16}
    assert receipts[-1].tree_size == 70
    reference = merkle.MemoryTree()
    for receipt in receipts:
        stored = log.leaf(receipt.index)
        assert merkle.leaf_hash(stored.data) == stored.leaf_hash == receipt.leaf_hash
        reference.append_hash(receipt.leaf_hash)
    assert log.head().root == reference.root()
    assert log.entries_about("p0") == [i for i in range(0, 70, 3) if i % 5 == 0]
    assert log.verify().ok


def test_threads_never_fork_the_tree(ledger: Ledger, ledger_sqlite_url: str) -> None:
    """Eight threads on two engines append at once: every index once, and the tree verifies."""
    second = Ledger(make_engine(ledger_sqlite_url), ledger.signer)
    commits = 0

    def count(_conn: Connection) -> None:
        nonlocal commits
        commits += 1

    event.listen(ledger.engine, "commit", count)
    receipts: list[int] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    def writer(log: Ledger, number: int) -> None:
        rng = random.Random(number)
        try:
            for round_ in range(40):
                got = log.append(
                    [decision(number * 1000 + round_ * 10 + i) for i in range(rng.randint(1, 3))]
                )
                with lock:
                    receipts.extend(r.index for r in got)
        except BaseException as exc:  # noqa: BLE001  (handed to the main thread's assertion)
            failures.append(exc)

    threads = [
        threading.Thread(target=writer, args=(ledger if n % 2 else second, n)) for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    head = ledger.head()
    assert sorted(receipts) == list(range(head.size))
    report = ledger.verify()
    assert report.ok, report.problems
    # Four threads shared the first engine; grouping means fewer commits than appends there.
    assert 0 < commits <= 160
    second.engine.dispose()


def test_the_migration_creates_exactly_these_tables(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from accord.store.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    upgrade(engine)
    names = {table.name for table in LEDGER_TABLES}
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = [
            diff
            for diff in compare_metadata(context, Base.metadata)
            if names & set(str(diff).split("'"))
        ]
        assert differences == []
        assert names <= set(conn.dialect.get_table_names(conn))
    ledger = Ledger(engine, Signer.generate("test.accord.local/ledger"))
    ledger.append([release(0, "alice")])
    assert ledger.verify().ok
    engine.dispose()
