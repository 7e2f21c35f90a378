"""Releasing a million people's watch events through the gateway, side by side with bare SQL.

The flow is the filings' watch activity shared to the social network: Chirp reads Reelix's
``watch_events`` under the ``watch-activity`` clause. Through :meth:`accord.gateway.Gateway.
exchange` that is: authenticate, decide in Cedar, compute in the Accord store who has consented
(VPPA in the US, the GDPR's distinct consent in the EU), carry those ids into Reelix's database as
a temporary table, select only the two released fields of their rows, append the decision and the
release to the ledger durably, and hand the rows over.

The baseline is the bare SQL query that selects the same rows from the same database, given the
same people and the same verdicts on the titles their consents mention already sitting in tables
there: the allowed people's viewings, less those of titles they excluded, plus those of titles
they consented to for one disclosure (``_BARE``), through the ``sqlite3`` module. The ratio is
everything Accord adds (goal: at most 2×). Rounds alternate between the two so the shared
machine's noise falls on both. Peak memory is the resident set of a fresh process doing one
release of each kind.

After the rounds, the parts of a release are timed on their own, side by side with the bare query:
the consent filter (the allowed people streamed from the Accord store), and the ledger's append of
a release entry about the people whose rows were released (keys, subject tags, index rows, the
durable commit). They show where the ratio goes; they are separate runs, so they need not add up.
Their sum with the bare query, consent filter then read, is the floor of a release that judges the
people in the Accord store and then reads their rows from the party's database, however little the
rest costs; the run prints it as a ratio too.

With ``--postgres`` everything is on PostgreSQL: the benchmark creates a database of its own
(dropped at the end; with ``--keep-database`` kept beside ``--work``, and reused by the next run
given the same folder), writes Reelix's database into its schema ``reelix`` with COPY
(:mod:`accord.scenario.postgres`), keeps the Accord store there too, and runs the bare query
through psycopg; both read Reelix's schema with JIT compilation off (:data:`NO_JIT`).

Prints tables and ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import resource
import secrets
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from accord import agreements as ag
from accord.consent import Operation
from accord.gateway import Exchange, Gateway, Keyring
from accord.ledger.entries import ReleaseEntry
from accord.requests import Request
from accord.scenario.generate import write_reelix
from accord.scenario.population import CHIRP, REELIX, generate
from accord.scenario.postgres import copy_party, party_url
from accord.service import Accord, person_refs
from accord.sources import Allowed, Source, load
from accord.store import filter_sql, title_sql
from accord.store.engine import make_engine

AT = datetime(2026, 11, 29, 12, tzinfo=UTC)
WATCHED = "user.behavior.media_consumption"
console = Console()


def request() -> Request:
    return Request(
        requester=CHIRP,
        agreement="chirp-reelix",
        clause="watch-activity",
        operation=Operation.READ,
        purpose="functional.service",
        categories=frozenset({WATCHED}),
        at=AT,
    )


def _bars() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
NO_JIT = "-cjit=off"
"""On both sides alike: PostgreSQL's JIT spends about a second compiling each of these queries
(its cost model takes them for long ones), more than running them at these sizes."""


@dataclass(frozen=True)
class Target:
    """Where the scenario lives: SQLite files in ``work``, or (``postgres``, a database URL)
    Reelix's schema and the Accord store on PostgreSQL, the signing key in ``work``."""

    work: Path
    postgres: str | None = None

    @property
    def reelix_url(self) -> str:
        if self.postgres is None:
            return f"sqlite:///{self.work / 'reelix.db'}"
        url = make_url(party_url(self.postgres, REELIX))
        options = f"{url.query['options']} {NO_JIT}"
        return url.update_query_dict({"options": options}).render_as_string(hide_password=False)

    @property
    def store_url(self) -> str | None:
        return self.postgres

    @contextmanager
    def bare_db(self) -> Iterator[Any]:
        """A driver connection to Reelix's database (sqlite3, or psycopg on its schema)."""
        if self.postgres is None:
            with closing(sqlite3.connect(self.work / "reelix.db")) as db:
                yield db
            return
        conninfo = make_url(self.postgres).set(drivername="postgresql")
        with psycopg.connect(
            conninfo.render_as_string(hide_password=False),
            options=f"-csearch_path={REELIX} {NO_JIT}",
        ) as db:
            yield db

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with self.bare_db() as db:
            return list(db.execute(sql).fetchall())


