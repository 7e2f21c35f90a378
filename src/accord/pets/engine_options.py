"""The ``--engine`` and ``--spark-master`` options of the commands that run clean-room work, and
the Spark session they choose.

Heavy modules (PySpark, the settings) are imported when a command runs, not with this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from accord.errors import InvalidInput

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="Where the clean-room work runs: duckdb or spark (Apache Spark at "
        "ACCORD_SPARK_MASTER, or --spark-master) [default: ACCORD_CLEANROOM_ENGINE or duckdb].",
        show_default=False,
    ),
]
SparkMasterOption = Annotated[
    str | None,
    typer.Option(
        "--spark-master",
        help="Spark master URL with --engine spark [default: ACCORD_SPARK_MASTER or local[*]].",
        show_default=False,
    ),
]


def chosen_spark(
    engine: str | None, spark_master: str | None, *, progress: Console | None = None
) -> SparkSession | None:
    """The Spark session the options or the settings choose (None: DuckDB, in this process)."""
    from accord.config import Settings  # noqa: PLC0415 - when a command runs
    from accord.pets.engines import EngineKind, SparkSettings, spark_session  # noqa: PLC0415

    settings = Settings()
    chosen = engine or settings.cleanroom_engine
    try:
        kind = EngineKind(chosen.lower())
    except ValueError:
        raise InvalidInput(
            f"no engine {chosen!r}: choose {' or '.join(k.value for k in EngineKind)}",
            where="--engine",
        ) from None
    if kind is EngineKind.DUCKDB:
        if spark_master is not None:
            raise InvalidInput("--spark-master goes with --engine spark", where="--spark-master")
        return None
    master = spark_master or settings.spark_master
    if progress is not None:
        progress.print(f"starting Spark at {master}")
    return spark_session(
        SparkSettings(master=master, shuffle_partitions=settings.spark_shuffle_partitions)
    )


__all__ = ["EngineOption", "SparkMasterOption", "chosen_spark"]
