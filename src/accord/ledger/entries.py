"""What the ledger records: typed entries, and their leaves in canonical JSON (RFC 8785).

Every entry names the agreement, clause, purpose and data categories it concerns, how many people
it touched, and a reason a person can read. Entries that concern particular people carry their ids
in ``about``; those ids are never written. The ledger turns each into a keyed pseudonym for that
one leaf (see :mod:`accord.ledger.shred`), so a leaf says *that* people were involved without
saying *who*.

A leaf is the UTF-8 canonical JSON of an object with a ``v`` (format version), a ``kind``, an ``at``
timestamp (RFC 3339, UTC) and the entry's fields; ``about`` becomes ``subjects``, the sorted list of
hex pseudonyms, or for an entry about :data:`accord.ledger.subjects.TREE_MIN` people or more,
``subjects_count`` and ``subjects_root``, the Merkle tree hash of that list (see
:mod:`accord.ledger.subjects`; the list itself is stored beside the leaf).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from json.encoder import encode_basestring
from operator import attrgetter
from typing import Any, ClassVar, Literal, get_args

import rfc8785

from accord.errors import InvalidInput
from accord.ledger.rows import seal
from accord.ledger.subjects import TREE_MIN, SubjectTree

Subjects = Sequence[str] | SubjectTree | None
"""An entry's subject tags as a leaf is written with them: hex tags, or their tree."""

LEAF_VERSION = 1
"""The format version of every leaf but a release's (see :attr:`Entry.version`)."""
_quote: Callable[[str], str] = encode_basestring

# RFC 8785 serialises numbers as IEEE doubles; integers beyond this would not round-trip.
_MAX_SAFE_INTEGER = 2**53 - 1


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON of any JSON value (the general, slower encoder)."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise InvalidInput(f"cannot be written as canonical JSON: {exc}") from exc


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(at: datetime) -> str:
    if at.utcoffset():
        at = at.astimezone(UTC)
    # An aware UTC time's isoformat ends in "+00:00": six characters to swap for "Z".
    return at.isoformat(timespec="microseconds")[:-6] + "Z"


# How each field is written. For the values entries hold (text, lists of text, safe integers,
# booleans, null; ASCII keys; no floats) RFC 8785 comes down to: keys sorted, no spaces, strings
# escaped only where JSON requires (what the C ``encode_basestring`` does), integers in decimal.
# Appends spend most of their time writing leaves, so each entry class gets one generated function
# that writes its leaf in that order as one f-string, several times faster than building a dict
# and running a general encoder. Tests compare its bytes with the ``rfc8785`` package's on random
# entries.
def _texts_json(values: Iterable[str]) -> str:
    return "[" + ",".join(map(_quote, values)) + "]"


def _subjects_json(subjects: Subjects) -> str:
    """The leaf's commitment to its subjects: ``"subjects":[...]`` listing fewer than
    :data:`TREE_MIN` tags, else ``"subjects_count":n,"subjects_root":"<hex>"``."""
    if not subjects:
        return '"subjects":[]'
    if not isinstance(subjects, SubjectTree):
        if len(subjects) < TREE_MIN:
            return '"subjects":' + _texts_json(sorted(subjects))
        subjects = SubjectTree.of(subjects)
    return f'"subjects_count":{subjects.count},"subjects_root":"{subjects.root.hex()}"'


def subjects_fields(subjects: Subjects) -> dict[str, Any]:
    """The fields of a leaf's JSON object that commit to its subjects (as
    :func:`_subjects_json` writes them)."""
    if not subjects:
        return {"subjects": []}
    if not isinstance(subjects, SubjectTree):
        if len(subjects) < TREE_MIN:
            return {"subjects": sorted(subjects)}
        subjects = SubjectTree.of(subjects)
    return {"subjects_count": subjects.count, "subjects_root": subjects.root.hex()}


# Entries repeat most of their text (agreement, clause, purpose, categories, rules, recipient): the
# JSON text of values already seen is looked up instead of escaped again. Each memo forgets
# everything once it holds this many values, so unique text (reasons) cannot grow it for ever.
_MEMO_LIMIT = 4096


