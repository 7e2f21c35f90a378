"""The people a clause lets through, kept between requests instead of judged anew by each.

A bulk read of everyone asks the store who may be released (:func:`accord.store.filter_sql.
allowed_people`): on a million people that query costs about as much as reading their rows. The
answer changes only when something about a person changes (a consent given, withdrawn or narrowed,
an opt-out made or ended, where they live, their erasure) or when time reaches an instant that
matters (a consent given for a later start, one expiring, one growing too old for a cap such as
the VPPA's two years, 18 U.S.C. 2710(b)(2)(B)(ii)). So each kind of filter's answer is kept
(:class:`MaintainedAllowed`) with:

- the instant it was judged at, and the next instant at which any verdict can change; a request
  at an instant between the two is answered from it, one at or past the next instant re-judges
  only the people with an instant in between;
- the people changed since, re-judged one by one before the set is used. Every change Accord makes
  to a person's standing goes through :meth:`MaintainedAllowed.changing`, which marks the people
  before the write commits: a reader that begins after the commit re-judges them;
- the store's *standing revision* as this process last knew it: one row that triggers on the
  tables a verdict reads (:data:`STANDING_TABLES`) count up in every transaction writing them,
  whoever writes (migrations ``0017_standing_revision`` and
  ``0018_standing_per_transaction``). A change that another process (another
  ``accord serve`` worker on the same store, a bulk load, a hand-made SQL statement) made shows
  as a revision this process cannot account for, and the set is then judged again from scratch.
  Writers take the store's write lock before reading the revision, so what they see before and
  after their own change brackets only their own change.

What a set may not be trusted for, a read must not release: after a bulk read has fetched its rows,
:meth:`MaintainedAllowed.confirm` checks that nobody the rows are about lost their standing while
they were read (a withdrawal committed meanwhile), and refuses the release if someone did.

Reading the revision is one row by its key, whatever the store's size: a bulk read pays it
twice, each change of standing twice.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, event, func, or_, select, text, union
from sqlalchemy.orm import Session

from accord.consent import add_years
from accord.errors import StoreError, translate
from accord.filters import ConsentNeed, PersonFilter
from accord.store import tables as t
from accord.store.driver import fetch_one
from accord.store.filter_sql import FEW_SUBJECTS, allowed_people
from accord.store.title_sql import title_verdicts

TitleVerdict = tuple[str, str, bool]
"""A person's id, a title, and whether that person's rows of that title may be returned."""

LOGGED_CHANGES = 100_000
"""At most this many changes are remembered; a set or a read older than them is judged anew."""

KEPT_KINDS = 16
"""At most this many kinds of filter are kept (the least recently used is dropped)."""

Fingerprint = int
"""The store's standing revision (:func:`fingerprint`)."""

STANDING_TABLES = (
    "consents",
    "consent_excluded_titles",
    "consent_uses",
    "opt_outs",
    "people",
    "erased_people",
)
"""The tables whose every write counts a change of standing (a consent's purposes and categories
are written and erased only with the consent itself)."""

_ADVISORY_LOCK = 0x616C6C6F776564  # "allowed": writers of people's standing take turns

_REVISION_SQL = "SELECT revision FROM standing_revision WHERE id = 1"


def fingerprint(conn: Connection | Session) -> Fingerprint:
    """The store's standing revision: how many transactions (rows, on SQLite) have written the
    tables of :data:`STANDING_TABLES` (see the module docstring)."""
    if isinstance(conn, Session):
        conn = conn.connection()
    row = fetch_one(conn, _REVISION_SQL)
    return int(row[0]) if row is not None else 0


@dataclass(slots=True)
class _Kept:
    people: frozenset[str]
    """Replaced, never changed in place: a snapshot shares it rather than copying it."""
    at: datetime
    until: datetime | None
    applied: int
    """The sequence number of the last change applied."""
    titles: dict[str, list[tuple[str, bool]]] | None = None
    """Each person's verdicts on the titles their consents mention (:func:`accord.store.
    title_sql.title_verdicts`), once a read has asked for them; kept up to date alike."""
    verdicts: tuple[TitleVerdict, ...] | None = None
    """``titles`` as one tuple, made at the first snapshot after they changed and shared by the
    snapshots until they change again."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The people a filter let through when a read began, and what is needed to confirm them."""

    people: frozenset[str]
    filter: PersonFilter
    mark: int
    """The sequence number of the last change this process knew of."""
    fingerprint: Fingerprint
    titles: tuple[TitleVerdict, ...] | None = None
    """(person, title, allowed) for the titles the people's consents mention, when asked for."""


