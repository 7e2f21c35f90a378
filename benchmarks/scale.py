"""The clean room and matching on Apache Spark (local mode) beside DuckDB and the in-process match.

Two pieces of work, each at a few sizes, on the same data in the same process:

* **aggregate**: ``SELECT title_id, count(*), sum(seconds) FROM watch_events GROUP BY title_id``
  under the clean room's exact aggregation rule (at least 50 members per row), over watch events
  generated as ``benchmarks/cleanroom.py`` makes them (10,000,000 events, 1,000,000 members,
  1,000 titles at full size), admitted to the room once. The baseline is the room's DuckDB; the
  other side is the same checked query transpiled by sqlglot and run by Spark in local mode on
  every core, after the admitted table is handed to Spark (timed apart: ``handover_s``).
  Best of a few runs each.
* **match**: private set intersection of 1,000,000 e-mail addresses a side (half shared) at full
  size: the in-process protocol (:func:`accord.pets.psi.intersect`, every core, the protocol it
  chooses by default: OPRF from 2,000 a side) beside
  :func:`accord.pets.spark_match.spark_intersect`, the ECDH protocol as Spark tasks on every
  core, batched by a hash of the doubly blinded values. Up to ``--ecdh-max`` a side the
  in-process ECDH protocol is timed too, the like-for-like baseline. All find the same matches
  (checked).
* **lookalike**: a lookalike audience (:func:`accord.pets.lookalike.build`: the model fitted by
  scikit-learn here, the audience chosen by the engine) among 1,000,000 candidates with eight
  features at full size, DuckDB beside Spark; the audience step alone (the candidates handed to
  the engine and scored there, :func:`accord.pets.lookalike_sql.top_on`) is timed apart. Both
  choose the same people (checked).

For each, the ratio Spark / baseline at every size, and where Spark would win: a line
``time = fixed + per_item × size`` is fitted to each side's times; Spark wins from the size where
the lines cross, if its per-item time is the lower (measured, when that size is within the sizes
run; extrapolated otherwise). On one machine Spark has the same cores as the baseline and more to
do per item, so the lines may not cross there: then the size is extrapolated to a cluster of
``--machines`` machines like this one, assuming Spark's per-item time divides by their number
(it shares no state between batches or groups) and its fixed cost does not (said so in the
output).

Prints a table and ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from accord.pets.checks import check_query
from accord.pets.cleanroom import CleanRoom, answer
from accord.pets.engines import DuckDBEngine, SparkEngine, SparkSettings, spark_session
from accord.pets.lookalike import build
from accord.pets.lookalike_sql import Scorer, top_on
from accord.pets.psi import Kind, Mode, curve, identifiers, intersect
from accord.pets.psi.choices import Protocol, choose
from accord.pets.spark_match import spark_intersect
from cleanroom import generate
from cleanroom import rule as watch_rule

console = Console()

QUERY = (
    "SELECT title_id, count(*) AS views, sum(seconds) AS seconds "
    "FROM watch_events GROUP BY title_id"
)


def best(repeats: int, run: Callable[[], Any]) -> float:
    fastest = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        fastest = min(fastest, time.perf_counter() - started)
    return fastest


def aggregate(spark: Any, events: int, titles: int, repeats: int) -> dict[str, float]:
    """One size of the aggregate: DuckDB and Spark times, and the hand-over to Spark."""
    members = max(events // 10, 100)
    exact = watch_rule(noisy=False)
    with CleanRoom(exact, analyst="benchmark") as room:
        generate(room, events, members, titles)
        table = room.admit("watch_events", party="reelix")
        checked = check_query(
            exact, QUERY, {"watch_events": table.columns}, {"watch_events": table.observed}
        )
        duck = DuckDBEngine(room.database)
        on_spark = SparkEngine(spark)
        try:
            started = time.perf_counter()
            on_spark.take("watch_events", room.database)
            handover = time.perf_counter() - started
            duck_rows = answer(duck, exact, checked).rows
            spark_rows = answer(on_spark, exact, checked).rows
            if sorted(duck_rows) != sorted(spark_rows):
                raise SystemExit("Spark's aggregates differ from DuckDB's")
            duck_s = best(repeats, lambda: answer(duck, exact, checked))
            spark_s = best(repeats, lambda: answer(on_spark, exact, checked))
        finally:
            on_spark.close()
    return {"duckdb_s": duck_s, "spark_s": spark_s, "handover_s": handover, "rows": len(duck_rows)}


def match(spark: Any, size: int, partitions: int, ecdh_max: int) -> dict[str, Any]:
    """One size of the match: in-process on every core (and by ECDH, up to ``ecdh_max``), and
    in Spark tasks."""
    shared = size // 2
    ours = identifiers((f"person{i}@example.org" for i in range(size)), Kind.EMAIL)
    theirs = identifiers(
        (f"person{i}@example.org" for i in range(size - shared, 2 * size - shared)), Kind.EMAIL
    )
    figures: dict[str, Any] = {"protocol": choose(Mode.INTERSECTION, size).value}
    with curve.Engine(os.cpu_count() or 1, start_method="fork") as engine:
        started = time.perf_counter()
        in_process = intersect(ours, theirs, engine=engine)
        figures["in_process_s"] = time.perf_counter() - started
        if size <= ecdh_max:
            started = time.perf_counter()
            by_ecdh = intersect(ours, theirs, engine=engine, protocol=Protocol.ECDH)
            figures["in_process_ecdh_s"] = time.perf_counter() - started
            if by_ecdh.matched != in_process.matched:
                raise SystemExit("the in-process protocols differ")
    started = time.perf_counter()
    on_spark = spark_intersect(spark, ours, theirs, partitions=partitions)
    figures["spark_s"] = time.perf_counter() - started
    if on_spark.matched != in_process.matched or on_spark.size != shared:
        raise SystemExit("the match on Spark differs from the in-process match")
    figures["matched"] = on_spark.size
    return figures


def lookalike(spark: Any, size: int) -> dict[str, float]:
    """One size of the lookalike: built on DuckDB and on Spark; the audience step apart."""
    rng = np.random.default_rng(size)
    trait = rng.random(size) < 0.2
    features = rng.normal(size=(size, 8))
    features[:, :2] += trait[:, None]
    people = [f"p{i:08d}" for i in range(size)]
    seed = {people[i] for i in np.flatnonzero(trait)[: min(100 * max(1, size // 1_000), 500_000)]}
    audience = max(1, size // 10)
    started = time.perf_counter()
    on_duckdb = build(people, features, seed, audience)
    duckdb_s = time.perf_counter() - started
    started = time.perf_counter()
    on_spark = build(people, features, seed, audience, spark=spark)
    spark_s = time.perf_counter() - started
    if on_spark != on_duckdb:
        raise SystemExit("the lookalike on Spark differs from DuckDB's")
    scorer = Scorer((0.0,) * 8, (1.0,) * 8, tuple(rng.normal(size=8).tolist()), 0.0)
    started = time.perf_counter()
    top_on(people, features, scorer, audience)
    duckdb_top_s = time.perf_counter() - started
    started = time.perf_counter()
    top_on(people, features, scorer, audience, spark=spark)
    spark_top_s = time.perf_counter() - started
    return {
        "duckdb_s": duckdb_s,
        "spark_s": spark_s,
        "duckdb_audience_s": duckdb_top_s,
        "spark_audience_s": spark_top_s,
        "members": len(on_duckdb.members),
    }


def line(sizes: list[int], times: list[float]) -> tuple[float, float]:
    """Least-squares ``fixed + per_item × size``."""
    n = len(sizes)
    mx, my = sum(sizes) / n, sum(times) / n
    spread = sum((x - mx) ** 2 for x in sizes)
    per_item = sum((x - mx) * (y - my) for x, y in zip(sizes, times, strict=True)) / spread
    return my - per_item * mx, per_item


def crossing(
    sizes: list[int], base: list[float], spark: list[float], machines: int
) -> tuple[float | None, str]:
    """The size from which Spark is faster, and whether it was measured or extrapolated."""
    for size, b, s in zip(sizes, base, spark, strict=True):
        if s < b:
            return float(size), "measured"
    base_fixed, base_item = line(sizes, base)
    spark_fixed, spark_item = line(sizes, spark)
    if spark_item < base_item and spark_fixed > base_fixed:
        return (spark_fixed - base_fixed) / (base_item - spark_item), "extrapolated, this machine"
    cluster_item = spark_item / machines
    if cluster_item < base_item:
        at = max(0.0, (spark_fixed - base_fixed) / (base_item - cluster_item))
        return at, f"extrapolated, {machines} machines like this one"
    return None, "never, at the per-item times measured"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", default="1000000,3000000,10000000")
    parser.add_argument("--match-sizes", default="100000,1000000")
    parser.add_argument("--lookalike-sizes", default="100000,1000000")
    parser.add_argument(
        "--ecdh-max", type=int, default=100_000, help="largest match also timed by ECDH in process"
    )
    parser.add_argument("--titles", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--machines", type=int, default=8)
    parser.add_argument("--spark-memory", default="8g", help="Spark's driver memory")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a fast check")
    args = parser.parse_args()
    if args.quick:
        args.events, args.match_sizes, args.titles, args.repeats = "50000,200000", "500,2000", 50, 1
        args.lookalike_sizes = "2000,5000"
    events = [int(x) for x in args.events.split(",")]
    match_sizes = [int(x) for x in args.match_sizes.split(",")]
    lookalike_sizes = [int(x) for x in args.lookalike_sizes.split(",")]
    cores = os.cpu_count() or 1
    figures: dict[str, Any] = {"benchmark": "scale", "cores": cores}
    with console.status(f"starting Spark in local mode on {cores} cores"):
        started = time.perf_counter()
        spark = spark_session(
            SparkSettings(
                master="local[*]", shuffle_partitions=2 * cores, driver_memory=args.spark_memory
            )
        )
        # Spark's first job starts its Python workers and warms the JVM: not timed.
        warm = identifiers((f"warm{i}@example.org" for i in range(64)), Kind.EMAIL)
        spark_intersect(spark, warm, warm, partitions=4 * cores)
        figures["spark_start_s"] = time.perf_counter() - started
    try:
        with Progress(*Progress.get_default_columns(), console=console) as bars:
            task = bars.add_task("aggregate, DuckDB and Spark", total=len(events))
            agg = []
            for n in events:
                agg.append(aggregate(spark, n, args.titles, args.repeats))
                bars.console.print(
                    f"{n:,} events: DuckDB {agg[-1]['duckdb_s']:.3f} s, "
                    f"Spark {agg[-1]['spark_s']:.3f} s (hand-over {agg[-1]['handover_s']:.1f} s)"
                )
                bars.advance(task)
            task = bars.add_task("match, in process and on Spark", total=len(match_sizes))
            matched = []
            for n in match_sizes:
                matched.append(match(spark, n, 4 * cores, args.ecdh_max))
                ecdh = matched[-1].get("in_process_ecdh_s")
                bars.console.print(
                    f"{n:,} a side: in process {matched[-1]['in_process_s']:.1f} s "
                    f"({matched[-1]['protocol']})"
                    + ("" if ecdh is None else f", in process by ECDH {ecdh:.1f} s")
                    + f", Spark {matched[-1]['spark_s']:.1f} s"
                )
                bars.advance(task)
            task = bars.add_task("lookalike, DuckDB and Spark", total=len(lookalike_sizes))
            alike = []
            for n in lookalike_sizes:
                alike.append(lookalike(spark, n))
                bars.console.print(
                    f"{n:,} candidates: DuckDB {alike[-1]['duckdb_s']:.1f} s "
                    f"(audience {alike[-1]['duckdb_audience_s']:.1f} s), Spark "
                    f"{alike[-1]['spark_s']:.1f} s (audience {alike[-1]['spark_audience_s']:.1f} s)"
                )
                bars.advance(task)
    finally:
        spark.stop()
    figures.update(summary(events, agg, match_sizes, matched, args.machines))
    figures.update(lookalike_summary(lookalike_sizes, alike, args.machines))
    show(figures)


def summary(
    events: list[int],
    agg: list[dict[str, float]],
    match_sizes: list[int],
    matched: list[dict[str, Any]],
    machines: int,
) -> dict[str, Any]:
    """Each size's times and ratios, the ratios at the largest sizes, and where Spark wins."""
    figures: dict[str, Any] = {}
    for n, a in zip(events, agg, strict=True):
        figures[f"aggregate_duckdb_s_{n}"] = a["duckdb_s"]
        figures[f"aggregate_spark_s_{n}"] = a["spark_s"]
        figures[f"aggregate_handover_s_{n}"] = a["handover_s"]
        figures[f"aggregate_spark_vs_duckdb_ratio_{n}"] = a["spark_s"] / a["duckdb_s"]
        figures[f"aggregate_rows_{n}"] = a["rows"]
    for n, m in zip(match_sizes, matched, strict=True):
        figures[f"match_in_process_s_{n}"] = m["in_process_s"]
        figures[f"match_in_process_protocol_{n}"] = m["protocol"]
        if "in_process_ecdh_s" in m:
            figures[f"match_in_process_ecdh_s_{n}"] = m["in_process_ecdh_s"]
            figures[f"match_spark_vs_in_process_ecdh_ratio_{n}"] = (
                m["spark_s"] / m["in_process_ecdh_s"]
            )
        figures[f"match_spark_s_{n}"] = m["spark_s"]
        figures[f"match_spark_vs_in_process_ratio_{n}"] = m["spark_s"] / m["in_process_s"]
        figures[f"match_matched_{n}"] = m["matched"]
    figures["aggregate_spark_vs_duckdb_ratio"] = agg[-1]["spark_s"] / agg[-1]["duckdb_s"]
    figures["match_spark_vs_in_process_ratio"] = (
        matched[-1]["spark_s"] / matched[-1]["in_process_s"]
    )
    at, how = crossing(events, [a["duckdb_s"] for a in agg], [a["spark_s"] for a in agg], machines)
    figures["aggregate_spark_wins_from_events"] = at
    figures["aggregate_spark_wins_how"] = how
    at, how = crossing(
        match_sizes,
        [m["in_process_s"] for m in matched],
        [m["spark_s"] for m in matched],
        machines,
    )
    figures["match_spark_wins_from_items"] = at
    figures["match_spark_wins_how"] = how
    # Against the like-for-like baseline, over the sizes where ECDH was timed in process too.
    timed = [(n, m) for n, m in zip(match_sizes, matched, strict=True) if "in_process_ecdh_s" in m]
    if len(timed) > 1:
        at, how = crossing(
            [n for n, _ in timed],
            [m["in_process_ecdh_s"] for _, m in timed],
            [m["spark_s"] for _, m in timed],
            machines,
        )
        figures["match_spark_vs_ecdh_wins_from_items"] = at
        figures["match_spark_vs_ecdh_wins_how"] = how
    return figures


