"""Fixtures for privacy-enhancing computation: an Accord store, its privacy budgets, and Spark."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from accord.pets.budget import PrivacyBudgets
from accord.pets.engines import SparkSettings, spark_session
from accord.service import Accord


@pytest.fixture
def accord(db_url: str, tmp_path: Path) -> Iterator[Accord]:
    """An Accord store on each backend in turn (the ledger's key in the test's folder)."""
    with Accord.open(database_url=db_url, data_dir=tmp_path / "accord") as opened:
        yield opened


@pytest.fixture
def budgets(accord: Accord) -> PrivacyBudgets:
    """Privacy budgets of epsilon 1 and delta 1e-6 per person."""
    return PrivacyBudgets(accord.engine, accord.ledger, default_epsilon=1.0, default_delta=1e-6)


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """Apache Spark in local mode for the whole run: two cores, few shuffle partitions, no UI."""
    session = spark_session(SparkSettings(master="local[2]", shuffle_partitions=2))
    yield session
    session.stop()
