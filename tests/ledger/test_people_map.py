"""Nothing hidden: each checkpoint commits to every person's entry count and hash chain (the
people map, as key-transparency systems such as CONIKS commit to each user's keys), so a list of
a person's entries with one left out fails the check, in the standalone verifier."""

from __future__ import annotations

import base64
import copy
import hashlib
import secrets

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_builders import decision, release
from sqlalchemy import Engine

import accord.ledger.verify_proof as standalone
from accord.ledger import mapstore, peoplemap, shred
from accord.ledger.checkpoint import Checkpoint, Signer
from accord.ledger.log import Ledger
from accord.ledger.tables import create_ledger_tables
from accord.store.engine import make_engine

pytestmark = pytest.mark.integration


@pytest.fixture
def people(ledger: Ledger) -> Ledger:
    """Alice in entries 0, 3 and 5; Bob in 1, 3 and 4; entry 2 about nobody."""
    ledger.append([release(0, "alice"), release(1, "bob"), decision(2)])
    ledger.append([release(3, "alice", "bob"), release(4, "bob"), release(5, "alice")])
    return ledger


# -- an oracle from the scheme's definition, not from the code under test -----------------------


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _bit(key: bytes, depth: int) -> int:
    return (key[depth // 8] >> (7 - depth % 8)) & 1


def expected_root(
    signer: Signer, people: dict[str, list[tuple[int, bytes]]], ledger: Ledger
) -> bytes:
    """The map root by the definition: keys are the hashed Ed25519 signatures of each person's
    lookup pseudonym; a leaf hashes its key with the hash of (count, chain head); the top 16
    levels are always interior nodes; below, one leaf stands for its subtree, none is 32 zeros."""
    function = signer.vuf()
    leaves: dict[bytes, bytes] = {}
    for person, entries in people.items():
        found = ledger.key_of(person)
        assert found is not None
        signature = function._key.sign(_h(b"accord/people-map/vuf/v1\n" + found[1]))
        key = _h(b"accord/people-map/vuf-output/v1\n" + signature)
        head = bytes(32)
        for index, leaf in sorted(entries):
            head = _h(b"\x03" + head + index.to_bytes(8, "big") + leaf)
        value = _h(len(entries).to_bytes(8, "big") + head)
        leaves[key] = _h(b"\x00" + key + value)

    def subtree(depth: int, keys: list[bytes]) -> bytes:
        if depth >= 16 and not keys:
            return bytes(32)
        if depth >= 16 and len(keys) == 1:
            return leaves[keys[0]]
        left = [k for k in keys if not _bit(k, depth)]
        right = [k for k in keys if _bit(k, depth)]
        return _h(b"\x01" + subtree(depth + 1, left) + subtree(depth + 1, right))

    return subtree(0, sorted(leaves))


def _map_root(ledger: Ledger) -> bytes:
    note = ledger.latest_checkpoint()
    assert note is not None
    committed = peoplemap.parse_checkpoint_line(
        Checkpoint.parse(note[: note.rfind("\n\n") + 1]).extensions
    )
    assert committed is not None
    return committed[0]


def _entries(ledger: Ledger, person: str) -> list[tuple[int, bytes]]:
    return [(i, ledger.leaf(i).leaf_hash) for i in ledger.entries_about(person)]


# -- the checks ----------------------------------------------------------------------------------


def test_a_whole_list_passes_the_completeness_check(people: Ledger) -> None:
    for person in ("alice", "bob"):
        bundle = people.prove_person(person, sign=True)
        assert bundle["completeness"]["count"] == 3
        assert standalone.check(bundle, people.verifier.vkey) == []  # type: ignore[union-attr]


def test_a_list_with_one_release_left_out_fails(people: Ledger) -> None:
    """The server shows Alice entries 0 and 5 but not 3: the checkpoint it signed says 3."""
    bundle = people.prove_person("alice", sign=True)
    hidden = copy.deepcopy(bundle)
    hidden["entries"] = [e for e in hidden["entries"] if e["index"] != 3]
    problems = standalone.check(hidden)
    assert any("not the whole list" in p for p in problems), problems


def test_a_list_with_one_release_swapped_for_another_fails(people: Ledger) -> None:
    """Same count, other entries: the hash chain tells them apart."""
    alice = people.prove_person("alice", sign=True)
    bob = people.prove_person("bob", sign=False)
    swapped = copy.deepcopy(alice)
    swapped["entries"][1] = bob["entries"][2]  # bob's entry 4 in place of alice's 3
    problems = standalone.check(swapped)
    assert any("not the ones the checkpoint commits to" in p for p in problems), problems


def test_a_forged_leaf_or_path_fails(people: Ledger) -> None:
    bundle = people.prove_person("alice", sign=True)
    forged = copy.deepcopy(bundle)
    forged["completeness"]["count"] = 2
    forged["entries"] = forged["entries"][:2]
    assert any("not under the checkpoint's map root" in p for p in standalone.check(forged))
    moved = copy.deepcopy(bundle)
    moved["completeness"]["siblings"][3] = "00" * 32
    assert any("map root" in p for p in standalone.check(moved))


def test_the_map_key_is_proved_by_the_function_key_in_the_checkpoint(people: Ledger) -> None:
    bundle = people.prove_person("alice", sign=True)
    other = copy.deepcopy(bundle)
    other["completeness"]["vuf_proof"] = "11" * 64
    assert any("does not verify" in p for p in standalone.check(other))
    stolen = copy.deepcopy(bundle)
    stolen["completeness"]["lookup"] = "22" * 16
    assert any("someone else's" in p for p in standalone.check(stolen))


def test_the_root_follows_the_definition_as_entries_arrive(people: Ledger, signer: Signer) -> None:
    people.checkpoint()
    expected = {p: _entries(people, p) for p in ("alice", "bob")}
    assert _map_root(people) == expected_root(signer, expected, people)
    people.append([release(6, "carol"), release(7, "alice")])
    people.checkpoint()
    assert people.last_map_cost["people_touched"] == 2  # only carol and alice are read again
    assert people.last_map_cost["functions_signed"] == 1  # only carol is new
    expected = {p: _entries(people, p) for p in ("alice", "bob", "carol")}
    assert _map_root(people) == expected_root(signer, expected, people)
    assert standalone.check(people.prove_person("alice")) == []


def test_an_erased_person_leaves_the_map_at_the_next_checkpoint(
    people: Ledger, signer: Signer
) -> None:
    people.checkpoint()
    people.erase("bob", "erased at their request")
    # Until the next checkpoint, proofs under this one still hold for everyone else.
    assert standalone.check(people.prove_person("alice")) == []
    people.checkpoint()
    assert people.last_map_cost["people_removed"] == 1
    expected = {"alice": _entries(people, "alice")}
    assert _map_root(people) == expected_root(signer, expected, people)
    assert standalone.check(people.prove_person("alice")) == []


def test_someone_absent_is_proved_absent(people: Ledger) -> None:
    people.checkpoint()
    lookup = secrets.token_bytes(16)
    assert people.signer is not None
    with people.engine.connect() as conn:
        proof = mapstore.prove(conn, lookup, people.signer.vuf())
    assert proof["count"] == 0
    note = people.latest_checkpoint()
    assert note is not None
    line = next(x for x in note.split("\n") if x.startswith(peoplemap.FORMAT))
    # The verifier's check needs the person's key; here the lookup stands in for it directly.
    original = standalone.hmac_sha256
    standalone.hmac_sha256 = lambda key, message: lookup if key == b"k" else original(key, message)  # type: ignore[assignment]
    try:
        assert (
            standalone.check_completeness({"completeness": proof, "entries": []}, b"k", [line])
            == []
        )
        shown = {"completeness": proof, "entries": [{"index": 1, "leaf_hash": "00" * 32}]}
        assert standalone.check_completeness(shown, b"k", [line])
    finally:
        standalone.hmac_sha256 = original  # type: ignore[assignment]


def test_old_checkpoints_without_the_map_still_verify(people: Ledger, signer: Signer) -> None:
    head = people.head()
    old = signer.sign(Checkpoint(signer.name, head.size, head.root))
    assert signer.verifier.open(old.note).extensions == ()
    assert peoplemap.parse_checkpoint_line(()) is None
    new = people.checkpoint()
    assert new.checkpoint.extensions[0].startswith(peoplemap.FORMAT + " ")
    assert base64.b64decode(new.checkpoint.extensions[0].split(" ")[2]) == signer.vuf().public_key
    assert people.verify().ok


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.lists(
            st.sets(st.sampled_from("abcdefgh"), min_size=1, max_size=4), min_size=1, max_size=4
        ),
        min_size=1,
        max_size=4,
    )
)
def test_building_batch_by_batch_gives_the_root_of_the_definition(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[set[str]]]
) -> None:
    folder = tmp_path_factory.mktemp("map")
    engine: Engine = make_engine(f"sqlite:///{folder / 'ledger.db'}")
    create_ledger_tables(engine)
    signer = Signer.generate("test.accord.local/ledger")
    ledger = Ledger(engine, signer)
    number = 0
    for batch in batches:
        entries = []
        for about in batch:
            entries.append(release(number, *sorted(about)))
            number += 1
        ledger.append(entries)
        ledger.checkpoint()
    everyone = {p for batch in batches for about in batch for p in about}
    expected = {p: _entries(ledger, p) for p in everyone}
    assert _map_root(ledger) == expected_root(signer, expected, ledger)
    for person in everyone:
        assert standalone.check(ledger.prove_person(person)) == []
    engine.dispose()


