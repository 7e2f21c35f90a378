"""What the auditor reads: the ledger's leaves, the store's records, the parties' own databases.

Each is read plainly and on its own terms, not through the gateway:

* the ledger's release, agreement and erasure entries, in order, and whom each release was about:
  every subject in a leaf is a keyed pseudonym (:mod:`accord.ledger.shred`), which the auditor,
  holding the store's person keys, recomputes for the candidates the person index names and, for
  any left over, for every key it holds;
* the store's agreements, consents and opt-outs as their plain dataclasses;
* each party's tables, as its dataset declaration describes them, with plain SELECTs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, Table, and_, select
from sqlalchemy.exc import NoSuchTableError
from sqlalchemy.orm import Session, sessionmaker

from accord.agreements import Registered
from accord.audit.law import Person
from accord.consent import Consent, OptOut, utc
from accord.errors import InvalidInput, StoreError, translate
from accord.ledger.shred import subject_tags
from accord.ledger.subjects import TAG_SIZE, check_chunks
from accord.ledger.tables import (
    leaves_table,
    person_index_table,
    person_keys_table,
    subjects_table,
)
from accord.sources.datasets import Collection, Dataset
from accord.store import tables as t
from accord.store.repositories import AgreementRepository, ConsentRepository, OptOutRepository
from accord.store.tables import people as people_table

LOCATION = "user.location.imprecise"
"""The category of the field where a party records where a person lives."""
TITLE_FIELD = "title_id"
"""The field holding a row's title, in collections whose rows are about titles watched."""


@dataclass(frozen=True, slots=True)
class Leaf:
    """One ledger leaf the audit reads, decoded."""

    index: int
    entry: dict[str, Any]

    @property
    def kind(self) -> str:
        """The entry's kind."""
        return str(self.entry.get("kind"))

    @property
    def at(self) -> datetime:
        """When the entry says it happened."""
        return utc(datetime.fromisoformat(str(self.entry["at"]).replace("Z", "+00:00")))


@dataclass
class Subjects:
    """Whom each release leaf is about: person references (``party/id``), and how many of its
    pseudonyms no key the store holds explains (people erased since)."""

    refs: dict[int, set[str]] = field(default_factory=dict)
    keys: dict[int, list[bytes]] = field(default_factory=dict)
    """The ledger keys of the people each leaf is about (what seals its rows' commitment)."""
    unexplained: dict[int, int] = field(default_factory=dict)
    broken: dict[int, str] = field(default_factory=dict)
    """Leaves that commit to their subjects by a root the subject list stored beside them does
    not hash to (or that have none stored): what is wrong with each."""


_KINDS = (b'"kind":"release"', b'"kind":"agreement"', b'"kind":"erasure"')


def read_leaves(engine: Engine) -> list[Leaf]:
    """Every release, agreement and erasure leaf, in order."""
    out: list[Leaf] = []
    with translate(StoreError, "reading the ledger's leaves"), engine.connect() as conn:
        rows = conn.execute(
            select(leaves_table.c.idx, leaves_table.c.data).order_by(leaves_table.c.idx)
        )
        for idx, data in rows:
            raw = bytes(data)
            if not any(kind in raw for kind in _KINDS):
                continue
            try:
                entry = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InvalidInput(f"leaf {idx} of the ledger is not JSON: {exc}") from exc
            if isinstance(entry, dict) and entry.get("kind") in ("release", "agreement", "erasure"):
                out.append(Leaf(int(idx), entry))
    return out


