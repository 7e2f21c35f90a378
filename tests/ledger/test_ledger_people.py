"""People in the log: found and proven by their own key, forgotten by deleting it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from ledger_builders import decision, release
from typer.testing import CliRunner

import accord.ledger.verify_proof as standalone
from accord.errors import NotFound, StoreError
from accord.ledger import shred
from accord.ledger.checkpoint import Signer
from accord.ledger.cli import app
from accord.ledger.log import Ledger
from accord.ledger.tables import create_ledger_tables
from accord.store.engine import make_engine

pytestmark = pytest.mark.integration

VERIFY_PROOF = Path(standalone.__file__)
runner = CliRunner()


@pytest.fixture
def people(ledger: Ledger) -> Ledger:
    """Alice in entries 0, 3 and 5; Bob in 1, 3 and 4; entry 2 about nobody."""
    ledger.append(
        [
            release(0, "alice"),
            release(1, "bob"),
            decision(2),
            release(3, "alice", "bob"),
            release(4, "bob"),
        ]
    )
    ledger.append([release(5, "alice", "alice")])
    return ledger


def test_a_person_finds_their_entries_by_a_query(people: Ledger) -> None:
    assert people.entries_about("alice") == [0, 3, 5]
    assert people.entries_about("bob") == [1, 3, 4]
    assert people.entries_about("carol") == []
    assert people.leaf(5).entry()["people"] == 1  # alice twice is one person


def test_leaves_carry_unlinkable_tags_not_ids(people: Ledger) -> None:
    leaves = [people.leaf(i) for i in range(6)]
    for leaf in leaves:
        assert b"alice" not in leaf.data
        assert b"bob" not in leaf.data
    tags = [tag for leaf in leaves for tag in leaf.entry()["subjects"]]
    assert len(tags) == len(set(tags)) == 6  # a person's tag differs from leaf to leaf
    assert len(leaves[3].entry()["subjects"]) == 2


def test_each_key_keeps_the_lookup_pseudonym_made_from_it(people: Ledger) -> None:
    with people.engine.connect() as conn:
        keys = shred.keys_for(conn, ["alice", "bob"], create=False)
    assert {p: lookup for p, (_, lookup) in keys.items()} == {
        p: shred.lookup_pseudonym(key) for p, (key, _) in keys.items()
    }
    assert keys["alice"][1] != keys["bob"][1]


def test_verify_finds_a_lookup_pseudonym_not_made_from_its_key(people: Ledger) -> None:
    from sqlalchemy import text

    with people.engine.begin() as conn:
        conn.execute(
            text("UPDATE person_keys SET lookup = :other WHERE person_id = 'bob'"),
            {"other": b"\x01" * 32},
        )
    report = people.verify()
    assert not report.ok
    assert any("not made from their key" in problem for problem in map(str, report.problems))
    assert people.entries_about("bob") == []  # why it matters: Bob's entries are lost to him


def test_erasure_forgets_the_person_and_the_log_still_verifies(people: Ledger) -> None:
    before = [people.leaf(i).data for i in range(6)]
    with people.engine.connect() as conn:
        alice_key, _ = shred.keys_for(conn, ["alice"], create=False)["alice"]
    receipt = people.erase("alice", "Alice asked Reelix to erase her data")
    assert people.entries_about("alice") == []
    assert people.entries_about("bob") == [1, 3, 4]
    assert [people.leaf(i).data for i in range(6)] == before  # the entries stay, byte for byte
    erasure = people.leaf(receipt.index)
    assert b"alice" not in erasure.data
    assert erasure.entry()["kind"] == "erasure"
    assert erasure.entry()["entries_forgotten"] == 3
    assert erasure.entry()["subjects"] == []
    with people.engine.connect() as conn:
        assert shred.keys_for(conn, ["alice"], create=False) == {}
    # The old key would still have linked her; it no longer exists anywhere in the store.
    assert shred.subject_tag(alice_key, 0) in people.leaf(0).entry()["subjects"]
    report = people.verify()
    assert report.ok, report.problems
    assert report.index_rows_checked == 3  # only Bob's rows are left
    with pytest.raises(NotFound, match="never recorded, or erased"):
        people.prove_person("alice", sign=True)


def test_a_person_recorded_after_erasure_gets_a_new_key(people: Ledger) -> None:
    people.erase("alice", "erased")
    (receipt,) = people.append([release(9, "alice")])
    assert people.entries_about("alice") == [receipt.index]


def test_erasing_someone_never_recorded_is_still_recorded(people: Ledger) -> None:
    receipt = people.erase("nobody", "asked to be erased")
    assert people.leaf(receipt.index).entry()["entries_forgotten"] == 0


def test_a_proof_bundle_checks_out_with_the_standalone_verifier(
    people: Ledger, tmp_path: Path
) -> None:
    assert people.signer is not None
    bundle = people.prove_person("alice", sign=True)
    assert [entry["index"] for entry in bundle["entries"]] == [0, 3, 5]
    assert standalone.check(bundle, people.signer.verifier.vkey) == []
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(bundle))
    result = subprocess.run(  # noqa: S603  (our own script, by path)
        [sys.executable, str(VERIFY_PROOF), str(path), "--vkey", people.signer.verifier.vkey],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 entries under a checkpoint" in result.stdout


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        # a leaf edited after the fact
        (
            lambda b: b["entries"][1].update(leaf=b["entries"][1]["leaf"].replace("3", "4")),
            "entry 3",
        ),
        # an entry about someone else passed off as Alice's
        (lambda b: b["entries"][0].update(index=1), "entry 1"),
        # a path element changed
        (lambda b: b["entries"][2]["inclusion_proof"].__setitem__(0, "00" * 32), "entry 5"),
        # a checkpoint re-signed by a different key
        (
            lambda b: b.update(vkey=Signer.generate("test.accord.local/ledger").verifier.vkey),
            "checkpoint",
        ),
        # someone else's key
        (lambda b: b["person"].update(key="11" * 32), "not about this person"),
    ],
)
def test_the_standalone_verifier_catches_a_doctored_bundle(
    people: Ledger, change: object, problem: str
) -> None:
    bundle = people.prove_person("alice", sign=True)
    assert callable(change)
    change(bundle)
    problems = standalone.check(bundle)
    assert any(problem in p for p in problems), problems


def test_the_standalone_verifier_trusts_only_the_given_key(people: Ledger) -> None:
    bundle = people.prove_person("alice", sign=True)
    other = Signer.generate("test.accord.local/ledger").verifier.vkey
    assert standalone.check(bundle, other) == [
        "the proof is signed by a different key than the one you trust"
    ]


def test_the_standalone_verifier_imports_only_the_standard_library() -> None:
    source = VERIFY_PROOF.read_text()
    imports = {
        line.split()[1].split(".")[0]
        for line in source.splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imports == {"__future__", "base64", "hashlib", "json", "sys"}


def test_the_standalone_hmac_and_ed25519_agree_with_the_libraries() -> None:
    import hashlib
    import hmac

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    for size in (0, 1, 63, 64, 65, 200):
        key, message = bytes(range(size % 256)) * 2, bytes([size]) * size
        assert (
            standalone.hmac_sha256(key, message) == hmac.new(key, message, hashlib.sha256).digest()
        )
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes_raw()
        signature = private.sign(message)
        assert standalone.ed25519_verify(public, message, signature)
        assert not standalone.ed25519_verify(public, message + b"!", signature)
        assert not standalone.ed25519_verify(
            public, message, signature[:63] + bytes([signature[63] ^ 1])
        )


def test_prove_on_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(url)
    create_ledger_tables(engine)
    Ledger(engine).append([release(0, "alice"), release(1, "bob")])
    engine.dispose()
    args = ["prove", "--person", "alice", "--database-url", url, "--data-dir", str(tmp_path)]
    args.append("--checkpoint")  # the store has no checkpoint yet: sign one first
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.stdout)
    assert [entry["index"] for entry in bundle["entries"]] == [0]
    assert standalone.check(bundle) == []
    missing = runner.invoke(app, [*args[:2], "nobody", *args[3:]])
    assert missing.exit_code == 2
    assert "no entries about 'nobody'" in missing.output
    assert "Traceback" not in missing.output


def test_a_person_in_many_entries_gets_every_proof(ledger: Ledger) -> None:
    """More entries than one query's worth of parameters: the bundle still has them all."""
    ledger.append([release(i, "alice") if i % 2 else decision(i) for i in range(1300)])
    bundle = ledger.prove_person("alice", sign=True)
    assert [entry["index"] for entry in bundle["entries"]] == list(range(1, 1300, 2))
    assert standalone.check(bundle) == []


