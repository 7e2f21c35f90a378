"""Reelix's data in Chirp's ads on the reference scenario: the hook the demo calls."""

from __future__ import annotations

import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import SparkSession

from accord.ads.store import AdsStore
from accord.scenario.ads import POST_INTERESTS
from accord.scenario.build import register_agreements
from accord.scenario.generate import Written
from accord.scenario.partner_ads import PLANTED_EFFECT, chirp_features, run_partner_ads
from accord.scenario.population import generate
from accord.service import Accord
from scenario.conftest import AT, PEOPLE, SEED

pytestmark = pytest.mark.integration


def test_run_partner_ads_builds_rebuilds_finds_lookalikes_and_measures_lift(
    scenario: Written, tmp_path: Path
) -> None:
    population = generate(PEOPLE, seed=SEED, at=AT)
    with Accord.open(data_dir=tmp_path / "accord") as accord:
        register_agreements(accord, AT)
        accord.import_records(population.people, population.consents, population.opt_outs)
        shown = run_partner_ads(accord, scenario.chirp, scenario.reelix, min_size=20, at=AT)
        leaves = [accord.ledger.leaf(n).entry() for n in range(accord.ledger.head().size)]
        store = AdsStore(accord.engine, "chirp")
        holdout = store.audience_members(f"reelix-{shown.genre}-viewers-holdout")
    assert shown.audience is not None, shown.refused
    assert shown.withdrawn > 0
    # Withdrawals can only shrink the audience.
    assert shown.rebuilt is not None
    assert shown.rebuilt <= shown.audience
    changes = [e["change"] for e in leaves if e["kind"] == "audience"]
    assert changes == ["built", "rebuilt", "lookalike"]
    assert shown.lookalike is not None
    assert shown.seed is not None
    assert shown.seed >= 25
    assert holdout
    assert shown.lift is not None
    # One run: the interval is wide, but it is an interval around an estimate.
    assert shown.lift.low <= shown.lift.lift <= shown.lift.high
    assert shown.to_json()["planted_effect"] == PLANTED_EFFECT


def test_chirp_s_features_are_the_same_on_duckdb_on_spark_and_counted_here(
    scenario: Written, spark: SparkSession
) -> None:
    people, on_duckdb = chirp_features(scenario.chirp)
    spark_people, on_spark = chirp_features(scenario.chirp, spark=spark)
    assert spark_people == people
    assert np.array_equal(on_spark, on_duckdb)
    # Counted here from Chirp's database, row by row: posts per interest, log(1 + friends).
    with closing(sqlite3.connect(scenario.chirp)) as db:
        ids = [r[0] for r in db.execute("SELECT person_id FROM people")]
        posts = Counter(
            (person, POST_INTERESTS[body])
            for person, body in db.execute("SELECT person_id, body FROM feed_posts")
            if body in POST_INTERESTS
        )
        friends = Counter(person for (person,) in db.execute("SELECT person_id FROM friendships"))
    interests = sorted(set(POST_INTERESTS.values()))
    expected = np.array(
        [[posts[p, i] for i in interests] + [np.log1p(friends[p])] for p in sorted(ids)]
    )
    assert people == sorted(ids)
    assert np.array_equal(on_duckdb, expected)
    assert on_duckdb[:, :-1].sum() > 0  # the scenario's people do post about their interests