class _QuotedMemo(dict[str | None, str]):
    """JSON text of strings (and ``null`` for None), kept for the values entries repeat."""

    def __missing__(self, value: str | None) -> str:
        text = "null" if value is None else _quote(value)
        if len(self) >= _MEMO_LIMIT:
            self.clear()
        self[value] = text
        return text


class _TextsMemo(dict[tuple[str, ...], str]):
    """JSON text of tuples of strings, kept for the values entries repeat."""

    def __missing__(self, values: tuple[str, ...]) -> str:
        text = _texts_json(values)
        if len(self) >= _MEMO_LIMIT:
            self.clear()
        self[values] = text
        return text


class _DaysMemo(dict[date, str]):
    """The opening of a timestamp, ``"YYYY-MM-DDT``, by day."""

    def __missing__(self, day: date) -> str:
        text = '"' + day.isoformat() + "T"
        if len(self) >= _MEMO_LIMIT:
            self.clear()
        self[day] = text
        return text


_QUOTED = _QuotedMemo()
_TEXTS_QUOTED = _TextsMemo()
_DAYS = _DaysMemo()
_TWO_DIGITS = tuple(f"{n:02d}" for n in range(60))


@dataclass(frozen=True, slots=True)
class _Field:
    value: Callable[[Any], Any]
    """The field's value in the leaf's JSON object."""
    code: str
    """A Python expression writing the field ``{v}`` as canonical JSON text."""


_TEXT = _Field(lambda v: v, "_quoted[{v}]")
# Text that is rarely the same twice (a reason names its request): escaped without the memo.
_PROSE = _Field(lambda v: v, '("null" if {v} is None else _quote({v}))')
_TEXTS = _Field(list, "(_texts_quoted[{v}] if type({v}) is tuple else _texts_json({v}))")
_COUNT = _Field(int, "str({v})")
_MAYBE_COUNT = _Field(
    lambda v: None if v is None else int(v), '("null" if {v} is None else str({v}))'
)
_FLAG = _Field(bool, '("true" if {v} else "false")')
# ``at`` (in UTC, see Entry.__post_init__) as a JSON string "YYYY-MM-DDTHH:MM:SS.ffffffZ", the
# same text as _timestamp in a quarter of the time of ``isoformat``, which dominated writing a leaf.
_INSTANT = _Field(
    _timestamp,
    "f'{{_days[{v}.date()]}}{{_two[{v}.hour]}}:{{_two[{v}.minute]}}:{{_two[{v}.second]}}"
    ".{{{v}.microsecond:06d}}Z\"'",
)

# The generated writers take these as default arguments, so they are read as fast locals.
_WRITER_NAMES: dict[str, Any] = {
    "_quote": _quote,
    "_quoted": _QUOTED,
    "_texts_json": _texts_json,
    "_texts_quoted": _TEXTS_QUOTED,
    "_subjects_json": _subjects_json,
    "_days": _DAYS,
    "_two": _TWO_DIGITS,
}

_Encoder = Callable[["Entry", Subjects], bytes]
_ENCODERS: dict[type, _Encoder] = {}


def _encoder(cls: type[Entry]) -> _Encoder:
    """The generated leaf writer of an entry class (built on first use)."""
    encoder = _ENCODERS.get(cls)
    if encoder is None:
        fields: dict[str, _Field | None] = {"v": None, "kind": None, "subjects": None}
        fields.update(cls._leaf_fields)
        defaults = ", ".join(f"{name}={name}" for name in _WRITER_NAMES)
        lines = [f"def encode(entry, subjects, {defaults}):"]
        template = []
        for n, name in enumerate(sorted(fields)):
            # Braces are doubled: the constant text goes into an f-string. The subjects write
            # their own keys (a list, or a count and a root, in the same place in key order).
            key = "" if name == "subjects" else _quote(name) + ":"
            template.append(("{{" if n == 0 else ",") + key)
            how = fields[name]
            if how is not None:
                lines.append(f"    f{n} = {how.code.format(v=f'entry.{name}')}")
                template.append(f"{{f{n}}}")
            elif name == "v":
                template.append(str(cls.version))
            elif name == "kind":
                template.append(_quote(cls.kind).replace("{", "{{").replace("}", "}}"))
            else:
                lines.append(f"    f{n} = _subjects_json(subjects)")
                template.append(f"{{f{n}}}")
        template.append("}}")
        lines.append(f"    return f{''.join(template)!r}.encode('utf-8')")
        namespace = dict(_WRITER_NAMES)
        # Generated from the class's own field table (names are its attribute names), the way
        # dataclasses generates __init__.
        exec("\n".join(lines) + "\n", namespace)  # noqa: S102
        encoder = namespace["encode"]
        _ENCODERS[cls] = encoder
    return encoder


