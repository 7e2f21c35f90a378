"""A lookalike's features and its audience computed by a clean-room engine: DuckDB, or Spark.

Two steps of :mod:`accord.pets.lookalike` are work over every platform person, and run where the
clean room's queries run (:mod:`accord.pets.engines`):

* **features** (:func:`features_on`): a query in DuckDB's dialect over the platform's own tables,
  one row a person (the person first, then numbers), run by the tables' DuckDB database or, with
  a Spark session, transpiled by sqlglot and run by Spark over the same tables handed to it;
* **the audience** (:func:`top_on`): the fitted model is a linear score (standardisation, then
  logistic regression's decision function), written out as one SQL expression
  (:meth:`Scorer.sql`) with its constants as exact doubles; the candidates' best ``size`` by that
  score, ties broken by the person's id, are chosen by one ``ORDER BY … LIMIT`` on the engine.

The model itself is fitted by scikit-learn in this process. Both engines evaluate the score in
IEEE double arithmetic, operation by operation in the order written, so they choose the same
people (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import numpy.typing as npt

from accord.errors import InvalidInput
from accord.pets.engines import DuckDBEngine, QueryEngine, Rows, SparkEngine, duck, quote

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

Floats = npt.NDArray[np.float64]

CANDIDATES = "lookalike_candidates"
"""The table of candidates (``person`` and ``f0``, ``f1``, … ) the audience is chosen from."""


@dataclass(frozen=True, slots=True)
class Scorer:
    """A fitted model as the linear score it computes:
    ``intercept + Σ weight_j × (x_j - mean_j) / scale_j``."""

    means: tuple[float, ...]
    scales: tuple[float, ...]
    weights: tuple[float, ...]
    intercept: float

    def sql(self, columns: Sequence[str]) -> str:
        """The score as one SQL expression over ``columns`` (both engines' dialects)."""
        if len(columns) != len(self.weights):
            raise InvalidInput(f"the model scores {len(self.weights)} features, not {len(columns)}")
        terms = [_double(self.intercept)]
        for name, mean, scale, weight in zip(
            columns, self.means, self.scales, self.weights, strict=True
        ):
            terms.append(
                f"({quote(name)} - {_double(mean)}) / {_double(scale)} * {_double(weight)}"
            )
        # Parenthesised left to right, so that every engine adds in the same order.
        expression = terms[0]
        for term in terms[1:]:
            expression = f"({expression} + {term})"
        return expression


def _double(value: float) -> str:
    """``value`` as an exact SQL double: a literal with a decimal point would be a DECIMAL in
    both engines, so the shortest repr that reads back as the same double is cast."""
    if not np.isfinite(value):
        raise InvalidInput(f"a model's constants must be finite, not {value!r}")
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def _run(
    db: duckdb.DuckDBPyConnection, tables: Sequence[str], sql: str, spark: SparkSession | None
) -> Rows:
    """``sql`` over ``tables`` of ``db``: by ``db`` itself, or by Spark when given."""
    engine: QueryEngine = DuckDBEngine(db) if spark is None else SparkEngine(spark)
    try:
        for name in tables:
            engine.take(name, db)
        return engine.query(sql)
    finally:
        engine.close()


def features_on(
    db: duckdb.DuckDBPyConnection,
    tables: Sequence[str],
    sql: str,
    *,
    spark: SparkSession | None = None,
) -> tuple[list[str], list[str], Floats]:
    """The people, feature names and features that ``sql`` (DuckDB's dialect; the person first,
    then numbers) gives over ``tables`` of ``db``, ordered by person; on Spark when given."""
    columns, rows = _run(db, tables, f"SELECT * FROM ({sql}) AS features ORDER BY 1", spark)  # noqa: S608 - the caller's query
    if len(columns) < 2:
        raise InvalidInput("a features query gives the person, then at least one feature")
    people = [str(row[0]) for row in rows]
    if len(set(people)) != len(people):
        raise InvalidInput("a features query gives one row a person; some have more")
    try:
        values = np.array([row[1:] for row in rows], dtype=np.float64).reshape(
            len(rows), len(columns) - 1
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"a features query gives numbers after the person: {exc}") from exc
    return people, list(columns[1:]), values


def top_on(
    people: Sequence[str],
    features: Floats,
    scorer: Scorer,
    size: int,
    *,
    spark: SparkSession | None = None,
) -> list[str]:
    """The ``size`` of ``people`` (one row of ``features`` each) with the highest score, best
    first, ties by person; chosen by DuckDB, or by Spark when given."""
    names = [f"f{j}" for j in range(features.shape[1])]
    select = ", ".join(f"unnest(?::DOUBLE[]) AS {name}" for name in names)
    with duckdb.connect(":memory:") as db:
        with duck("loading the lookalike's candidates"):
            # Whole columns at once (a list each, unnested side by side), not row by row.
            db.execute(
                f"CREATE TABLE {CANDIDATES} AS SELECT unnest(?::VARCHAR[]) AS person, {select}",
                [list(people), *(features[:, j].tolist() for j in range(len(names)))],
            )
        _, rows = _run(
            db,
            [CANDIDATES],
            f"SELECT person FROM {CANDIDATES} "  # noqa: S608 - names and constants are ours
            f"ORDER BY {scorer.sql(names)} DESC, person LIMIT {int(size)}",
            spark,
        )
    return [str(person) for (person,) in rows]


__all__ = ["CANDIDATES", "Scorer", "features_on", "top_on"]
