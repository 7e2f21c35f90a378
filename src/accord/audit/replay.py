"""The replay: every release in the ledger judged again, person by person and row by row.

For each release entry, in ledger order, the auditor works out whom the release was about (from
the pseudonyms, with the store's person keys), rebuilds what was asked (agreement, clause,
purpose, categories, fields, title, whom it asked about) and judges each person with its own
reading of the law (:mod:`accord.audit.law`). Where the party's own database is at hand, it also
rebuilds the rows that should have crossed:

* a read about everyone (a bulk feed): every row of every person the law allows, title by title
  (a title a person excluded keeps that row back, not the person);
* a read of one person's friends: the allowed friends of the one person whose friends they are
  (found among the people all the released friends are friends of);
* a read of one person's threads: the messages of the threads where every participant consented;
* a read of named people: the allowed rows of the people released;

and compares them with what the release committed to (its row count and digest,
:mod:`accord.ledger.rows`). A person released who was not allowed, a person allowed who was
held back from a read about everyone, and rows beyond or short of the allowed ones are each a
:class:`Difference`.

What the ledger does not record cannot be replayed: a release logged before releases carried
their title, scope and rows (leaf version 1) is judged person by person only; a read of named
people or of a person's relations says nothing of whom it held back; an aggregate is about no one
in particular, so only its agreement and clause are judged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from accord.agreements import Registered
from accord.audit.law import Disclosure, Person, Verdict, judge, release_problems
from accord.audit.records import (
    TITLE_FIELD,
    Leaf,
    PartyDatabase,
    StoreRecords,
    person,
    read_leaves,
    read_store,
    resolve_subjects,
)
from accord.consent import Operation
from accord.ledger.rows import combine, row_hash, seal
from accord.sources.datasets import Collection, GroupSpec

Kind = Literal["released", "withheld", "rows", "release"]
_ThreadRows = tuple[dict[str, set[str]], dict[str, set[str]], dict[str, list[tuple[Any, ...]]]]

PERSON_ID = "user.unique_id"
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Difference:
    """One thing the ledger shows that the law and the agreement did not allow (or required)."""

    leaf: int
    at: datetime
    agreement: str | None
    clause: str | None
    kind: Kind
    """``released``: a person released who should not have been; ``withheld``: a person held
    back who should have been released; ``rows``: rows beyond or short of the allowed ones;
    ``release``: a release the agreement did not allow at all."""
    person: str | None
    """The person as ``party/id``, where the difference is about one."""
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The difference as a JSON object."""
        return {
            "leaf": self.leaf,
            "at": self.at.isoformat(),
            "agreement": self.agreement,
            "clause": self.clause,
            "kind": self.kind,
            "person": self.person,
            "reasons": list(self.reasons),
        }


@dataclass
class AuditReport:
    """What the replay found over a period."""

    since: datetime | None
    until: datetime | None
    releases: int = 0
    """Release entries replayed in the period."""
    people: int = 0
    """People judged, summed over releases (released ones, and those a bulk read held back)."""
    rows_compared: int = 0
    """Releases whose rows were rebuilt from the party's database and compared."""
    unexplained: int = 0
    """Pseudonyms no key explains: people erased since (their releases are unlinkable)."""
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No difference."""
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON object (what ``accord audit --json`` prints)."""
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "releases": self.releases,
            "people": self.people,
            "rows_compared": self.rows_compared,
            "unexplained": self.unexplained,
            "differences": [d.to_json() for d in self.differences],
        }