def leaf_writer(cls: type[Entry]) -> Callable[[Entry, Subjects], bytes]:
    """The function writing leaves of an entry class: ``writer(entry, subjects)`` is
    ``entry.encode(subjects)``, without finding the writer again for every entry."""
    return _encoder(cls)


def _check_text(name: str, value: str | None) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{name} is not valid Unicode text: {exc.reason}") from exc


def _check_fields(names: tuple[str, ...], values: tuple[Any, ...]) -> None:
    """Each of ``values`` (of the fields ``names``) is text that encodes as UTF-8, or None:
    checked at once, and field by field (in order, as :func:`_check_text` says it) only to say
    which is wrong. Every entry of every exchange is checked so, a dozen fields each."""
    try:
        if all(type(value) is str or value is None for value in values):
            "".join([value for value in values if value is not None]).encode("utf-8")
            return
    except UnicodeEncodeError:
        pass
    for name, value in zip(names, values, strict=True):
        _check_text(name, value)


def _check_texts(name: str, values: tuple[str, ...], *, ids: bool = False) -> None:
    """Each value is text that encodes as UTF-8 (and, for ``ids``, holds no NUL character):
    checked at once, for an entry about a million people, and one by one only to say which value
    is wrong.

    A person's id with a NUL is refused as PostgreSQL refuses NUL in text: such an id could be
    kept on SQLite only, and the ledger hands many ids to the database as one JSON array, which
    SQLite would cut at the NUL.
    """
    try:
        if all(type(value) is str for value in values):
            joined = "".join(values)
            joined.encode("utf-8")
            if not ids or "\x00" not in joined:
                return
    except UnicodeEncodeError:
        pass
    for value in values:
        _check_text(name, value)
        if ids and "\x00" in value:
            raise InvalidInput(f"{name} must not hold the NUL character: {value!r}")


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_SAFE_INTEGER:
        raise InvalidInput(f"{name} must be a whole number from 0 to 2**53-1, not {value!r}")


def _common_text(entry: Entry) -> str | None:
    """The text of the fields every entry has, joined, where each already passes every check
    :meth:`Entry.__post_init__` makes but UTF-8 (which the caller makes at once, with its own
    fields' text): what every entry of every exchange goes through. ``None`` where any field
    needs a closer look (a value to convert, text of another type): :meth:`Entry.__post_init__`
    then checks the entry, and refuses it as it says.

    Its ``people`` is set (the number of distinct ids in ``about``) if it was left out, as
    :meth:`Entry.__post_init__` would set it.
    """
    categories, about, at, people = entry.categories, entry.about, entry.at, entry.people
    if (
        type(categories) is not tuple
        or type(about) is not tuple
        or type(at) is not datetime
        or at.tzinfo is not UTC
        or type(people) is not int
    ):
        return None
    try:
        distinct = len(set(about)) if len(about) > 1 else len(about)
        if people == -1:
            people = distinct
            object.__setattr__(entry, "people", people)
        reason, agreement, clause, purpose = (
            entry.reason,
            entry.agreement,
            entry.clause,
            entry.purpose,
        )
        if not distinct <= people <= _MAX_SAFE_INTEGER or type(reason) is not str or not reason:
            return None
        # A value that is not text (None aside) makes join raise TypeError.
        ids = "".join(about)
        if "\x00" in ids:
            return None
        return "".join(
            (
                "" if agreement is None else agreement,
                reason,
                "" if clause is None else clause,
                "" if purpose is None else purpose,
                ids,
                *categories,
            )
        )
    except TypeError:
        return None


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain_text(common: str, optional: tuple[Any, ...], items: tuple[Any, ...]) -> bool:
    """Whether an entry's own text fields (``optional``, each text or ``None``, and ``items``,
    all text) are text and, with the ``common`` text of :func:`_common_text`, valid UTF-8: then
    the entry passes every check :meth:`Entry.__post_init__` would make, in one pass."""
    try:
        text = "".join((common, *("" if v is None else v for v in optional), *items))
    except TypeError:
        return False
    return _utf8(text)


