"""An entry's subjects as a Merkle tree: a leaf about many people commits to their pseudonyms by
a root, so a person's proof carries a path of a few hundred bytes, not everyone's pseudonym.

A leaf about fewer than :data:`TREE_MIN` people lists their subject tags (``subjects``, sorted
hex), as every leaf written before this module did. A leaf about :data:`TREE_MIN` people or more
holds instead ``subjects_count`` (how many tags) and ``subjects_root``: the RFC 9162 Merkle tree
hash (section 2.1.1) of the sorted tags, each tag's 32 raw bytes one leaf of the tree::

    subjects_root = MTH(tag_0, tag_1, ..., tag_(n-1))      tag_0 < tag_1 < ... (bytewise)

A person shows that such an entry is about them with their tag's position in the sorted list and
its RFC 9162 inclusion path (section 2.1.3.1) in that tree: ``log2(n)`` hashes.

The sorted tags are still stored beside the leaf (``ledger_subjects``, outside the hash preimage
of the log's leaf), so the auditor's replay and ``accord ledger verify`` can recompute the root and
see whom the release was about. They are stored in chunks of :data:`CHUNK` tags, each with its
first tag and its own root: a path is the path inside the person's chunk followed by the chunk's
path among the chunk roots (every chunk but the last is a perfect subtree, so RFC 9162's tree over
the tags is the tree over the chunk roots), and proving one reads one chunk and the chunk roots.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from accord.ledger import merkle

TREE_MIN = 64
"""An entry about at least this many people commits to their tags by a root. Below it a list of
tags (67 bytes each in the leaf) is smaller than a path (64 hex characters a level) and the root."""

CHUNK_LEVEL = 8
CHUNK = 1 << CHUNK_LEVEL
"""Tags stored in one row; a perfect subtree of the subject tree."""

TAG_SIZE = 32

_UPPER_HEX = "ABCDEF"

_sha256 = hashlib.sha256


def tag_hash(tag: bytes) -> bytes:
    """The subject tree's leaf hash of a tag: ``SHA-256(0x00 || tag)`` (RFC 9162)."""
    return _sha256(b"\x00" + tag).digest()


def _tag_hashes(tags: bytes) -> list[bytes]:
    sha = _sha256
    return [sha(b"\x00" + tags[i : i + TAG_SIZE]).digest() for i in range(0, len(tags), TAG_SIZE)]


def chunk_root(tags: bytes) -> bytes:
    """The root of one chunk's tags (concatenated, sorted)."""
    return merkle.root_of(_tag_hashes(tags))


@dataclass(frozen=True, slots=True)
class SubjectTree:
    """The sorted tags of one entry, in chunks, with the chunks' roots and the tree's root."""

    tags: bytes
    """Every tag's 32 bytes, sorted, concatenated."""
    chunk_roots: tuple[bytes, ...]
    root: bytes

    @property
    def count(self) -> int:
        return len(self.tags) // TAG_SIZE

    @classmethod
    def of(cls, tags: Iterable[str]) -> SubjectTree:
        """The tree over hex subject tags (in any order)."""
        listed = sorted(tags)
        text = "".join(listed)
        if len(text) == 2 * TAG_SIZE * len(listed) and not any(c in text for c in _UPPER_HEX):
            # Lowercase hex of whole tags sorts as their bytes do: one conversion of them all
            # (a release about a million people has as many tags), not one a tag.
            return cls.of_sorted(bytes.fromhex(text))
        return cls.of_sorted(b"".join(sorted(bytes.fromhex(tag) for tag in listed)))

    @classmethod
    def of_digests(cls, tags: list[bytes]) -> SubjectTree:
        """The tree over raw subject tags (in any order; sorted here, in place)."""
        if any(map(TAG_SIZE.__ne__, map(len, tags))):
            raise ValueError(f"a subject tag is {TAG_SIZE} bytes")
        tags.sort()
        return cls.of_sorted(b"".join(tags))

    @classmethod
    def of_sorted(cls, joined: bytes) -> SubjectTree:
        """The tree over tags already sorted and concatenated."""
        step = CHUNK * TAG_SIZE
        roots = tuple(chunk_root(joined[i : i + step]) for i in range(0, len(joined), step))
        return cls(joined, roots, merkle.root_of(roots))

    def chunks(self) -> list[tuple[int, bytes, bytes, bytes]]:
        """``(chunk number, first tag, tags, chunk root)`` of each chunk, as stored."""
        step = CHUNK * TAG_SIZE
        return [
            (n, self.tags[i : i + TAG_SIZE], self.tags[i : i + step], self.chunk_roots[n])
            for n, i in enumerate(range(0, len(self.tags), step))
        ]

    def hex_tags(self) -> list[str]:
        """The tags, sorted, as hex."""
        return [self.tags[i : i + TAG_SIZE].hex() for i in range(0, len(self.tags), TAG_SIZE)]


