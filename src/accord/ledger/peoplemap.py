"""Nothing hidden: a per-person completeness commitment in every signed checkpoint.

Key-transparency systems (CONIKS, Melara et al., USENIX Security 2015; Meta's ``akd``) let each
user check that the directory shows them everything about them, without learning anything about
anyone else. The ledger does the same for a person's entries. Each checkpoint carries, in an
extension line of its signed note, the root of a *people map*: a sparse Merkle tree whose keys are
a verifiable unpredictable function of each person and whose leaves hold only

    (how many entries are about the person, the head of a hash chain over those entries)

under the checkpoint. A person's client gets the function's output and proof, its leaf and the
leaf's path to the root; it recomputes the chain over the entries it was shown and checks count
and head: a list that leaves one entry out no longer matches what the checkpoint signed.

The function. RFC 9381's ECVRF would be the textbook choice; no maintained Python library of it
exists, and WebCrypto has none either, so the map is keyed by an Ed25519 signature (RFC 8032,
deterministic) of ``SHA-256("accord/people-map/vuf/v1\\n" || lookup pseudonym)``, hashed: the
output is ``SHA-256("accord/people-map/vuf-output/v1\\n" || signature)``. Anyone with the public
key can check an output, and nobody without the private key can compute one, so map keys reveal
nobody. It is a verifiable *unpredictable* function (VUF), not a full VRF: an honest signer's
signature is unique, but the key holder could make a second valid signature for the same input
(Ed25519 lets a signer choose its nonce), so a client should remember the output it saw and be
wary if it ever changes. Its input is the person's lookup pseudonym
(:func:`accord.ledger.shred.lookup_pseudonym`), which the person computes from the key in their
proof bundle: after an erasure, with the key destroyed, nobody can find their place in the map.
The function's key is derived from the log's signing key (HKDF-SHA256, RFC 5869), and its public
half is published in the checkpoint line, under the log's signature.

The tree. Keys are 256 bits. The top :data:`TOP` levels are a complete binary tree (65,536
buckets, their nodes stored); below a bucket, a subtree holding one leaf is that leaf's hash and an
empty one is :data:`EMPTY`, as in Diem's Jellyfish Merkle tree, so a path is about
``TOP + log2(people / 65536)`` hashes long and a bucket's hash is rebuilt from its few leaves.
Hashes, with RFC 9162's domain bytes where they overlap::

    chain:  h_0 = 32 zero bytes;  h_i = SHA-256(0x03 || h_(i-1) || index (8 bytes, big-endian)
                                                 || leaf hash of the person's i-th entry)
    value:  SHA-256(count (8 bytes, big-endian) || chain head)
    leaf:   SHA-256(0x00 || map key || value)
    node:   SHA-256(0x01 || left || right)

Cost. The map is brought up to date when a checkpoint is signed, inside the append lock: it reads
the person-index rows and leaf hashes of the entries appended since the last one, one row per
touched person, the leaves of the touched buckets and the stored top nodes; it signs the function
once for each person it has never seen. A proof reads one leaf row, the leaves of one bucket and
:data:`TOP` stored nodes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

FORMAT = "accord/people-map/v1"
"""The first word of the checkpoint's extension line, and the format of a person's map proof."""
VUF_CONTEXT = b"accord/people-map/vuf/v1\n"
VUF_OUTPUT_CONTEXT = b"accord/people-map/vuf-output/v1\n"
KEY_INFO = b"accord/people-map/vuf-key/v1"
TOP = 16
"""Levels of the complete tree over the buckets: 2**16 buckets."""
KEY_SIZE = 32
EMPTY = bytes(32)
"""The hash of an empty subtree below the buckets (and of an empty bucket)."""
CHAIN_START = bytes(32)


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """An interior node."""
    return _sha256(b"\x01" + left + right)


def value_hash(count: int, head: bytes) -> bytes:
    """What a leaf holds: how many entries are about the person, and their chain head.

    Hashed apart from the key, so a proof that someone is absent can show the leaf its path ends
    at by key and value hash, without that other person's count."""
    return _sha256(count.to_bytes(8, "big") + head)


def leaf_hash(key: bytes, value: bytes) -> bytes:
    """A person's leaf: their map key and their value hash."""
    return _sha256(b"\x00" + key + value)


def chain(head: bytes, entries: Iterable[tuple[int, bytes]]) -> bytes:
    """Extend a chain head over ``(leaf index, leaf hash)`` pairs, in index order."""
    for index, hashed in entries:
        head = _sha256(b"\x03" + head + index.to_bytes(8, "big") + hashed)
    return head


def _empty_top() -> list[bytes]:
    """The hash of an empty subtree rooted at each depth ``0..TOP``."""
    empty = [EMPTY] * (TOP + 1)
    for depth in range(TOP - 1, -1, -1):
        empty[depth] = node_hash(empty[depth + 1], empty[depth + 1])
    return empty


EMPTY_AT = _empty_top()
EMPTY_ROOT = EMPTY_AT[0]


def bit(key: bytes, depth: int) -> int:
    """The key's bit that picks the child below a node at ``depth`` (0 is the root)."""
    return (key[depth >> 3] >> (7 - (depth & 7))) & 1


def bucket_of(key: bytes) -> int:
    """The bucket a key falls in: its first :data:`TOP` bits."""
    return int.from_bytes(key[:2], "big")


