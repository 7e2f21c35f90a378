"""Conversion lift: a deterministic holdout, at least 50 people a group, OpenDP noise, and an
interval that covers a planted effect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from accord.ads.measurement import LiftStudy, conversion_lift, holdout_audience, partner_lift
from accord.ads.model import Audience
from accord.ads.store import AdsStore
from accord.errors import InvalidInput
from accord.pets import dp
from accord.pets.budget import BudgetExceeded, PrivacyBudgets
from accord.pets.checks import QueryRefused
from accord.pets.lift import MIN_PEOPLE, Counts, Group, assign, count, groups_of, measure
from accord.service import Accord
from ads.audience_world import AGREEMENT_ID, HOW, World, opened

BASE = 0.05
EFFECT = 0.02


@pytest.mark.unit
@given(person=st.text(min_size=1, max_size=20), study=st.text(min_size=1, max_size=20))
def test_assignment_is_the_same_every_time(person: str, study: str) -> None:
    assert assign(person, study, 0.3) is assign(person, study, 0.3)


@pytest.mark.unit
def test_assignment_holds_out_about_the_share_asked_and_differs_by_study() -> None:
    people = [f"c{i}" for i in range(20_000)]
    first = groups_of(people, "study-a", 0.2)
    share = sum(g is Group.HOLDOUT for g in first.values()) / len(people)
    assert 0.19 < share < 0.21  # binomial sd is 0.003
    second = groups_of(people, "study-b", 0.2)
    same = sum(first[p] is second[p] for p in people) / len(people)
    # Independent draws agree with probability 0.8² + 0.2² = 0.68.
    assert 0.66 < same < 0.70


@pytest.mark.unit
@pytest.mark.parametrize(
    ("exposed", "held", "refused"),
    [
        (1_000, MIN_PEOPLE, False),  # the holdout just large enough
        (1_000, MIN_PEOPLE - 1, True),  # the holdout one person short
        (MIN_PEOPLE - 1, 1_000, True),  # the exposed group short
    ],
)
def test_a_group_under_50_people_is_refused(exposed: int, held: int, refused: bool) -> None:
    counts = {Group.EXPOSED: Counts(exposed, 10), Group.HOLDOUT: Counts(held, 5)}
    if refused:
        with pytest.raises(QueryRefused, match="fewer than 50 people"):
            measure(counts, dp.Privacy(1.0))
    else:
        assert measure(counts, dp.Privacy(1.0)).people[Group.HOLDOUT] > 0


@pytest.mark.unit
def test_a_lower_minimum_than_50_is_not_allowed() -> None:
    counts = {Group.EXPOSED: Counts(100, 10), Group.HOLDOUT: Counts(100, 5)}
    with pytest.raises(InvalidInput):
        measure(counts, dp.Privacy(1.0), min_people=10)


def _run(seed: int, people: int, epsilon: float) -> tuple[float, float, float]:
    """One seeded study: each person converts with the holdout's rate, plus the planted effect
    if exposed. Returns the estimate and its interval."""
    rng = np.random.default_rng(seed)
    ids = [f"s{seed}-p{i}" for i in range(people)]
    groups = groups_of(ids, f"study-{seed}", 0.3)
    draws = rng.random(people)
    converted = {
        p
        for p, u in zip(ids, draws, strict=True)
        if u < BASE + (EFFECT if groups[p] is Group.EXPOSED else 0.0)
    }
    result = measure(count(groups, converted), dp.Privacy(epsilon))
    return result.lift, result.low, result.high


@pytest.mark.unit
def test_the_interval_covers_the_planted_effect_in_at_least_90_percent_of_runs() -> None:
    # Small groups and a small epsilon, where the noise is a large part of the error.
    runs = [_run(seed, 3_000, 0.1) for seed in range(200)]
    covered = sum(low <= EFFECT <= high for _lift, low, high in runs)
    assert covered >= 180
    # The estimate is unbiased: its mean is within four standard errors of the effect (each
    # run's standard error is its half-width over 1.96; the mean's is that over sqrt(runs)).
    errors = [(high - low) / 2 / 1.96 for _lift, low, high in runs]
    mean_error = float(np.sqrt(np.mean(np.square(errors)) / len(runs)))
    assert abs(np.mean([lift for lift, _low, _high in runs]) - EFFECT) < 4 * mean_error


@pytest.mark.unit
def test_the_interval_widens_with_the_noise() -> None:
    counts = {Group.EXPOSED: Counts(2_000, 140), Group.HOLDOUT: Counts(800, 40)}
    loose = measure(counts, dp.Privacy(0.05))
    tight = measure(counts, dp.Privacy(10.0))
    assert loose.noise_sd > tight.noise_sd
    # Sampling alone: sqrt(p(1-p)/n) summed over both groups, about 0.0091 at 95%: 0.0178 wide.
    sampling = 1.96 * np.sqrt(0.07 * 0.93 / 2_000 + 0.05 * 0.95 / 800)
    assert (loose.high - loose.low) / 2 > sampling * 1.2


# -- through Accord ----------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Accord, World]]:
    with opened(tmp_path, 300) as built:
        yield built


@pytest.mark.integration
def test_the_lift_is_released_as_an_aggregate_and_the_holdout_is_an_audience(
    world: tuple[Accord, World],
) -> None:
    accord, _records = world
    store = AdsStore(accord.engine, "chirp")
    study = LiftStudy("drama-season", "chirp", "reelix", AGREEMENT_ID, "lift-report", holdout=0.3)
    eligible = [f"c{i}" for i in range(300)]
    held = holdout_audience(
        store, Audience("drama-holdout", "reelix-ads", "Held out"), eligible, study.study, 0.3
    )
    assert held == {p for p in eligible if assign(p, study.study, 0.3) is Group.HOLDOUT}
    assert store.audience_members("drama-holdout") == held
    converted = {p for n, p in enumerate(eligible) if n % 9 == 0}
    result, receipt = conversion_lift(accord, study, eligible, converted, dp.Privacy(1.0))
    entry = accord.ledger.leaf(receipt.index).entry()
    assert entry["kind"] == "release"
    assert entry["granularity"] == "aggregate"
    assert entry["recipient"] == "reelix"
    assert entry["subjects"] == []
    assert entry["people"] == 300
    assert set(result.to_json()["groups"]) == {"exposed", "holdout"}


@pytest.mark.integration
@pytest.mark.parametrize("on_spark", [False, True])
def test_the_lift_counts_the_same_groups_in_process_and_on_spark(
    world: tuple[Accord, World], spark: SparkSession, on_spark: bool
) -> None:
    accord, _records = world
    study = LiftStudy("engines", "chirp", "reelix", AGREEMENT_ID, "lift-report", holdout=0.3)
    eligible = [f"c{i}" for i in range(300)]
    converted = {p for n, p in enumerate(eligible) if n % 7 == 0}
    # Noise so small (epsilon 10^6) that the released counts are the exact ones.
    result, _receipt = conversion_lift(
        accord,
        study,
        eligible,
        converted,
        dp.Privacy(1e6),
        spark=spark if on_spark else None,
    )
    held = {p for p in eligible if assign(p, study.study, 0.3) is Group.HOLDOUT}
    assert dict(result.people) == {Group.EXPOSED: 300 - len(held), Group.HOLDOUT: len(held)}
    assert dict(result.converted) == {
        Group.EXPOSED: len(converted - held),
        Group.HOLDOUT: len(converted & held),
    }


@pytest.mark.unit
def test_a_holdout_is_the_platforms_own_list() -> None:
    with pytest.raises(InvalidInput, match="platform's own"):
        holdout_audience(
            AdsStore.__new__(AdsStore),
            Audience("h", "reelix-ads", "Held out", provider="reelix"),
            [],
            "s",
        )


@pytest.mark.integration
def test_a_study_spends_everyones_budget_first_and_is_refused_when_it_would_overspend(
    world: tuple[Accord, World],
) -> None:
    accord, _records = world
    budgets = PrivacyBudgets(accord.engine, accord.ledger, default_epsilon=1.0)
    study = LiftStudy("budgeted", "chirp", "reelix", AGREEMENT_ID, "lift-report", holdout=0.3)
    eligible = [f"c{i}" for i in range(300)]
    converted = {p for n, p in enumerate(eligible) if n % 9 == 0}
    _result, receipt = conversion_lift(
        accord, study, eligible, converted, dp.Privacy(0.6), budgets=budgets
    )
    spent = accord.ledger.leaf(receipt.index - 1).entry()
    assert spent["kind"] == "budget"
    assert spent["people"] == 300
    assert budgets.remaining("chirp", "c0").epsilon == pytest.approx(0.4)
    size = accord.ledger.head().size
    with pytest.raises(BudgetExceeded):
        conversion_lift(accord, study, eligible, converted, dp.Privacy(0.6), budgets=budgets)
    # The refusal is logged; no release follows it.
    after = [accord.ledger.leaf(n).entry() for n in range(size, accord.ledger.head().size)]
    assert [e["kind"] for e in after] == ["budget"]
    assert budgets.remaining("chirp", "c0").epsilon == pytest.approx(0.4)


@pytest.mark.integration
def test_partner_conversions_come_in_only_for_members_who_may_take_part(
    world: tuple[Accord, World],
) -> None:
    accord, records = world
    study = LiftStudy("matched", "chirp", "reelix", AGREEMENT_ID, "lift-report", holdout=0.3)
    eligible = [f"c{i}" for i in range(300)]
    members = [f"m{i}" for i in range(300)]
    converters = [m for m in members if int(m[1:]) % 4 == 0]
    size = accord.ledger.head().size
    result, receipt = partner_lift(
        accord,
        study,
        HOW,
        dp.Privacy(1.0),
        eligible=eligible,
        platform_records=records.chirp_records(),
        member_records=records.reelix_records(members),
        conversion_records=records.reelix_records(converters),
    )
    # The study holds exactly the Chirp people matched with a member who may take part, as the
    # consent records say (both sides allowed).
    seen = records.expected(members)
    assert accord.ledger.leaf(receipt.index).entry()["people"] == len(seen)
    assert len(seen) < len(eligible)
    # Both matches were decided and released through Accord before the aggregate left.
    kinds = [accord.ledger.leaf(n).entry()["kind"] for n in range(size, receipt.index + 1)]
    assert kinds.count("release") == 2 * 2 + 1  # two sides of two matches, and the lift
    assert kinds[-1] == "release"
    assert result.people[Group.EXPOSED] + result.people[Group.HOLDOUT] > 0
