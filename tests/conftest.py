"""Fixtures shared by every test package: database URLs for SQLite and a fresh PostgreSQL, and
Apache Spark in local mode.

``db_url`` runs a test once on each backend; the PostgreSQL run is marked ``postgres`` and needs
the server at ``ACCORD_TEST_POSTGRES_URL`` (an admin URL; trust auth, user ``postgres``), where
each test gets its own database, dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from databases import fresh_postgres_database

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'accord.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each backend in turn: a SQLite file, then a fresh PostgreSQL database."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """Apache Spark in local mode for the whole run: two cores, few shuffle partitions, no UI.
    Started by the first test that asks for it (a few seconds), stopped at the end."""
    from accord.pets.engines import SparkSettings, spark_session

    session = spark_session(SparkSettings(master="local[2]", shuffle_partitions=2))
    yield session
    session.stop()