def audit(
    engine: Engine,
    sessions: sessionmaker[Session],
    parties: Mapping[str, PartyDatabase],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> AuditReport:
    """Replay every release of the ledger in the store behind ``engine``; report the differences
    of those at or after ``since`` and before ``until``.

    ``parties`` are the parties' own databases, by party; a release from a party not among them
    is judged person by person, without its rows.
    """
    leaves = read_leaves(engine)
    releases = [leaf for leaf in leaves if leaf.kind == "release"]
    subjects = resolve_subjects(engine, releases)
    controllers = set(parties) | {
        ref.partition("/")[0] for refs in subjects.refs.values() for ref in refs
    }
    records = read_store(sessions, sorted(controllers))
    homes: dict[str, dict[str, str]] = {}
    for party, db in parties.items():
        said = db.homes()
        if said is not None:
            homes[party] = said
    replay = _Replay(records, parties, homes)
    report = AuditReport(since, until)
    previous: Leaf | None = None
    for leaf in leaves:
        if leaf.kind == "agreement":
            replay.status[str(leaf.entry.get("agreement"))] = str(leaf.entry.get("to_status"))
        elif leaf.kind == "erasure":
            replay.erasures.append(leaf.at)
        elif leaf.kind == "release":
            inside = (since is None or leaf.at >= since) and (until is None or leaf.at < until)
            found = replay.release(
                leaf,
                previous,
                subjects.refs.get(leaf.index, set()),
                subjects.unexplained.get(leaf.index, 0),
                subjects.keys.get(leaf.index, []),
            )
            broken = subjects.broken.get(leaf.index)
            if broken is not None:
                found.differ("release", None, [f"its subjects do not verify: {broken}"])
            if inside:
                report.releases += 1
                report.people += found.people
                report.rows_compared += found.compared
                report.unexplained += subjects.unexplained.get(leaf.index, 0)
                report.differences.extend(found.differences)
        previous = leaf
    return report


@dataclass
class _Found:
    """What replaying one release found."""

    leaf: Leaf
    people_about: list[tuple[str, str]]
    """Whom the release was about, as (party, id)."""
    unexplained: int = 0
    """Pseudonyms of the release no key explains (people erased since)."""
    keys: list[bytes] = field(default_factory=list)
    """The ledger keys of the people the release is about (what seals its rows' commitment)."""
    differences: list[Difference] = field(default_factory=list)
    people: int = 0
    compared: int = 0

    def differ(self, kind: Kind, who: str | None, reasons: Iterable[str]) -> None:
        """Record a difference of this release."""
        e = self.leaf.entry
        self.differences.append(
            Difference(
                self.leaf.index,
                self.leaf.at,
                e.get("agreement"),
                e.get("clause"),
                kind,
                who,
                tuple(reasons),
            )
        )


class _Replay:
    """The state of a replay in ledger order: agreement statuses, erasures, spent consents."""

    def __init__(
        self,
        records: StoreRecords,
        parties: Mapping[str, PartyDatabase],
        homes: Mapping[str, Mapping[str, str]],
    ) -> None:
        self.records = records
        self.parties = parties
        self.homes = homes
        self.status: dict[str, str] = {}
        self.erasures: list[datetime] = []
        self.spent: set[str] = set()
        self._people: dict[tuple[str, str], Person] = {}
        self._cache: dict[tuple[Any, ...], Any] = {}

    # -- context --------------------------------------------------------------------------------

    def cached(self, key: tuple[Any, ...], read: Callable[[], _T]) -> _T:
        """What ``read`` returns, read once per replay for ``key`` (a party's database does
        not change during an audit)."""
        if key not in self._cache:
            self._cache[key] = read()
        return cast(_T, self._cache[key])

    def person(self, party: str, pid: str) -> Person:
        key = (party, pid)
        found = self._people.get(key)
        if found is None:
            found = self._people[key] = person(self.records, self.homes.get(party), party, pid)
        return found

    def _in_force(self, reg: Registered | None, agreement: str, at: datetime) -> str | None:
        if reg is None:
            return None
        a = reg.agreement
        status = self.status.get(agreement, reg.status.value)
        if status != "active":
            return f"agreement {agreement} was {status.replace('_', ' ')}, not active"
        review = reg.review
        if review is None or not review.approved or review.version != a.version:
            return f"agreement {agreement} version {a.version} has no approving privacy review"
        if not a.valid_from <= at.date() < a.valid_until:
            return (
                f"agreement {agreement} is valid from {a.valid_from.isoformat()} until "
                f"{a.valid_until.isoformat()}, not on {at.date().isoformat()}"
            )
        return None

    def disclosure(self, leaf: Leaf, previous: Leaf | None, controller: str) -> Disclosure:
        e = leaf.entry
        agreement = str(e.get("agreement"))
        reg = self.records.agreements.get(agreement)
        operation = e.get("operation")
        if operation is None and previous is not None and previous.kind == "decision":
            operation = previous.entry.get("action")
        provider, recipient = str(e.get("provider")), str(e.get("recipient"))
        fields = frozenset(str(f) for f in e.get("fields") or ())
        db = self.parties.get(provider if operation != "write" else recipient)
        kinds: set[str] = set()
        if db is not None:
            for name in fields:
                try:
                    kinds.add(db.dataset.field(name).category)
                except Exception:  # noqa: BLE001 - a field the dataset does not declare
                    kinds.clear()
                    break
        scope = e.get("scope")
        return Disclosure(
            at=leaf.at,
            agreement=reg.agreement if reg is not None else None,
            in_force=self._in_force(reg, agreement, leaf.at),
            clause_id=e.get("clause"),
            provider=provider,
            recipient=recipient,
            controller=controller,
            operation=Operation(operation or "read"),
            purpose=str(e.get("purpose")),
            categories=frozenset(str(c) for c in e.get("categories") or ()),
            fields=fields,
            field_categories=frozenset(kinds),
            granularity=str(e.get("granularity") or "record"),
            title=e.get("title"),
            relative=scope in ("friends_of", "threads_of"),
        )

    # -- one release ----------------------------------------------------------------------------

    def release(
        self,
        leaf: Leaf,
        previous: Leaf | None,
        refs: set[str],
        unexplained: int = 0,
        keys: list[bytes] | None = None,
    ) -> _Found:
        e = leaf.entry
        people = sorted(_split(ref) for ref in refs)
        controller = people[0][0] if people else str(e.get("provider"))
        if e.get("operation") == "write" and not people:
            controller = str(e.get("recipient"))
        d = self.disclosure(leaf, previous, controller)
        found = _Found(leaf, people, unexplained, keys or [])
        differ = found.differ
        if e.get("scope") is None and not people:
            # About no one, and not saying what was asked (a clean room's result, computed from
            # tables the gateway released and logged apart): judged on its agreement only.
            problems = [d.in_force] if d.in_force else []
            if d.agreement is None:
                problems = [f"no agreement {e.get('agreement')!r} is registered"]
        else:
            problems = release_problems(d)
        if problems:
            if not people:
                differ("release", None, problems)
            for party, pid in people:
                differ("released", f"{party}/{pid}", problems)
            found.people = len(people)
            return found
        if d.granularity == "aggregate":
            return found
        if self._rebuilt(d, found):
            return found
        # Person by person: writes, matches, and reads the auditor cannot rebuild.
        for party, pid in people:
            verdict = self.judge(d, party, pid)
            found.people += 1
            if not verdict.allowed:
                differ("released", f"{party}/{pid}", self.reasons(verdict, party, pid))
            self.spent |= verdict.spends
        return found

    def _rebuilt(self, d: Disclosure, found: _Found) -> bool:
        """Rebuild the rows of a record read from the party's database, where the release says
        enough to; whether it did."""
        c = self._collection(d)
        db = self.parties.get(d.provider)
        scope = found.leaf.entry.get("scope")
        reading = d.operation is Operation.READ and d.granularity == "record"
        if not reading or c is None or db is None or scope is None:
            return False
        if c.group is not None and scope == "threads_of":
            _Threads(self, found, d, db, c).run()
        elif c.person is not None and scope == "friends_of":
            _Friends(self, found, d, db, c).run()
        elif c.person is not None and scope in ("all", "people"):
            _Rows(self, found, d, db, c).run(everyone=scope == "all")
        else:
            return False
        return True

    def judge(self, d: Disclosure, party: str, pid: str, title: str | None = None) -> Verdict:
        """The auditor's verdict on one person, with the one-disclosure consents spent so far."""
        return judge(d, self.person(party, pid), title, self.spent, checked=True)

    def reasons(self, verdict: Verdict, party: str, pid: str) -> list[str]:
        """The verdict's reasons, with the ledger's erasures where the store no longer knows the
        person."""
        reasons = list(verdict.reasons)
        if not self.person(party, pid).known:
            # Erasures appended before this release (ledger order: an erasure's own time is
            # when it was carried out, a release's the request's).
            earlier = self.erasures
            if earlier:
                reasons.append(
                    f"the ledger records {len(earlier)} erasure(s) before this release, the last "
                    f"at {earlier[-1].isoformat()}: an erased person is never released again"
                )
        return reasons

    def _collection(self, d: Disclosure) -> Collection | None:
        db = self.parties.get(d.provider)
        if db is None or not d.fields:
            return None
        names = {f.partition(".")[0] for f in d.fields}
        if len(names) != 1:
            return None
        try:
            return db.dataset.collection(names.pop())
        except Exception:  # noqa: BLE001 - fields of no declared collection (a match's identifiers)
            return None


def _split(ref: str) -> tuple[str, str]:
    """A ledger person reference ``party/id`` as ``(party, id)``."""
    party, _, pid = ref.partition("/")
    return party, pid


# -- rebuilding rows ------------------------------------------------------------------------------


class _Rebuild:
    """What the three kinds of rebuilt read share: the release, its rows' shape, the verdicts."""

    def __init__(
        self, replay: _Replay, found: _Found, d: Disclosure, db: PartyDatabase, c: Collection
    ) -> None:
        self.replay = replay
        self.d = d
        self.db = db
        self.c = c
        self.leaf = found.leaf
        self.about = {pid for _, pid in found.people_about}
        self.party = db.party
        self.differ = found.differ
        self.found = found
        released = {f.partition(".")[2] for f in d.fields}
        # The released fields in the order the collection declares them: the order of a row.
        self.names = [n for n in c.field_names if n in released]
        self.conditions: dict[str, Any] = {}
        clause = d.clause
        if clause is not None:
            self.conditions.update(clause.conditions_on(c.name))
        self.titled = c.field(TITLE_FIELD) is not None
        if self.titled and d.title is not None:
            # The title a request names restricts the rows themselves.
            self.conditions[TITLE_FIELD] = d.title
        self._verdicts: dict[tuple[str, str | None], Verdict] = {}

    def verdict(self, pid: str, title: str | None) -> Verdict:
        key = (pid, title)
        found = self._verdicts.get(key)
        if found is None:
            found = self._verdicts[key] = self.replay.judge(self.d, self.party, pid, title)
        return found

    def digest_matches(self, rows: Iterable[tuple[Any, ...]]) -> bool | None:
        """Whether ``rows`` are what the release committed to (``None``: nothing to compare)."""
        e = self.leaf.entry
        if self.found.unexplained:
            # Someone it was about has been erased since: who, and their rows, are gone for
            # good, so the rows cannot be rebuilt (the people still known are judged).
            return None
        listed = list(rows)
        if e.get("rows_digest"):
            total = combine(map(row_hash, listed))
            return seal(total, self.found.keys, self.leaf.index) == str(e["rows_digest"])
        if e.get("rows") is not None:
            return len(listed) == int(e["rows"])
        return None

    def ref(self, pid: str) -> str:
        return f"{self.party}/{pid}"

    def judge_about(self, title: str | None) -> None:
        """Judge each person the release was about; report those who should not have been."""
        for pid in sorted(self.about):
            verdict = self.verdict(pid, title)
            if not verdict.allowed:
                reasons = self.replay.reasons(verdict, self.party, pid)
                self.differ("released", self.ref(pid), reasons)
        self.found.people += len(self.about)


@dataclass
class _Sorted:
    """A read's rows, person by person: those allowed without spending a one-disclosure consent
    (they must cross), those allowed only by spending one (they may), and the rest (they must
    not), with why and which consents they spend."""

    must: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: defaultdict(list))
    may: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: defaultdict(list))
    refused: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: defaultdict(list))
    why: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    spends: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def allowed(self, pid: str) -> bool:
        """Whether any row of ``pid``'s could cross."""
        return pid in self.must or pid in self.may