def resolve_subjects(engine: Engine, leaves: Iterable[Leaf]) -> Subjects:
    """Recompute whom each leaf is about from the store's person keys.

    The person index proposes candidates for each leaf; each is kept only if its subject tag,
    recomputed from its key, is in the leaf. Pseudonyms no candidate explains are tried against
    every key; those still unexplained belong to people whose key is gone.
    """
    leaves = list(leaves)
    found = Subjects()
    k, ix = person_keys_table.c, person_index_table.c
    candidates: dict[int, list[tuple[str, bytes]]] = defaultdict(list)
    with translate(StoreError, "reading the ledger's person keys"), engine.connect() as conn:
        wanted = {leaf.index: set(leaf.entry.get("subjects") or ()) for leaf in leaves}
        for leaf in leaves:
            if "subjects_root" in leaf.entry:
                wanted[leaf.index] = _stored_subjects(conn, leaf, found)
        wanted = {idx: tags for idx, tags in wanted.items() if tags}
        if not wanted:
            return found
        # Every key once, then the index rows of the leaves wanted: two scans, joined here.
        every = [
            (str(p), bytes(key), bytes(look))
            for p, key, look in conn.execute(select(k.person_id, k.key, k.lookup))
        ]
        by_lookup = {look: (p, key) for p, key, look in every}
        low, high = min(wanted), max(wanted)
        rows = conn.execute(
            select(ix.leaf_idx, ix.pseudonym).where(ix.leaf_idx >= low, ix.leaf_idx <= high)
        )
        for idx, pseudonym in rows:
            known = by_lookup.get(bytes(pseudonym))
            if known is not None and int(idx) in wanted:
                candidates[int(idx)].append(known)
    for idx, tags in wanted.items():
        people = candidates.get(idx, [])
        tagged = subject_tags([key for _, key in people], idx)
        mine = {
            person: key for (person, key), tag in zip(people, tagged, strict=True) if tag in tags
        }
        left = len(tags) - len(mine)
        if left > 0:
            # Pseudonyms the index did not explain: every key is tried.
            tagged = subject_tags([key for _, key, _ in every], idx)
            mine = {p: key for (p, key, _), tag in zip(every, tagged, strict=True) if tag in tags}
            left = len(tags) - len(mine)
        found.refs[idx] = set(mine)
        found.keys[idx] = list(mine.values())
        if left:
            found.unexplained[idx] = left
    return found


@dataclass
class StoreRecords:
    """The store's agreements, and each party's people, consents and opt-outs."""

    agreements: dict[str, Registered]
    consents: dict[tuple[str, str], list[Consent]]
    opt_outs: dict[tuple[str, str], list[OptOut]]
    known: set[tuple[str, str]]
    erased: set[tuple[str, str]]
    """The people each party erased (its suppression list)."""
    homes: dict[tuple[str, str], str]
    """Where the store says people live (used only for parties whose database is not given)."""


def read_store(sessions: sessionmaker[Session], parties: Iterable[str]) -> StoreRecords:
    """Every agreement, and the people, consents and opt-outs of ``parties``."""
    consents: dict[tuple[str, str], list[Consent]] = defaultdict(list)
    outs: dict[tuple[str, str], list[OptOut]] = defaultdict(list)
    with sessions() as session, session.begin():
        agreements = {r.agreement.id: r for r in AgreementRepository(session).list()}
        repo = ConsentRepository(session)
        for party in parties:
            for person, facts in repo.facts(party).items():
                consents[(party, person)].extend(facts.consents)
                outs[(party, person)].extend(facts.opt_outs)
        # Consents and opt-outs of people the store has no row for count too (they are the
        # records); such a person is simply unknown to the store.
        for party in parties:
            seen = {person for (p, person) in consents if p == party}
            rows = session.execute(
                select(t.consents.c.person).where(t.consents.c.controller == party).distinct()
            )
            missing = {str(r) for (r,) in rows} - seen
            for person in sorted(missing):
                consents[(party, person)].extend(repo.for_person(party, person))
                outs[(party, person)].extend(OptOutRepository(session).for_person(party, person))
        people = session.execute(
            select(people_table.c.party, people_table.c.person_id, people_table.c.jurisdiction)
        ).all()
        e = t.erased_people.c
        erased = session.execute(select(e.party, e.person_id)).all()
    return StoreRecords(
        agreements,
        dict(consents),
        dict(outs),
        {(str(p), str(i)) for p, i, _ in people},
        {(str(p), str(i)) for p, i in erased},
        {(str(p), str(i)): str(j) for p, i, j in people},
    )


