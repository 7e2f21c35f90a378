"""The benchmarks still run: each one's small mode, as a separate process, ends with its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_the_decide_benchmark_runs_and_reports_its_ratio_to_bare_cedar() -> None:
    done = subprocess.run(  # noqa: S603 - our own script, run by this interpreter
        [sys.executable, str(BENCHMARKS / "decide.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["benchmark"] == "decide"
    assert result["decide_vs_bare_cedar_ratio"] > 0
    # the per-person filter of the interest-segments request was allowed and let people through
    assert 0 < result["allowed_people"] <= result["people"]


def test_the_auction_benchmark_runs_and_reports_its_ratio_to_a_bare_top_k() -> None:
    done = subprocess.run(  # noqa: S603 - our own script, run by this interpreter
        [sys.executable, str(BENCHMARKS / "auction.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["benchmark"] == "auction"
    assert result["auction_vs_bare_topk_ratio"] > 0
    assert result["all_eligible_vs_bare_topk_ratio"] > 0
    # Every request filled its two slots or fewer, and some ads were placed.
    assert 0 < result["ads_placed"] <= 2 * result["auctions"]


def test_the_ads_endpoint_benchmark_loads_both_servers_with_wrk_and_reports_its_ratio() -> None:
    # wrk is installed by the benchmark itself (scripts/ensure-wrk.sh) where it is missing.
    done = subprocess.run(  # noqa: S603 - our own script, run by this interpreter
        [sys.executable, str(BENCHMARKS / "ads_api.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["benchmark"] == "ads_api"
    assert result["ads_vs_bare_ratio"] > 0
    # Both sides answered every request, and wrk measured latencies for both.
    assert result["ads_requests"] > 0
    assert result["bare_requests"] > 0
    assert result["ads_errors"] == result["bare_errors"] == 0
    assert 0 < result["ads_p50_ms"] <= result["ads_p99_ms"]
    assert 0 < result["bare_p50_ms"] <= result["bare_p99_ms"]


def _release(*extra: str) -> dict[str, object]:
    done = subprocess.run(  # noqa: S603 - our own script, run by this interpreter
        [sys.executable, str(BENCHMARKS / "release.py"), "--quick", *extra],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    "backend",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def test_the_release_benchmark_runs_and_reports_its_ratio_to_bare_sql(
    backend: str, tmp_path: Path
) -> None:
    extra = ("--work", str(tmp_path / "release"))
    result = _release(*extra, *(("--postgres",) if backend == "postgresql" else ()))
    assert result["backend"] == backend
    ratio = result["release_vs_bare_sql_ratio"]
    assert isinstance(ratio, float)
    assert ratio > 0
    # The gateway released exactly the rows the bare query selects (checked by the run), and
    # some people consented.
    released, people = result["released_rows"], result["consenting_people"]
    assert isinstance(released, int)
    assert isinstance(people, int)
    assert 0 < people <= 20_000
    assert released > 0
