"""Chirp's and Reelix's own SQLite databases for the reference population.

Each party keeps its own database, as in the filings: Chirp holds people, friendships, message
threads and feed posts; Reelix holds members, a catalogue, watch events, the accounts people
linked and the private recommendations they sent. The same human ``i`` is ``person_id(CHIRP, i)``
at one and ``person_id(REELIX, i)`` at the other, with the jurisdiction
:func:`accord.scenario.population.homes` gives, so the consents of
:func:`accord.scenario.population.generate` are about people in these databases.

Shapes follow what is published about such services: friend counts are lognormal (median in
the twenties, a tail of hundreds) and joined by a Chung–Lu draw, so who befriends whom follows
popularity; title popularity is Zipf-like with exponent 1.1; about a third of people link their
accounts. Rows are streamed into large transactions person by person, each party's database in
a process of its own for large populations; friendships, the largest table, are unpacked by
SQLite from one JSON list per person. The same seed writes the same rows.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import random
import sqlite3
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Protocol

from accord.consent import utc
from accord.scenario.population import CHIRP, REELIX, TITLES, homes, linked, person_id

DAY = 86_400
# How far back the services go: accounts, threads and watch events fall in this window.
SPAN_DAYS = 12 * 365
# Recommendations fall in the last four weeks: two fortnightly reporting periods.
REC_DAYS = 28

FRIENDS_MEDIAN, FRIENDS_SIGMA, FRIENDS_MAX = 24.0, 0.95, 2_000
ZIPF_EXPONENT = 1.1
WATCH_MEDIAN, WATCH_SIGMA, WATCH_MAX = 5.0, 1.0, 400
ROWS_PER_BATCH = 50_000
PEOPLE_PER_TICK = 1_000

# fmt: off
FIRST = (
    "Ada", "Ana", "Ben", "Carla", "Chen", "Dara", "Diego", "Elif", "Emma", "Farah", "Finn",
    "Grace", "Hana", "Ivan", "Jonas", "Julia", "Kai", "Lena", "Leo", "Lucas", "Maya", "Mateo",
    "Mei", "Nia", "Noah", "Olga", "Omar", "Paula", "Priya", "Rafael", "Rosa", "Sam", "Sofia",
    "Tariq", "Tom", "Valentina", "Wei", "Yara", "Yusuf", "Zoe",
)
LAST = (
    "Adams", "Alvarez", "Bauer", "Becker", "Brown", "Campbell", "Chen", "Costa", "Dubois",
    "Fischer", "Garcia", "Gomez", "Hansen", "Ito", "Jensen", "Kim", "Kowalski", "Lee", "Lopez",
    "Martin", "Meyer", "Moreau", "Murphy", "Nguyen", "Novak", "O'Brien", "Patel", "Perez", "Ramos",
    "Rossi", "Santos", "Schmidt", "Silva", "Smith", "Suzuki", "Taylor", "Torres", "Walsh",
    "Wilson", "Young",
)
# fmt: on
PHRASES = (
    "are you around tonight?",
    "haha yes",
    "did you see this?",
    "running late, 10 min",
    "happy birthday!!",
    "can you send me the address",
    "that was so good",
    "call me when you can",
    "ok sounds good",
    "who's bringing snacks",
    "lol",
    "thanks again for yesterday",
    "new photos are up",
    "on my way",
    "what time works for you?",
    "miss you guys",
)
POSTS = (
    "Beautiful morning for a run",
    "Finally finished the book, no spoilers",
    "Anyone know a good plumber?",
    "Best tacos in town, fight me",
    "Throwback to last summer",
    "New job starts Monday!",
    "Concert was incredible",
    "Who else is watching the game tonight?",
)
GENRES = ("drama", "comedy", "thriller", "documentary", "animation", "sci-fi", "romance", "horror")
# fmt: off
WORDS = (
    "Silent", "Harbor", "Crimson", "Echo", "Last", "Signal", "Broken", "Crown", "Night", "Garden",
    "Paper", "Moon", "Iron", "River", "Glass", "City", "Hidden", "Shore", "Golden", "Hour", "Wild",
    "Frontier", "Midnight", "Train", "Lost", "Orbit", "Quiet", "Storm",
)
# fmt: on
# Recommendation sends as the fortnightly report counts them: interface, initiation surface and
# implementation variant, each with its share of sends.
INTERFACES = (("web", 0.25), ("ios", 0.35), ("android", 0.3), ("tv", 0.1))
SURFACES = (("post_play", 0.4), ("title_page", 0.3), ("share_sheet", 0.2), ("row_menu", 0.1))
VARIANTS = (("control", 0.5), ("friend_faces", 0.25), ("inline_message", 0.25))
CLICK_RATE = {"reelix": 0.22, "chirp_message": 0.12}

CHIRP_SCHEMA = """
CREATE TABLE people (
    person_id TEXT PRIMARY KEY, display_name TEXT NOT NULL, email TEXT NOT NULL,
    jurisdiction TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE friendships (
    person_id TEXT NOT NULL, friend_id TEXT NOT NULL,
    PRIMARY KEY (person_id, friend_id)) WITHOUT ROWID;
CREATE TABLE threads (
    thread_id INTEGER PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('1:1', 'group')),
    created_at TEXT NOT NULL);
