"""Where the clean room's checked queries run: DuckDB in this process, or Apache Spark.

The room itself does not change with the engine. Rows come in through the gateway's releases and
are admitted in the room's own DuckDB database (each person's rows ranked at random, their value
ranges observed); the analysis rule is checked by Accord (:mod:`accord.pets.checks`); every
person's budget is spent in the store before anything runs; noise is added by OpenDP in the room
after the engine's exact aggregates (:func:`accord.pets.cleanroom.answer`). Only the rebuilt
query's exact aggregates come from the engine:

* ``duckdb`` (the default): the room's own database runs them;
* ``spark``: each admitted table is handed to the room's own Spark session (a new session of the
  Spark application, so its views are seen by no other room) as a DataFrame made from the
  table's Arrow form, rank column included, and the query, written in DuckDB's dialect, is
  transpiled to Spark SQL by sqlglot. The session's master is any Spark master URL:
  ``local[2]`` on one machine, ``spark://host:7077`` or ``yarn`` for a cluster.

Both engines give the same exact aggregates for the same query (tested on the query shapes the
rules accept); sums of floating-point values may differ in their last bits, as the engines add
in different orders.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import sqlglot
from sqlglot.errors import SqlglotError

from accord.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

Rows = tuple[tuple[str, ...], list[tuple[Any, ...]]]
"""A query's column names and rows."""


class EngineKind(StrEnum):
    """The engines a clean room's queries can run on."""

    DUCKDB = "duckdb"
    SPARK = "spark"


class QueryEngine(Protocol):
    """What runs a checked clean-room query (written in DuckDB's dialect) over the room's tables."""

    kind: EngineKind

    def take(self, name: str, db: duckdb.DuckDBPyConnection) -> None:
        """Take table ``name``, admitted in the room's DuckDB database ``db``."""

    def query(self, sql: str) -> Rows:
        """The columns and rows of ``sql``."""

    def close(self) -> None:
        """Forget every table taken."""


class DuckDBEngine:
    """The room's own DuckDB database runs the queries (the default)."""

    kind = EngineKind.DUCKDB

    def __init__(self, db: duckdb.DuckDBPyConnection) -> None:
        self._db = db

    def take(self, name: str, db: duckdb.DuckDBPyConnection) -> None:
        """Nothing to do: the table is in the database already."""
        if db is not self._db:
            raise ConfigError(
                f"table {name}: a DuckDB engine runs the queries of its own room's database only"
            )

    def query(self, sql: str) -> Rows:
        """Run ``sql`` on the room's database."""
        with duck("running the clean-room query"):
            cursor = self._db.execute(sql)
            columns = tuple(d[0] for d in cursor.description or ())
            return columns, [tuple(r) for r in cursor.fetchall()]

    def close(self) -> None:
        """The room closes its database."""


@dataclass(frozen=True, slots=True)
class SparkSettings:
    """How to reach Spark: the master URL and the session's few settings that matter here."""

    master: str = "local[*]"
    shuffle_partitions: int = 8
    """Partitions of a shuffle (Spark's default of 200 is for clusters, not one machine)."""
    app_name: str = "accord"
    driver_memory: str | None = None
    """Memory of Spark's driver (e.g. ``4g``); in local mode, of the whole of Spark. Tables are
    handed over through the driver, so it holds the largest table once."""


def spark_session(settings: SparkSettings) -> SparkSession:
    """A Spark session for ``settings`` (the running one, if this process has one already).

    The UI and the console's progress bars are off, and times are read in UTC, as DuckDB does.
    """
    try:
        from pyspark.sql import SparkSession  # noqa: PLC0415 - an optional extra
    except ImportError as exc:
        raise ConfigError(
            "the Spark engine needs pyspark: pip install 'accord[spark]' (and Java 17)"
        ) from exc
    builder = SparkSession.builder.master(settings.master).appName(settings.app_name)
    if settings.master.startswith("local"):
        # Python tasks on this machine run in this interpreter's environment, with Accord in it
        # (PySpark starts its workers with PYSPARK_PYTHON, or else whatever python3 is first).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if settings.driver_memory is not None:
        builder = builder.config("spark.driver.memory", settings.driver_memory)
    try:
        session = (
            builder.config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .getOrCreate()
        )
    except Exception as exc:  # py4j and Spark raise many kinds; none may reach a user
        raise ConfigError(
            f"could not start Spark at {settings.master}: {type(exc).__name__}: {exc}"
        ) from exc
    # Failures reach the caller as Accord's errors; Spark's own log of them would repeat them.
    session.sparkContext.setLogLevel("FATAL")
    return session