def kept_database(admin_url: str, work: Path) -> str:
    """The database kept beside ``work`` for the run: the one prepared before if ``work`` says
    it is ready, else a new one (an older one of the same name dropped first)."""
    name = f"accord_bench_{hashlib.sha256(str(work.resolve()).encode()).hexdigest()[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if exists is None or not (work / "ready").exists():
                if work.exists():
                    shutil.rmtree(work)
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@contextmanager
def own_database(admin_url: str) -> Iterator[str]:
    """A new PostgreSQL database for the run, dropped at its end."""
    name = f"accord_bench_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def prepare(target: Target, people: int, seed: int) -> bool:
    """Reelix's database, the Accord store with everyone's consents, and the bare table; whether
    they were prepared before (and reused)."""
    work = target.work
    done = work / "ready"
    if done.exists():
        console.print(f"reusing the prepared scenario in {work}")
        return True
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    with _bars() as bars:

        def phase(description: str, total: int, /) -> Callable[[int], None]:
            task = bars.add_task(description, total=total)
            return lambda steps: bars.advance(task, steps)

        write_reelix(work, people=people, seed=seed, at=AT, report=phase)
        if target.postgres is not None:
            conninfo = make_url(target.postgres).set(drivername="postgresql")
            copy_party(conninfo.render_as_string(hide_password=False), REELIX, work / "reelix.db")
        population = generate(people, seed=seed, at=AT)
        with Accord.open(target.store_url, data_dir=work / "accord") as accord:
            examples = resources.files("accord") / "examples"
            accord.register((examples / "chirp-reelix.yaml").read_text(), source="x", by="bench")
            accord.review("chirp-reelix", reviewer="board", findings="ok", approved=True)
            accord.move("chirp-reelix", ag.Status.ACTIVE, by="board")
            task = bars.add_task("consents into the store", total=len(population.consents))
            accord.import_records(
                population.people,
                population.consents,
                population.opt_outs,
                progress=lambda n: bars.advance(task, n),
            )
    # One release first: it spends the consents given for one disclosure, so that every timed
    # release (and the baseline) sees the same consents.
    with gateway(target) as (door, token):
        through_accord(door, token)
    with Accord.open(target.store_url, data_dir=work / "accord") as accord:
        decision = accord.policy().decide(request())
        if decision.filter is None:
            raise SystemExit(f"the watch-activity request was refused: {decision.reason}")
        with accord.session() as s:
            allowed = filter_sql.allowed_people(s, decision.filter)
        verdicts = title_sql.title_verdicts(accord.engine, decision.filter)
    # The baseline's tables: the same people, and the same verdicts on the titles their consents
    # mention, already in Reelix's database.
    if target.postgres is not None:
        _bare_tables_on_postgres(target, allowed, verdicts)
        done.touch()
        return False
    with closing(sqlite3.connect(work / "reelix.db")) as db:
        db.execute("CREATE TABLE bench_allowed (member_id TEXT PRIMARY KEY) WITHOUT ROWID")
        db.executemany("INSERT INTO bench_allowed VALUES (?)", ((p,) for p in sorted(allowed)))
        db.execute(
            "CREATE TABLE bench_titles (member_id TEXT, title_id TEXT, allowed INTEGER, "
            "PRIMARY KEY (member_id, title_id)) WITHOUT ROWID"
        )
        db.executemany("INSERT INTO bench_titles VALUES (?, ?, ?)", sorted(verdicts))
        db.commit()
    done.touch()
    return False