@dataclass(slots=True)
class _Changes:
    sequence: int = 0
    log: list[tuple[int, str, frozenset[str]]] = field(default_factory=list)
    seen: Fingerprint | None = None
    """The fingerprint after the last change this process accounted for."""


class MaintainedAllowed:
    """Each kind of bulk filter's allowed people, kept up to date (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.RLock()
        self._kept: OrderedDict[PersonFilter, _Kept] = OrderedDict()
        self._changes = _Changes()
        self.judged_anew = 0
        """How many times a set was judged from scratch (the first time, or after a change
        this process could not account for): the rest were brought up to date person by person."""

    # -- writers ---------------------------------------------------------------------------------

    @contextmanager
    def changing(self, s: Session, party: str, people: Iterable[str]) -> Iterator[None]:
        """Around a write in session ``s`` that changes the standing of ``people`` at ``party``:
        takes the store's write lock, marks them changed before the commit, and accounts for
        the write's effect on the fingerprint."""
        who = frozenset(people)
        conn = s.connection()
        _write_lock(conn)
        before = fingerprint(conn)
        with self._lock:
            self._note(party, who)
        yield
        after = fingerprint(conn)

        def committed() -> None:
            with self._lock:
                if self._changes.seen != before:
                    self._kept.clear()  # another process changed the store meanwhile
                self._changes.seen = after
                self._note(party, who)

        def rolled_back() -> None:
            with self._lock:
                self._changes.seen = None

        _on_end(s, committed, rolled_back)

    def changed_everyone(self) -> None:
        """Forget every kept set (a bulk load changed too many people to re-judge one by one)."""
        with self._lock:
            self._kept.clear()
            self._changes.seen = None

    def _note(self, party: str, who: frozenset[str]) -> None:
        changes = self._changes
        changes.sequence += 1
        changes.log.append((changes.sequence, party, who))
        if len(changes.log) > LOGGED_CHANGES:
            del changes.log[: len(changes.log) - LOGGED_CHANGES]

    def _since(self, mark: int, party: str) -> set[str] | None:
        """The people of ``party`` changed after change ``mark``; ``None`` if no longer known."""
        log = self._changes.log
        if log and log[0][0] > mark + 1:
            return None
        return {person for number, p, who in log if number > mark and p == party for person in who}

    # -- readers ---------------------------------------------------------------------------------

    def snapshot(self, f: PersonFilter, *, titles: bool = False) -> Snapshot:
        """The people ``f`` (a filter naming nobody: a bulk read) lets through, from the kept set
        brought up to date; with ``titles``, their verdicts on the titles their consents mention
        too."""
        if f.subjects is not None:
            raise StoreError("only a filter of everyone is kept between requests")
        kind = replace(f, at=_KIND_AT)
        doing = f"judging the people of {f.controller}"
        with self._lock, translate(StoreError, doing), self.engine.connect() as conn:
            now = fingerprint(conn)
            changes = self._changes
            kept = self._kept.get(kind)
            if now != changes.seen:
                self._kept.clear()
                kept = None
                changes.seen = now
            if kept is not None and f.at < kept.at:
                kept = None  # a read of the past: judged anew, and kept from then on
            since = None if kept is None else self._since(kept.applied, f.controller)
            if kept is None or since is None:
                self.judged_anew += 1
                kept = _Kept(
                    frozenset(allowed_people(conn, f)),
                    f.at,
                    _next_instant(conn, f),
                    changes.sequence,
                )
            else:
                again = since
                # At the instant already judged nothing has moved with time (a release at a
                # fixed instant, or two at once): only the changes are judged again.
                if f.at > kept.at and kept.until is not None and f.at >= kept.until:
                    again |= _with_instants_between(conn, f, kept.at, f.at)
                    kept.until = _next_instant(conn, f)
                # Nobody's verdict changes between the two instants (else they are in again).
                kept.at = f.at
                _rejudge(conn, f, kept, again)
                kept.applied = changes.sequence
            if titles and kept.titles is None:
                kept.titles = _by_person(title_verdicts(conn, f))
            self._kept[kind] = kept
            self._kept.move_to_end(kind)
            while len(self._kept) > KEPT_KINDS:
                self._kept.popitem(last=False)
            verdicts = None
            if titles and kept.titles is not None:
                if kept.verdicts is None:
                    kept.verdicts = tuple(
                        (person, title, ok)
                        for person, theirs in kept.titles.items()
                        for title, ok in theirs
                    )
                verdicts = kept.verdicts
            # The kept set and verdicts themselves, not copies: both are replaced when they
            # change, never changed in place.
            return Snapshot(kept.people, f, changes.sequence, now, verdicts)

    def confirm(self, snapshot: Snapshot, about: Iterable[str]) -> None:
        """Refuse (:class:`StoreError`) a release whose rows are about someone who lost their
        standing after ``snapshot`` was taken (a withdrawal committed while the rows were read).
        """
        f = snapshot.filter
        doing = f"confirming the people of {f.controller}"
        with self._lock, translate(StoreError, doing), self.engine.connect() as conn:
            now = fingerprint(conn)
            if now == snapshot.fingerprint and self._changes.sequence == snapshot.mark:
                return
            released = set(about)
            since = self._since(snapshot.mark, f.controller)
            if now == self._changes.seen and since is not None:
                concerned = since & released
            else:
                concerned = released  # changed by another process: everyone is judged again
            # At the read's instant, and now: a withdrawal made while the rows were read counts
            # even if the read's instant is earlier.
            later = max(f.at, datetime.now(UTC))
            still: set[str] = set(concerned)
            for chunk in _chunks(sorted(concerned), FEW_SUBJECTS):
                for moment in (f.at, later):
                    judged = replace(f, at=moment, subjects=frozenset(chunk))
                    still -= set(chunk) - allowed_people(conn, judged)
        if concerned - still:
            raise StoreError(
                f"the standing of {len(concerned - still)} of the people whose rows were read "
                "changed while they were read: nothing was released; ask again"
            )