class _Rows(_Rebuild):
    """A read about everyone, or about named people, from a collection about people."""

    def run(self, *, everyone: bool) -> None:
        c = self.c
        subject = c.person
        if subject is None:  # pragma: no cover - routed here only for collections about people
            return
        columns = [subject, *([TITLE_FIELD] if self.titled else []), *self.names]
        rows = self.db.rows(c, columns, self.conditions, people=None if everyone else self.about)
        found = self._sort(rows)
        self.found.people += len(set(found.must) | set(found.may) | set(found.refused) | self.about)
        for pid in sorted(self.about):
            if not found.allowed(pid):
                reasons = (
                    found.why.get(pid)
                    or list(self.verdict(pid, self.d.title).reasons)
                    or ["none of their rows could have crossed"]
                )
                self.differ(
                    "released",
                    self.ref(pid),
                    self.replay.reasons(Verdict(False, tuple(reasons)), self.party, pid),
                )
        if everyone:
            for pid in sorted(set(found.must) - self.about):
                self.differ(
                    "withheld",
                    self.ref(pid),
                    [
                        (
                            f"the law and the agreement allowed {len(found.must[pid])} of their "
                            "rows, and the read was about everyone, but none crossed"
                        )
                    ],
                )
        expected = [r for p in found.must if p in self.about or everyone for r in found.must[p]]
        expected += [r for p in found.may if p in self.about for r in found.may[p]]
        for pid in self.about:
            self.replay.spent |= found.spends.get(pid, set())
        self._compare(expected, found)

    def _sort(self, rows: Iterable[tuple[Any, ...]]) -> _Sorted:
        d = self.d
        offset = 2 if self.titled else 1
        found = _Sorted()
        for row in rows:
            pid = str(row[0])
            title = str(row[1]) if self.titled and row[1] is not None else None
            # A row about a title is judged for that title (a title excluded keeps the row
            # back, not the person).
            verdict = self.verdict(pid, title if self.titled else d.title)
            released = tuple(row[offset:])
            if not verdict.allowed:
                found.refused[pid].append(released)
                found.why[pid].extend(r for r in verdict.reasons if r not in found.why[pid])
            elif verdict.spends and (d.title is None or d.title != title):
                found.may[pid].append(released)
                found.spends[pid] |= verdict.spends
            else:
                found.must[pid].append(released)
                found.spends[pid] |= verdict.spends
        return found

    def _compare(self, expected: list[tuple[Any, ...]], found: _Sorted) -> None:
        matches = self.digest_matches(expected)
        if matches is None:
            return
        self.found.compared += 1
        if matches:
            return
        # Which rows crossed that should not have? The likeliest: every row of each person
        # released, the ones their consent left out included (an exclusion judged per request,
        # not per row).
        leaked = {pid: found.refused[pid] for pid in self.about if found.refused.get(pid)}
        if leaked and self.digest_matches(expected + [r for rs in leaked.values() for r in rs]):
            for pid, extra in sorted(leaked.items()):
                if not found.allowed(pid):
                    continue  # reported above: none of their rows could cross
                self.differ(
                    "released",
                    self.ref(pid),
                    [f"{len(extra)} of their rows crossed that were not allowed", *found.why[pid]],
                )
            return
        e = self.leaf.entry
        self.differ(
            "rows",
            None,
            [
                (
                    f"the rows released ({e.get('rows')}) are not the {len(expected)} rows the "
                    "law and the agreement allowed (their digests differ)"
                )
            ],
        )


