"""The benchmarks still run: each one's small mode, as a separate process, ends with its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from databases import POSTGRES_ADMIN_URL

pytestmark = pytest.mark.integration

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def quick(script: str, *extra: str) -> dict[str, Any]:
    """The last line of a benchmark's ``--quick`` run (with ``extra`` arguments), read as JSON."""
    done = subprocess.run(  # noqa: S603 - our own script, run by this interpreter
        [sys.executable, str(BENCHMARKS / script), "--quick", *extra],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_decide_benchmark_runs_and_reports_its_ratio_to_bare_cedar() -> None:
    result = quick("decide.py")
    assert result["benchmark"] == "decide"
    assert result["decide_vs_bare_cedar_ratio"] > 0
    # the per-person filter of the interest-segments request was allowed and let people through
    assert 0 < result["allowed_people"] <= result["people"]


def test_the_auction_benchmark_runs_and_reports_its_ratio_to_a_bare_top_k() -> None:
    result = quick("auction.py")
    assert result["benchmark"] == "auction"
    assert result["auction_vs_bare_topk_ratio"] > 0
    assert result["all_eligible_vs_bare_topk_ratio"] > 0
    # Every request filled its two slots or fewer, and some ads were placed.
    assert 0 < result["ads_placed"] <= 2 * result["auctions"]


def test_the_ads_endpoint_benchmark_loads_both_servers_with_wrk_and_reports_its_ratio() -> None:
    # wrk is installed by the benchmark itself (scripts/ensure-wrk.sh) where it is missing.
    result = quick("ads_api.py")
    assert result["benchmark"] == "ads_api"
    assert result["ads_vs_bare_ratio"] > 0
    # Both sides answered every request, and wrk measured latencies for both.
    assert result["ads_requests"] > 0
    assert result["bare_requests"] > 0
    assert result["ads_errors"] == result["bare_errors"] == 0
    # Each of the two workers of each side is measured (how the load spread over them).
    assert len(result["ads_worker_cores"]) == len(result["bare_worker_cores"]) == 2
    assert 0 < result["ads_p50_ms"] <= result["ads_p99_ms"]
    assert 0 < result["bare_p50_ms"] <= result["bare_p99_ms"]


def test_the_ad_steps_benchmark_times_ad_requests_in_process_beside_a_bare_endpoint() -> None:
    result = quick("ads_steps.py", "--no-profile")
    assert result["benchmark"] == "ads_steps"
    assert 0 < result["bare_vs_ads_cpu_ratio"] < 1
    # The server's own part is part of the endpoint's CPU, and every run was timed.
    assert 0 < result["serve_many_vs_ads_cpu_ratio"] < 1
    assert len(result["ads_runs_cpu_ms"]) == len(result["bare_runs_cpu_ms"]) == result["rounds"]
    assert result["function_calls_per_request"] > 0


def test_the_privacy_centre_benchmark_times_the_page_beside_the_bare_lookup() -> None:
    result = quick("privacy_centre.py")
    assert result["benchmark"] == "privacy_centre"
    assert result["page_vs_bare_p95_ratio"] > 0
    # Each sampled person is in their own release and, by the shares drawn, in some bulk ones.
    assert result["entries_median"] >= 1
    assert result["proof_bytes_median"] > 0


def test_the_ledger_benchmark_appends_proves_and_verifies_beside_raw_sqlite() -> None:
    result = quick("ledger.py")
    assert result["leaves"] == 20_000
    for key in (
        "ledger_vs_raw_sqlite_ratio",
        "ledger_vs_pymerkle_ratio",
        "ledger_vs_raw_all_rows_ratio",
    ):
        assert float(result[key]) > 0
    assert float(result["verify_s"]) > 0


def test_the_small_ledger_benchmark_times_an_exchange_s_append_beside_raw_sqlite() -> None:
    result = quick("ledger_small.py")
    assert result["benchmark"] == "ledger_small"
    for key in ("one_thread_vs_raw_sqlite_ratio", "eight_threads_vs_raw_sqlite_ratio"):
        assert float(result[key]) > 0
    assert result["raw_sqlite_us"] > 0
    assert result["eight_threads_us"] > 0


def test_the_psi_benchmark_matches_beside_openmined_and_the_floor() -> None:
    result = quick("psi.py")
    assert result["benchmark"] == "psi"
    # Half of each side's 5,000 identifiers are shared, and the protocol finds exactly them.
    assert result["intersection_5000"] == 2_500
    assert float(result["speed_vs_openmined_ratio_5000"]) > 0
    assert float(result["oprf_speed_vs_openmined_ratio_5000"]) > 0
    assert float(result["oprf_peak_mb_5000"]) > 0


def test_the_cleanroom_benchmark_runs_the_report_beside_raw_duckdb() -> None:
    result = quick("cleanroom.py")
    assert float(result["dp_vs_raw_ratio"]) > 0
    # Every group above the threshold is released; none of fewer people.
    assert 0 < int(result["groups_released"]) <= int(result["groups_raw"])


def test_the_scale_benchmark_runs_spark_beside_duckdb_and_the_in_process_match() -> None:
    result = quick("scale.py")
    assert result["benchmark"] == "scale"
    assert result["aggregate_spark_vs_duckdb_ratio"] > 0
    assert result["match_spark_vs_in_process_ratio"] > 0
    # Both sides agreed (the benchmark stops otherwise): half of each side's 2,000 are shared,
    # and every title of the aggregate has far more than 50 members.
    assert result["match_matched_2000"] == 1_000
    assert result["aggregate_rows_200000"] == 50
    assert "aggregate_spark_wins_how" in result
    assert "match_spark_wins_how" in result
    # The like-for-like baseline of the batched ECDH match: ECDH in process, on the same sets.
    assert result["match_in_process_ecdh_s_2000"] > 0
    assert result["match_in_process_protocol_2000"] == "oprf"  # the default from 2,000 a side
    assert "match_spark_vs_ecdh_wins_how" in result
    # The lookalike chose the same people on both engines (checked): a tenth of the candidates.
    assert result["lookalike_spark_vs_duckdb_ratio"] > 0
    assert result["lookalike_members_5000"] == 500
    assert "lookalike_audience_spark_wins_how" in result


def test_the_audiences_benchmark_runs_and_reports_its_ratio_to_a_bare_match() -> None:
    result = quick("audiences.py")
    assert result["benchmark"] == "audiences"
    assert result["audience_vs_bare_psi_ratio"] > 0
    # Consent and opt-outs keep some people out: the audience is smaller than the bare match.
    assert 0 < result["members"] < result["bare_matched"]
    # The lookalike finds the seed's held-out members more often than a random list would.
    assert result["lookalike_recall_vs_random_ratio"] > 1


def test_the_click_model_benchmark_runs_and_reports_its_ratios() -> None:
    result = quick("ads_model.py")
    assert result["benchmark"] == "ads_model"
    assert 0 < result["auc_of_bayes_ratio"] <= 1.01
    assert result["lightgbm_vs_sgd_time_ratio"] > 0
    assert result["forget_vs_full_retrain_ratio"] > 0
    # Forgetting one person retrained exactly one shard; partner features helped on this world.
    assert len(result["retrained_shards"]) == 1
    assert result["partner_auc_lift"] > 0


def test_the_people_map_benchmark_runs_and_reports_its_ratios() -> None:
    result = quick("people_map.py")
    assert result["benchmark"] == "people_map"
    assert result["first_checkpoint_vs_append_ratio"] > 0
    assert result["completeness_vs_inclusion_proof_ratio"] > 0
    # A later checkpoint reads again only the people the new entries are about.
    assert 0 < result["later_people_touched"] < result["people"]
    # The path: 16 levels of buckets, and a few below when people share one.
    assert result["path_hashes"] >= 16


@pytest.mark.parametrize("writer", [[], ["--shared-writer"]], ids=["alone", "shared-writer"])
def test_the_api_benchmark_loads_both_servers_with_wrk_and_reports_its_ratio(
    writer: list[str],
) -> None:
    # wrk is installed by the benchmark itself (scripts/ensure-wrk.sh) where it is missing.
    result = quick("api.py", *writer)
    assert result["benchmark"] == "api"
    assert result["shared_writer"] is bool(writer)
    assert result["api_vs_bare_ratio"] > 0
    # Both sides answered every request with a 200, and wrk measured latencies for both.
    assert result["api_requests"] > 0
    assert result["bare_requests"] > 0
    assert result["floor_requests"] > 0
    assert result["api_errors"] == result["bare_errors"] == result["floor_errors"] == 0
    assert 0 < result["api_p50_ms"] <= result["api_p99_ms"]
    assert 0 < result["bare_p50_ms"] <= result["bare_p99_ms"]
    assert 0 < result["floor_p50_ms"] <= result["floor_p99_ms"]
    assert result["floor_vs_bare_ratio"] > 0
    # Each read through the API was logged: its decision and its release.
    assert result["ledger_entries_per_request"] >= 2


def test_the_in_process_api_benchmark_drives_the_whole_app_beside_the_bare_endpoint() -> None:
    result = quick("api_in_process.py", "--requests", "100", "--profile", "api")
    assert result["benchmark"] == "api_in_process"
    assert 0 < result["bare_vs_api_cpu_ratio"] <= result["bare_vs_api_outside_door_cpu_ratio"]
    # The driver's own cost is below each app's, and the profile saw the requests' calls.
    assert 0 < result["null_cpu_ms"] < result["bare_cpu_ms"] < result["api_cpu_ms"]
    assert result["profiled_calls_per_request"] > 0


def test_the_exchange_steps_benchmark_profiles_an_exchange_and_reports_its_ratio() -> None:
    result = quick("exchange_steps.py")
    assert result["benchmark"] == "exchange_steps"
    assert 0 < result["bare_read_vs_exchange_cpu_ratio"] < 1
    # Every step took some of the exchange's CPU, and the shares add up to the whole.
    steps = result["steps"]
    assert all(share > 0 for name, share in steps.items() if name != "scope check")
    assert abs(sum(steps.values()) - 1) < 0.01


@pytest.mark.parametrize(
    "backend",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def test_the_release_benchmark_runs_and_reports_its_ratio_to_bare_sql(
    backend: str, tmp_path: Path
) -> None:
    # A small population: the PostgreSQL run's preparation (every consent through the store and
    # its ledger) is most of its time.
    extra = ("--work", str(tmp_path / "release"), "--people", "5000")
    result = quick("release.py", *extra, *(("--postgres",) if backend == "postgresql" else ()))
    assert result["backend"] == backend
    ratio = result["release_vs_bare_sql_ratio"]
    assert isinstance(ratio, float)
    assert ratio > 0
    # The gateway released exactly the rows the bare query selects (checked by the run), and
    # some people consented.
    released, people = result["released_rows"], result["consenting_people"]
    assert isinstance(released, int)
    assert isinstance(people, int)
    assert 0 < people <= 5_000
    assert released > 0


@pytest.mark.postgres
def test_the_release_benchmark_keeps_its_postgres_database_with_its_folder(tmp_path: Path) -> None:
    """With --keep-database the PostgreSQL scenario outlives the run, and the next run given
    the same folder releases from it without preparing it again."""
    extra = ("--postgres", "--keep-database", "--work", str(tmp_path / "kept"), "--people", "2000")
    first = quick("release.py", *extra)
    kept = first["kept_database"]
    try:
        assert isinstance(kept, str)
        assert first["reused_scenario"] is False
        second = quick("release.py", *extra)
        assert second["reused_scenario"] is True
        assert second["kept_database"] == kept
        assert second["released_rows"] == first["released_rows"] > 0
    finally:
        if isinstance(kept, str):
            admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{kept}" WITH (FORCE)'))
            admin.dispose()


def test_the_kills_benchmark_kills_the_api_under_load_and_loses_nothing() -> None:
    result = quick("kills.py")
    assert result["benchmark"] == "kills"
    assert result["kills"] == result["verified_after_kills"] == 3
    # Releases were acknowledged in the rounds, and none is missing from the ledger.
    assert result["acknowledged"] > 0
    assert result["lost"] == 0
    assert result["lost_acknowledged_ratio"] == 0
    assert result["logged_unacknowledged_per_kill_ratio"] >= 0


def test_the_soak_benchmark_loads_the_api_with_wrk_and_checks_memory_and_the_ledger() -> None:
    # wrk is installed by the benchmark itself (scripts/ensure-wrk.sh) where it is missing.
    result = quick("soak.py", "--seconds", "5")
    assert result["benchmark"] == "soak"
    assert result["connections"] == 50
    # Every request was answered with a 200, and each was logged: decision and release.
    assert result["requests"] > 0
    assert result["errors"] == 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert result["ledger_verified"]
    assert result["ledger_entries_per_request_ratio"] >= 2
    assert result["rss_last_vs_first_minute_ratio"] > 0
    assert result["rss_samples"] > 0