_KIND_AT = datetime(2000, 1, 1, tzinfo=UTC)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _rejudge(conn: Connection, f: PersonFilter, kept: _Kept, again: set[str]) -> None:
    """Bring ``kept`` up to date for the people ``again``, judged at ``f.at`` a chunk at a
    time (their title verdicts too, if kept).

    The kept set is replaced by a new one (snapshots taken before share the old one)."""
    if not again:
        return
    admitted: set[str] = set()
    for chunk in _chunks(sorted(again), FEW_SUBJECTS):
        named = replace(f, subjects=frozenset(chunk))
        admitted.update(allowed_people(conn, named))
        # Their records changed: so may the next instant one of their verdicts changes at.
        soonest = _next_instant(conn, f, chunk)
        if soonest is not None and (kept.until is None or soonest < kept.until):
            kept.until = soonest
        if kept.titles is not None:
            for person in chunk:
                kept.titles.pop(person, None)
            for person, theirs in _by_person(title_verdicts(conn, named)).items():
                kept.titles[person] = theirs
            kept.verdicts = None
    kept.people = (kept.people - again) | admitted


def _by_person(verdicts: Iterable[TitleVerdict]) -> dict[str, list[tuple[str, bool]]]:
    out: dict[str, list[tuple[str, bool]]] = {}
    for person, title, ok in verdicts:
        out.setdefault(person, []).append((title, ok))
    return out


def _caps(f: PersonFilter) -> list[ConsentNeed]:
    return [
        need
        for rule in f.rules
        if isinstance(need := rule.requirement, ConsentNeed) and need.max_years is not None
    ]


