"""An entry about many people commits to their subject tags by a Merkle root (RFC 9162), and a
person proves they are one of them with a path; leaves written before, listing their tags, still
verify."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_builders import release

import accord.ledger.verify_proof as standalone
from accord.ledger import entries, shred, subjects
from accord.ledger.log import Ledger
from accord.ledger.subjects import Heads, SubjectTree, membership, verify_membership


def mth(tags: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1, written from its definition: MTH of the list of tags."""
    if len(tags) == 1:
        return hashlib.sha256(b"\x00" + tags[0]).digest()
    k = 1
    while k * 2 < len(tags):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(tags[:k]) + mth(tags[k:])).digest()


@contextmanager
def chunks_of(size: int) -> Iterator[None]:
    """Store subject lists in chunks of ``size`` tags (small, so a few tags span many chunks)."""
    with patch.object(subjects, "CHUNK", size):
        yield


def path_of(tree: SubjectTree, tag: bytes) -> subjects.Membership | None:
    """A tag's membership as the ledger finds it: its chunk by the chunks' first tags."""
    rows = tree.chunks()
    heads = Heads.of([first for _, first, _, _ in rows], tree.chunk_roots)
    chunk = heads.chunk_of(tag)
    if chunk < 0:
        return None
    return membership(tag, chunk, rows[chunk][2], heads)


