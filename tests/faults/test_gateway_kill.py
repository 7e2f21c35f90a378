"""SIGKILL of the partner API's process under load, five times at random moments.

The rounds are :func:`kills.kill_rounds`, as ``benchmarks/kills.py`` runs them a hundred times;
the checks after each kill are this test's own. Whatever the moment of the kill, the ledger
verifies, every release a partner saw acknowledged has its decision and release at the indexes
its receipts name, no index is acknowledged twice, and the next server serves from the same
store.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from faults.helpers import assert_logged, assert_verifies

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"
KILLS = 5


def _benchmark(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``benchmarks/{name}.py`` as the module of that name while the test runs (the benchmarks
    are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_no_acknowledged_release_is_lost_to_a_sigkill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kills.py imports its set-up from the benchmark named api, not the tests' package of
    # that name, for as long as this test runs.
    api = _benchmark("api", monkeypatch)
    kills = _benchmark("kills", monkeypatch)
    prepared = api.prepare(tmp_path, 300, None)
    seen_indexes: set[int] = set()
    acknowledged: list[int] = []

    def after_kill(number: int, seen: Any, accord: Any) -> None:
        assert not seen.errors  # every read is allowed: only a kill stops one
        assert_verifies(accord.ledger)
        acknowledged.append(assert_logged(accord.ledger, seen.acknowledged))
        indexes = [r["index"] for answer in seen.acknowledged for r in answer["receipts"]]
        assert len(set(indexes)) == len(indexes)
        assert not seen_indexes & set(indexes), f"round {number} acknowledged an index again"
        seen_indexes.update(indexes)

    seed = random.SystemRandom().randrange(2**32)
    kills.kill_rounds(tmp_path, prepared, KILLS, seed, after_kill)
    assert len(acknowledged) == KILLS, f"seed {seed}"
    # Every server after a kill served from the store its predecessor left.
    assert all(count > 0 for count in acknowledged), f"seed {seed}: {acknowledged}"
