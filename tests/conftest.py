"""Fixtures shared by every test package: database URLs for SQLite and a fresh PostgreSQL, and
Apache Spark in local mode.

The CLI's consoles are built when its modules are imported: a terminal size in the environment
then (pytest-xdist starts its workers with ``COLUMNS=80`` and ``LINES=24``) would fix their width
for the whole run, whatever width a test asks for. It is dropped here, before any test module
imports the CLI, so that every run renders as a run without a terminal does: piped output of
``accord`` at its own width, and a test that assumes another passes ``COLUMNS`` explicitly.

``db_url`` runs a test once on each backend; the PostgreSQL run is marked ``postgres`` and needs
the server at ``ACCORD_TEST_POSTGRES_URL`` (an admin URL; trust auth, user ``postgres``), where
each test gets its own database, dropped afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

from databases import fresh_postgres_database

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

for _size in ("COLUMNS", "LINES"):
    os.environ.pop(_size, None)

# Hypothesis fails an example that takes longer than its deadline (200 ms by default): a timed
# assertion, which on a loaded machine fails tests whose property holds. Properties here are
# judged by what they assert; how long a step takes is measured in benchmarks/.
settings.register_profile("accord", deadline=None)
settings.load_profile("accord")

# Files whose tests take minutes between them: they run first, so that on several workers
# (`make test` runs two, each taking one file at a time) none of them is left to finish alone.
LONG_FILES = (
    "test_benchmarks.py",
    "gateway/test_release_oracle.py",
    "store/test_maintained.py",
    "scenario/test_demo_ads.py",
    "store/test_filter_sql.py",
    "faults/test_gateway_kill.py",
    "ads/test_ranking.py",
    "pets/test_lift.py",
    "api/test_serve_kill_postgres.py",
    "scenario/test_report_browser.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long files first, in the order above; the rest keep their order."""
    tests = Path(__file__).parent

    def rank(item: pytest.Item) -> int:
        name = item.path.relative_to(tests).as_posix() if item.path.is_relative_to(tests) else ""
        return LONG_FILES.index(name) if name in LONG_FILES else len(LONG_FILES)

    items.sort(key=rank)


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
