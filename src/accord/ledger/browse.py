"""Finding ledger entries for a person to read: newest first, by kind, party, agreement and time.

What ``accord ledger show`` and ``accord ledger entry`` read. Leaves are read newest first, a
chunk at a time, until enough match. Leaves are canonical JSON (RFC 8785) written with the same
string escaping as :func:`json.encoder.encode_basestring`, so a kind, a party or an agreement is
looked for in a leaf's bytes first, and only the leaves that may match are decoded and checked.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.exc import SQLAlchemyError

from accord.errors import InvalidInput, StoreError, translate
from accord.ledger.entries import ENTRY_KINDS, decode_leaf
from accord.ledger.log import Ledger
from accord.ledger.results import StoredLeaf
from accord.ledger.tables import leaves_table

CHUNK = 1_000
"""Leaves read at a time, newest first."""


def require_ledger(ledger: Ledger) -> None:
    """Refuse, with a message a person can act on, a store that is not there or holds no ledger.

    A SQLite file that does not exist is refused before anything connects to it (connecting
    would leave an empty database behind).
    """
    url = ledger.engine.url
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(str(url.database))
        if not path.is_file():
            raise InvalidInput(
                f"there is no Accord store at {path}: pass the --database-url (or --data-dir) of "
                "an existing one; a store is made by the commands that write to it, such as "
                "`accord agreement register`"
            )
    try:
        with ledger.engine.connect() as conn:
            present = inspect(conn).has_table(leaves_table.name)
    except SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise StoreError(
            f"cannot open the Accord store at {shown}: {cause[0] if cause else type(exc).__name__}"
        ) from None
    if not present:
        raise InvalidInput(
            f"{shown} holds no ledger: it is not an Accord store (or one made before the ledger); "
            "pass the --database-url (or --data-dir) of an Accord store"
        )


def _parse_at(entry: dict[str, Any]) -> datetime | None:
    text = entry.get("at")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """Which entries to show: of ``kinds`` (any if empty), naming ``party`` as provider or
    recipient, under ``agreement``, at or after ``since`` and before ``until``."""

    kinds: frozenset[str] = frozenset()
    party: str | None = None
    agreement: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        unknown = sorted(self.kinds - set(ENTRY_KINDS))
        if unknown:
            raise InvalidInput(
                f"--kind {unknown[0]!r} is not a kind of ledger entry: use one of "
                f"{', '.join(sorted(ENTRY_KINDS))}"
            )
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise InvalidInput(
                f"--until {self.until.isoformat()} is not after --since {self.since.isoformat()}"
            )

    @property
    def everything(self) -> bool:
        """Whether every entry passes (unreadable leaves included)."""
        return not (self.kinds or self.party or self.agreement or self.since or self.until)

    def might_match(self, data: bytes) -> bool:
        """A quick look at a leaf's bytes: ``False`` only for a leaf that cannot match."""
        if self.kinds and not any(_pair("kind", k) in data for k in self.kinds):
            return False
        if self.agreement is not None and _pair("agreement", self.agreement) not in data:
            return False
        return self.party is None or (
            _pair("provider", self.party) in data or _pair("recipient", self.party) in data
        )

    def matches(self, entry: dict[str, Any]) -> bool:
        """Whether the decoded ``entry`` passes."""
        if self.kinds and entry.get("kind") not in self.kinds:
            return False
        if self.agreement is not None and entry.get("agreement") != self.agreement:
            return False
        if self.party is not None and self.party not in (
            entry.get("provider"),
            entry.get("recipient"),
        ):
            return False
        if self.since is None and self.until is None:
            return True
        at = _parse_at(entry)
        if at is None:
            return False
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)


def _pair(name: str, value: str) -> bytes:
    """How ``"name": value`` reads inside a canonical leaf."""
    return f'"{name}":{encode_basestring(value)}'.encode()


def newest_first(ledger: Ledger, chunk: int = CHUNK) -> Generator[StoredLeaf, None, None]:
    """Every leaf, newest first, read ``chunk`` at a time."""
    leaves = leaves_table.c
    before: int | None = None
    with translate(StoreError, "reading the ledger's entries"), ledger.engine.connect() as conn:
        while True:
            query = select(leaves.idx, leaves.data, leaves.leaf_hash).order_by(leaves.idx.desc())
            if before is not None:
                query = query.where(leaves.idx < before)
            rows = conn.execute(query.limit(chunk)).all()
            if not rows:
                return
            for idx, data, hashed in rows:
                yield StoredLeaf(int(idx), bytes(data), bytes(hashed))
            before = int(rows[-1][0])


def find(
    ledger: Ledger, wanted: EntryFilter, limit: int
) -> list[tuple[StoredLeaf, dict[str, Any]]]:
    """The newest ``limit`` entries ``wanted`` lets through, with their decoded objects (an
    unreadable leaf, shown only when nothing is filtered, as ``{"kind": "(unreadable)"}``)."""
    found: list[tuple[StoredLeaf, dict[str, Any]]] = []
    if limit < 1:
        return found
    with closing(newest_first(ledger)) as leaves:
        for leaf in leaves:
            if not wanted.might_match(leaf.data):
                continue
            try:
                entry = decode_leaf(leaf.data)
            except InvalidInput:
                if wanted.everything:
                    found.append((leaf, {"kind": "(unreadable)"}))
            else:
                if wanted.matches(entry):
                    found.append((leaf, entry))
            if len(found) >= limit:
                break
    return found