def test_the_lookup_pseudonym_in_the_proof_is_the_persons(people: Ledger) -> None:
    bundle = people.prove_person("alice", sign=True)
    key = bytes.fromhex(bundle["person"]["key"])
    assert bundle["completeness"]["lookup"] == shred.lookup_pseudonym(key).hex()


def test_the_library_s_own_check_agrees_with_the_standalone_verifier(people: Ledger) -> None:
    bundle = people.prove_person("bob", sign=True)
    proof = bundle["completeness"]
    committed = peoplemap.parse_checkpoint_line(
        Checkpoint.parse(bundle["checkpoint"][: bundle["checkpoint"].rfind("\n\n") + 1]).extensions
    )
    assert committed is not None
    root, function_key = committed
    lookup = bytes.fromhex(proof["lookup"])
    key = peoplemap.vuf_verify(function_key, lookup, bytes.fromhex(proof["vuf_proof"]))
    assert key is not None
    assert key.hex() == proof["key"]
    assert (
        peoplemap.vuf_verify(
            function_key, secrets.token_bytes(16), bytes.fromhex(proof["vuf_proof"])
        )
        is None
    )
    leaf = peoplemap.MapLeaf(key, proof["count"], bytes.fromhex(proof["head"]))
    siblings = [bytes.fromhex(h) for h in proof["siblings"]]
    assert peoplemap.fold(key, leaf.hash, siblings) == root
    entries = [(e["index"], bytes.fromhex(e["leaf_hash"])) for e in bundle["entries"]]
    assert peoplemap.chain(peoplemap.CHAIN_START, entries) == leaf.head


@pytest.mark.postgres
def test_on_postgresql_a_list_with_one_left_out_fails(ledger_pg_url: str, signer: Signer) -> None:
    engine = make_engine(ledger_pg_url)
    create_ledger_tables(engine)
    try:
        ledger = Ledger(engine, signer)
        ledger.append([release(0, "alice"), release(1, "bob"), release(2, "alice", "bob")])
        ledger.checkpoint()
        ledger.append([release(3, "alice"), release(4, "carol")])
        bundle = ledger.prove_person("alice", sign=True)
        assert standalone.check(bundle) == []
        assert bundle["completeness"]["count"] == 3
        expected = {p: _entries(ledger, p) for p in ("alice", "bob", "carol")}
        assert _map_root(ledger) == expected_root(signer, expected, ledger)
        bundle["entries"] = bundle["entries"][1:]
        assert any("not the whole list" in p for p in standalone.check(bundle))
    finally:
        engine.dispose()