tag_sets = st.sets(st.binary(min_size=32, max_size=32), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(tags=tag_sets, chunk=st.sampled_from([1, 2, 4, 8, 256]), data=st.data())
def test_each_subject_has_a_path_to_the_root_and_nobody_else_has(
    tags: set[bytes], chunk: int, data: st.DataObject
) -> None:
    with chunks_of(chunk):
        tree = SubjectTree.of(t.hex() for t in tags)
        ordered = sorted(tags)
        # The root is the RFC 9162 tree hash of the sorted tags, however they are chunked.
        assert tree.root == mth(ordered)
        assert tree.count == len(tags)
        for position, tag in enumerate(ordered):
            found = path_of(tree, tag)
            assert found is not None
            assert found.position == position
            assert verify_membership(tag, position, len(tags), found.path, tree.root)
        # Someone not among the subjects: no chunk holds them, and no subject's path is theirs.
        stranger = data.draw(st.binary(min_size=32, max_size=32).filter(lambda t: t not in tags))
        assert path_of(tree, stranger) is None
        for position, tag in enumerate(ordered):
            path = path_of(tree, tag)
            assert path is not None
            assert not verify_membership(stranger, position, len(tags), path.path, tree.root)


@settings(max_examples=60, deadline=None)
@given(
    tags=st.sets(st.binary(min_size=32, max_size=32), min_size=2, max_size=40),
    chunk=st.sampled_from([2, 4, 256]),
    data=st.data(),
)
def test_a_tampered_path_does_not_verify(tags: set[bytes], chunk: int, data: st.DataObject) -> None:
    with chunks_of(chunk):
        tree = SubjectTree.of(t.hex() for t in tags)
        ordered = sorted(tags)
        position = data.draw(st.integers(0, len(ordered) - 1))
        found = path_of(tree, ordered[position])
        assert found is not None
        path = list(found.path)
        assert path  # two tags or more: a path has a hash
        n = data.draw(st.integers(0, len(path) - 1))
        bit = data.draw(st.integers(0, 255))
        flipped = bytearray(path[n])
        flipped[bit // 8] ^= 1 << (bit % 8)
        changes = [
            (position, [*path[:n], bytes(flipped), *path[n + 1 :]], len(tags), tree.root),
            (position, path[:-1], len(tags), tree.root),
            (position, [*path, path[0]], len(tags), tree.root),
            ((position + 1) % len(tags), path, len(tags), tree.root),
            (position, path, len(tags), mth(ordered[1:])),
        ]
        for at, changed, count, root in changes:
            assert not verify_membership(ordered[position], at, count, changed, root)


def crowd(size: int, first: int = 0) -> list[str]:
    return [f"p{i:05d}" for i in range(first, first + size)]


@contextmanager
def writing_before_subject_trees() -> Iterator[None]:
    """The leaf writer as it was before subject trees: every leaf lists its subjects."""
    with patch.object(entries, "TREE_MIN", 10**9), patch.object(subjects, "TREE_MIN", 10**9):
        yield


def test_a_leaf_written_before_subject_trees_still_verifies(ledger: Ledger) -> None:
    with writing_before_subject_trees():
        ledger.append([release(0, *crowd(100))])
    ledger.append([release(1, *crowd(100, 50))])
    old, new = (json.loads(ledger.leaf(i).data) for i in (0, 1))
    # The old leaf lists every tag; the new one holds only their count and root.
    assert len(old["subjects"]) == 100
    assert "subjects_root" not in old
    assert "subjects" not in new
    assert new["subjects_count"] == 100
    report = ledger.verify()
    assert report.ok, report.problems
    assert report.subject_lists_checked == 1
    bundle = ledger.prove_person("p00070", sign=True)
    assert [e["index"] for e in bundle["entries"]] == [0, 1]
    assert "subject_proof" not in bundle["entries"][0]
    assert "subject_proof" in bundle["entries"][1]
    assert standalone.check(bundle) == []


def test_a_bulk_persons_proof_is_the_small_leaf_and_a_path(ledger: Ledger) -> None:
    ledger.append([release(0, *crowd(3000))])
    bundle = ledger.prove_person("p02999", sign=True)
    (entry,) = bundle["entries"]
    assert len(entry["leaf"]) < 1000
    # At most ceil(log2(3000)) hashes (fewer for a tag in the tree's last, smaller subtrees).
    assert 9 <= len(entry["subject_proof"]["path"]) <= 12
    assert standalone.check(bundle) == []
    # Someone else's path passed off as this person's: the standalone verifier says no.
    other = ledger.prove_person("p00000")["entries"][0]["subject_proof"]
    entry["subject_proof"] = other
    assert any("not about this person" in p for p in standalone.check(bundle))


def test_verify_finds_a_stored_subject_list_that_does_not_hash_to_its_root(
    ledger: Ledger, ledger_sqlite_url: str
) -> None:
    ledger.append([release(0, *crowd(300)), release(1, "alice")])
    assert ledger.verify().ok
    stranger = bytes(32)  # sorts first: the first chunk now holds someone else
    with sqlite3.connect(ledger_sqlite_url.removeprefix("sqlite:///")) as db:
        (tags,) = db.execute("SELECT tags FROM ledger_subjects WHERE chunk = 0").fetchone()
        db.execute(
            "UPDATE ledger_subjects SET tags = ?, first = ? WHERE chunk = 0",
            (stranger + tags[32:], stranger),
        )
    report = ledger.verify()
    assert not report.ok
    assert any(p.where == "leaf 0" for p in report.problems), report.problems


def test_the_subject_tags_are_the_ones_the_index_names(ledger: Ledger) -> None:
    people = crowd(200)
    (receipt,) = ledger.append([release(0, *people)])
    keys = [ledger.key_of(p) for p in people]
    tags = [shred.subject_tag(k[0], receipt.index) for k in keys if k is not None]
    leaf = json.loads(ledger.leaf(0).data)
    assert leaf["subjects_root"] == mth(sorted(bytes.fromhex(t) for t in tags)).hex()


@pytest.mark.parametrize("size", [subjects.TREE_MIN - 1, subjects.TREE_MIN])
def test_a_leaf_lists_its_subjects_below_the_threshold_only(ledger: Ledger, size: int) -> None:
    ledger.append([release(0, *crowd(size))])
    leaf = json.loads(ledger.leaf(0).data)
    assert ("subjects" in leaf) == (size < subjects.TREE_MIN)
    assert ("subjects_root" in leaf) == (size >= subjects.TREE_MIN)


@given(
    st.lists(st.binary(min_size=32, max_size=32), max_size=300),
    st.lists(st.booleans(), max_size=300),
)
def test_the_tree_over_hex_tags_is_the_tree_over_their_bytes_in_order(
    raw: list[bytes], upper: list[bool]
) -> None:
    """Tags given as hex in any order and any case make the tree of their bytes, sorted."""
    tags = [tag.hex().upper() if up else tag.hex() for tag, up in zip(raw, upper, strict=False)]
    tags += [tag.hex() for tag in raw[len(upper) :]]
    tree = SubjectTree.of(reversed(tags))
    assert tree == SubjectTree.of_sorted(b"".join(sorted(raw)))
    assert tree.hex_tags() == sorted(tag.hex() for tag in raw)
