"""The Merkle maths against published vectors, against pymerkle, and by property."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree
from pymerkle.proof import InvalidProof

from accord.ledger import merkle

pytestmark = pytest.mark.unit

# The reference vectors of Certificate Transparency's Merkle tree tests (first in the C++
# merkle_tree_test.cc, carried over to Go): transparency-dev/merkle, proof/verify_test.go.
# Leaf indexes there are 1-based; here they are 0-based.
LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # size 0: SHA-256("")
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


@pytest.fixture(scope="module")
def reference() -> merkle.MemoryTree:
    return merkle.MemoryTree(merkle.leaf_hash(leaf) for leaf in LEAVES)


def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert merkle.root_of([]).hex() == ROOTS[0]
    assert merkle.MemoryTree().root().hex() == ROOTS[0]


@pytest.mark.parametrize("size", range(9))
def test_roots_match_the_reference(reference: merkle.MemoryTree, size: int) -> None:
    assert reference.root(size).hex() == ROOTS[size]
    assert merkle.root_of([merkle.leaf_hash(x) for x in LEAVES[:size]]).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION)
def test_inclusion_proofs_match_the_reference(
    reference: merkle.MemoryTree, index: int, size: int, expected: list[str]
) -> None:
    proof = reference.inclusion_proof(index, size)
    assert [p.hex() for p in proof] == expected
    leaf = merkle.leaf_hash(LEAVES[index])
    assert merkle.verify_inclusion(leaf, index, size, proof, bytes.fromhex(ROOTS[size]))


@pytest.mark.parametrize(("old", "new", "expected"), CONSISTENCY)
def test_consistency_proofs_match_the_reference(
    reference: merkle.MemoryTree, old: int, new: int, expected: list[str]
) -> None:
    proof = reference.consistency_proof(old, new)
    assert [p.hex() for p in proof] == expected
    old_root, new_root = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    assert merkle.verify_consistency(old, new, old_root, new_root, proof)


def _corrupted_inclusions(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[str, int, int, list[bytes], bytes, bytes]]:
    """The probes of transparency-dev/merkle's corruptInclusionProof, each of which must fail."""
    probes = [
        ("index - 1", index - 1, size, proof, root, leaf),
        ("index + 1", index + 1, size, proof, root, leaf),
        ("index ^ 2", index ^ 2, size, proof, root, leaf),
        ("size * 2", index, size * 2, proof, root, leaf),
        ("size // 2", index, size // 2, proof, root, leaf),
        ("wrong leaf", index, size, proof, root, merkle.leaf_hash(b"WrongLeaf")),
        ("empty root", index, size, proof, merkle.EMPTY_ROOT, leaf),
        ("random root", index, size, proof, SOME_HASH, leaf),
        ("trailing garbage", index, size, [*proof, b""], root, leaf),
        ("trailing root", index, size, [*proof, root], root, leaf),
        ("preceding garbage", index, size, [b"", *proof], root, leaf),
        ("preceding root", index, size, [root, *proof], root, leaf),
    ]
    for i in range(len(proof)):
        flipped = [*proof]
        flipped[i] = bytes([proof[i][0] ^ 8]) + proof[i][1:]
        probes.append((f"bit flip in {i}", index, size, flipped, root, leaf))
    if proof:
        probes.append(("removed component", index, size, proof[:-1], root, leaf))
    if len(proof) > 1:
        probes.append(
            ("inserted component", index, size, [proof[0], SOME_HASH, *proof[1:]], root, leaf)
        )
    return probes


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION[1:])
def test_corrupted_inclusion_proofs_fail(
    reference: merkle.MemoryTree, index: int, size: int, expected: list[str]
) -> None:
    proof = [bytes.fromhex(h) for h in expected]
    root, leaf = bytes.fromhex(ROOTS[size]), merkle.leaf_hash(LEAVES[index])
    accepted = [
        name
        for name, i, s, p, r, h in _corrupted_inclusions(index, size, proof, root, leaf)
        if merkle.verify_inclusion(h, i, s, p, r)
    ]
    assert accepted == []