def to_spark_sql(sql: str) -> str:
    """``sql`` in DuckDB's dialect, as Spark SQL (sqlglot's transpiler)."""
    try:
        (spark_sql,) = sqlglot.transpile(sql, read="duckdb", write="spark")
    except (SqlglotError, ValueError) as exc:
        raise StoreError(f"the query could not be written for Spark: {exc}") from exc
    return spark_sql


class SparkEngine:
    """A room's queries on Spark: a session of its own, the room's tables as its views."""

    kind = EngineKind.SPARK

    def __init__(self, spark: SparkSession) -> None:
        # A new session shares the application (its executors) but not its views.
        self._spark = spark.newSession()
        self._views: list[str] = []

    def take(self, name: str, db: duckdb.DuckDBPyConnection) -> None:
        """Hand admitted table ``name`` to Spark as a view of the same name (its Arrow form)."""
        # A cursor of its own: the room's connection may hold a result it has not finished.
        with duck(f"reading table {name} for Spark"), db.cursor() as cursor:
            arrow = cursor.sql(f"SELECT * FROM {quote(name)}").to_arrow_table()  # noqa: S608 - checked names
        with spark_errors(f"handing table {name} to Spark"):
            frame = self._spark.createDataFrame(arrow)
            frame.createOrReplaceTempView(name)
        self._views.append(name)

    def query(self, sql: str) -> Rows:
        """Run ``sql`` (DuckDB's dialect), transpiled, on Spark; its rows come back here."""
        spark_sql = to_spark_sql(sql)
        from pyspark.sql.types import TimestampType  # noqa: PLC0415 - an optional extra

        with spark_errors("running the clean-room query on Spark"):
            frame = self._spark.sql(spark_sql)
            columns = tuple(frame.columns)
            rows = frame.collect()
            # Spark gives an instant (a TIMESTAMPTZ in DuckDB) as the local time it is: it is
            # given back as the instant, as DuckDB gives it.
            instants = [
                i
                for i, f in enumerate(frame.schema.fields)
                if isinstance(f.dataType, TimestampType)
            ]
        if not instants:
            return columns, [tuple(row) for row in rows]
        return columns, [_instants(tuple(row), instants) for row in rows]

    def close(self) -> None:
        """Drop the room's views (the Spark application is its owner's to stop)."""
        for name in self._views:
            self._spark.catalog.dropTempView(name)
        self._views.clear()


def _instants(row: tuple[Any, ...], at: list[int]) -> tuple[Any, ...]:
    values = list(row)
    for i in at:
        if isinstance(values[i], datetime) and values[i].tzinfo is None:
            values[i] = values[i].astimezone()
    return tuple(values)


@contextmanager
def duck(doing: str) -> Iterator[None]:
    """DuckDB's errors as the store's, saying what failed."""
    try:
        yield
    except duckdb.Error as exc:
        raise StoreError(f"{doing} failed: {exc}") from exc


@contextmanager
def spark_errors(doing: str) -> Iterator[None]:
    """Spark's (and py4j's) errors as the store's, saying what failed."""
    try:
        yield
    except Exception as exc:  # py4j and Spark raise many kinds; none may reach a user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"{doing} failed: {first}") from exc


def quote(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


__all__ = [
    "DuckDBEngine",
    "EngineKind",
    "QueryEngine",
    "Rows",
    "SparkEngine",
    "SparkSettings",
    "spark_session",
    "to_spark_sql",
]