CREATE TABLE thread_participants (
    thread_id INTEGER NOT NULL, person_id TEXT NOT NULL,
    PRIMARY KEY (thread_id, person_id)) WITHOUT ROWID;
CREATE TABLE messages (
    message_id INTEGER PRIMARY KEY, thread_id INTEGER NOT NULL, sender_id TEXT NOT NULL,
    body TEXT NOT NULL, sent_at TEXT NOT NULL,
    sent_via TEXT CHECK (sent_via IS NULL OR sent_via = 'reelix'));
CREATE TABLE feed_posts (
    post_id INTEGER PRIMARY KEY, person_id TEXT NOT NULL, body TEXT NOT NULL,
    posted_at TEXT NOT NULL, source TEXT NOT NULL);
"""
CHIRP_INDEXES = """
CREATE INDEX thread_participants_person ON thread_participants (person_id);
CREATE INDEX messages_thread ON messages (thread_id, sent_at);
CREATE INDEX messages_sender ON messages (sender_id);
CREATE INDEX feed_posts_person ON feed_posts (person_id);
"""
RECOMMENDATIONS = """
CREATE TABLE recommendations (
    rec_id INTEGER PRIMARY KEY, sender_member_id TEXT NOT NULL,
    recipient_chirp_person_id TEXT NOT NULL, title_id TEXT NOT NULL, sent_at TEXT NOT NULL,
    interface TEXT NOT NULL, surface TEXT NOT NULL, variant TEXT NOT NULL,
    delivered_in TEXT NOT NULL CHECK (delivered_in IN ('reelix', 'chirp_message')),
    clicked_at TEXT);
"""
REELIX_SCHEMA = (
    """
CREATE TABLE members (
    member_id TEXT PRIMARY KEY, display_name TEXT NOT NULL, email TEXT NOT NULL,
    jurisdiction TEXT NOT NULL, joined_at TEXT NOT NULL);
CREATE TABLE titles (
    title_id TEXT PRIMARY KEY, name TEXT NOT NULL, genre TEXT NOT NULL, released TEXT NOT NULL);
CREATE TABLE watch_events (
    event_id INTEGER PRIMARY KEY, member_id TEXT NOT NULL, title_id TEXT NOT NULL,
    watched_at TEXT NOT NULL, seconds INTEGER NOT NULL);
CREATE TABLE linked_accounts (
    member_id TEXT PRIMARY KEY, chirp_person_id TEXT NOT NULL UNIQUE, linked_at TEXT NOT NULL);
