"""Dataset declarations: a party's tables and fields, each field's data category, whose row it is.

A declaration is a YAML document in the style of fides datasets::

    dataset: reelix
    party: reelix
    description: Reelix's own database.
    collections:
      - name: watch_events
        person: member_id            # the field holding the party's own id of the person
        fields:
          - {name: member_id, category: user.unique_id}
          - {name: title_id, category: user.behavior.media_consumption}
      - name: friendships            # one person's relations: the rows of one person's friends
        person: friend_id            # each row is about the friend...
        relation_of: person_id       # ...and is the relation of the person in person_id
        fields: [...]
      - name: messages               # rows about several people at once
        group: {field: thread_id, members: thread_participants,
                member_group: thread_id, member_person: person_id}
        fields: [...]

Each collection names one of ``person`` (the row is about one person) or ``group`` (the row is
about every member of a group, listed in a members table); a collection that names neither is
about no person (a catalogue) and may hold no category under ``user``. A collection about one
person may also name ``relation_of``, the field holding the person whose relation each row is
(their friend list): reading it is reading that person's relations, which is done only on that
person's behalf, pinned to them (see :mod:`accord.gateway`). Rows about a group are the relation
of each member, and are read the same way. Names end up in SQL, so they
must be plain identifiers. Errors name the file, the line and the field, and suggest the nearest
key, as agreement documents do (:func:`accord.agreements.parse`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import pydantic
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    field_validator,
    model_validator,
)

from accord import taxonomy
from accord.documents import parse_document
from accord.errors import DatasetFormatError, InvalidInput

PERSON_ID = "user.unique_id"
"""The category of a field holding a person's id at the party."""

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""What a collection or field name must look like: it is written into SQL as an identifier."""


def _identifier(value: str) -> str:
    if not IDENTIFIER.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a plain SQL identifier (letters, digits and '_', not first a digit)"
        )
    return value


def _slug(value: str) -> str:
    if not value or not all(ch.isalnum() or ch in "-_." for ch in value):
        raise ValueError(f"{value!r} must be letters, digits, '-', '_' or '.'")
    return value


def _category(key: str) -> str:
    try:
        return taxonomy.validate(taxonomy.Kind.CATEGORY, key)
    except InvalidInput as exc:
        raise ValueError(exc.message) from exc


Identifier = Annotated[str, AfterValidator(_identifier)]
Slug = Annotated[str, AfterValidator(_slug)]
CategoryKey = Annotated[str, AfterValidator(_category)]


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, populate_by_name=True
    )


class Field(_Strict):
    """One declared field (column) and the data category it holds."""

    name: Identifier
    category: CategoryKey
    description: str = ""


class GroupSpec(_Strict):
    """How a row about several people names them: its group field, and the members table.

    ``members`` is the table listing each group's people, one row per member: ``member_group``
    holds the group id (matched with the collection's ``field``), ``member_person`` the party's
    id of the member.
    """

    field: Identifier
    members: Identifier
    member_group: Identifier
    member_person: Identifier


class Collection(_Strict):
    """One declared table: its fields, and whom each row is about."""

    name: Identifier
    description: str = ""
    person: Identifier | None = None
    group: GroupSpec | None = None
    relation_of: Identifier | None = None
    """The field holding whose relation each row is (a friendship's owner), if rows are one
    person's relations: read only on that person's behalf, pinned to them."""
    fields: Annotated[tuple[Field, ...], pydantic.Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> Collection:
        if self.person is not None and self.group is not None:
            raise ValueError(
                "a collection names at most one of person (rows about one person) or group "
                "(rows about several)"
            )
        names = [f.name for f in self.fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"field names must be unique; repeated: {', '.join(dupes)}")
        subject = self.subject_field
        if subject is None:
            personal = [f.name for f in self.fields if taxonomy.covers("user", f.category)]
            if personal:
                raise ValueError(
                    "a collection about no person (neither person nor group) may hold no "
                    f"personal data, but {', '.join(personal)} is under 'user'"
                )
        elif subject not in names:
            what = "person" if self.person is not None else "group field"
            raise ValueError(f"the {what} {subject!r} must be one of the declared fields")
        if self.relation_of is not None:
            self._check_relation(self.relation_of)
        return self

    def _check_relation(self, name: str) -> None:
        if self.person is None:
            raise ValueError(
                "relation_of is for a collection about one person per row (person); rows about a "
                "group are already the relation of each member"
            )
        anchor = self.field(name)
        if anchor is None:
            raise ValueError(f"relation_of {name!r} must be one of the declared fields")
        if not taxonomy.covers(PERSON_ID, anchor.category):
            raise ValueError(
                f"relation_of {name!r} must hold a person's id ({PERSON_ID}), not {anchor.category}"
            )

    @property
    def subject_field(self) -> str | None:
        """The field saying whom a row is about: the person field, the group field, or None
        for a collection about no person (a catalogue)."""
        if self.group is not None:
            return self.group.field
        return self.person

    @property
    def field_names(self) -> tuple[str, ...]:
        """The declared fields' names, in declaration order."""
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> Field | None:
        """The declared field called ``name``, if any."""
        return next((f for f in self.fields if f.name == name), None)


class Dataset(_Strict):
    """A party's declaration of its own database (what the YAML document holds)."""

    id: Annotated[Slug, pydantic.Field(alias="dataset")]
    party: Slug
    description: str = ""
    collections: Annotated[tuple[Collection, ...], pydantic.Field(min_length=1)]

    @field_validator("collections")
    @classmethod
    def _unique(cls, collections: tuple[Collection, ...]) -> tuple[Collection, ...]:
        names = [c.name for c in collections]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"collection names must be unique; repeated: {', '.join(dupes)}")
        return collections

    def collection(self, name: str) -> Collection:
        """The declared collection called ``name``, or :class:`InvalidInput` saying which exist."""
        found = next((c for c in self.collections if c.name == name), None)
        if found is None:
            raise InvalidInput(
                f"dataset {self.id} declares no collection {name!r}"
                f"{_nearest(name, [c.name for c in self.collections])}"
            )
        return found

    def field(self, qualified: str) -> Field:
        """The field named ``collection.field``, or :class:`InvalidInput` naming what is wrong."""
        collection, _, name = qualified.partition(".")
        if not name:
            raise InvalidInput(
                f"dataset {self.id}: field {qualified!r} must be written collection.field"
            )
        c = self.collection(collection)
        found = c.field(name)
        if found is None:
            raise InvalidInput(
                f"dataset {self.id}: collection {c.name} declares no field {name!r}"
                f"{_nearest(name, c.field_names)}"
            )
        return found

    def categories(self) -> dict[str, str]:
        """The category of every declared field, by ``collection.field``."""
        return {f"{c.name}.{f.name}": f.category for c in self.collections for f in c.fields}

    def fields_in(self, categories: Iterable[str]) -> frozenset[str]:
        """Every ``collection.field`` whose category is one of ``categories`` or lies under one."""
        wanted = tuple(categories)
        return frozenset(
            name
            for name, category in self.categories().items()
            if taxonomy.covered_by_any(category, wanted)
        )


def _nearest(name: str, known: Iterable[str]) -> str:
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" (declared: {', '.join(known)})" if known else ""


# ---------------------------------------------------------------------------------------------
# Parsing with locations


def parse(text: str, *, source: str = "<dataset>") -> Dataset:
    """Parse and validate a dataset declaration; errors name ``source``, the line and the field."""
    return parse_document(
        text,
        Dataset,
        source=source,
        what="a dataset",
        error=DatasetFormatError,
        model_at=_model_at,
    )


def load(path: str | Path) -> Dataset:
    """Read and parse the dataset declaration at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read dataset declaration {p}: {exc.strerror}") from exc
    return parse(text, source=str(p))


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel]:
    """The model whose keys the last part of ``loc`` is one of."""
    model: type[BaseModel] = Dataset
    inner: dict[str, type[BaseModel]] = {
        "collections": Collection,
        "fields": Field,
        "group": GroupSpec,
    }
    for part in loc[:-1]:
        if isinstance(part, str) and part in inner:
            model = inner[part]
    return model
