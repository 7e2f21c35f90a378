"""Settings, by concern, each read from the environment with the prefix ``ACCORD_``.

Every field has a description; :data:`SETTINGS` lists them all for the CLI help, the docs and the
test that checks the docs mention each one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Accord's settings. ``ACCORD_DATABASE_URL`` and friends override the defaults."""

    model_config = SettingsConfigDict(env_prefix="ACCORD_", extra="ignore")

    data_dir: Path = Field(
        default=Path("accord-data"),
        description="Folder for the embedded SQLite databases and the ledger's signing key.",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the Accord store, e.g. postgresql+psycopg://host/accord. "
            "Unset: a SQLite file accord.db in the data folder."
        ),
    )
    ledger_batch_size: int = Field(
        default=512,
        ge=1,
        description="Largest number of ledger entries appended in one durable transaction.",
    )
    cleanroom_engine: Literal["duckdb", "spark"] = Field(
        default="duckdb",
        description=(
            "Engine the clean room's checked queries run on: duckdb (in the process) or spark "
            "(Apache Spark at ACCORD_SPARK_MASTER; needs accord[spark] and Java 17)."
        ),
    )
    spark_master: str = Field(
        default="local[*]",
        description=(
            "Spark master URL for the spark engine and Spark matching: local[N] on this "
            "machine, spark://host:7077, yarn, k8s://..."
        ),
    )
    spark_shuffle_partitions: int = Field(
        default=8,
        ge=1,
        description="Partitions of a Spark shuffle (a clean-room GROUP BY, a match's join).",
    )


SETTINGS: dict[str, str] = {
    f"ACCORD_{name.upper()}": (field.description or "")
    for name, field in Settings.model_fields.items()
}