def _bare_tables_on_postgres(
    target: Target, allowed: set[str], verdicts: list[tuple[str, str, bool]]
) -> None:
    with target.bare_db() as db:
        db.execute("CREATE TABLE bench_allowed (member_id TEXT PRIMARY KEY)")
        db.execute(
            "CREATE TABLE bench_titles (member_id TEXT, title_id TEXT, allowed BOOLEAN, "
            "PRIMARY KEY (member_id, title_id))"
        )
        with db.cursor() as cursor:
            with cursor.copy("COPY bench_allowed (member_id) FROM STDIN") as copy:
                for person in sorted(allowed):
                    copy.write_row((person,))
            with cursor.copy("COPY bench_titles (member_id, title_id, allowed) FROM STDIN") as copy:
                for row in sorted(set(verdicts)):
                    copy.write_row(row)
        db.execute("ANALYZE bench_allowed")
        db.execute("ANALYZE bench_titles")
        db.commit()


@contextmanager
def gateway(target: Target) -> Iterator[tuple[Gateway, str]]:
    dataset = load(str(resources.files("accord") / "scenario" / "datasets" / "reelix.yaml"))
    engine = make_engine(target.reelix_url)
    try:
        with Accord.open(target.store_url, data_dir=target.work / "accord") as accord:
            keyring = Keyring()
            token = keyring.issue(CHIRP)
            yield Gateway(accord, {REELIX: Source(engine, dataset)}, keyring), token
    finally:
        engine.dispose()


def through_accord(door: Gateway, token: str) -> list[tuple[Any, ...]]:
    return door.exchange(Exchange(request(), token, "watch_events")).rows


_BARE = """
SELECT w.title_id, w.watched_at FROM watch_events w
WHERE w.member_id IN (SELECT member_id FROM bench_allowed
                      UNION SELECT member_id FROM bench_titles WHERE allowed)
  AND NOT EXISTS (SELECT 1 FROM bench_titles t WHERE t.member_id = w.member_id
                  AND t.title_id = w.title_id AND NOT t.allowed)
  AND (w.member_id IN (SELECT member_id FROM bench_allowed)
       OR EXISTS (SELECT 1 FROM bench_titles t WHERE t.member_id = w.member_id
                  AND t.title_id = w.title_id AND t.allowed))
"""
"""The allowed people's rows, less the titles they excluded, plus the titles they consented to
for one disclosure: each viewing judged by its own title, as the gateway judges it."""


_BARE_POSTGRES = _BARE.replace(
    "AND (w.member_id IN (SELECT member_id FROM bench_allowed)",
    "AND (EXISTS (SELECT 1 FROM bench_allowed a WHERE a.member_id = w.member_id)",
)
"""The same query as PostgreSQL needs it: under OR it cannot make ``IN (SELECT ...)`` a join, and
once the ids outgrow work_mem it scans them for every row; a key lookup is what the gateway's
read does there too."""


def _bare_sql(target: Target) -> str:
    return _BARE if target.postgres is None else _BARE_POSTGRES


def bare(target: Target) -> list[tuple[Any, ...]]:
    return target.query(_bare_sql(target))


def filter_only(door: Gateway) -> int:
    """The consent filter alone: the allowed people's ids streamed from the Accord store."""
    decision = door.accord.policy().decide(request())
    if decision.filter is None:
        raise SystemExit(f"the watch-activity request was refused: {decision.reason}")
    return sum(1 for _ in Allowed.by_filter(door.accord.engine, decision.filter).people)


