"""Decisions per second through ``policy.decide``, side by side with bare Cedar.

1. A batch of 10,000 requests (the Chirp–Reelix flows, allowed and refused, for different people)
   through :meth:`accord.policy.Policy.decide_batch`, against ``cedarpy.is_authorized_batch`` on
   the same compiled policy set, entities and schema with the Cedar requests built beforehand.
   Accord's work on top of Cedar (building requests, reasons, per-person filters) is the
   difference. Goal: Accord keeps at least 0.8 of bare Cedar's rate.
2. The per-person filter of one decision turned into the set of allowed people, in SQL on
   SQLite, for 1,000,000 people with one consent each; side by side with the bare SQL query that
   selects the people holding a consent for the recipient (no law, no other conditions), and with
   Accord's own Python evaluator of the same filter over the same records loaded in memory.

Prints a table and ends with one line of JSON. ``--quick`` runs it small, to check that it
still runs (``tests/test_benchmarks.py`` does).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import cedarpy
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import and_, exists, select

from accord import agreements as ag
from accord.consent import Consent, Method, Operation, Person, PersonFacts
from accord.policy import Policy, acting_party
from accord.requests import Request, Subjects, SubjectsKind
from accord.store import filter_sql
from accord.store import tables as t
from accord.store.migrate import open_store
from accord.store.repositories import ConsentRepository, Party, PartyRepository, PeopleRepository

AT = datetime(2026, 11, 29, 12, tzinfo=UTC)
console = Console()


def registry() -> list[ag.Registered]:
    folder = resources.files("accord") / "examples"
    out = []
    for name in ("chirp-reelix.yaml", "chirp-reelix-titan.yaml"):
        a = ag.parse((folder / name).read_text(), source=name)
        reg = ag.Registered(a)
        if a.id == "chirp-reelix":
            review = ag.Review("board", a.valid_from, "ok", True, a.version)
            for step in (ag.Status.IN_REVIEW, ag.Status.APPROVED, ag.Status.ACTIVE):
                reg = ag.advance(reg, step, at=AT, by="board", review=review)
        out.append(reg)
    return out


def requests(policy: Policy, n: int, seed: int) -> list[Request]:
    rng = random.Random(seed)
    main = policy.registry["chirp-reelix"].agreement
    out = []
    for i in range(n):
        c = rng.choice(main.clauses)
        op = sorted(c.operations)[0]
        person = f"c{i:07d}"
        kind = rng.random()
        if kind < 0.75:  # a plausible request for one person
            out.append(
                Request(
                    requester=main.receiver_of(c) if op is Operation.READ else main.sender_of(c),
                    agreement=main.id,
                    clause=c.id,
                    operation=op,
                    purpose=sorted(c.purposes)[0],
                    categories=frozenset(c.categories),
                    at=AT,
                    subjects=Subjects(SubjectsKind.PEOPLE, people=frozenset({person})),
                    on_behalf_of=person,
                )
            )
        else:  # refused: wrong purpose, unreviewed agreement, bulk inbox read
            out.append(
                Request(
                    requester="reelix",
                    agreement=rng.choice(["chirp-reelix", "chirp-reelix-titan"]),
                    clause=rng.choice(["message-sync", "all-friends"]),
                    operation=Operation.READ,
                    purpose=rng.choice(["functional.service", "marketing.advertising"]),
                    categories=frozenset({"user.content.private"}),
                    at=AT,
                )
            )
    return out


def best_of(runs: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_decide(n: int, runs: int) -> dict[str, float]:
    policy = Policy(registry())
    reqs = requests(policy, n, seed=1)
    cedar_reqs = [policy.cedar_request(r) for r in reqs]
    # Warm both paths once (caches, lazy imports).
    policy.decide_batch(reqs[:100])
    cedarpy.is_authorized_batch(cedar_reqs[:100], policy.policy_set, policy.entities, policy.schema)
    # What set-up left alive (modules, the compiled policy, the requests) is frozen out of the
    # collector's reach, for both sides, as each worker of `accord serve` does once started: the
    # collections each side's allocations trigger then scan only what that side made.
    gc.collect()
    gc.freeze()
    accord_times, bare_times = [], []
    for _ in range(runs):  # interleaved, so both see the same machine load
        bare_times.append(
            best_of(
                1,
                lambda: cedarpy.is_authorized_batch(
                    cedar_reqs, policy.policy_set, policy.entities, policy.schema
                ),
            )
        )
        accord_times.append(best_of(1, lambda: policy.decide_batch(reqs)))
    gc.unfreeze()
    decisions = policy.decide_batch(reqs)
    allowed = sum(d.allowed for d in decisions)
    accord_rate = n / min(accord_times)
    bare_rate = n / min(bare_times)
    return {
        "requests": n,
        "allowed": allowed,
        "accord_decisions_per_s": round(accord_rate),
        "bare_cedar_decisions_per_s": round(bare_rate),
        "decide_vs_bare_cedar_ratio": round(accord_rate / bare_rate, 3),
        "decide_vs_bare_cedar_ratio_median": round(
            statistics.median(b / a for a, b in zip(accord_times, bare_times, strict=True)), 3
        ),
    }


SEGMENTS = "interest-segments"


def segments(policy: Policy) -> tuple[ag.Agreement, ag.Clause, Request]:
    """The interest-segments clause and its request as the agreement has it now: who acts, doing
    what, for what purpose, all read from the clause (so the benchmark follows the agreement when
    it changes)."""
    main = policy.registry["chirp-reelix"].agreement
    c = main.clause(SEGMENTS)
    if c is None:
        raise SystemExit(f"agreement {main.id} has no clause {SEGMENTS}")
    op = sorted(c.operations)[0]
    return (
        main,
        c,
        Request(
            requester=acting_party(main, c, op),
            agreement=main.id,
            clause=c.id,
            operation=op,
            purpose=sorted(c.purposes)[0],
            categories=frozenset(c.categories),
            at=AT,
        ),
    )


def bench_filter(people: int, folder: Path) -> dict[str, float]:
    """One consent per person; jurisdictions spread over US, EU, Canada and Latin America."""
    rng = random.Random(2)
    places = ["US-CA", "US-NY", "US-TX", "DE", "FR", "GB", "CA", "BR", "MX"]
    policy = Policy(registry())
    main, c, asked = segments(policy)
    holder, recipient = main.sender_of(c), main.receiver_of(c)
    engine, sessions = open_store(f"sqlite:///{folder / 'bench.db'}")
    try:
        everyone = [Person(f"r{i:07d}", holder, rng.choice(places)) for i in range(people)]
        records = [
            Consent(
                id=f"k{i:07d}",
                person=p.id,
                controller=holder,
                recipient=recipient,
                purposes=frozenset({asked.purpose}),
                categories=frozenset(asked.categories),
                operations=frozenset({asked.operation}),
                jurisdiction=p.jurisdiction,
                given_at=AT - timedelta(days=rng.randint(1, 900)),
                method=Method.IN_APP_DIALOG,
                notice="n1",
                distinct_and_separate=rng.random() > 0.1,
                withdrawal_method=Method.SETTINGS_PAGE,
                withdrawn_at=AT - timedelta(days=1) if rng.random() < 0.05 else None,
            )
            for i, p in enumerate(everyone)
        ]
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"loading {people:,} people and consents", total=people * 2)
            with sessions() as s, s.begin():
                parties = PartyRepository(s)
                parties.ensure(Party("reelix", "Reelix"))
                parties.ensure(Party("chirp", "Chirp"))
            step = 50_000
            for start in range(0, people, step):
                with sessions() as s, s.begin():
                    PeopleRepository(s).upsert_many(everyone[start : start + step])
                bar.advance(task, min(step, people - start))
                with sessions() as s, s.begin():
                    ConsentRepository(s).bulk_add(records[start : start + step])
                bar.advance(task, min(step, people - start))
        decision = policy.decide(asked)
        if not decision.allowed or decision.filter is None:
            raise SystemExit(f"the benchmark's request was refused: {decision.reason}")
        f = decision.filter
        k = t.consents.c
        bare = select(t.people.c.person_id).where(
            t.people.c.party == holder,
            exists().where(
                and_(
                    k.controller == holder,
                    k.person == t.people.c.person_id,
                    k.recipient == recipient,
                )
            ),
        )
        with sessions() as s:
            allowed: set[str] = set()
            sql_s = best_of(3, lambda: allowed.update(filter_sql.allowed_people(s, f)))
            bare_s = best_of(3, lambda: s.execute(bare).scalars().all())
        facts = [PersonFacts(p, (k,)) for p, k in zip(everyone, records, strict=True)]
        python_s = best_of(1, lambda: f.allowed(facts))
        if f.allowed(facts) != allowed:
            raise SystemExit("SQL and the reference evaluator disagree")
        return {
            "people": people,
            "allowed_people": len(allowed),
            "filter_sql_s": round(sql_s, 3),
            "bare_sql_s": round(bare_s, 3),
            "python_reference_s": round(python_s, 3),
            "filter_vs_bare_sql_ratio": round(sql_s / bare_s, 2),
            "filter_sql_vs_python_speed_ratio": round(python_s / sql_s, 2),
        }
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1,000 requests, 3 runs and 5,000 people: to check that it runs (tests do)",
    )
    parser.add_argument("--requests", type=int, default=None, help="default 10,000")
    parser.add_argument("--runs", type=int, default=None, help="default 7")
    parser.add_argument("--people", type=int, default=None, help="default 1,000,000")
    args = parser.parse_args()
    requests_n = args.requests or (1_000 if args.quick else 10_000)
    runs = args.runs or (3 if args.quick else 7)
    people = args.people or (5_000 if args.quick else 1_000_000)

    decide = bench_decide(requests_n, runs)
    with tempfile.TemporaryDirectory() as tmp:
        filt = bench_filter(people, Path(tmp))

    table = Table(title="Decisions and per-person filters")
    table.add_column("measure")
    table.add_column("Accord", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row(
        f"decisions/s, batch of {decide['requests']:,} (baseline: bare cedarpy batch)",
        f"{decide['accord_decisions_per_s']:,}",
        f"{decide['bare_cedar_decisions_per_s']:,}",
        f"{decide['decide_vs_bare_cedar_ratio']} (goal ≥ 0.8)",
    )
    table.add_row(
        f"filter → allowed people, {filt['people']:,} consents (baseline: bare SQL join)",
        f"{filt['filter_sql_s']} s",
        f"{filt['bare_sql_s']} s",
        f"{filt['filter_vs_bare_sql_ratio']}× the bare query",
    )
    table.add_row(
        "same filter: SQL vs Accord's Python reference evaluator",
        f"{filt['filter_sql_s']} s",
        f"{filt['python_reference_s']} s",
        f"SQL {filt['filter_sql_vs_python_speed_ratio']}× faster",
    )
    console.print(table)
    print(json.dumps({"benchmark": "decide", **decide, **filt}))


if __name__ == "__main__":
    main()
