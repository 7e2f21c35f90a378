"""Tampering with any stored leaf, node, state or checkpoint is caught, and said where."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from ledger_builders import decision, release
from sqlalchemy import Connection, text
from typer.testing import CliRunner

from accord.errors import InvalidInput
from accord.ledger import merkle
from accord.ledger.audit import _start_context, verify_ledger
from accord.ledger.checkpoint import Checkpoint, Signer
from accord.ledger.cli import app
from accord.ledger.log import Ledger
from accord.ledger.tables import STORED_MIN_LEVEL, create_ledger_tables
from accord.store.engine import make_engine

pytestmark = pytest.mark.integration

SIZE = 100  # leaves 96..99 form no stored node yet: the partial block at the end

runner = CliRunner()


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Ledger, str, Path]:
    """A 100-leaf ledger with checkpoints at 40 and 100, its URL and its data folder."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    data_dir = tmp_path / "data"
    engine = make_engine(url)
    create_ledger_tables(engine)
    ledger = Ledger(engine, Signer.load_or_create(data_dir))
    ledger.append([release(i, f"person-{i % 7}") if i % 3 else decision(i) for i in range(40)])
    ledger.checkpoint()
    ledger.append([decision(i) for i in range(40, SIZE)])
    ledger.checkpoint()
    return ledger, url, data_dir


def _cli_verify(url: str, data_dir: Path) -> tuple[int, str]:
    result = runner.invoke(
        app,
        ["verify", "--database-url", url, "--data-dir", str(data_dir)],
        env={"COLUMNS": "200"},
    )
    return result.exit_code, result.output


def test_an_untouched_ledger_verifies(setup: tuple[Ledger, str, Path]) -> None:
    ledger, url, data_dir = setup
    report = ledger.verify()
    assert report.ok, report.problems
    assert report.leaves_checked == SIZE
    assert report.nodes_checked == 6 + 3 + 1  # levels 4, 5 and 6 over 96 leaves
    assert report.checkpoints_checked == 2
    assert report.index_rows_checked == 26  # the releases among the first 40 entries
    code, output = _cli_verify(url, data_dir)
    assert code == 0, output
    assert "the ledger verifies" in output


def _node(level: int, index: int) -> int:
    return merkle.node_position(level, index)


def _resign(ledger: Ledger, size: int, root: bytes) -> Callable[[Connection], None]:
    """A validly signed checkpoint for a history the leaves do not have (a split view)."""
    assert ledger.signer is not None
    note = ledger.signer.sign(Checkpoint(ledger.signer.name, size, root)).note

    def tamper(conn: Connection) -> None:
        conn.execute(
            text("UPDATE ledger_checkpoints SET note = :note, root = :root WHERE size = :size"),
            {"note": note, "root": root, "size": size},
        )

    return tamper


def _sql(statement: str, **params: object) -> Callable[[Connection], None]:
    def tamper(conn: Connection) -> None:
        conn.execute(text(statement), params)

    return tamper


FLIPPED = hashlib.sha256(b"not the right hash").digest()
FAKE_LEAF = b'{"kind":"decision","reason":"nothing happened here"}'


def _rewrite_leaf(index: int) -> Callable[[Connection], None]:
    """Change a leaf and, to hide it, its stored leaf hash too."""
    return _sql(
        "UPDATE ledger_leaves SET data = :data, leaf_hash = :hash WHERE idx = :idx",
        data=FAKE_LEAF,
        hash=merkle.leaf_hash(FAKE_LEAF),
        idx=index,
    )