def ledger_only(door: Gateway, people: list[str]) -> int:
    """The ledger's part alone: a release entry about ``people``, appended durably."""
    entry = ReleaseEntry(
        agreement="chirp-reelix",
        clause="watch-activity",
        purpose="functional.service",
        categories=(WATCHED,),
        reason=f"benchmark: the ledger's part of releasing rows about {len(people)} people",
        about=person_refs(REELIX, people),
        provider=REELIX,
        recipient=CHIRP,
        fields=("watch_events.title_id", "watch_events.watched_at"),
        at=AT,
    )
    (receipt,) = door.accord.ledger.append([entry])
    return receipt.index


def phases(door: Gateway, target: Target, rounds: int) -> dict[str, float]:
    """Median seconds of each part of a release alone, beside the bare query's."""
    released = [
        member
        for (member,) in target.query(
            _bare_sql(target).replace("w.title_id, w.watched_at", "DISTINCT w.member_id", 1)
        )
    ]
    timings: dict[str, list[float]] = {"consent filter": [], "ledger append": [], "bare SQL": []}
    steps: dict[str, Callable[[], object]] = {
        "consent filter": lambda: filter_only(door),
        "ledger append": lambda: ledger_only(door, released),
        "bare SQL": lambda: bare(target),
    }
    for _ in range(rounds):
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            timings[name].append(time.perf_counter() - started)
    return {name: statistics.median(runs) for name, runs in timings.items()}


def _peak_child(kind: str, target: Target, out: multiprocessing.Queue[tuple[int, int]]) -> None:
    if kind == "accord":
        with gateway(target) as (door, token):
            rows = len(through_accord(door, token))
    else:
        rows = len(bare(target))
    out.put((rows, _peak_kb()))