class _Friends(_Rebuild):
    """A read of one person's friends: the friends who allowed it, of that one person."""

    def run(self) -> None:
        c, d = self.c, self.d
        subject = c.person
        if subject is None:  # pragma: no cover - routed here only for collections about people
            return
        anchors = [f.name for f in c.fields if f.category == PERSON_ID and f.name != subject]
        self.judge_about(d.title)
        if not self.about or not anchors:
            return
        anchor = anchors[0]
        of, by_anchor = self.replay.cached(
            ("friends", self.party, c.name, anchor, tuple(self.names), tuple(self.conditions)),
            lambda: self._relations(subject, anchor),
        )
        # Whose friends are they? Someone every released friend is a friend of.
        candidates = set.intersection(*(of.get(p, set()) for p in self.about))
        for a in sorted(candidates):
            theirs = by_anchor.get(a, [])
            allowed = [
                (str(r[0]), tuple(r[1:]))
                for r in theirs
                if judge_acting(self, str(r[0]), a).allowed
            ]
            if {p for p, _ in allowed} != self.about:
                continue
            matches = self.digest_matches([r for _, r in allowed])
            if matches is not False:
                self.found.compared += matches is not None
                return
        self.differ(
            "rows",
            None,
            ["the friends released are not the friends who allowed it of any one person"],
        )

    def _relations(
        self, subject: str, anchor: str
    ) -> tuple[dict[str, set[str]], dict[str, list[tuple[Any, ...]]]]:
        """Whose relation each person is, and each person's relation rows (as released, after
        the subject): the collection read once per replay."""
        of: dict[str, set[str]] = defaultdict(set)
        by_anchor: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for row in self.db.rows(self.c, [subject, anchor, *self.names], self.conditions):
            of[str(row[0])].add(str(row[1]))
            by_anchor[str(row[1])].append((row[0], *row[2:]))
        return of, by_anchor


