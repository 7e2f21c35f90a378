"""A small generated scenario, shared by the tests that only read it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from accord.scenario.generate import Written, write_databases

AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PEOPLE, SEED = 3_000, 11


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Written:
    """Chirp's and Reelix's databases for 3,000 people."""
    out: Path = tmp_path_factory.mktemp("scenario")
    return write_databases(out, people=PEOPLE, seed=SEED, at=AT)
