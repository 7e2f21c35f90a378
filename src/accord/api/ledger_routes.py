"""The ledger's public face over HTTP: its signed checkpoints and consistency proofs between them.

No token is needed: a checkpoint names nobody, and anyone who kept one can ask whether the log
they see now extends it (RFC 9162 §2.1.4) and check the answer themselves.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from accord.api.problems import PROBLEM_RESPONSES
from accord.api.routes import ServicesDep
from accord.errors import NotFound
from accord.ledger.consistency import prove_consistency

router = APIRouter(prefix="/v1/ledger", responses=PROBLEM_RESPONSES, tags=["ledger"])


class CheckpointOut(BaseModel):
    """A signed checkpoint (C2SP signed note) of the log."""

    size: int = Field(description="The tree size it commits to.")
    root: str = Field(description="The root hash at that size, hex.")
    note: str = Field(description="The signed note: origin, size, base64 root, signature lines.")
    vkey: str | None = Field(description="The verifier key the server checks notes with.")


class ConsistencyOut(BaseModel):
    """An RFC 9162 consistency proof between two tree sizes."""

    old_size: int
    new_size: int
    old_root: str = Field(description="The root of the tree of old_size leaves, hex.")
    new_root: str = Field(description="The root of the tree of new_size leaves, hex.")
    proof: list[str] = Field(description="The proof's hashes, hex, in RFC 9162 order.")
    verifies: bool = Field(description="Whether the server found the proof links the roots.")
    old_checkpoint: str | None = Field(description="The stored signed note of old_size, if any.")
    new_checkpoint: str | None = Field(description="The stored signed note of new_size, if any.")


@router.get(
    "/checkpoint",
    response_model=CheckpointOut,
    summary="The latest signed checkpoint, or the one of a given size (no token needed)",
)
def checkpoint(
    svc: ServicesDep,
    size: Annotated[int | None, Query(ge=0, description="A stored checkpoint's size.")] = None,
) -> dict[str, Any]:
    """The latest signed checkpoint of the log, or with ``size`` the stored one of that size."""
    ledger = svc.apps.accord.ledger
    latest = ledger.stored_checkpoint()
    if latest is None:
        raise NotFound("the ledger has no signed checkpoint yet")
    found = latest if size is None else ledger.stored_checkpoint(size)
    if found is None:
        raise NotFound(f"no checkpoint of size {size} is stored; the latest is of size {latest[0]}")
    verifier = ledger.verifier
    return {
        "size": found[0],
        "root": found[1].hex(),
        "note": found[2],
        "vkey": verifier.vkey if verifier is not None else None,
    }


@router.get(
    "/consistency",
    response_model=ConsistencyOut,
    summary="A consistency proof between two tree sizes (no token needed)",
)
def consistency(
    svc: ServicesDep,
    old: Annotated[int, Query(ge=0, description="The earlier tree size.")],
    new: Annotated[
        int | None,
        Query(ge=0, description="The later tree size (default: the latest checkpoint's)."),
    ] = None,
) -> dict[str, Any]:
    """Proof that the tree of ``old`` leaves is a prefix of the tree of ``new`` leaves, with the
    stored signed checkpoints of both sizes, for the caller to check."""
    ledger = svc.apps.accord.ledger
    if new is None:
        latest = ledger.stored_checkpoint()
        new = latest[0] if latest is not None else ledger.head().size
    return prove_consistency(ledger, old, new).json()
