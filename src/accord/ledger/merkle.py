"""Merkle tree maths of RFC 9162 (Certificate Transparency v2), section 2.1, with SHA-256.

Pure: standard library only, no I/O. Storage is someone else's business; this module only says
which nodes a computation needs and how to combine them.

Vocabulary used throughout:

* A *node* ``(level, index)`` is the root of the perfect subtree over the ``2**level`` leaves
  ``[index * 2**level, (index + 1) * 2**level)``. Level 0 nodes are leaf hashes. Once a perfect
  subtree is complete its hash never changes, which is why a log can store these nodes and answer
  any question about any past tree size from them.
* The *frontier* of a tree of size ``n`` is the list of hashes of the maximal perfect subtrees that
  make up ``[0, n)``, left to right (one per set bit of ``n``, largest first). The root is their
  right fold, and it is all an appender needs to keep.
* A *range* ``(start, end)`` is a run of leaves whose hash ``MTH(D[start:end])`` a proof carries.
  Every range that RFC 9162's recursion produces starts at a multiple of a power of two at least
  as large as its width, so its hash is the right fold of its maximal perfect subtrees.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]
"""``(level, i)``: the perfect subtree over leaves ``[i * 2**level, (i + 1) * 2**level)``."""

Range = tuple[int, int]
"""``(start, end)``: the leaves ``D[start:end]``."""

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """``HASH(0x00 || data)``: the hash of one leaf."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``HASH(0x01 || left || right)``: the hash of an interior node."""
    return _sha256(NODE_PREFIX + left + right).digest()


def split_point(width: int) -> int:
    """RFC 9162's ``k``: the largest power of two strictly smaller than ``width`` (at least 2)."""
    return 1 << ((width - 1).bit_length() - 1)


def node_range(node: NodeId) -> Range:
    """The leaves a node covers."""
    level, index = node
    return index << level, (index + 1) << level


def node_position(level: int, index: int) -> int:
    """A single integer naming a node: its position in an in-order walk of the infinite tree.

    Positions of distinct nodes never collide, and every node below node ``(L, i)`` has a position
    in ``[i * 2**(L+1), (i + 1) * 2**(L+1) - 1)``, so a subtree's nodes form one key range.
    """
    return (index << (level + 1)) + (1 << level) - 1


def position_node(position: int) -> NodeId:
    """The ``(level, index)`` named by :func:`node_position`."""
    level = ((position + 1) & -(position + 1)).bit_length() - 1
    return level, position >> (level + 1)


def subtree_nodes(start: int, end: int) -> list[NodeId]:
    """The maximal aligned perfect subtrees that exactly cover ``[start, end)``, left to right."""
    nodes: list[NodeId] = []
    while start < end:
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length() - 1
        while start + (1 << level) > end:
            level -= 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """Right fold of subtree hashes into one: ``H(h0, H(h1, ... H(h[-2], h[-1])))``.

    The root of a tree is the fold of its frontier; the empty tree's root is ``SHA-256("")``.
    """
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for left in reversed(hashes[:-1]):
        acc = _sha256(NODE_PREFIX + left + acc).digest()
    return acc


def next_level(hashes: Sequence[bytes]) -> list[bytes]:
    """Parent hashes of consecutive pairs; an odd last hash has no parent yet."""
    sha, prefix = _sha256, NODE_PREFIX
    pairs = zip(hashes[0::2], hashes[1::2], strict=False)
    return [sha(prefix + left + right).digest() for left, right in pairs]


def levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Every perfect node over leaves that start at an aligned position, level by level.

    ``levels(h)[L][i]`` is node ``(L, i)`` relative to the first leaf. The list has one level past
    the last non-empty one only if ``leaf_hashes`` is empty.
    """
    out = [list(leaf_hashes)]
    while len(out[-1]) > 1:
        out.append(next_level(out[-1]))
    return out


def perfect_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The root of a perfect subtree, given its ``2**level`` leaf hashes."""
    width = len(leaf_hashes)
    if width == 0 or width & (width - 1):
        raise ValueError(f"a perfect subtree has a power-of-two number of leaves, not {width}")
    return levels(leaf_hashes)[-1][0]


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """``MTH(D[0:n])`` for the given leaf hashes, computed level by level."""
    size = len(leaf_hashes)
    lv = levels(leaf_hashes)
    return fold([lv[level][index] for level, index in subtree_nodes(0, size)])


