"""Consistency between two sizes of the log (RFC 9162 §2.1.4), checked against signed checkpoints.

A consistency proof shows that the tree of ``old`` leaves is a prefix of the tree of ``new``
leaves: nothing the log held at ``old`` was changed or taken out later. The roots it links mean
something to a reader only where a signed checkpoint states them, so :func:`prove_consistency`
also reports, for each size, the stored checkpoint of that size (if any), whether its signature
verifies, and whether its root is the root the proof links. What ``accord ledger consistency`` and
``GET /v1/ledger/consistency`` answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accord.errors import AccordError, InvalidInput
from accord.ledger.checkpoint import Verifier
from accord.ledger.log import Ledger
from accord.ledger.results import ConsistencyProof


@dataclass(frozen=True, slots=True)
class SizeCheckpoint:
    """The stored checkpoint of one tree size, as a reader checks it."""

    size: int
    note: str | None
    """The signed note, or ``None`` where no checkpoint of this size is stored."""
    signature: str
    """Whether the signature verifies, in words (or why it was not checked)."""
    signed: bool
    """The note's signature verifies under the log's key."""
    root_matches: bool
    """The note states the root the proof links (false where there is no note)."""


@dataclass(frozen=True, slots=True)
class ConsistencyReport:
    """A consistency proof between two sizes, whether it verifies, and the checkpoints behind
    each size."""

    proof: ConsistencyProof
    verifies: bool
    old: SizeCheckpoint
    new: SizeCheckpoint

    def json(self) -> dict[str, Any]:
        """The report as JSON: sizes, roots and proof hashes in hex, the checkpoints' notes."""
        p = self.proof
        return {
            "old_size": p.old_size,
            "new_size": p.new_size,
            "old_root": p.old_root.hex(),
            "new_root": p.new_root.hex(),
            "proof": [h.hex() for h in p.path],
            "verifies": self.verifies,
            "old_checkpoint": self.old.note,
            "new_checkpoint": self.new.note,
        }


def check_sizes(old: int, new: int, size: int) -> None:
    """Refuse, saying what is wrong, sizes no consistency proof of a log of ``size`` entries
    links: each from 0 to ``size``, ``old`` no larger than ``new``."""
    if old < 0 or new < 0:
        raise InvalidInput(f"a tree size is a whole number from 0, not {min(old, new)}")
    if old > new:
        raise InvalidInput(
            f"OLD ({old}) is larger than NEW ({new}): a consistency proof goes from an earlier, "
            "smaller tree to a later one"
        )
    if new > size:
        raise InvalidInput(
            f"NEW ({new}) is beyond the ledger, which holds {size} entries: "
            f"sizes run from 0 to {size}"
        )


def prove_consistency(ledger: Ledger, old: int, new: int) -> ConsistencyReport:
    """The consistency proof from ``old`` to ``new`` leaves, verified, with the stored
    checkpoints of both sizes checked; :class:`InvalidInput` for sizes the log cannot link."""
    check_sizes(old, new, ledger.head().size)
    proof = ledger.consistency_proof(old, new)
    notes = {size: ledger.stored_checkpoint(size) for size in {old, new}}
    return ConsistencyReport(
        proof,
        proof.verify(),
        _checkpoint(ledger.verifier, old, proof.old_root, _note(notes[old])),
        _checkpoint(ledger.verifier, new, proof.new_root, _note(notes[new])),
    )


def _note(stored: tuple[int, bytes, str] | None) -> str | None:
    return None if stored is None else stored[2]


def _checkpoint(
    verifier: Verifier | None, size: int, root: bytes, note: str | None
) -> SizeCheckpoint:
    if note is None:
        return SizeCheckpoint(size, None, "no checkpoint of this size is stored", False, False)
    if verifier is None:
        return SizeCheckpoint(size, note, "not checked: no key to check it with", False, False)
    try:
        checkpoint = verifier.open(note)
    except AccordError as exc:
        return SizeCheckpoint(size, note, f"does not verify: {exc}", False, False)
    matches = checkpoint.size == size and checkpoint.root == root
    return SizeCheckpoint(size, note, f"verified with {verifier.vkey}", True, matches)