@dataclass(frozen=True, kw_only=True, slots=True)
class Entry:
    """Fields every ledger entry has. Subclasses set ``kind`` and add their own."""

    kind: ClassVar[str] = "entry"
    version: ClassVar[int] = LEAF_VERSION
    """The leaf format version written as ``v``; a kind's version moves when its fields change,
    and leaves already written keep theirs (their bytes are what the tree hashes)."""
    _leaf_fields: ClassVar[dict[str, _Field]] = {
        "agreement": _TEXT,
        "reason": _PROSE,
        "clause": _TEXT,
        "purpose": _TEXT,
        "categories": _TEXTS,
        "people": _COUNT,
        "at": _INSTANT,
    }

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
        _check_fields(
            ("agreement", "reason", "clause", "purpose"),
            (self.agreement, self.reason, self.clause, self.purpose),
        )
        _check_texts("categories", self.categories)
        _check_texts("about", self.about, ids=True)
        if self.at.tzinfo is None:
            raise InvalidInput("at must be a timezone-aware datetime")
        if self.at.tzinfo is not UTC:
            object.__setattr__(self, "at", self.at.astimezone(UTC))

    def leaf(self, subjects: Subjects = None) -> dict[str, Any]:
        """The JSON object written as this entry's leaf, with ``subjects`` as its pseudonyms."""
        out: dict[str, Any] = {"v": self.version, "kind": self.kind, **subjects_fields(subjects)}
        for name, how in self._leaf_fields.items():
            out[name] = how.value(getattr(self, name))
        return out

    def encode(self, subjects: Subjects = None) -> bytes:
        """This entry's leaf bytes: RFC 8785 canonical JSON of :meth:`leaf`."""
        return _encoder(type(self))(self, subjects)

    def sealed(self, keys: Sequence[bytes], index: int) -> Entry:  # noqa: ARG002 - a hook
        """This entry as written in leaf ``index``, given the ledger keys of the people it is
        about (a release seals the commitment to its rows with them)."""
        return self


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionEntry(Entry):
    """A request was decided: allowed or refused, by which rules.

    Version 2 of the leaf adds ``client``: the partner app (its OAuth client id) that made the
    request through the partner API, or ``null`` for a request made otherwise; version 1 leaves
    have no ``client``.
    """

    kind: ClassVar[str] = "decision"
    version: ClassVar[int] = 2
    _leaf_fields: ClassVar[dict[str, _Field]] = {
        **Entry._leaf_fields,
        "allowed": _FLAG,
        "rules": _TEXTS,
        "recipient": _TEXT,
        "action": _TEXT,
        "client": _TEXT,
    }

    allowed: bool
    rules: tuple[str, ...] = ()
    """The rules that decided, e.g. ``agreement:chirp-reelix/clause:recs``, ``law:vppa``."""
    recipient: str | None = None
    action: str = "read"
    client: str | None = None
    """The OAuth client id of the partner app that asked, where one did."""

    def __post_init__(self) -> None:
        common, rules = _common_text(self), self.rules
        if (
            common is not None
            and type(rules) is tuple
            and _plain_text(common, (self.recipient, self.action, self.client), rules)
        ):
            return
        # Something to convert, or to refuse: every check in turn, each saying what is wrong.
        Entry.__post_init__(self)
        if not isinstance(self.rules, tuple):
            object.__setattr__(self, "rules", tuple(self.rules))
        _check_fields(("rules",) * len(self.rules), self.rules)
        _check_fields(("recipient", "action", "client"), (self.recipient, self.action, self.client))