@dataclass(frozen=True, slots=True)
class Membership:
    """A tag's place in an entry's subject tree and its inclusion path there."""

    position: int
    path: tuple[bytes, ...]

    def json(self) -> dict[str, object]:
        return {"position": self.position, "path": [p.hex() for p in self.path]}


def find_chunk(firsts: Sequence[bytes], tag: bytes) -> int:
    """The number of the chunk that would hold ``tag``, given each chunk's first tag (``-1``: it
    sorts before every tag)."""
    return bisect_right(firsts, tag) - 1


@dataclass(frozen=True, slots=True)
class Heads:
    """What proving a tag in an entry's tree needs beside the tag's own chunk: each chunk's first
    tag (to find the chunk) and the levels of the tree over the chunk roots. An entry's chunks
    never change once written, so a server keeps these for the entries it proves often."""

    firsts: tuple[bytes, ...]
    levels: tuple[tuple[bytes, ...], ...]

    @classmethod
    def of(cls, firsts: Sequence[bytes], chunk_roots: Sequence[bytes]) -> Heads:
        levels = merkle.levels(chunk_roots) if chunk_roots else [[]]
        return cls(tuple(firsts), tuple(tuple(level) for level in levels))

    def chunk_of(self, tag: bytes) -> int:
        """The number of the chunk that would hold ``tag`` (``-1``: before every tag)."""
        return find_chunk(self.firsts, tag)

    def path(self, chunk: int) -> list[bytes]:
        """The path of chunk ``chunk``'s root among the chunk roots (RFC 9162 ``PATH``)."""
        ranges = merkle.inclusion_ranges(chunk, len(self.levels[0]))
        nodes = {(lv, i): self.levels[lv][i] for lv, i in merkle.nodes_for(ranges)}
        return merkle.resolve(ranges, nodes)


def membership(tag: bytes, chunk: int, tags: bytes, heads: Heads) -> Membership | None:
    """The path of ``tag`` in the tree whose chunk ``chunk`` holds ``tags`` and whose chunks
    ``heads`` describes; ``None`` if the chunk does not hold the tag."""
    if not 0 <= chunk < len(heads.levels[0]):
        return None
    listed = [tags[i : i + TAG_SIZE] for i in range(0, len(tags), TAG_SIZE)]
    inside = bisect_right(listed, tag) - 1
    if inside < 0 or listed[inside] != tag:
        return None
    lower = _path(_tag_hashes(tags), inside)
    return Membership(chunk * CHUNK + inside, (*lower, *heads.path(chunk)))


def _path(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 9162 ``PATH(index, D)`` over leaf hashes ``hashes``: from their perfect nodes, level
    by level (a list comprehension a level, not a node at a time)."""
    levels = merkle.levels(hashes)
    ranges = merkle.inclusion_ranges(index, len(hashes))
    nodes = {(lv, i): levels[lv][i] for lv, i in merkle.nodes_for(ranges)}
    return merkle.resolve(ranges, nodes)


def verify_membership(
    tag: bytes, position: int, count: int, path: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``path`` shows ``tag`` at ``position`` in the subject tree of ``count`` tags whose
    root is ``root`` (RFC 9162 section 2.1.3.2)."""
    if len(tag) != TAG_SIZE:
        return False
    return merkle.verify_inclusion(tag_hash(tag), position, count, path, root)


def check_chunks(
    rows: Sequence[tuple[int, bytes, bytes, bytes]], count: int, root: bytes
) -> tuple[SubjectTree | None, str | None]:
    """Rebuild an entry's tree from its stored chunks ``(number, first, tags, root)`` (in chunk
    order) and check it against the leaf's ``count`` and ``root``: the tree, or what is wrong."""
    step = CHUNK * TAG_SIZE
    numbers = [row[0] for row in rows]
    if numbers != list(range(len(rows))):
        return None, "the stored subject list's chunks are not numbered 0, 1, 2 ... in order"
    for number, first, tags, stored_root in rows:
        last = number == len(rows) - 1
        if len(tags) % TAG_SIZE or not tags or (not last and len(tags) != step):
            return None, f"chunk {number} of the stored subject list has {len(tags)} bytes"
        if first != tags[:TAG_SIZE] or stored_root != chunk_root(tags):
            return None, f"chunk {number} of the stored subject list is not what its row says"
    joined = b"".join(row[2] for row in rows)
    tree = SubjectTree.of_sorted(joined)
    listed = [joined[i : i + TAG_SIZE] for i in range(0, len(joined), TAG_SIZE)]
    if any(a >= b for a, b in pairwise(listed)):
        return None, "the stored subject list is not sorted without repeats"
    if tree.count != count:
        return None, f"{tree.count} subject tags are stored, the leaf commits to {count}"
    if tree.root != root:
        return None, "the stored subject list does not hash to the leaf's subjects_root"
    return tree, None
