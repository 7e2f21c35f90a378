"""Fixtures for privacy-enhancing computation: an Accord store and its privacy budgets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.pets.budget import PrivacyBudgets
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