def _with_instants_between(
    conn: Connection, f: PersonFilter, start: datetime, end: datetime
) -> set[str]:
    """The controller's people with an instant in ``(start, end]`` at which a verdict can change:
    a consent starting, ending or withdrawn, or growing too old for a cap; an opt-out made or
    ended."""
    c, o = t.consents, t.opt_outs

    def crossed(column: Any, low: datetime, high: datetime) -> Any:
        return (column > low) & (column <= high)

    consent_times = [
        crossed(c.c.given_at, start, end),
        crossed(c.c.expires_at, start, end),
        crossed(c.c.withdrawn_at, start, end),
    ]
    for need in _caps(f):
        low, high = need.given_after(start), need.given_after(end)
        if low is not None and high is not None:
            consent_times.append(crossed(c.c.given_at, low, high))
    query = union(
        select(c.c.person).where(c.c.controller == f.controller, or_(*consent_times)),
        select(o.c.person).where(
            o.c.controller == f.controller,
            or_(crossed(o.c.at, start, end), crossed(o.c.revoked_at, start, end)),
        ),
    )
    return {str(person) for (person,) in conn.execute(query)}


def _next_instant(
    conn: Connection, f: PersonFilter, people: list[str] | None = None
) -> datetime | None:
    """The earliest instant after ``f.at`` at which some verdict of ``f`` (of ``people``'s
    only, if given) can change, or a little before it (never after); ``None`` when none is in
    sight."""
    c, o = t.consents, t.opt_outs
    at = f.at
    mine_c, mine_o = c.c.controller == f.controller, o.c.controller == f.controller
    if people is not None:
        mine_c = mine_c & c.c.person.in_(people)
        mine_o = mine_o & o.c.person.in_(people)
    firsts = [
        select(func.min(c.c.given_at)).where(mine_c, c.c.given_at > at),
        select(func.min(c.c.expires_at)).where(mine_c, c.c.expires_at > at),
        select(func.min(c.c.withdrawn_at)).where(mine_c, c.c.withdrawn_at > at),
        select(func.min(o.c.at)).where(mine_o, o.c.at > at),
        select(func.min(o.c.revoked_at)).where(mine_o, o.c.revoked_at > at),
    ]
    caps = _caps(f)
    for need in caps:
        oldest = need.given_after(at)
        if oldest is not None:
            firsts.append(select(func.min(c.c.given_at)).where(mine_c, c.c.given_at > oldest))
    row = conn.execute(select(*(q.scalar_subquery() for q in firsts))).one()
    instants: list[datetime] = [moment for moment in row[:5] if moment is not None]
    for need, moment in zip(caps, row[5:], strict=True):
        if moment is not None and need.max_years is not None:
            instants.append(_cap_passes(moment, need.max_years, at))
    return min(instants, default=None)


def _cap_passes(given: datetime, years: int, at: datetime) -> datetime:
    """When a cap of ``years`` passes a consent ``given`` then and still recent enough at
    ``at``: always after ``at``.

    The cap lets a consent through at instant ``t`` while ``given > years_before(t, years)``,
    that is while ``t < add_years(given, years)`` (:func:`accord.consent.years_before`), so it
    passes the consent at that instant exactly. The consent is let through at ``at``, so that
    instant is after ``at``; the microsecond after ``at`` (the clock's resolution) only guards
    a ``given`` the caller did not check.
    """
    return max(add_years(given, years), at + timedelta(microseconds=1))


def _write_lock(conn: Connection) -> None:
    """Take the store's write lock for the rest of the transaction, so that no other writer
    commits between this writer's two fingerprints: SQLite's by a write that changes nothing,
    PostgreSQL's as an advisory lock every writer of standing takes."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
    else:
        conn.execute(t.erased_people.delete().where(t.erased_people.c.party.is_(None)))


def _on_end(s: Session, committed: Callable[[], None], rolled_back: Callable[[], None]) -> None:
    """Run ``committed`` or ``rolled_back``, whichever comes first, when the session's
    transaction ends (listeners cannot be removed while the session runs them: a flag)."""
    ended = [False]

    def on(handler: Callable[[], None]) -> Callable[[Session], None]:
        def run(_session: Session) -> None:
            if not ended[0]:
                ended[0] = True
                handler()

        return run

    event.listen(s, "after_commit", on(committed))
    event.listen(s, "after_rollback", on(rolled_back))