@pytest.mark.parametrize(("old", "new", "expected"), CONSISTENCY[1:])
def test_corrupted_consistency_proofs_fail(old: int, new: int, expected: list[str]) -> None:
    proof = [bytes.fromhex(h) for h in expected]
    r1, r2 = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    probes = [
        ("old - 1", old - 1, new, r1, r2, proof),
        ("old + 1", old + 1, new, r1, r2, proof),
        ("old ^ 2", old ^ 2, new, r1, r2, proof),
        ("new * 2", old, new * 2, r1, r2, proof),
        ("new // 2", old, new // 2, r1, r2, proof),
        ("wrong old root", old, new, SOME_HASH, r2, proof),
        ("wrong new root", old, new, r1, SOME_HASH, proof),
        ("swapped roots", old, new, r2, r1, proof),
        ("empty proof", old, new, r1, r2, []),
        ("trailing garbage", old, new, r1, r2, [*proof, b""]),
        ("trailing old root", old, new, r1, r2, [*proof, r1]),
        ("trailing new root", old, new, r1, r2, [*proof, r2]),
        ("preceding garbage", old, new, r1, r2, [b"", *proof]),
        ("preceding old root", old, new, r1, r2, [r1, *proof]),
        ("preceding new root", old, new, r1, r2, [r2, *proof]),
        ("preceding proof[0]", old, new, r1, r2, [proof[0], *proof]),
        ("truncated", old, new, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        flipped = [*proof]
        flipped[i] = bytes([proof[i][0] ^ 16]) + proof[i][1:]
        probes.append((f"bit flip in {i}", old, new, r1, r2, flipped))
    accepted = [name for name, m, n, a, b, p in probes if merkle.verify_consistency(m, n, a, b, p)]
    assert accepted == []


# Edge cases of the sizes themselves, from transparency-dev/merkle's TestVerifyConsistency.
@pytest.mark.parametrize(
    ("old", "new", "same_roots", "proof", "valid"),
    [
        (0, 0, True, [], True),  # the empty tree is consistent with itself
        (0, 1, False, [], True),  # everything extends the empty tree
        (1, 1, True, [], True),  # a tree is consistent with itself
        (1, 1, False, [], False),  # ...but not with a different root of the same size
        (1, 0, False, [], False),  # no travelling back in time
        (2, 1, False, [], False),
        (1, 2, False, [], False),  # growing needs a proof
        (0, 0, True, [merkle.EMPTY_ROOT], False),  # equal roots, but a proof where none belongs
        (1, 1, True, [merkle.EMPTY_ROOT], False),
    ],
)
def test_consistency_edge_cases(
    old: int, new: int, same_roots: bool, proof: list[bytes], valid: bool
) -> None:
    other = merkle.EMPTY_ROOT if same_roots else SOME_HASH
    assert merkle.verify_consistency(old, new, merkle.EMPTY_ROOT, other, proof) is valid


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (2, 1), (5, 5)])
def test_inclusion_out_of_range_never_verifies(index: int, size: int) -> None:
    assert not merkle.verify_inclusion(SOME_HASH, index, size, [], SOME_HASH)


def test_every_size_to_1000_agrees_with_pymerkle() -> None:
    """Roots at every size 1..1000 are pymerkle's; proofs cross-verify at sampled points."""
    rng = random.Random(1000)
    theirs = InmemoryTree(algorithm="sha256")
    ours = merkle.MemoryTree()
    checked_inclusion = checked_consistency = 0
    for size in range(1, 1001):
        data = rng.randbytes(rng.randrange(0, 40))
        theirs.append_entry(data)
        ours.append(data)
        root = ours.root()
        assert theirs.get_root() == root, f"root at size {size}"
        indexes = {0, size - 1, size // 2, rng.randrange(size)}
        for index in indexes:
            path = ours.inclusion_proof(index)
            leaf = ours.node((0, index))
            their_proof = theirs.prove_inclusion(index + 1, size)
            # pymerkle's path is the leaf hash, then RFC 9162's audit path.
            assert their_proof.path == [leaf, *path], f"inclusion {index} in {size}"
            their_proof.verify(leaf, root, index=index + 1, size=size)
            assert merkle.verify_inclusion(leaf, index, size, path, theirs.get_root(size))
            checked_inclusion += 1
        olds = {1, size, size - 1 or 1, 1 << (size.bit_length() - 1), rng.randrange(1, size + 1)}
        for old in olds:
            old_root = theirs.get_root(old)
            assert ours.root(old) == old_root
            path = ours.consistency_proof(old)
            assert merkle.verify_consistency(old, size, old_root, root, path)
            # pymerkle lays its consistency proofs out its own way; check them against our roots.
            theirs.prove_consistency(old, size).verify(ours.root(old), root)
            checked_consistency += 1
    assert checked_inclusion > 2500
    assert checked_consistency > 3000


def test_pymerkle_rejects_a_root_we_did_not_compute() -> None:
    """The cross-check above can fail: pymerkle does reject a wrong root."""
    theirs = InmemoryTree(algorithm="sha256")
    for leaf in LEAVES:
        theirs.append_entry(leaf)
    leaf = merkle.leaf_hash(LEAVES[2])
    with pytest.raises(InvalidProof):
        theirs.prove_inclusion(3, 8).verify(leaf, bytes.fromhex(ROOTS[7]))


leaf_lists = st.lists(st.binary(max_size=24), min_size=1, max_size=200)


@settings(max_examples=60, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_inclusion_proofs_verify_and_tampering_fails(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = merkle.MemoryTree(merkle.leaf_hash(leaf) for leaf in leaves)
    size = data.draw(st.integers(1, tree.size), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    root, leaf = tree.root(size), tree.node((0, index))
    proof = tree.inclusion_proof(index, size)
    assert merkle.verify_inclusion(leaf, index, size, proof, root)
    assert len(proof) <= 2 * size.bit_length()
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1), label="tampered element")
        bit = data.draw(st.integers(0, 255), label="bit")
        tampered = [*proof]
        tampered[at] = _flip(tampered[at], bit)
        assert not merkle.verify_inclusion(leaf, index, size, tampered, root)
        assert not merkle.verify_inclusion(leaf, index, size, proof[:-1], root)
    other = data.draw(st.integers(0, size - 1), label="other index")
    if tree.node((0, other)) != leaf:
        assert not merkle.verify_inclusion(tree.node((0, other)), index, size, proof, root)


@settings(max_examples=60, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_consistency_proofs_verify_and_tampering_fails(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = merkle.MemoryTree(merkle.leaf_hash(leaf) for leaf in leaves)
    new = data.draw(st.integers(1, tree.size), label="new size")
    old = data.draw(st.integers(1, new), label="old size")
    proof = tree.consistency_proof(old, new)
    assert merkle.verify_consistency(old, new, tree.root(old), tree.root(new), proof)
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1), label="tampered element")
        tampered = [*proof]
        tampered[at] = _flip(tampered[at], data.draw(st.integers(0, 255), label="bit"))
        assert not merkle.verify_consistency(old, new, tree.root(old), tree.root(new), tampered)
        assert not merkle.verify_consistency(old, new, SOME_HASH, tree.root(new), proof)


@settings(max_examples=60, deadline=None)
@given(leaves=leaf_lists, split=st.integers(0, 200), min_level=st.integers(0, 5))
def test_extending_a_frontier_builds_the_same_tree(
    leaves: list[bytes], split: int, min_level: int
) -> None:
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    split = min(split, len(hashes))
    tree = merkle.MemoryTree(hashes)
    before = [tree.node(node) for node in merkle.frontier_nodes(split)]
    grown = merkle.extend(split, before, hashes[split:], min_level=min_level)
    assert grown.root == tree.root() == merkle.root_of(hashes)
    assert grown.frontier == [tree.node(node) for node in merkle.frontier_nodes(len(hashes))]
    for level, index, hashed in grown.nodes:
        assert level >= min_level
        assert tree.node((level, index)) == hashed
        assert merkle.node_range((level, index))[1] > split  # only nodes the new leaves completed


@given(start=st.integers(0, 10**6), width=st.integers(0, 5000))
def test_subtree_nodes_cover_a_range_exactly(start: int, width: int) -> None:
    covered = [merkle.node_range(node) for node in merkle.subtree_nodes(start, start + width)]
    position = start
    for first, end in covered:
        assert first == position
        position = end
    assert position == start + width
    assert len(covered) <= 2 * max(width, 1).bit_length()


@given(level=st.integers(0, 40), index=st.integers(0, 2**30))
def test_node_positions_are_unique_and_nest(level: int, index: int) -> None:
    position = merkle.node_position(level, index)
    assert merkle.position_node(position) == (level, index)
    if level:
        # Children sit inside the parent's position range, which holds nothing else.
        low = index << (level + 1)
        for child in (
            merkle.node_position(level - 1, 2 * index),
            merkle.node_position(level - 1, 2 * index + 1),
        ):
            assert low <= child < low + (1 << (level + 1)) - 1
            assert child != position


def test_extend_rejects_a_frontier_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="frontier"):
        merkle.extend(3, [SOME_HASH], [SOME_HASH])


def test_perfect_root_wants_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power-of-two"):
        merkle.perfect_root([SOME_HASH] * 3)


def _flip(value: bytes, bit: int) -> bytes:
    position = bit % (len(value) * 8)
    changed = bytearray(value)
    changed[position // 8] ^= 1 << (position % 8)
    return bytes(changed)


@settings(max_examples=80, deadline=None)
@given(leaves=leaf_lists, split=st.integers(0, 200), min_level=st.integers(0, 5))
def test_extending_by_a_few_leaves_matches_extending_level_by_level(
    leaves: list[bytes], split: int, min_level: int
) -> None:
    # A list of a few leaves is added leaf by leaf; leaves given one at a time (an iterator) are
    # added level by level: the same nodes, in the same order, the same frontier and root.
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    split = min(split, len(hashes))
    tree = merkle.MemoryTree(hashes[:split])
    before = [tree.node(node) for node in merkle.frontier_nodes(split)]
    few = merkle.extend(split, before, hashes[split:], min_level=min_level)
    level_by_level = merkle.extend(split, before, iter(hashes[split:]), min_level=min_level)
    assert few == level_by_level
