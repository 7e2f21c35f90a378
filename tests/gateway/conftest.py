"""The gateway's world: built once per session, and copied afresh into each test's folder.

Building it (registering and activating two agreements, loading people and consents) takes about
a second; copying its SQLite files takes milliseconds.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.ledger.audit import verify_ledger
from gateway.world import World, world


@pytest.fixture(scope="session")
def built_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the world's databases and the ledger's signing key."""
    folder = tmp_path_factory.mktemp("gateway-world")
    with world(folder):
        pass
    return folder


@pytest.fixture
def w(built_world: Path, tmp_path: Path) -> Iterator[World]:
    """A fresh copy of the Chirp–Reelix world on SQLite; its ledger must verify afterwards."""
    shutil.copytree(built_world, tmp_path, dirs_exist_ok=True)
    with world(tmp_path, populate=False) as opened:
        yield opened
        report = verify_ledger(opened.accord.ledger)
        assert report.ok, report
