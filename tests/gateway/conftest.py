"""The gateway's world, built afresh for each test in its temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.ledger.audit import verify_ledger
from gateway.world import World, world


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    """The Chirp–Reelix world on SQLite; its ledger must verify once the test is done."""
    with world(tmp_path) as built:
        yield built
        report = verify_ledger(built.accord.ledger)
        assert report.ok, report