class PartyDatabase:
    """One party's own database, read plainly as its dataset declaration describes it."""

    def __init__(self, engine: Engine, dataset: Dataset) -> None:
        self.engine = engine
        self.dataset = dataset
        self.party = dataset.party
        self._tables: dict[str, Table] = {}

    def table(self, name: str) -> Table:
        """The table ``name``, reflected once."""
        table = self._tables.get(name)
        if table is None:
            try:
                with translate(StoreError, f"reading {self.party}'s database"):
                    table = Table(name, MetaData(), autoload_with=self.engine)
            except NoSuchTableError as exc:
                raise InvalidInput(f"{self.party}'s database has no table {name!r}") from exc
            self._tables[name] = table
        return table

    def homes(self) -> dict[str, str] | None:
        """Where the party says each of its people lives, from its own people table; ``None``
        if its dataset declares no such field (then where it told the Accord store counts)."""
        for c in self.dataset.collections:
            located = [f.name for f in c.fields if f.category == LOCATION]
            if c.person is not None and located:
                table = self.table(c.name)
                query = select(table.c[c.person], table.c[located[0]])
                with (
                    translate(StoreError, f"reading {self.party}.{c.name}"),
                    self.engine.connect() as conn,
                ):
                    return {str(p): str(j) for p, j in conn.execute(query) if j is not None}
        return None

    def rows(
        self,
        c: Collection,
        columns: Iterable[str],
        where: Mapping[str, Any],
        *,
        people: Iterable[str] | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """The ``columns`` of the rows of ``c`` meeting the equality conditions ``where`` (``None``
        meaning ``IS NULL``), of ``people`` only if given (by the collection's person field)."""
        table = self.table(c.name)
        names = list(columns)
        missing = [n for n in [*names, *where] if n not in table.c]
        if missing:
            raise InvalidInput(f"{self.party}'s table {c.name} has no column {missing[0]!r}")
        conditions = [
            table.c[n].is_(None) if v is None else table.c[n] == v for n, v in where.items()
        ]
        query = select(*(table.c[n] for n in names))
        if conditions:
            query = query.where(and_(*conditions))
        wanted = None if people is None else set(people)
        subject = c.person
        with translate(StoreError, f"reading {self.party}.{c.name}"), self.engine.connect() as conn:
            if wanted is not None and subject is not None:
                # Chunks of ids as IN lists: the audit reads a few people's rows at a time here.
                ids = sorted(wanted)
                for start in range(0, len(ids), 500):
                    chunk = query.where(table.c[subject].in_(ids[start : start + 500]))
                    yield from (tuple(r) for r in conn.execute(chunk))
                return
            yield from (tuple(r) for r in conn.execute(query))


def person(records: StoreRecords, homes: Mapping[str, str] | None, party: str, pid: str) -> Person:
    """The auditor's view of one person: where their party says they live, and their records."""
    key = (party, pid)
    home = homes.get(pid) if homes is not None else records.homes.get(key)
    return Person(
        id=pid,
        party=party,
        jurisdiction=home,
        consents=tuple(records.consents.get(key, ())),
        opt_outs=tuple(records.opt_outs.get(key, ())),
        known=key in records.known,
        erased=key in records.erased,
    )


def _stored_subjects(conn: Connection, leaf: Leaf, found: Subjects) -> set[str]:
    """The subject tags stored beside a leaf that commits to them by a root, checked against it;
    what does not hold is noted in ``found.broken`` (the stored tags are still used, to name the
    people the release may have been about)."""
    c = subjects_table.c
    rows = [
        (int(n), bytes(first), bytes(tags), bytes(root))
        for n, first, tags, root in conn.execute(
            select(c.chunk, c.first, c.tags, c.root)
            .where(c.leaf_idx == leaf.index)
            .order_by(c.chunk)
        )
    ]
    try:
        count = int(leaf.entry.get("subjects_count"))  # type: ignore[arg-type]
        root = bytes.fromhex(str(leaf.entry.get("subjects_root")))
    except (TypeError, ValueError):
        found.broken[leaf.index] = "the leaf's subjects_count or subjects_root is malformed"
        count, root = -1, b""
    if not rows:
        found.broken.setdefault(leaf.index, "no subject list is stored beside the leaf")
        return set()
    _, problem = check_chunks(rows, count, root)
    if problem is not None:
        found.broken.setdefault(leaf.index, problem)
    joined = b"".join(tags for _, _, tags, _ in rows)
    return {joined[i : i + TAG_SIZE].hex() for i in range(0, len(joined), TAG_SIZE)}