@dataclass(frozen=True, slots=True)
class MapLeaf:
    """A person's place in the map: key, entry count, chain head."""

    key: bytes
    count: int
    head: bytes

    @property
    def value(self) -> bytes:
        return value_hash(self.count, self.head)

    @property
    def hash(self) -> bytes:
        return leaf_hash(self.key, self.value)


def subtree_hash(depth: int, leaves: Sequence[MapLeaf]) -> bytes:
    """The hash of the subtree at ``depth`` (at least :data:`TOP`) holding ``leaves`` (sorted by
    key, all sharing its prefix)."""
    if not leaves:
        return EMPTY
    if len(leaves) == 1:
        return leaves[0].hash
    split = next((i for i, leaf in enumerate(leaves) if bit(leaf.key, depth)), len(leaves))
    return node_hash(
        subtree_hash(depth + 1, leaves[:split]), subtree_hash(depth + 1, leaves[split:])
    )


def bucket_path(key: bytes, leaves: Sequence[MapLeaf]) -> tuple[list[bytes], MapLeaf | None]:
    """The siblings of ``key``'s path inside its bucket, from depth :data:`TOP` + 1 down, and the
    leaf where the path ends (``None``: an empty subtree; another key: ``key`` is absent)."""
    siblings: list[bytes] = []
    depth = TOP
    current = list(leaves)
    while len(current) > 1:
        split = next((i for i, leaf in enumerate(current) if bit(leaf.key, depth)), len(current))
        left, right = current[:split], current[split:]
        if bit(key, depth):
            siblings.append(subtree_hash(depth + 1, left))
            current = right
        else:
            siblings.append(subtree_hash(depth + 1, right))
            current = left
        depth += 1
    return siblings, (current[0] if current else None)


def top_position(depth: int, index: int) -> int:
    """Where a node of the top tree is stored: heap order, the root at 1."""
    return (1 << depth) + index


def top_siblings(key: bytes) -> list[int]:
    """The stored positions of the siblings of ``key``'s path through the top tree, depth 1
    first."""
    bucket = bucket_of(key)
    return [top_position(d, (bucket >> (TOP - d)) ^ 1) for d in range(1, TOP + 1)]


def fold(key: bytes, terminal: bytes, siblings: Sequence[bytes]) -> bytes:
    """The root reached from ``terminal`` at depth ``len(siblings)`` on ``key``'s path, with the
    siblings listed from depth 1 down."""
    hashed = terminal
    for depth in range(len(siblings) - 1, -1, -1):
        sibling = siblings[depth]
        hashed = node_hash(sibling, hashed) if bit(key, depth) else node_hash(hashed, sibling)
    return hashed


def update_top(stored: dict[int, bytes], buckets: dict[int, bytes]) -> dict[int, bytes]:
    """The top-tree nodes that change when ``buckets`` get new hashes, given the ``stored``
    ones (a missing position is an empty subtree); returns them by position, root at 1."""
    changed: dict[int, bytes] = {}

    def at(position: int, depth: int) -> bytes:
        return changed.get(position) or stored.get(position) or EMPTY_AT[depth]

    level = {top_position(TOP, b): h for b, h in buckets.items()}
    changed.update(level)
    for depth in range(TOP - 1, -1, -1):
        parents = {position >> 1 for position in level}
        level = {
            p: node_hash(at(2 * p, depth + 1), at(2 * p + 1, depth + 1)) for p in sorted(parents)
        }
        changed.update(level)
    return changed


# -- the function keying the map -----------------------------------------------------------------


def vuf_message(lookup: bytes) -> bytes:
    """What the function signs for a person with this lookup pseudonym."""
    return _sha256(VUF_CONTEXT + lookup)


def vuf_output(proof: bytes) -> bytes:
    """The map key that a signature (the function's proof) stands for."""
    return _sha256(VUF_OUTPUT_CONTEXT + proof)


class Vuf:
    """The map's keying function: Ed25519 signatures, hashed (see the module's docstring)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def derived(cls, seed: bytes) -> Vuf:
        """The function whose key is derived from the log's signing seed: a key of its own, so
        a signature made for the map can never pass for a signed note, and nothing new to keep."""
        okm = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_INFO).derive(seed)
        return cls(Ed25519PrivateKey.from_private_bytes(okm))

    def prove(self, lookup: bytes) -> tuple[bytes, bytes]:
        """The map key of a person and its proof."""
        proof = self._key.sign(vuf_message(lookup))
        return vuf_output(proof), proof


def vuf_verify(public_key: bytes, lookup: bytes, proof: bytes) -> bytes | None:
    """The map key ``proof`` proves for ``lookup``, or ``None`` if it does not verify."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(proof, vuf_message(lookup))
    except (InvalidSignature, ValueError):
        return None
    return vuf_output(proof)


def checkpoint_line(root: bytes, public_key: bytes) -> str:
    """The checkpoint extension line committing to the map: format, root and function key."""
    encode = base64.b64encode
    return f"{FORMAT} {encode(root).decode('ascii')} {encode(public_key).decode('ascii')}"


def parse_checkpoint_line(extensions: Iterable[str]) -> tuple[bytes, bytes] | None:
    """The map root and function key a checkpoint commits to, if it carries the line."""
    for line in extensions:
        words = line.split(" ")
        if words[0] == FORMAT and len(words) == 3:
            try:
                root = base64.b64decode(words[1], validate=True)
                key = base64.b64decode(words[2], validate=True)
            except (binascii.Error, ValueError):
                return None
            if len(root) == 32 and len(key) == 32:
                return root, key
    return None