SCOPES = ("all", "people", "friends_of", "threads_of")
"""Whom a request asked about, as a release records it (never naming the people)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ReleaseEntry(Entry):
    """Data crossed the boundary: from whom to whom, which fields, at what granularity.

    Version 2 of the leaf adds what an auditor needs to replay the release without the request:
    the ``operation``, the ``title`` the request named, whom it asked about (``scope``), and how
    many ``rows`` crossed with a commitment to them (``rows_digest``, see
    :mod:`accord.ledger.rows`). Each is ``null`` where it does not apply or was not recorded;
    version 1 leaves have none of them.
    """

    kind: ClassVar[str] = "release"
    version: ClassVar[int] = 2
    _leaf_fields: ClassVar[dict[str, _Field]] = {
        **Entry._leaf_fields,
        "provider": _TEXT,
        "recipient": _TEXT,
        "fields": _TEXTS,
        "granularity": _TEXT,
        "operation": _TEXT,
        "title": _TEXT,
        "scope": _TEXT,
        "rows": _MAYBE_COUNT,
        "rows_digest": _TEXT,
    }

    provider: str
    recipient: str
    fields: tuple[str, ...] = ()
    granularity: Literal["record", "aggregate", "match-only"] = "record"
    operation: str | None = None
    """``read`` or ``write``: what the recipient did."""
    title: str | None = None
    """The title the request named (a title is not a person), if any."""
    scope: str | None = None
    """Whom the request asked about: one of :data:`SCOPES`."""
    rows: int | None = None
    """How many rows crossed (read or written)."""
    rows_digest: str | None = None
    """The rows' commitment (:func:`accord.ledger.rows.seal`), where recorded."""
    rows_sum: int | None = None
    """The rows' unsealed sum (:func:`accord.ledger.rows.rows_sum`). Never written: the ledger
    seals it into ``rows_digest`` with the keys of the people the release is about."""

    def __post_init__(self) -> None:
        common, fields, rows = _common_text(self), self.fields, self.rows
        operation, scope = self.operation, self.scope
        if (
            common is not None
            and type(fields) is tuple
            and operation in (None, "read", "write")
            and (scope is None or scope in SCOPES)
            and (rows is None or (type(rows) is int and 0 <= rows <= _MAX_SAFE_INTEGER))
            and self.granularity in ("record", "aggregate", "match-only")
        ):
            own = (operation, self.title, scope, self.rows_digest, self.provider, self.recipient)
            if _plain_text(common, own, fields):
                return
        # Something to convert, or to refuse: every check in turn, each saying what is wrong.
        Entry.__post_init__(self)
        if not isinstance(self.fields, tuple):
            object.__setattr__(self, "fields", tuple(self.fields))
        _check_fields(
            ("operation", "title", "scope", "rows_digest", "provider", "recipient"),
            (
                self.operation,
                self.title,
                self.scope,
                self.rows_digest,
                self.provider,
                self.recipient,
            ),
        )
        _check_fields(("fields",) * len(self.fields), self.fields)
        if self.operation not in (None, "read", "write"):
            raise InvalidInput(f"unknown operation {self.operation!r}")
        if self.scope is not None and self.scope not in SCOPES:
            raise InvalidInput(f"unknown scope {self.scope!r}")
        if self.rows is not None:
            _check_count("rows", self.rows)
        if self.granularity not in ("record", "aggregate", "match-only"):
            raise InvalidInput(f"unknown granularity {self.granularity!r}")

    def sealed(self, keys: Sequence[bytes], index: int) -> Entry:
        """This entry with its rows' sum sealed under the keys of its people, for leaf
        ``index``."""
        if self.rows_sum is None:
            return self
        # A copy with two fields set, not ``replace``: that would check every field again (the
        # entry was checked when it was made, and a digest is hex text), once per release logged.
        # Slot by slot: ``copy.copy`` goes through ``__reduce_ex__``, three times slower.
        out = object.__new__(type(self))
        setter = object.__setattr__
        for name, value in zip(_RELEASE_SLOTS, _release_values(self), strict=True):
            setter(out, name, value)
        setter(out, "rows_digest", seal(self.rows_sum, keys, index))
        setter(out, "rows_sum", None)
        return out