def test_a_release_about_many_people_verifies_each_of_their_index_rows(ledger: Ledger) -> None:
    crowd = [f"p{i:05d}" for i in range(1_300)]  # index rows span several batches of the check
    ledger.append([release(0, *crowd), release(1, "alice"), release(2, *crowd[:700])])
    report = ledger.verify()
    assert report.ok, report.problems
    assert report.index_rows_checked == 1_300 + 1 + 700
    assert ledger.entries_about("p00999") == [0]
    assert ledger.entries_about("p00001") == [0, 2]


def test_an_index_statement_that_fails_writes_nothing(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index rows of an entry about many people are written beside the append; if that
    statement fails, the whole append fails: no leaf, no key, no index row is committed."""
    ledger.append([release(0, "alice")])
    crowd = [f"p{i:05d}" for i in range(shred.MANY)]

    def failing(*_: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(shred, "index_many", failing)
    with pytest.raises(StoreError, match="disk I/O error"):
        ledger.append([release(1, *crowd)])
    assert ledger.head().size == 1
    with ledger.engine.connect() as conn:
        assert shred.keys_for(conn, crowd, create=False) == {}
    monkeypatch.undo()
    (receipt,) = ledger.append([release(1, *crowd)])
    assert receipt.index == 1
    assert ledger.entries_about(crowd[-1]) == [1]
    assert ledger.verify().ok


def test_folding_the_index_parts_keeps_every_entry_findable(ledger: Ledger) -> None:
    """Each entry about many people is a part of the index; folding the parts into one leaves
    every person's entries found, erasable and verified, and changes no leaf."""
    crowds = [[f"c{k}-{i:05d}" for i in range(shred.MANY)] for k in range(3)]
    shared = "someone-in-every-crowd"
    for k, crowd in enumerate(crowds):
        ledger.append([release(2 * k, *crowd, shared), release(2 * k + 1, "alice")])
    before = ledger.head()
    found = {p: ledger.entries_about(p) for p in (shared, "alice", crowds[1][5])}
    assert found == {shared: [0, 2, 4], "alice": [1, 3, 5], crowds[1][5]: [2]}

    assert ledger.compact_index() == (3, 3 * (shred.MANY + 1))
    assert {p: ledger.entries_about(p) for p in found} == found
    assert ledger.head() == before
    assert ledger.compact_index() == (0, 0)  # one part: nothing to fold

    ledger.append([release(6, *crowds[0][:1_000])])  # a new part beside the folded one
    assert ledger.compact_index() == (2, 3 * (shred.MANY + 1) + 1_000)
    assert ledger.entries_about(crowds[0][0]) == [0, 6]
    ledger.erase(shared, "asked to be forgotten")
    assert ledger.entries_about(shared) == []
    report = ledger.verify()
    assert report.ok, report.problems


def test_compact_on_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(url)
    create_ledger_tables(engine)
    ledger = Ledger(engine, Signer.generate("test.accord.local/ledger"))
    for k in range(2):
        ledger.append([release(k, *(f"c{k}-{i}" for i in range(shred.MANY)))])
    engine.dispose()
    folded = runner.invoke(app, ["compact", "--database-url", url, "--data-dir", str(tmp_path)])
    assert folded.exit_code == 0, folded.output
    assert "Folded 2 parts of the person index (2,000 rows) into one." in folded.output
    again = runner.invoke(app, ["compact", "--database-url", url, "--data-dir", str(tmp_path)])
    assert again.exit_code == 0
    assert "nothing to fold" in again.output


@pytest.mark.parametrize(
    ("content", "args", "says", "code"),
    [
        # no file at that path
        (None, [], "no such file", 2),
        # an empty file (a prove that wrote nothing)
        ("", [], "the file is empty", 2),
        # text that is not JSON
        ("{not json", [], "not JSON", 2),
        # JSON, but not an object
        ("[1, 2]", [], "not a proof bundle", 2),
        # an Accord bundle missing its parts
        ('{"format": "%s", "vkey": "k"}', [], "FAIL checkpoint", 1),
        # --vkey with nothing after it
        ("{}", ["--vkey"], "--vkey needs", 2),
    ],
)
def test_the_standalone_verifier_says_what_is_wrong_with_a_bundle_file(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    content: str | None,
    args: list[str],
    says: str,
    code: int,
) -> None:
    path = tmp_path / "proof.json"
    if content is not None:
        path.write_text(content.replace("%s", standalone.FORMAT) if "%s" in content else content)
    assert standalone.main([str(path), *args]) == code
    printed = capsys.readouterr().out
    assert says in printed
    assert "Traceback" not in printed
