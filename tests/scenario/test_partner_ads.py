"""Reelix's data in Chirp's ads on the reference scenario: the hook the demo calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.ads.store import AdsStore
from accord.scenario.build import register_agreements
from accord.scenario.generate import Written
from accord.scenario.partner_ads import PLANTED_EFFECT, run_partner_ads
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