def frontier_nodes(size: int) -> list[NodeId]:
    """The nodes whose hashes form the frontier of a tree of ``size`` leaves."""
    return subtree_nodes(0, size)


@dataclass(frozen=True, slots=True)
class Extension:
    """What appending leaves to a tree created: new perfect nodes and the new frontier."""

    nodes: list[tuple[int, int, bytes]]
    """``(level, index, hash)`` of every perfect node completed at ``min_level`` or above."""
    frontier: list[bytes]
    root: bytes


def extend(
    size: int, frontier: Sequence[bytes], new_leaf_hashes: Iterable[bytes], min_level: int = 1
) -> Extension:
    """Append leaf hashes to a tree known only by its size and frontier.

    Works level by level: the new nodes of each level are the parents of consecutive pairs of the
    level below (after the frontier's hash at that level, when the run starts on a right child),
    one list comprehension per level. Every node completed at ``min_level`` or above is returned,
    so a store can keep it.
    """
    if len(frontier) != size.bit_count():
        raise ValueError(f"a tree of {size} leaves has {size.bit_count()} frontier hashes")
    if isinstance(new_leaf_hashes, list | tuple) and len(new_leaf_hashes) <= _FEW:
        return _extend_by_few(size, frontier, new_leaf_hashes, min_level)
    # The frontier holds one hash per set bit of size, highest level first.
    old = dict(zip(_set_bits_descending(size), frontier, strict=True))
    sha, prefix = _sha256, NODE_PREFIX
    nodes: list[tuple[int, int, bytes]] = []
    runs: list[tuple[int, list[bytes]]] = []
    first, run, level = size, list(new_leaf_hashes), 0
    while run:
        # The run holds nodes first .. first + len(run) - 1 of this level.
        runs.append((first, run))
        if level >= min_level:
            nodes.extend((level, first + offset, hashed) for offset, hashed in enumerate(run))
        if first & 1:
            # A run starting on a right child: its left sibling is the frontier's hash here.
            run = [old[level], *run]
            first -= 1
        pairs = zip(run[0::2], run[1::2], strict=False)  # an odd last node has no parent yet
        run = [sha(prefix + left + right).digest() for left, right in pairs]
        first >>= 1
        level += 1
    new_size = size + len(runs[0][1]) if runs else size
    grown: list[bytes] = []
    for node_level, index in subtree_nodes(0, new_size):
        if node_level < len(runs) and index >= runs[node_level][0]:
            start, hashes = runs[node_level]
            grown.append(hashes[index - start])
        else:
            grown.append(old[node_level])
    return Extension(nodes=nodes, frontier=grown, root=fold(grown))


_FEW = 64
"""Up to this many new leaves, :func:`extend` adds them one at a time (an exchange appends two)."""


def _extend_by_few(
    size: int, frontier: Sequence[bytes], new_leaf_hashes: Sequence[bytes], min_level: int
) -> Extension:
    """:func:`extend`, leaf by leaf: each new leaf completes one node a trailing set bit of the
    size before it, each the hash of the frontier's last (lowest) hash and the node below, and
    the frontier ends in the node it completes last. The same nodes, hashes and order (by level,
    then index) as level by level, with none of its bookkeeping for the few leaves of a group."""
    stack = list(frontier)
    pop, push = stack.pop, stack.append
    sha, prefix = _sha256, NODE_PREFIX
    nodes: list[tuple[int, int, bytes]] = []
    index = size
    for leaf in new_leaf_hashes:
        if min_level <= 0:
            nodes.append((0, index, leaf))
        hashed, at, level = leaf, index, 0
        while at & 1:
            hashed = sha(prefix + pop() + hashed).digest()
            at >>= 1
            level += 1
            if level >= min_level:
                nodes.append((level, at, hashed))
        push(hashed)
        index += 1
    if len(nodes) > 1:
        nodes.sort(key=_level_then_index)
    return Extension(nodes=nodes, frontier=stack, root=fold(stack))