_RELEASE_SLOTS = tuple(
    name for cls in ReleaseEntry.__mro__ for name in getattr(cls, "__slots__", ())
)
_release_values = attrgetter(*_RELEASE_SLOTS)


ConsentChange = Literal["given", "renewed", "withdrawn", "expired", "opted_out", "opted_in"]
CONSENT_CHANGES: tuple[str, ...] = get_args(ConsentChange)
"""The changes a consent entry records."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsentChangeEntry(Entry):
    """A person gave, renewed or withdrew consent, or it expired; or they opted out of the sale
    and sharing of their data, or withdrew that opt-out (``opted_out``, ``opted_in``)."""

    kind: ClassVar[str] = "consent"
    _leaf_fields: ClassVar[dict[str, _Field]] = {
        **Entry._leaf_fields,
        "change": _TEXT,
        "recipient": _TEXT,
    }

    change: ConsentChange
    recipient: str | None = None

    def __post_init__(self) -> None:
        Entry.__post_init__(self)
        if self.change not in CONSENT_CHANGES:
            raise InvalidInput(f"unknown consent change {self.change!r}")
        _check_text("recipient", self.recipient)


@dataclass(frozen=True, kw_only=True, slots=True)
class AgreementChangeEntry(Entry):
    """An agreement moved in its lifecycle (draft, review, approved, active, suspended, ended)."""

    kind: ClassVar[str] = "agreement"
    _leaf_fields: ClassVar[dict[str, _Field]] = {
        **Entry._leaf_fields,
        "from_status": _TEXT,
        "to_status": _TEXT,
        "actor": _TEXT,
    }

    from_status: str | None
    to_status: str
    actor: str | None = None

    def __post_init__(self) -> None:
        Entry.__post_init__(self)
        for name in ("from_status", "to_status", "actor"):
            _check_text(name, getattr(self, name))


@dataclass(frozen=True, kw_only=True, slots=True)
class ErasureEntry(Entry):
    """A person was erased: their ledger key is gone, so nothing ties their entries to them.

    It names nobody: ``about`` must stay empty.
    """

    kind: ClassVar[str] = "erasure"
    _leaf_fields: ClassVar[dict[str, _Field]] = {
        **Entry._leaf_fields,
        "entries_forgotten": _COUNT,
    }

    entries_forgotten: int = 0
    """How many earlier entries about the person became unlinkable."""

    def __post_init__(self) -> None:
        Entry.__post_init__(self)
        if self.about:
            raise InvalidInput("an erasure entry must not name the person it erases")
        _check_count("entries_forgotten", self.entries_forgotten)


AppEvent = Literal["registered", "reviewed", "test_person", "revoked", "tokens_revoked"]
APP_EVENTS: tuple[str, ...] = get_args(AppEvent)
"""What happened to a partner app, as an app entry records it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AppEntry(Entry):
    """A partner app was registered, reviewed (one permission approved or not), given a test
    person, or revoked; or the tokens issued from one of its authorization codes were revoked,
    the code having been used twice (the person it was for in ``about``).

    ``client`` is its OAuth client id and ``party`` the party it belongs to; a review names the
    permission as ``categories`` and ``purpose`` and says whether it was ``approved``; a test
    person is in ``about`` (so the leaf holds only their pseudonym).
    """

    kind: ClassVar[str] = "app"
    _leaf_fields: ClassVar[dict[str, _Field]] = {
        **Entry._leaf_fields,
        "event": _TEXT,
        "client": _TEXT,
        "party": _TEXT,
        "approved": _FLAG,
    }

    event: AppEvent
    client: str
    party: str
    approved: bool = False
    """For a review: whether the permission was approved."""

    def __post_init__(self) -> None:
        Entry.__post_init__(self)
        if self.event not in APP_EVENTS:
            raise InvalidInput(f"unknown app event {self.event!r}")
        for name in ("client", "party"):
            _check_text(name, getattr(self, name))


