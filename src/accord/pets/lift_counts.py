"""A lift study's exact counts on a clean-room engine: DuckDB, or Apache Spark for big studies.

The study's people with their group, and the people who converted, go into a DuckDB database of
their own and are counted by one query: each group's people, and how many of them converted
(converters outside the study are not counted, a converter counts once). With Spark, both tables
are handed to a Spark session of their own and the same query, transpiled by sqlglot, runs
there. The answer is :func:`accord.pets.lift.count`'s; the noise is added afterwards, outside the
engine, by :func:`accord.pets.lift.measure`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

import duckdb

from accord.pets.engines import DuckDBEngine, QueryEngine, SparkEngine, duck
from accord.pets.lift import Counts, Group

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

COUNTS = (
    "SELECT s.grp, count(*) AS people, count(c.person) AS converted FROM lift_study AS s "
    "LEFT JOIN (SELECT DISTINCT person FROM lift_converted) AS c ON s.person = c.person "
    "GROUP BY s.grp"
)


def count_on(
    groups: Mapping[str, Group],
    converted: Collection[str],
    *,
    spark: SparkSession | None = None,
) -> dict[Group, Counts]:
    """Each group's people and converters, counted by DuckDB, or by Spark when given."""
    with duckdb.connect(":memory:") as db:
        with duck("loading the lift study"):
            # Whole columns at once (a list each, unnested side by side), not row by row.
            db.execute(
                "CREATE TABLE lift_study AS SELECT unnest(?::VARCHAR[]) AS person, "
                "unnest(?::VARCHAR[]) AS grp",
                [list(groups), [g.value for g in groups.values()]],
            )
            db.execute(
                "CREATE TABLE lift_converted AS SELECT unnest(?::VARCHAR[]) AS person",
                [list(converted)],
            )
        engine: QueryEngine = DuckDBEngine(db) if spark is None else SparkEngine(spark)
        try:
            for table in ("lift_study", "lift_converted"):
                engine.take(table, db)
            _, rows = engine.query(COUNTS)
        finally:
            engine.close()
    found = {Group(grp): Counts(int(people), int(wins)) for grp, people, wins in rows}
    return {g: found.get(g, Counts(0, 0)) for g in Group}


__all__ = ["COUNTS", "count_on"]
