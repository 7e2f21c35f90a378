"""What the ledger records: typed entries, and their leaves in canonical JSON (RFC 8785).

Every entry names the agreement, clause, purpose and data categories it concerns, how many people
it touched, and a reason a person can read. Entries that concern particular people carry their ids
in ``about``; those ids are never written. The ledger turns each into a keyed pseudonym for that
one leaf (see :mod:`accord.ledger.shred`), so a leaf says *that* people were involved without
saying *who*.

A leaf is the UTF-8 canonical JSON of an object with a ``v`` (format version), a ``kind``, an ``at``
timestamp (RFC 3339, UTC) and the entry's fields; ``about`` becomes ``subjects``, the sorted list of
hex pseudonyms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import rfc8785

from accord.errors import InvalidInput

LEAF_VERSION = 1

# RFC 8785 serialises numbers as IEEE doubles; integers beyond this would not round-trip.
_MAX_SAFE_INTEGER = 2**53 - 1

# For leaves built here (ASCII keys, strings, safe integers, booleans, null, lists, no floats) the
# C JSON encoder with sorted keys, no spaces and no ASCII escaping writes exactly RFC 8785's bytes,
# about six times faster than the general rfc8785 encoder; tests compare the two on random leaves.
_canonical_encoder = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON of any JSON value (the general, slower encoder)."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise InvalidInput(f"cannot be written as canonical JSON: {exc}") from exc


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _check_text(name: str, value: str | None) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{name} is not valid Unicode text: {exc.reason}") from exc


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_SAFE_INTEGER:
        raise InvalidInput(f"{name} must be a whole number from 0 to 2**53-1, not {value!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Entry:
    """Fields every ledger entry has. Subclasses set ``kind`` and add their own."""

    kind: ClassVar[str] = "entry"

    agreement: str | None
    """The agreement's id, or ``None`` where no agreement applies (an erasure)."""
    reason: str
    """A sentence a person can read: why this happened."""
    clause: str | None = None
    purpose: str | None = None
    """A fideslang data use key, e.g. ``marketing.advertising.first_party.targeted``."""
    categories: tuple[str, ...] = ()
    """fideslang data category keys, e.g. ``user.behavior.media_consumption``."""
    people: int = -1
    """How many people this concerns; defaults to the number of distinct ids in ``about``."""
    about: tuple[str, ...] = ()
    """Ids of the people this concerns, in clear. Never written: the leaf holds pseudonyms."""
    at: datetime = field(default_factory=_now)

    def __post_init__(self) -> None:
        if not isinstance(self.categories, tuple):
            object.__setattr__(self, "categories", tuple(self.categories))
        if not isinstance(self.about, tuple):
            object.__setattr__(self, "about", tuple(self.about))
        distinct = len(set(self.about))
        if self.people == -1:
            object.__setattr__(self, "people", distinct)
        _check_count("people", self.people)
        if self.people < distinct:
            raise InvalidInput(
                f"people is {self.people} but the entry is about {distinct} distinct people"
            )
        if not self.reason:
            raise InvalidInput("every ledger entry needs a reason a person can read")
        for name in ("agreement", "reason", "clause", "purpose"):
            _check_text(name, getattr(self, name))
        for item in (*self.categories, *self.about):
            _check_text("categories and about", item)
        if self.at.tzinfo is None:
            raise InvalidInput("at must be a timezone-aware datetime")

    def _fields(self) -> dict[str, Any]:
        """This kind's own fields, as JSON values; subclasses extend it."""
        return {}

    def leaf(self, subjects: list[str] | None = None) -> dict[str, Any]:
        """The JSON object written as this entry's leaf, with ``subjects`` as its pseudonyms."""
        out = {
            "v": LEAF_VERSION,
            "kind": self.kind,
            "at": _timestamp(self.at),
            "agreement": self.agreement,
            "clause": self.clause,
            "purpose": self.purpose,
            "categories": list(self.categories),
            "people": self.people,
            "reason": self.reason,
            "subjects": sorted(subjects) if subjects else [],
        }
        out.update(self._fields())
        return out

    def encode(self, subjects: list[str] | None = None) -> bytes:
        """This entry's leaf bytes: the canonical JSON of :meth:`leaf`."""
        return _canonical_encoder.encode(self.leaf(subjects)).encode("utf-8")


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionEntry(Entry):
    """A request was decided: allowed or refused, by which rules."""

    kind: ClassVar[str] = "decision"

    allowed: bool
    rules: tuple[str, ...] = ()
    """The rules that decided, e.g. ``agreement:chirp-reelix/clause:recs``, ``law:vppa``."""
    recipient: str | None = None
    action: str = "read"

    def __post_init__(self) -> None:
        Entry.__post_init__(self)
        if not isinstance(self.rules, tuple):
            object.__setattr__(self, "rules", tuple(self.rules))
        for rule in self.rules:
            _check_text("rules", rule)
        _check_text("recipient", self.recipient)
        _check_text("action", self.action)

    def _fields(self) -> dict[str, Any]:
        return {
            "allowed": bool(self.allowed),
            "rules": list(self.rules),
            "recipient": self.recipient,
            "action": self.action,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class ReleaseEntry(Entry):
    """Data crossed the boundary: from whom to whom, which fields, at what granularity."""

    kind: ClassVar[str] = "release"

    provider: str
    recipient: str
    fields: tuple[str, ...] = ()
    granularity: Literal["record", "aggregate", "match-only"] = "record"

    def __post_init__(self) -> None:
        Entry.__post_init__(self)
        if not isinstance(self.fields, tuple):
            object.__setattr__(self, "fields", tuple(self.fields))
        _check_text("provider", self.provider)
        _check_text("recipient", self.recipient)
        for name in self.fields:
            _check_text("fields", name)
        if self.granularity not in ("record", "aggregate", "match-only"):
            raise InvalidInput(f"unknown granularity {self.granularity!r}")

    def _fields(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "recipient": self.recipient,
            "fields": list(self.fields),
            "granularity": self.granularity,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsentChangeEntry(Entry):
    """A person gave, renewed or withdrew consent, or it expired."""

    kind: ClassVar[str] = "consent"

    change: Literal["given", "renewed", "withdrawn", "expired"]
    recipient: str | None = None

    def __post_init__(self) -> None:
        Entry.__post_init__(self)
        if self.change not in ("given", "renewed", "withdrawn", "expired"):
            raise InvalidInput(f"unknown consent change {self.change!r}")
        _check_text("recipient", self.recipient)

    def _fields(self) -> dict[str, Any]:
        return {"change": self.change, "recipient": self.recipient}


@dataclass(frozen=True, kw_only=True, slots=True)
class AgreementChangeEntry(Entry):
    """An agreement moved in its lifecycle (draft, review, approved, active, suspended, ended)."""

    kind: ClassVar[str] = "agreement"

    from_status: str | None
    to_status: str
    actor: str | None = None

    def __post_init__(self) -> None:
        Entry.__post_init__(self)
        for name in ("from_status", "to_status", "actor"):
            _check_text(name, getattr(self, name))

    def _fields(self) -> dict[str, Any]:
        return {"from_status": self.from_status, "to_status": self.to_status, "actor": self.actor}


@dataclass(frozen=True, kw_only=True, slots=True)
class ErasureEntry(Entry):
    """A person was erased: their ledger key is gone, so nothing ties their entries to them.

    It names nobody: ``about`` must stay empty.
    """

    kind: ClassVar[str] = "erasure"

    entries_forgotten: int = 0
    """How many earlier entries about the person became unlinkable."""

    def __post_init__(self) -> None:
        Entry.__post_init__(self)
        if self.about:
            raise InvalidInput("an erasure entry must not name the person it erases")
        _check_count("entries_forgotten", self.entries_forgotten)

    def _fields(self) -> dict[str, Any]:
        return {"entries_forgotten": self.entries_forgotten}


ENTRY_KINDS: dict[str, type[Entry]] = {
    cls.kind: cls
    for cls in (DecisionEntry, ReleaseEntry, ConsentChangeEntry, AgreementChangeEntry, ErasureEntry)
}


def decode_leaf(data: bytes) -> dict[str, Any]:
    """The JSON object of a stored leaf."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"not a ledger leaf: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidInput("not a ledger leaf: not a JSON object")
    return value