def lookalike_summary(
    sizes: list[int], alike: list[dict[str, float]], machines: int
) -> dict[str, Any]:
    """The lookalike's times and ratios at each size, and where Spark wins."""
    figures: dict[str, Any] = {}
    for n, a in zip(sizes, alike, strict=True):
        figures[f"lookalike_duckdb_s_{n}"] = a["duckdb_s"]
        figures[f"lookalike_spark_s_{n}"] = a["spark_s"]
        figures[f"lookalike_spark_vs_duckdb_ratio_{n}"] = a["spark_s"] / a["duckdb_s"]
        figures[f"lookalike_audience_duckdb_s_{n}"] = a["duckdb_audience_s"]
        figures[f"lookalike_audience_spark_s_{n}"] = a["spark_audience_s"]
        figures[f"lookalike_audience_spark_vs_duckdb_ratio_{n}"] = (
            a["spark_audience_s"] / a["duckdb_audience_s"]
        )
        figures[f"lookalike_members_{n}"] = a["members"]
    figures["lookalike_spark_vs_duckdb_ratio"] = alike[-1]["spark_s"] / alike[-1]["duckdb_s"]
    at, how = crossing(
        sizes,
        [a["duckdb_audience_s"] for a in alike],
        [a["spark_audience_s"] for a in alike],
        machines,
    )
    figures["lookalike_audience_spark_wins_from_candidates"] = at
    figures["lookalike_audience_spark_wins_how"] = how
    return figures


def show(figures: dict[str, Any]) -> None:
    """The figures as a table, then the one line of JSON."""
    table = Table(title="Spark (local mode) beside DuckDB and the in-process match, same machine")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        if isinstance(value, float):
            shown = f"{value:,.0f}" if value >= 100 else f"{value:.3f}"
        else:
            shown = str(value)
        table.add_row(key, shown)
    console.print(table)
    print(
        json.dumps(
            {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()},
        )
    )


if __name__ == "__main__":
    main()