"""
    + RECOMMENDATIONS
)
REELIX_INDEXES = """
CREATE INDEX watch_events_member ON watch_events (member_id, watched_at);
CREATE INDEX watch_events_title ON watch_events (title_id);
"""
RECOMMENDATION_INDEXES = """
CREATE INDEX recommendations_sender ON recommendations (sender_member_id);
CREATE INDEX recommendations_recipient ON recommendations (recipient_chirp_person_id);
CREATE INDEX recommendations_sent ON recommendations (sent_at);
"""


class Reporter(Protocol):
    """Starts a phase of ``total`` steps; the callable it returns advances it by some steps."""

    def __call__(self, description: str, total: int, /) -> Callable[[int], None]: ...


def _silent(_description: str, _total: int) -> Callable[[int], None]:
    return _ignore


def _ignore(_steps: int) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Written:
    """Where the two databases were written and how many rows each table got."""

    chirp: Path
    reelix: Path
    rows: dict[str, int]


class _Clock:
    """Instants as whole seconds since the start of the window, written as ISO 8601 UTC text."""

    def __init__(self, at: datetime) -> None:
        at = utc(at)
        midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
        origin = midnight - timedelta(days=SPAN_DAYS)
        self.now = int((at - origin).total_seconds())
        # Public for the hottest loops, which join the two parts inline rather than call text().
        self.days = [
            (origin + timedelta(days=d)).strftime("%Y-%m-%dT") for d in range(SPAN_DAYS + 2)
        ]
        self.times = [
            f"{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)
        ]

    def text(self, t: int) -> str:
        """Instant ``t`` as ``YYYY-MM-DDTHH:MM:SSZ``; text order is time order."""
        return self.days[t // DAY] + self.times[t % DAY]


class _Batch:
    """Rows for one table, sent to SQLite ``ROWS_PER_BATCH`` at a time."""

    def __init__(self, db: sqlite3.Connection | None, table: str, columns: int) -> None:
        self._db = db
        self._sql = f"INSERT INTO {table} VALUES ({', '.join('?' * columns)})"  # noqa: S608
        self.rows: list[tuple[object, ...]] = []
        self.count = 0

    def ready(self) -> None:
        """Send the rows gathered so far if there are enough of them."""
        if len(self.rows) >= ROWS_PER_BATCH:
            self.flush()

    def flush(self) -> None:
        """Send every row gathered so far (or drop them if this process writes another party)."""
        if self._db is not None:
            self._db.executemany(self._sql, self.rows)
        self.count += len(self.rows)
        self.rows.clear()


def _open(path: Path, schema: str) -> sqlite3.Connection:
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    # A fresh file that is renamed into place only when complete: no journal is needed.
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -262144")
    db.executescript(schema)
    db.execute("BEGIN")
    return db


def _chooser(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> Callable[[], str]:
    names = [name for name, _ in weighted]
    cum = list(accumulate(weight for _, weight in weighted))
    return lambda: rng.choices(names, cum_weights=cum)[0]


def zipf_weights(n: int, exponent: float = ZIPF_EXPONENT) -> list[float]:
    """Cumulative Zipf weights for ranks 1..n: rank r is drawn in proportion to r^-exponent."""
    return list(accumulate(r**-exponent for r in range(1, n + 1)))


def friend_graph(people: int, *, seed: int) -> list[list[int]]:
    """Each person's friends (sorted, no duplicates, never themselves): a Chung–Lu graph.

    Everyone gets a lognormal target degree; each person proposes half their target in friends,
    chosen in proportion to the others' targets, so expected degrees meet the targets and the
    tail of popular people reaches hundreds.
    """
    rng = random.Random(f"{seed}:friends")
    draw = rng.random
    cap = max(1, min(FRIENDS_MAX, people // 4))
    mu = math.log(FRIENDS_MEDIAN)
    targets = [min(cap, rng.lognormvariate(mu, FRIENDS_SIGMA)) for _ in range(people)]
    # Drawing "in proportion to targets" is drawing uniformly from a list in which each person
    # appears about target times: a list index per draw, much cheaper than a weighted choice.
    stubs: list[int] = []
    for i, target in enumerate(targets):
        stubs.extend([i] * int(target + draw()))
    width = len(stubs)
    adjacent: list[list[int]] = [[] for _ in range(people)]
    for i, target in enumerate(targets):
        proposals = int(target / 2 + draw())
        if not proposals:
            continue
        mine = adjacent[i]
        for j in [stubs[int(draw() * width)] for _ in range(proposals)]:
            if j != i:
                mine.append(j)
                adjacent[j].append(i)
    del stubs
    for i in range(people):
        adjacent[i] = sorted(set(adjacent[i]))
    return adjacent


@dataclass(slots=True)
class _People:
    """What later phases need to know of everyone, in compact arrays."""

    names: list[str]
    created: array[int]
    joined: array[int]
    linked_at: array[int]
    links: bytearray


def write_databases(
    out: Path,
    *,
    people: int,
    seed: int,
    at: datetime,
    report: Reporter = _silent,
    parallel: bool | None = None,
) -> Written:
    """Write ``out/chirp.db`` and ``out/reelix.db`` for ``people`` people as of ``at``.

    Each party's database is written by its own process when ``parallel`` (by default from
    ``PARALLEL_FROM`` people on); both processes draw the shared facts about people from the same
    seeds, so the rows are the same either way. Files are written beside their final names and
    renamed into place when complete.
    """
    if people < 1:
        raise ValueError("the population needs at least one person")
    out.mkdir(parents=True, exist_ok=True)
    final = {CHIRP: out / "chirp.db", REELIX: out / "reelix.db"}
    partial = {
        CHIRP: out / "chirp.db.partial",
        REELIX: out / "reelix.db.partial",
        RECOMMENDATIONS_PARTY: out / "recommendations.db.partial",
    }
    job = _Job(partial, people, seed, at)
    if people >= PARALLEL_FROM if parallel is None else parallel:
        rows = _in_processes(job, report)
    else:
        rows = {**job.run(CHIRP, report), **job.run(REELIX, report)}
    rows["recommendations"] = _merge_recommendations(partial, report)
    for party, path in final.items():
        partial[party].replace(path)
    return Written(final[CHIRP], final[REELIX], rows)


def write_reelix(
    out: Path, *, people: int, seed: int, at: datetime, report: Reporter = _silent
) -> Path:
    """Write only ``out/reelix.db``: members, the catalogue and watch events, no recommendations.

    The rows are the ones :func:`write_databases` writes for Reelix with the same seed (the
    recommendations, which need Chirp's friend graph, are left out); for work that reads watch
    history alone, at a fraction of the time.
    """
    if people < 1:
        raise ValueError("the population needs at least one person")
    out.mkdir(parents=True, exist_ok=True)
    final, partial = out / "reelix.db", out / "reelix.db.partial"
    _Job({REELIX: partial}, people, seed, at).run(REELIX, report)
    partial.replace(final)
    return final


# Chirp's process writes the recommendations (they need the friend graph) to a file of their own,
# copied into Reelix's database once both processes are done.
RECOMMENDATIONS_PARTY = "recommendations"
PARALLEL_FROM = 20_000


@dataclass(frozen=True, slots=True)
class _Job:
    """What either party's process needs to write its database."""

    partial: dict[str, Path]
    people: int
    seed: int
    at: datetime

    def run(self, party: str, report: Reporter) -> dict[str, int]:
        """Write ``party``'s database (for Chirp, the recommendations file too)."""
        clock = _Clock(self.at)
        if party == CHIRP:
            chirp = _open(self.partial[CHIRP], CHIRP_SCHEMA)
            recs = _open(self.partial[RECOMMENDATIONS_PARTY], RECOMMENDATIONS)
            try:
                writer = _Writer(chirp, None, recs, seed=self.seed, clock=clock, report=report)
                return writer.run_chirp(self.people)
            finally:
                recs.close()
                chirp.close()
        reelix = _open(self.partial[REELIX], REELIX_SCHEMA)
        try:
            writer = _Writer(None, reelix, None, seed=self.seed, clock=clock, report=report)
            return writer.run_reelix(self.people)
        finally:
            reelix.close()


def _in_processes(job: _Job, report: Reporter) -> dict[str, int]:
    """Run both parties' writers in processes of their own, relaying their progress."""
    context = multiprocessing.get_context("spawn")
    messages: multiprocessing.Queue[tuple[object, ...]] = context.Queue()
    workers = [
        context.Process(target=_worker, args=(job, party, messages), name=f"scenario-{party}")
        for party in (CHIRP, REELIX)
    ]
    for worker in workers:
        worker.start()
    advances: dict[tuple[str, int], Callable[[int], None]] = {}
    rows: dict[str, int] = {}
    failures: list[str] = []
    try:
        for _ in workers:
            while (message := _next(messages, workers))[0] != "done":
                kind, key, *rest = message
                if kind == "start":
                    advances[key] = report(*rest)  # type: ignore[index, arg-type]
                else:
                    advances[key](*rest)  # type: ignore[index, arg-type]
            _, outcome = message
            if isinstance(outcome, dict):
                rows.update(outcome)
            else:
                failures.append(str(outcome))
    finally:
        for worker in workers:
            worker.join()
    if failures:
        raise RuntimeError("generating the scenario failed: " + "; ".join(failures))
    return rows


def _next(
    messages: multiprocessing.Queue[tuple[object, ...]],
    workers: Sequence[multiprocessing.process.BaseProcess],
) -> tuple[object, ...]:
    """The next message from the workers; an error if none is left alive to send one."""
    while True:
        try:
            return messages.get(timeout=1.0)
        except queue.Empty:
            if not any(worker.is_alive() for worker in workers):
                raise RuntimeError("a scenario process ended without finishing") from None


def _worker(job: _Job, party: str, messages: multiprocessing.Queue[tuple[object, ...]]) -> None:
    def report(description: str, total: int, /) -> Callable[[int], None]:
        key = (party, len(phases))
        phases.append(key)
        messages.put(("start", key, description, total))
        return lambda steps: messages.put(("advance", key, steps))

    phases: list[tuple[str, int]] = []
    try:
        outcome: object = job.run(party, report)
    except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it
        outcome = f"{party}: {exc!r}"
    messages.put(("done", outcome))


def _merge_recommendations(partial: dict[str, Path], report: Reporter) -> int:
    advance = report("recommendations into Reelix's database", 1)
    with closing(sqlite3.connect(partial[REELIX], isolation_level=None)) as reelix:
        reelix.execute("ATTACH DATABASE ? AS sent", (str(partial[RECOMMENDATIONS_PARTY]),))
        reelix.execute("BEGIN")
        count = reelix.execute(
            "INSERT INTO recommendations SELECT * FROM sent.recommendations ORDER BY rec_id"
        ).rowcount
        reelix.executescript(RECOMMENDATION_INDEXES)  # commits first
        reelix.execute("ANALYZE recommendations")
        reelix.execute("DETACH DATABASE sent")
    partial[RECOMMENDATIONS_PARTY].unlink()
    advance(1)
    return count


def _between(rng: random.Random, start: int, end: int) -> int:
    """A whole number in ``[start, end]``; cheaper than ``randint`` in the loops that need many."""
    return start + int(rng.random() * (end - start + 1))


def _spread(rng: random.Random, start: int, end: int, n: int) -> list[int]:
    """``n`` sorted instants in ``[start, end]``."""
    draw, width = rng.random, end - start + 1
    return sorted(start + int(draw() * width) for _ in range(n))


class _Writer:
    """The phases of one generation run; each phase draws from its own seeded generator."""

    def __init__(
        self,
        chirp: sqlite3.Connection | None,
        reelix: sqlite3.Connection | None,
        recommendations: sqlite3.Connection | None,
        *,
        seed: int,
        clock: _Clock,
        report: Reporter,
    ) -> None:
        self._chirp, self._reelix, self.seed = chirp, reelix, seed
        self._recommendations = recommendations
        self.clock, self.report = clock, report
        self.rows: dict[str, int] = {}
        self.title_names: list[str] = []
        self.zipf = zipf_weights(len(TITLES))
        self.everyone = _People([], array("q"), array("q"), array("q"), bytearray())
        # Every person's id at each party, made once: the loops below use them millions of times.
        self.cid: list[str] = []
        self.rid: list[str] = []

    @property
    def chirp(self) -> sqlite3.Connection:
        """Chirp's database, in the process that writes it."""
        assert self._chirp is not None  # noqa: S101 - only Chirp's phases ask
        return self._chirp

    @property
    def reelix(self) -> sqlite3.Connection:
        """Reelix's database, in the process that writes it."""
        assert self._reelix is not None  # noqa: S101 - only Reelix's phases ask
        return self._reelix

    @property
    def recommendations(self) -> sqlite3.Connection:
        """The file Chirp's process writes recommendations to."""
        assert self._recommendations is not None  # noqa: S101 - only Chirp's phases ask
        return self._recommendations

    def run_chirp(self, people: int) -> dict[str, int]:
        """Chirp's phases, then its indexes; rows written to each table."""
        self.people(people)
        self.titles()
        advance = self.report("friend graph", 1)
        friends = friend_graph(people, seed=self.seed)
        advance(1)
        self.friendships(friends)
        self.conversations(friends)
        del friends
        self.posts()
        self._index(self.chirp, CHIRP_INDEXES, "Chirp")
        self.recommendations.execute("COMMIT")
        return self.rows

    def run_reelix(self, people: int) -> dict[str, int]:
        """Reelix's phases, then its indexes; rows written to each table."""
        self.people(people)
        self.titles()
        self.watching()
        self._index(self.reelix, REELIX_INDEXES, "Reelix")
        return self.rows

    def _index(self, db: sqlite3.Connection, indexes: str, name: str) -> None:
        advance = self.report(f"indexing {name}'s database", 1)
        db.execute("COMMIT")
        db.executescript(indexes)
        db.execute("ANALYZE")
        advance(1)

    def _rng(self, phase: str) -> random.Random:
        return random.Random(f"{self.seed}:{phase}")

    def _ticks(self, description: str) -> Iterator[int]:
        """Everyone's index in turn, advancing a progress phase every ``PEOPLE_PER_TICK``."""
        people = len(self.everyone.created)
        advance = self.report(description, people)
        for start in range(0, people, PEOPLE_PER_TICK):
            stop = min(people, start + PEOPLE_PER_TICK)
            yield from range(start, stop)
            advance(stop - start)

    def _done(self, **batches: _Batch) -> None:
        for table, batch in batches.items():
            batch.flush()
            self.rows[table] = batch.count

    def people(self, people: int) -> None:
        """Chirp's people, Reelix's members (the same humans) and the links people made."""
        rng, clock, everyone = self._rng("people"), self.clock, self.everyone
        where = homes(people, seed=self.seed)
        self.cid = [person_id(CHIRP, i) for i in range(people)]
        self.rid = [person_id(REELIX, i) for i in range(people)]
        everyone.links = links = linked(people, seed=self.seed)
        everyone.linked_at = array("q", bytes(8 * people))
        # Accounts are at least a month old, so every later event has room after them.
        latest = clock.now - 30 * DAY
        persons = _Batch(self._chirp, "people", 5)
        members = _Batch(self._reelix, "members", 5)
        linked_accounts = _Batch(self._reelix, "linked_accounts", 3)
        advance = self.report("people and members", people)
        for i in range(people):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            name = f"{first} {last}"
            email = f"{first}.{last}{i}@example.com".lower().replace("'", "")
            # One in eight signed up to the streaming service with another address.
            other = rng.random() < 0.125
            reelix_email = f"{first.lower()}{i}@mail.example" if other else email
            created, joined = int(rng.random() * latest), int(rng.random() * latest)
            everyone.names.append(name)
            everyone.created.append(created)
            everyone.joined.append(joined)
            chirp_id, member_id = self.cid[i], self.rid[i]
            persons.rows.append((chirp_id, name, email, where[i], clock.text(created)))
            members.rows.append((member_id, name, reelix_email, where[i], clock.text(joined)))
            if links[i]:
                linked_at = _between(rng, max(created, joined), latest)
                everyone.linked_at[i] = linked_at
                linked_accounts.rows.append((member_id, chirp_id, clock.text(linked_at)))
            if i % PEOPLE_PER_TICK == PEOPLE_PER_TICK - 1:
                for batch in (persons, members, linked_accounts):
                    batch.ready()
                advance(PEOPLE_PER_TICK)
        advance(people % PEOPLE_PER_TICK)
        if self._chirp is not None:
            self._done(people=persons)
        if self._reelix is not None:
            self._done(members=members, linked_accounts=linked_accounts)

    def titles(self) -> None:
        """Reelix's catalogue, most popular first."""
        rng = self._rng("titles")
        batch = _Batch(self._reelix, "titles", 4)
        for title in TITLES:
            name = f"{rng.choice(WORDS)} {rng.choice(WORDS)}"
            self.title_names.append(name)
            released = self.clock.text(rng.randrange(self.clock.now - 30 * DAY))[:10]
            batch.rows.append((title, name, rng.choice(GENRES), released))
        if self._reelix is not None:
            self._done(titles=batch)

    def friendships(self, friends: list[list[int]]) -> None:
        """Both directions of every friendship, in key order.

        Each person's friends go to SQLite as one JSON list that SQLite unpacks into rows
        itself: several times faster than binding a million Python tuples per few seconds.
        """
        self.chirp.execute("CREATE TEMP TABLE friend_lists (person_id TEXT, friends TEXT)")
        batch, cid = _Batch(self.chirp, "temp.friend_lists", 2), self.cid
        for i in self._ticks("friendships"):
            if friends[i]:
                batch.rows.append((cid[i], '["' + '","'.join([cid[j] for j in friends[i]]) + '"]'))
                batch.ready()
        batch.flush()
        written = self.chirp.execute(
            "INSERT INTO friendships SELECT l.person_id, f.value"
            " FROM temp.friend_lists l, json_each(l.friends) f"
        ).rowcount
        self.chirp.execute("DROP TABLE temp.friend_lists")
        self.rows["friendships"] = written

    def conversations(self, friends: list[list[int]]) -> None:
        """Threads, their participants and messages, and the recommendations sent from Reelix."""
        rng = self._rng("conversations")
        talk = _Talk(self, rng)
        created, now = self.everyone.created, self.clock.now
        for i in self._ticks("threads, messages and recommendations"):
            mine = friends[i]
            if not mine:
                continue
            started: dict[int, tuple[int, int]] = {}
            wanted = int(rng.expovariate(1 / (0.5 + 0.04 * len(mine))))
            for j in rng.sample(mine, min(wanted, len(mine))):
                start = _between(rng, max(created[i], created[j]), now)
                started[j] = (talk.thread("1:1", [i, j], start, mean=3.0), start)
            if len(mine) >= 2 and rng.random() < 0.12:
                group = [i, *rng.sample(mine, min(len(mine), rng.randint(2, 7)))]
                start = _between(rng, max(created[p] for p in group), now)
                talk.thread("group", group, start, mean=6.0)
            if self.everyone.links[i]:
                talk.recommend(i, mine, started)
            talk.ready()
        recommendations = talk.batches.pop("recommendations")
        recommendations.flush()
        self._done(**talk.batches)

    def posts(self) -> None:
        """People's own feed posts: watch activity reaches the feed only through Accord."""
        rng, clock = self._rng("posts"), self.clock
        batch = _Batch(self.chirp, "feed_posts", 5)
        post_id = 0
        for i in self._ticks("feed posts"):
            me = self.cid[i]
            count = int(rng.expovariate(1 / 3))
            for posted in _spread(rng, self.everyone.created[i], clock.now, count):
                post_id += 1
                body = POSTS[int(rng.random() * len(POSTS))]
                batch.rows.append((post_id, me, body, clock.text(posted), CHIRP))
            batch.ready()
        self._done(feed_posts=batch)

    def watching(self) -> None:
        """Watch events: a lognormal number per member, titles drawn with Zipf weights."""
        rng, clock = self._rng("watching"), self.clock
        # Runtimes: episodes and films, 20 minutes to 2.5 hours.
        runtimes = [rng.randint(20, 150) * 60 for _ in TITLES]
        batch = _Batch(self.reelix, "watch_events", 5)
        rows, draw, days, hours = batch.rows, rng.random, clock.days, clock.times
        ranks = range(len(TITLES))
        mu, event_id = math.log(WATCH_MEDIAN), 0
        for i in self._ticks("watch events"):
            me = self.rid[i]
            count = min(WATCH_MAX, int(rng.lognormvariate(mu, WATCH_SIGMA)))
            watched = rng.choices(ranks, cum_weights=self.zipf, k=count)
            times = _spread(rng, self.everyone.joined[i], clock.now, count)
            for rank, at in zip(watched, times, strict=True):
                event_id += 1
                runtime = runtimes[rank]
                seconds = runtime if draw() < 0.6 else 60 + int(draw() * (runtime - 59))
                watched_at = days[at // DAY] + hours[at % DAY]
                rows.append((event_id, me, TITLES[rank], watched_at, seconds))
            batch.ready()
        self._done(watch_events=batch)


class _Talk:
    """Threads with their messages, and recommendations delivered in Reelix or as messages."""

    def __init__(self, writer: _Writer, rng: random.Random) -> None:
        self.writer, self.rng = writer, rng
        self.batches = {
            "threads": _Batch(writer.chirp, "threads", 3),
            "thread_participants": _Batch(writer.chirp, "thread_participants", 2),
            "messages": _Batch(writer.chirp, "messages", 6),
            "recommendations": _Batch(writer.recommendations, "recommendations", 10),
        }
        self.interface = _chooser(rng, INTERFACES)
        self.surface = _chooser(rng, SURFACES)
        self.variant = _chooser(rng, VARIANTS)
        self.ranks = list(range(len(TITLES)))
        self.thread_id = self.message_id = self.rec_id = 0
        self._threads = self.batches["threads"].rows
        self._participants = self.batches["thread_participants"].rows
        self._messages = self.batches["messages"].rows

    def ready(self) -> None:
        """Send whichever batches are full."""
        for batch in self.batches.values():
            batch.ready()

    def thread(self, kind: str, members: list[int], start: int, *, mean: float) -> int:
        """A new thread among ``members`` from ``start``, with about ``mean`` messages."""
        rng, clock, cid = self.rng, self.writer.clock, self.writer.cid
        self.thread_id = thread = self.thread_id + 1
        self._threads.append((thread, kind, clock.text(start)))
        self._participants.extend([(thread, cid[p]) for p in sorted(members)])
        messages, draw, size = self._messages, rng.random, len(members)
        days, times, message = clock.days, clock.times, self.message_id
        # A thread opened by a recommendation (``mean`` 0) starts with that message alone.
        count = 1 + int(rng.expovariate(1 / mean)) if mean else 0
        for sent in _spread(rng, start, clock.now, count):
            message += 1
            sender = cid[members[int(draw() * size)]]
            body = PHRASES[int(draw() * len(PHRASES))]
            sent_at = days[sent // DAY] + times[sent % DAY]
            messages.append((message, thread, sender, body, sent_at, None))
        self.message_id = message
        return thread

    def recommend(self, i: int, friends: list[int], started: dict[int, tuple[int, int]]) -> None:
        """Titles ``i`` recommended from Reelix to friends in the last weeks.

        A friend who linked accounts gets it in Reelix; anyone else as a Chirp message sent on
        ``i``'s behalf, in a 1:1 thread ``i`` already has with them or in a new one.
        """
        rng, writer = self.rng, self.writer
        everyone, text, now = writer.everyone, writer.clock.text, writer.clock.now
        for _ in range(int(rng.expovariate(1 / 1.5))):
            j = rng.choice(friends)
            rank = rng.choices(self.ranks, cum_weights=writer.zipf)[0]
            sent = _between(rng, max(everyone.linked_at[i], now - REC_DAYS * DAY), now)
            delivered = "reelix" if everyone.links[j] else "chirp_message"
            clicked = None
            if rng.random() < CLICK_RATE[delivered]:
                click = sent + int(rng.expovariate(1 / (6 * 3600)))
                clicked = text(click) if click <= now else None
            self.rec_id += 1
            self.batches["recommendations"].rows.append(
                (
                    self.rec_id,
                    writer.rid[i],
                    writer.cid[j],
                    TITLES[rank],
                    text(sent),
                    self.interface(),
                    self.surface(),
                    self.variant(),
                    delivered,
                    clicked,
                )
            )
            if delivered == "chirp_message":
                thread = started.get(j)
                if thread is None or thread[1] > sent:
                    thread = (self.thread("1:1", [i, j], sent, mean=0.0), sent)
                    started[j] = thread
                self.message_id += 1
                body = f"{everyone.names[i]} recommends {writer.title_names[rank]} on Reelix"
                self._messages.append(
                    (self.message_id, thread[0], writer.cid[i], body, text(sent), "reelix")
                )


__all__ = [
    "Reporter",
    "Written",
    "friend_graph",
    "write_databases",
    "write_reelix",
    "zipf_weights",
]