def _peak_kb() -> int:
    """This process's peak resident set in KiB (VmHWM: unlike ru_maxrss, not inherited)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_rss_mb(kind: str, target: Target) -> tuple[int, float]:
    """Rows released and the peak resident set (MB) of a fresh process doing one release."""
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[tuple[int, int]] = context.Queue()
    child = context.Process(target=_peak_child, args=(kind, target, queue))
    child.start()
    rows, kb = queue.get()
    child.join()
    return rows, kb / 1024


def print_runs(
    title: str, accord: tuple[float, int, float], bare_sql: tuple[float, int, float]
) -> None:
    """Median seconds, rows per second and peak memory of both kinds of release."""
    table = Table(title=title)
    table.add_column("")
    table.add_column("median s", justify="right")
    table.add_column("rows/s", justify="right")
    table.add_column("peak RSS MB", justify="right")
    for name, (seconds, rows, mb) in (
        ("Accord gateway (decide, filter, ledger)", accord),
        ("bare SQL, same rows, same database", bare_sql),
    ):
        table.add_row(name, f"{seconds:.2f}", f"{rows / seconds:,.0f}", f"{mb:,.0f}")
    console.print(table)


def print_parts(parts: dict[str, float]) -> None:
    table = Table(title="The parts of a release, each alone (median s)")
    table.add_column("")
    table.add_column("median s", justify="right")
    table.add_column("× bare SQL", justify="right")
    for name, seconds in parts.items():
        table.add_row(name, f"{seconds:.2f}", f"{seconds / parts['bare SQL']:.2f}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--people", type=int, default=None, help="people (1,000,000; 20,000 with --quick)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="keep the scenario here")
    parser.add_argument(
        "--quick", action="store_true", help="20,000 people (unless --people), 2 rounds"
    )
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=POSTGRES_ADMIN,
        default=None,
        metavar="ADMIN_URL",
        help="everything on PostgreSQL, in a database of its own created on this server (and "
        f"dropped at the end); default {POSTGRES_ADMIN}",
    )
    parser.add_argument(
        "--keep-database",
        action="store_true",
        help="with --postgres: keep the database with --work, and reuse both when run again",
    )
    args = parser.parse_args()
    if args.quick:
        args.people, args.rounds = args.people or 20_000, 2
    args.people = args.people or 1_000_000
    if args.postgres is None:
        work = (
            args.work or Path(tempfile.gettempdir()) / f"accord-release-{args.people}-{args.seed}"
        )
        run(Target(work), args)
        return
    if args.keep_database:
        if args.work is None:
            parser.error("--keep-database needs --work, the folder kept with it")
        run(Target(args.work, kept_database(args.postgres, args.work)), args)
        return
    with own_database(args.postgres) as url, tempfile.TemporaryDirectory() as folder:
        work = args.work or Path(folder) / "release"
        # A new database: the folder is prepared anew with it.
        (work / "ready").unlink(missing_ok=True)
        run(Target(work, url), args)


def run(target: Target, args: argparse.Namespace) -> None:
    reused = prepare(target, args.people, args.seed)
    ((events,),) = target.query("SELECT count(*) FROM watch_events")
    ((allowed,),) = target.query("SELECT count(*) FROM bench_allowed")

    accord_s: list[float] = []
    bare_s: list[float] = []
    with gateway(target) as (door, token), _bars() as bars:
        task = bars.add_task("releases, alternating", total=2 * args.rounds)
        for n in range(args.rounds):
            started = time.perf_counter()
            released = through_accord(door, token)
            accord_s.append(time.perf_counter() - started)
            bars.advance(task)
            started = time.perf_counter()
            selected = bare(target)
            bare_s.append(time.perf_counter() - started)
            bars.advance(task)
            if n == 0 and sorted(released) != sorted(selected):
                raise SystemExit("the gateway released other rows than the bare query selects")
            released = selected = []
    with gateway(target) as (door, _), _bars() as bars:
        task = bars.add_task("the parts of a release, alone", total=None)
        parts = phases(door, target, args.rounds)
        bars.update(task, completed=1, total=1)
    accord_rows, accord_mb = peak_rss_mb("accord", target)
    bare_rows, bare_mb = peak_rss_mb("bare", target)
    if accord_rows != bare_rows:
        raise SystemExit(f"the processes released {accord_rows:,} and {bare_rows:,} rows")

    a, b = statistics.median(accord_s), statistics.median(bare_s)
    ratio = a / b
    print_runs(
        f"Watch events of {args.people:,} people: {allowed:,} consenting",
        (a, accord_rows, accord_mb),
        (b, bare_rows, bare_mb),
    )
    print_parts(parts)
    floor = (parts["consent filter"] + parts["bare SQL"]) / parts["bare SQL"]
    console.print(
        f"The consent filter, then the bare read, one after the other: {floor:.2f}× the bare "
        "query: the floor of a release that judges the people in the store, then reads their rows."
    )
    console.print(
        f"{events:,} watch events; {accord_rows:,} released. Accord / bare SQL = "
        f"[bold]{ratio:.2f}×[/] (goal ≤ 2×: {'met' if ratio <= 2 else 'NOT met'})"
    )
    print(
        json.dumps(
            {
                "backend": "sqlite" if target.postgres is None else "postgresql",
                "reused_scenario": reused,
                "kept_database": make_url(target.postgres).database
                if target.postgres is not None and args.keep_database
                else None,
                "people": args.people,
                "watch_events": events,
                "consenting_people": allowed,
                "released_rows": accord_rows,
                "accord_s": round(a, 3),
                "bare_sql_s": round(b, 3),
                "accord_runs_s": [round(x, 3) for x in accord_s],
                "bare_runs_s": [round(x, 3) for x in bare_s],
                "release_vs_bare_sql_ratio": round(ratio, 3),
                "consent_filter_vs_bare_sql_ratio": round(
                    parts["consent filter"] / parts["bare SQL"], 3
                ),
                "floor_filter_then_read_vs_bare_sql_ratio": round(floor, 3),
                "ledger_append_vs_bare_sql_ratio": round(
                    parts["ledger append"] / parts["bare SQL"], 3
                ),
                "peak_rss_accord_mb": round(accord_mb, 1),
                "peak_rss_bare_mb": round(bare_mb, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