CASES = {
    # the data of a leaf changed: its stored hash no longer matches
    "leaf data": (
        _sql("UPDATE ledger_leaves SET data = :data WHERE idx = 5", data=FAKE_LEAF),
        "leaf 5",
    ),
    # a leaf about a person stored as text instead of bytes (even the same text): named, not a
    # TypeError
    "leaf stored as text": (
        _sql("UPDATE ledger_leaves SET data = CAST(data AS TEXT) WHERE idx = :idx", idx=4),
        "leaf 4",
    ),
    # a leaf and its hash rewritten together: the stored node over leaves 32..47 catches it
    "leaf and hash": (_rewrite_leaf(40), "node level 4 index 2"),
    # the same at the end, where no stored node covers it yet: the tree state catches it
    "leaf in the last block": (_rewrite_leaf(98), "ledger_state"),
    # a stored node changed
    "node": (
        _sql("UPDATE ledger_nodes SET hash = :h WHERE pos = :pos", h=FLIPPED, pos=_node(5, 1)),
        "node level 5 index 1",
    ),
    # a stored node deleted
    "missing node": (
        _sql("DELETE FROM ledger_nodes WHERE pos = :pos", pos=_node(6, 0)),
        "node level 6 index 0",
    ),
    # a node for a subtree that is not complete
    "extra node": (
        _sql("INSERT INTO ledger_nodes (pos, hash) VALUES (:pos, :h)", pos=_node(4, 6), h=FLIPPED),
        "node level 4 index 6",
    ),
    # a leaf deleted
    "missing leaf": (_sql("DELETE FROM ledger_leaves WHERE idx = 50"), "leaf 50"),
    # the tree head rewritten
    "state root": (_sql("UPDATE ledger_state SET root = :h", h=FLIPPED), "ledger_state"),
    # a checkpoint's signature damaged
    "checkpoint signature": (
        _sql("UPDATE ledger_checkpoints SET note = replace(note, '— ', '— x') WHERE size = 40"),
        "checkpoint at size 40",
    ),
    # a checkpoint's stored root changed beside its note
    "checkpoint root": (
        _sql("UPDATE ledger_checkpoints SET root = :h WHERE size = 100", h=FLIPPED),
        "checkpoint at size 100",
    ),
    # an index row left behind for a person with no key
    "orphan index row": (
        _sql(
            "INSERT INTO ledger_person_index (part, pseudonym, leaf_idx) VALUES (0, :p, 3)",
            p=FLIPPED,
        ),
        "person index row for leaf 3",
    ),
    # a person's index row moved to a part that lookups never read: the entry hidden from them
    "hidden index row": (
        _sql("UPDATE ledger_person_index SET part = 7 WHERE leaf_idx = 1"),
        "person index",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tampering_is_caught_and_located(setup: tuple[Ledger, str, Path], case: str) -> None:
    ledger, url, data_dir = setup
    tamper, where = CASES[case]
    with ledger.engine.begin() as conn:
        tamper(conn)
    report = ledger.verify()
    assert not report.ok
    assert any(where in problem.where for problem in report.problems), report.problems
    code, output = _cli_verify(url, data_dir)
    assert code == 1
    assert where in output
    assert "does not verify" in output
    assert "Traceback" not in output


def test_a_signed_checkpoint_of_another_history_is_caught(setup: tuple[Ledger, str, Path]) -> None:
    """The operator signing a root the leaves do not have (a split view) is caught too."""
    ledger, _, _ = setup
    with ledger.engine.begin() as conn:
        _resign(ledger, 40, FLIPPED)(conn)
    report = ledger.verify()
    assert [p.where for p in report.problems] == ["checkpoint at size 40"]
    assert "differs from the root of the stored leaves" in report.problems[0].message


def test_checkpoints_signed_by_another_key_are_caught(setup: tuple[Ledger, str, Path]) -> None:
    _, url, _ = setup
    other = Signer.generate("somewhere.else/log")
    result = runner.invoke(
        app,
        ["verify", "--database-url", url, "--vkey", other.verifier.vkey],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 1
    # Not a failed signature (what tampering looks like) but a key that never signed this log.
    assert "not by the key checked against, somewhere.else/log" in result.output
    assert "different data folders" in result.output


def test_the_report_raises_with_the_first_place(setup: tuple[Ledger, str, Path]) -> None:
    ledger, _, _ = setup
    with ledger.engine.begin() as conn:
        CASES["leaf data"][0](conn)
    report = ledger.verify()
    with pytest.raises(Exception, match="leaf 5") as caught:
        report.raise_for_problems()
    assert type(caught.value).__name__ == "LedgerIntegrityError"


def test_base64_in_checkpoints_is_the_stored_root(setup: tuple[Ledger, str, Path]) -> None:
    ledger, _, _ = setup
    size, root, note = ledger.checkpoints()[-1]
    assert note.split("\n")[2] == base64.b64encode(root).decode()
    assert size == SIZE


@pytest.mark.parametrize("case", ["none", "leaf data", "leaf and hash", "node", "missing leaf"])
def test_worker_processes_find_what_one_process_finds(
    setup: tuple[Ledger, str, Path], case: str
) -> None:
    """Chunks of 16 leaves checked by two worker processes: the same report, problem for problem."""
    ledger, _, _ = setup
    if case != "none":
        with ledger.engine.begin() as conn:
            CASES[case][0](conn)
    alone = verify_ledger(ledger, workers=1, chunk_level=4)
    shared = verify_ledger(ledger, workers=2, chunk_level=4)
    assert shared.problems == alone.problems
    assert shared.ok == alone.ok == (case == "none")
    assert (shared.leaves_checked, shared.nodes_checked) == (
        alone.leaves_checked,
        alone.nodes_checked,
    )
    assert (shared.checkpoints_checked, shared.index_rows_checked) == (
        alone.checkpoints_checked,
        alone.index_rows_checked,
    )
    whole = ledger.verify()  # one chunk: checked here, whatever the workers; other order
    assert {str(p) for p in whole.problems} == {str(p) for p in alone.problems}


ONE_THREAD = (
    "from accord.ledger.audit import _start_context; print(_start_context().get_start_method())"
)


def test_workers_are_not_forked_from_a_process_running_other_threads(
    setup: tuple[Ledger, str, Path],
) -> None:
    """A fork copies only its own thread, and every lock as it was: one another thread held at
    that instant stays held in the worker for ever. A server verifying its ledger starts its
    workers from a fork server instead, and they find what one process finds."""
    ledger, _, _ = setup
    alone = subprocess.run(  # noqa: S603 - this interpreter, our own module
        [sys.executable, "-c", ONE_THREAD], capture_output=True, text=True, check=True
    )
    assert alone.stdout.strip() == "fork"  # a process of one thread: fork is safe, and fast
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert _start_context().get_start_method() != "fork"
        shared = verify_ledger(ledger, workers=2, chunk_level=4)
    finally:
        stop.set()
        other.join()
    assert shared.ok, shared.problems
    assert shared.leaves_checked == SIZE


def test_chunks_smaller_than_stored_nodes_are_refused(setup: tuple[Ledger, str, Path]) -> None:
    ledger, _, _ = setup
    with pytest.raises(InvalidInput, match="chunk_level"):
        verify_ledger(ledger, chunk_level=STORED_MIN_LEVEL - 1)


def test_a_leaf_stored_as_text_is_named_with_what_is_wrong(setup: tuple[Ledger, str, Path]) -> None:
    ledger, url, data_dir = setup
    with ledger.engine.begin() as conn:
        conn.execute(text("UPDATE ledger_leaves SET data = CAST(data AS TEXT) WHERE idx = 4"))
    report = ledger.verify()
    assert [(p.where, p.message) for p in report.problems] == [
        (
            "leaf 4",
            "its data is stored as str, not as the bytes that were hashed (the leaf was rewritten)",
        )
    ]
    code, output = _cli_verify(url, data_dir)
    assert code == 1
    assert "leaf 4" in output
    assert "Traceback" not in output