def judge_acting(rebuild: _Rebuild, pid: str, acting: str) -> Verdict:
    """A verdict with ``acting`` as the person on whose behalf the recipient read."""
    d = replace(rebuild.d, acting=acting)
    person = rebuild.replay.person(rebuild.party, pid)
    return judge(d, person, d.title, rebuild.replay.spent, checked=True)


class _Threads(_Rebuild):
    """A read of one person's threads: the messages of the threads every participant allowed."""

    def run(self) -> None:
        c, d = self.c, self.d
        g = c.group
        if g is None:  # pragma: no cover - routed here only for collections about groups
            return
        members = self.db.dataset.collection(g.members)
        self.judge_about(d.title)
        if not self.about:
            return
        members_of, threads_of, rows_by_thread = self.replay.cached(
            ("threads", self.party, c.name, tuple(self.names), tuple(sorted(self.conditions))),
            lambda: self._threads(members, g),
        )
        for a in sorted(self.about):
            threads = [t for t in sorted(threads_of.get(a, ())) if rows_by_thread.get(t)]
            # The house rule: a thread crosses only if every participant consented.
            allowed = [
                t for t in threads if all(self.verdict(p, d.title).allowed for p in members_of[t])
            ]
            who = {p for t in allowed for p in members_of[t]}
            if who != self.about:
                continue
            matches = self.digest_matches([r for t in allowed for r in rows_by_thread[t]])
            if matches is not False:
                self.found.compared += matches is not None
                return
        self.differ(
            "rows",
            None,
            [
                (
                    "the messages released are not those of the threads where every participant "
                    "consented, of any one participant (18 U.S.C. 2702(b)(3), Accord's house rule)"
                )
            ],
        )

    def _threads(self, members: Collection, g: GroupSpec) -> _ThreadRows:
        """Every thread's members, every person's threads, and every thread's rows (read once
        per replay: a party's threads do not change between the releases of one audit)."""
        members_of: dict[str, set[str]] = defaultdict(set)
        threads_of: dict[str, set[str]] = defaultdict(set)
        for t, p in self.db.rows(members, [g.member_group, g.member_person], {}):
            members_of[str(t)].add(str(p))
            threads_of[str(p)].add(str(t))
        rows_by_thread: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for row in self.db.rows(self.c, [g.field, *self.names], self.conditions):
            rows_by_thread[str(row[0])].append(tuple(row[1:]))
        return members_of, threads_of, rows_by_thread
