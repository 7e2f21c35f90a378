"""What the ledger hands back: receipts, tree heads, stored leaves and proofs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accord.ledger import merkle
from accord.ledger.entries import decode_leaf


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof of acceptance: where the entry sits, its leaf hash, and the tree size that holds it."""

    index: int
    leaf_hash: bytes
    tree_size: int


@dataclass(frozen=True, slots=True)
class TreeHead:
    """A tree size and its root hash."""

    size: int
    root: bytes


@dataclass(frozen=True, slots=True)
class StoredLeaf:
    """A leaf as stored: index, canonical JSON bytes, leaf hash."""

    index: int
    data: bytes
    leaf_hash: bytes

    def entry(self) -> dict[str, Any]:
        """The leaf's JSON object."""
        return decode_leaf(self.data)


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves with ``root``."""

    index: int
    size: int
    leaf_hash: bytes
    path: tuple[bytes, ...]
    root: bytes

    def verify(self) -> bool:
        """Whether the path leads from the leaf hash to the root."""
        return merkle.verify_inclusion(self.leaf_hash, self.index, self.size, self.path, self.root)


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """RFC 9162 consistency proof: the tree of ``old_size`` leaves is a prefix of ``new_size``'s."""

    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    path: tuple[bytes, ...]

    def verify(self) -> bool:
        """Whether the path shows ``old_root`` to be a prefix of ``new_root``."""
        return merkle.verify_consistency(
            self.old_size, self.new_size, self.old_root, self.new_root, self.path
        )