def _level_then_index(node: tuple[int, int, bytes]) -> tuple[int, int]:
    return node[0], node[1]


def _set_bits_descending(value: int) -> list[int]:
    return [bit for bit in range(value.bit_length() - 1, -1, -1) if value >> bit & 1]


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose hashes form ``PATH(index, D[0:size])`` (RFC 9162 §2.1.3.1), leaf first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    ranges: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def consistency_ranges(old_size: int, new_size: int) -> list[Range]:
    """The ranges whose hashes form ``PROOF(old_size, D[0:new_size])`` (RFC 9162 §2.1.4.1)."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    ranges: list[Range] = []
    start, m, n, whole_old_tree = 0, old_size, new_size, True
    while m != n:
        k = split_point(n)
        if m <= k:
            ranges.append((start + k, start + n))
            n = k
        else:
            ranges.append((start, start + k))
            start += k
            m -= k
            n -= k
            whole_old_tree = False
    if not whole_old_tree:
        # SUBPROOF(m, D[m], false) contributes MTH(D[m]); with b true (the old tree is a perfect
        # subtree of the new one) the verifier already knows it as the old root.
        ranges.append((start, start + m))
    ranges.reverse()
    return ranges


def nodes_for(ranges: Iterable[Range]) -> list[NodeId]:
    """Every node needed to hash the given ranges, without repeats."""
    seen: dict[NodeId, None] = {}
    for start, end in ranges:
        for node in subtree_nodes(start, end):
            seen.setdefault(node)
    return list(seen)


def resolve(ranges: Iterable[Range], nodes: Mapping[NodeId, bytes]) -> list[bytes]:
    """The hash of each range, from the node hashes :func:`nodes_for` asked for."""
    return [fold([nodes[node] for node in subtree_nodes(start, end)]) for start, end in ranges]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show the leaf hash ``leaf`` at ``index`` under ``root``?"""
    if not 0 <= index < size or len(leaf) != HASH_SIZE or len(root) != HASH_SIZE:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0 or len(p) != HASH_SIZE:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: does ``proof`` show the tree ``old_root`` is a prefix of ``new_root``?"""
    if not 0 <= old_size <= new_size or any(len(p) != HASH_SIZE for p in proof):
        return False
    if old_size == new_size:
        return not proof and hmac.compare_digest(old_root, new_root)
    if old_size == 0:
        # Every tree extends the empty one; there is nothing to prove.
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)


class MemoryTree:
    """A whole tree in memory with every perfect node: the reference the stored log must match."""

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for hashed in leaf_hashes:
            self.append_hash(hashed)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0])

    def append(self, data: bytes) -> int:
        """Append a leaf by its data; returns its index."""
        return self.append_hash(leaf_hash(data))

    def append_hash(self, hashed: bytes) -> int:
        """Append a leaf by its hash; returns its index."""
        lv = self._levels
        lv[0].append(hashed)
        level = 0
        while len(lv[level]) % 2 == 0:
            if len(lv) == level + 1:
                lv.append([])
            lv[level + 1].append(node_hash(lv[level][-2], lv[level][-1]))
            level += 1
        return len(lv[0]) - 1

    def node(self, node: NodeId) -> bytes:
        """The hash of a complete perfect node."""
        level, index = node
        return self._levels[level][index]

    def _nodes(self, ranges: Iterable[Range]) -> dict[NodeId, bytes]:
        return {node: self.node(node) for node in nodes_for(ranges)}

    def _check_size(self, size: int | None) -> int:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"the tree has {self.size} leaves, not {size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        """``MTH(D[0:size])``."""
        size = self._check_size(size)
        return fold([self.node(node) for node in frontier_nodes(size)])

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of ``size`` leaves."""
        ranges = inclusion_ranges(index, self._check_size(size))
        return resolve(ranges, self._nodes(ranges))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The proof that the tree of ``old_size`` leaves is a prefix of the one of ``new_size``."""
        ranges = consistency_ranges(old_size, self._check_size(new_size))
        return resolve(ranges, self._nodes(ranges))