ENTRY_KINDS: dict[str, type[Entry]] = {
    cls.kind: cls
    for cls in (
        DecisionEntry,
        ReleaseEntry,
        ConsentChangeEntry,
        AgreementChangeEntry,
        ErasureEntry,
        AppEntry,
    )
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


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetEntry(Entry):
    """A differentially private query spent (or was refused) privacy budget of every person in it.

    ``epsilon`` and ``delta`` are what each person was charged, as decimal text (the leaf holds
    no floats); ``spent`` is false for a query refused because it would overspend someone.
    """

    kind: ClassVar[str] = "budget"
    _leaf_fields: ClassVar[dict[str, _Field]] = {
        **Entry._leaf_fields,
        "recipient": _TEXT,
        "mechanism": _TEXT,
        "epsilon": _TEXT,
        "delta": _TEXT,
        "spent": _FLAG,
    }

    recipient: str
    mechanism: str
    epsilon: str
    delta: str = "0"
    spent: bool = True

    def __post_init__(self) -> None:
        Entry.__post_init__(self)
        for name in ("recipient", "mechanism", "epsilon", "delta"):
            _check_text(name, getattr(self, name))
        for name in ("epsilon", "delta"):
            text = getattr(self, name)
            try:
                ok = 0 <= float(text) < float("inf") and text.strip() == text
            except ValueError:
                ok = False
            if not ok:
                raise InvalidInput(f"{name} must be a non-negative decimal, not {text!r}")


ENTRY_KINDS[BudgetEntry.kind] = BudgetEntry


@dataclass(frozen=True, kw_only=True, slots=True)
class AdSpendEntry(Entry):
    """What an advertiser was charged for one campaign on one (UTC) day, summed: it names nobody.

    ``partner_data`` says whether the campaign targets with an audience built from a partner's
    data: the money beside the data it bought reach with. ``about`` must stay empty and
    ``people`` 0; the auditor's replay of releases passes over these entries.
    """

    kind: ClassVar[str] = "ad_spend"
    _leaf_fields: ClassVar[dict[str, _Field]] = {
        **Entry._leaf_fields,
        "platform": _TEXT,
        "advertiser": _TEXT,
        "campaign": _COUNT,
        "day": _TEXT,
        "impressions": _COUNT,
        "clicks": _COUNT,
        "amount_micros": _COUNT,
        "partner_data": _FLAG,
    }

    platform: str
    advertiser: str
    campaign: int
    day: str
    """The day, ``YYYY-MM-DD`` (UTC)."""
    impressions: int
    """Impressions charged (CPM)."""
    clicks: int
    """Clicks charged (CPC)."""
    amount_micros: int
    partner_data: bool = False

    def __post_init__(self) -> None:
        Entry.__post_init__(self)
        if self.about or self.people:
            raise InvalidInput("an ad spend entry is a sum: it must not name or count people")
        for name in ("platform", "advertiser", "day"):
            _check_text(name, getattr(self, name))
        for name in ("campaign", "impressions", "clicks", "amount_micros"):
            _check_count(name, getattr(self, name))
        try:
            ok = date.fromisoformat(self.day).isoformat() == self.day
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InvalidInput(f"day must be a date written YYYY-MM-DD, not {self.day!r}")


ENTRY_KINDS[AdSpendEntry.kind] = AdSpendEntry


AudienceChange = Literal["built", "rebuilt", "lookalike"]
AUDIENCE_CHANGES: tuple[str, ...] = get_args(AudienceChange)
"""How an audience entry's member list came to be."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AudienceEntry(Entry):
    """An advertiser's audience was built (or rebuilt) from a partner's data: who built it, under
    which agreement and clause, how many members it holds, and a digest of the member list.

    The members are never named, not even by pseudonym: ``about`` must stay empty. ``digest`` is
    the SHA-256 of the sorted member ids (one a line), so the platform can later show which list
    a campaign used, and anyone holding that list can check it against the ledger; ``members`` is
    ``people``. A lookalike records its quality, the recall of held-out seed members in the top
    fifth of scores, as decimal text (``recall``; the leaf holds no floats), and the seed's size.
    """

    kind: ClassVar[str] = "audience"
    _leaf_fields: ClassVar[dict[str, _Field]] = {
        **Entry._leaf_fields,
        "change": _TEXT,
        "platform": _TEXT,
        "audience": _TEXT,
        "advertiser": _TEXT,
        "provider": _TEXT,
        "built_by": _TEXT,
        "digest": _TEXT,
        "seed": _MAYBE_COUNT,
        "recall": _TEXT,
    }

    change: AudienceChange
    platform: str
    audience: str
    advertiser: str
    provider: str
    built_by: str
    digest: str
    seed: int | None = None
    """A lookalike's seed size (people matched into the platform); None for other audiences."""
    recall: str | None = None
    """A lookalike's recall of held-out seed members in the top 20% of scores."""

    def __post_init__(self) -> None:
        Entry.__post_init__(self)
        if self.about:
            raise InvalidInput("an audience entry must not name the audience's members")
        if self.change not in AUDIENCE_CHANGES:
            raise InvalidInput(f"unknown audience change {self.change!r}")
        for name in ("platform", "audience", "advertiser", "provider", "built_by", "digest"):
            _check_text(name, getattr(self, name))
        for name in ("recall",):
            _check_text(name, getattr(self, name))
        if self.seed is not None:
            _check_count("seed", self.seed)


ENTRY_KINDS[AudienceEntry.kind] = AudienceEntry


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelCardEntry(Entry):
    """A model was trained: its card (:class:`accord.ads.cards.ModelCard`) as canonical JSON.

    The card names nobody: it counts the people trained on and fingerprints each shard's person
    list (SHA-256 of the sorted ids), so whoever holds a list can check it against the card and
    see whether a person was in it. ``about`` must stay empty; ``people`` counts the people.
    ``replaces`` is the id of the model it took over from, if any.
    """

    kind: ClassVar[str] = "model_card"
    _leaf_fields: ClassVar[dict[str, _Field]] = {
        **Entry._leaf_fields,
        "platform": _TEXT,
        "model": _TEXT,
        "replaces": _TEXT,
        "card": _PROSE,
    }

    platform: str
    model: str
    replaces: str | None = None
    card: str
    """The card as canonical JSON text (RFC 8785): numbers as decimal text, no floats."""

    def __post_init__(self) -> None:
        Entry.__post_init__(self)
        if self.about:
            raise InvalidInput("a model card counts people and must not name them")
        for name in ("platform", "model", "replaces", "card"):
            _check_text(name, getattr(self, name))
        try:
            ok = isinstance(json.loads(self.card), dict)
        except json.JSONDecodeError:
            ok = False
        if not ok:
            raise InvalidInput("a model card entry's card must be a JSON object")


ENTRY_KINDS[ModelCardEntry.kind] = ModelCardEntry


NoticeEvent = Literal["notified", "told_again", "acknowledged"]
NOTICE_EVENTS: tuple[str, ...] = get_args(NoticeEvent)
"""What happened to a recipient's erasure notice, as an erasure notice entry records it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ErasureNoticeEntry(Entry):
    """A recipient of an erased person's data was told of the erasure (GDPR Art. 19), told again
    once its deadline passed, or acknowledged it.

    It names nobody (``about`` stays empty): ``request`` is the SHA-256 of the erasure request's
    id, so the person who holds the id can find the entries of their request, and nobody else can
    tie them to anything. ``due`` is the deadline set (ISO 8601, UTC), empty for an
    acknowledgement; ``attempt`` counts the times the recipient was told.
    """

    kind: ClassVar[str] = "erasure_notice"
    _leaf_fields: ClassVar[dict[str, _Field]] = {
        **Entry._leaf_fields,
        "event": _TEXT,
        "request": _TEXT,
        "provider": _TEXT,
        "recipient": _TEXT,
        "attempt": _COUNT,
        "due": _TEXT,
    }

    event: NoticeEvent
    request: str
    provider: str
    recipient: str
    attempt: int = 1
    due: str = ""

    def __post_init__(self) -> None:
        Entry.__post_init__(self)
        if self.about:
            raise InvalidInput("an erasure notice entry must not name the person erased")
        if self.event not in NOTICE_EVENTS:
            raise InvalidInput(f"unknown erasure notice event {self.event!r}")
        for name in ("request", "provider", "recipient", "due"):
            _check_text(name, getattr(self, name))
        _check_count("attempt", self.attempt)


ENTRY_KINDS[ErasureNoticeEntry.kind] = ErasureNoticeEntry
